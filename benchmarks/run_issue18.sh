#!/usr/bin/env bash
# Issue 18: chained-GAN fidelity on the Galaxy Zoo sample, one recipe at a time, on a quiet machine.
#
#   bash benchmarks/run_issue18.sh stage1 VARIANT         # stage I alone (64x64), then measured
#   bash benchmarks/run_issue18.sh stage2 VARIANT         # the refiner on top of it, then the chain
#   bash benchmarks/run_issue18.sh sky VARIANT            # both again with the training images' sky
#   bash benchmarks/run_issue18.sh stage1-sky VARIANT     # stage I alone again with the sky
#   bash benchmarks/run_issue18.sh fig8 READING [EPOCHS]  # the 128x128 DCGAN alone (Fig. 8), dropout
#                                                         # on then off (spec) or off then on (text)
#
# Every variant trains on the first 1,200 images of the shared sample (GalaxyID order), of which
# --eval-every holds a seeded 10% (120) out for model selection; the last 200 (GalaxyID > 870063)
# are held out for measurement and never seen by training or selection.  Stage I: W = 32, 200
# epochs, scored every 10; the refiner: 45 epochs, scored every 5.  Each measurement draws 1,000
# samples (seed 1) with the last epoch's moving average (ema) and with the selected epoch (best),
# and compares them with the 200 held-out images and with the 1,200 training images (the
# closest-match check against memorisation).  Output under benchmarks/out/issue18/:
#   VARIANT/model/, VARIANT/time-stage{1,2}.txt, stage1-VARIANT-{ema,best}/, chain-VARIANT-{ema,best}/,
#   stage1-VARIANT-ema-sky/, chain-VARIANT-ema-sky/ (each with samples/, eval-heldout/, eval-train/).
# Variants (what each adds to `gangal train`):
#   base       nothing: the paper's recipe at W = 32
#   augment    --augment flip,rot90,translation,cutout
#   flips      --augment flip,rot90 (the sky's symmetries, real images only)
#   r1         --r1 0.1
#   base-s1    --seed 1: the base recipe again on another seed (the seeds' own spread)
#   lrdecay    --lr-decay-from 101: the rate constant for 100 epochs, then linear to zero at 200
#   w64        --width 64: twice the channels (about 3x the time; the paper's best is 128)
#   half       the first 600 images (540 train), for as many steps (400 epochs, scored every 20)
#   half-s1    the same with --seed 1
# Fig. 8 readings (the paper's two descriptions of one dropout schedule, docs/chained-gan.md), the
# switch at half of EPOCHS (default 60; the paper's 200 of 400 do not fit 2 cores in an hour):
#   spec       --dropout-until-epoch EPOCHS/2   (framed specification and Fig. 8's caption)
#   text       --dropout-from-epoch EPOCHS/2    (the text after it)
#   none       no dropout (the 128x128 DCGAN without either)
# Each is measured at its last epoch's moving average: fig8-READING/ under OUT.
# `python benchmarks/issue18_table.py` tabulates what exists.
set -euo pipefail
cd "$(dirname "$0")/.."
REAL=${REAL:-../shared/data/galaxyzoo2-sample}
OUT=benchmarks/out/issue18
[ -d "$REAL" ] || { echo "no Galaxy Zoo sample at $REAL (set REAL=...)" >&2; exit 2; }
DATA=(--data "galaxyzoo:$REAL" --data-option limit=1200 --width 32 --seed 0 --no-progress)
HELDOUT=(--real "galaxyzoo:$REAL" --real-option "catalogue=$REAL/labels.csv" --real-option "select=GalaxyID>870063")
TRAIN=(--real "galaxyzoo:$REAL" --real-option limit=1200)

measure() {  # NAME MODEL CHAIN [sample options...]
    local dir=$OUT/$1 model=$2 chain=$3
    shift 3
    rm -rf "$dir"
    mkdir -p "$dir"
    gangal sample --model "$model" --chain "$chain" -n 1000 --seed 1 --no-png --out "$dir/samples" "$@"
    gangal evaluate "${HELDOUT[@]}" --generated "$dir/samples" -n 1000 --out "$dir/eval-heldout" --no-progress
    gangal evaluate "${TRAIN[@]}" --generated "$dir/samples" -n 1000 --out "$dir/eval-train" --no-progress
}

options() {  # VARIANT -> the variant's training options
    case "$1" in
        base) ;;
        augment) echo --augment flip,rot90,translation,cutout ;;
        flips) echo --augment flip,rot90 ;;
        r1) echo --r1 0.1 ;;
        base-s1) echo --seed 1 ;;
        lrdecay) echo --lr-decay-from 101 ;;
        w64) echo --width 64 ;;
        half) echo --data-option limit=600 --epochs 400 --eval-every 20 ;;
        half-s1) echo --data-option limit=600 --epochs 400 --eval-every 20 --seed 1 ;;
        *) echo "unknown variant $1" >&2; exit 2 ;;
    esac
}

what=$1 variant=$2
model=$OUT/$variant/model
case "$what" in
    stage1)
        extra=$(options "$variant")
        rm -rf "$model"
        mkdir -p "$OUT/$variant"
        # shellcheck disable=SC2086
        /usr/bin/time -f "%e s wall, %M KB" -o "$OUT/$variant/time-stage1.txt" gangal train "${DATA[@]}" \
            --chain dcgan --epochs 200 --sample-every 10 --eval-every 10 --out "$model" $extra
        for w in ema best; do measure "stage1-$variant-$w" "$model" dcgan --weights "$w" --no-sky; done ;;
    stage2)
        extra=$(options "$variant")
        # shellcheck disable=SC2086
        /usr/bin/time -f "%e s wall, %M KB" -o "$OUT/$variant/time-stage2.txt" gangal train "${DATA[@]}" \
            --chain dcgan,stackgan --epochs 200,45 --sample-every 5 --eval-every 5 --out "$model" --resume $extra
        for w in ema best; do measure "chain-$variant-$w" "$model" dcgan,stackgan --weights "$w" --no-sky; done ;;
    stage1-sky)
        measure "stage1-$variant-ema-sky" "$model" dcgan --weights ema ;;
    sky)
        measure "stage1-$variant-ema-sky" "$model" dcgan --weights ema
        measure "chain-$variant-ema-sky" "$model" dcgan,stackgan --weights ema ;;
    fig8)
        epochs=${3:-60}
        case "$variant" in
            spec) extra="--dropout-until-epoch $((epochs / 2))" ;;
            text) extra="--dropout-from-epoch $((epochs / 2))" ;;
            none) extra="" ;;
            *) echo "unknown Fig. 8 reading $variant (spec, text or none)" >&2; exit 2 ;;
        esac
        model=$OUT/fig8-$variant/model
        rm -rf "$model"
        mkdir -p "$OUT/fig8-$variant"
        # shellcheck disable=SC2086
        /usr/bin/time -f "%e s wall, %M KB" -o "$OUT/fig8-$variant/time.txt" gangal train "${DATA[@]}" \
            --chain dcgan --resolution 128 --epochs "$epochs" --sample-every 10 --out "$model" $extra
        measure "fig8-$variant-ema" "$model" dcgan --weights ema ;;
    *) echo "usage: $0 stage1|stage2|sky|stage1-sky VARIANT | fig8 spec|text|none [EPOCHS]" >&2; exit 2 ;;
esac
