#!/usr/bin/env bash
# Issue 18: chained-GAN fidelity on the Galaxy Zoo sample, one recipe at a time, on a quiet machine.
#
#   bash benchmarks/run_issue18.sh VARIANT [VARIANT ...]      e.g. bash benchmarks/run_issue18.sh base augment
#
# Every variant trains on the first 1,200 images of the shared sample (GalaxyID order); the last
# 200 (GalaxyID > 870063) are held out for measurement, never seen by training or by model
# selection (--eval-every splits its validation part off the 1,200).  Then 1,000 samples (seed 1)
# are measured against the 200 held-out images and against 1,000 of the training images
# (the closest-match check against memorisation).  Results:
#   benchmarks/out/issue18/VARIANT/{model,samples,eval-heldout,eval-train}/  and  time.txt
#
# Variants (what each adds to `gangal train --data galaxyzoo:$REAL --data-option limit=1200`):
#   base          today's default recipe (W = 32, 20 + 12 epochs)
#   augment       --augment flip,rot90,translation,cutout
#   augment-r1    --augment flip,rot90,translation,cutout --r1 0.1
#   flips         --augment flip,rot90 (the free symmetries only)
#   select        --augment flip,rot90,translation,cutout --eval-every 2
#   stage1        the base model's stage I alone, sampled and measured at 64x64 (Fig. 11)
#   dcgan128-until / dcgan128-from
#                 the 128x128 DCGAN alone (Fig. 8), 40 epochs, dropout on for epochs 1-20 then off
#                 (the paper's spec and caption) / off, then on from epoch 21 (its text)
# `python benchmarks/issue18_table.py` tabulates what exists.
set -euo pipefail
cd "$(dirname "$0")/.."
REAL=${REAL:-../shared/data/galaxyzoo2-sample}
OUT=benchmarks/out/issue18
mkdir -p "$OUT"
[ -d "$REAL" ] || { echo "no Galaxy Zoo sample at $REAL (set REAL=...)" >&2; exit 2; }
DATA=(--data "galaxyzoo:$REAL" --data-option limit=1200)
HELDOUT=(--real "galaxyzoo:$REAL" --real-option "catalogue=$REAL/labels.csv" --real-option "select=GalaxyID>870063")
TRAIN=(--real "galaxyzoo:$REAL" --real-option limit=1200)
AUG=(--augment flip,rot90,translation,cutout)

measure() {  # VARIANT CHAIN RESOLUTION
    local dir=$OUT/$1
    rm -rf "$dir/samples" "$dir/eval-heldout" "$dir/eval-train"
    gangal sample --model "${MODEL:-$dir/model}" --chain "$2" -n 1000 --seed 1 --no-png --out "$dir/samples"
    gangal evaluate "${HELDOUT[@]}" --generated "$dir/samples" -n 1000 \
        --out "$dir/eval-heldout" --no-progress
    gangal evaluate "${TRAIN[@]}" --generated "$dir/samples" -n 1000 \
        --out "$dir/eval-train" --no-progress
}

train() {  # VARIANT [gangal train options...]
    local variant=$1 dir=$OUT/$1
    shift
    mkdir -p "$dir"
    rm -rf "$dir/model"
    /usr/bin/time -f "%e s wall, %M KB" -o "$dir/time.txt" \
        gangal train "${DATA[@]}" --out "$dir/model" --no-progress "$@"
    echo "$variant: $(cat "$dir/time.txt")"
}

for variant in "$@"; do
    case "$variant" in
        base) train base; measure base dcgan,stackgan 128 ;;
        augment) train augment "${AUG[@]}"; measure augment dcgan,stackgan 128 ;;
        augment-r1) train augment-r1 "${AUG[@]}" --r1 0.1; measure augment-r1 dcgan,stackgan 128 ;;
        flips) train flips --augment flip,rot90; measure flips dcgan,stackgan 128 ;;
        select) train select "${AUG[@]}" --eval-every 2; measure select dcgan,stackgan 128 ;;
        stage1) mkdir -p "$OUT/stage1"; MODEL=$OUT/base/model measure stage1 dcgan 64 ;;
        dcgan128-until)
            train dcgan128-until --chain dcgan --resolution 128 --epochs 40 --dropout-until-epoch 20
            measure dcgan128-until dcgan 128 ;;
        dcgan128-from)
            train dcgan128-from --chain dcgan --resolution 128 --epochs 40 --dropout-from-epoch 21
            measure dcgan128-from dcgan 128 ;;
        *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
done
