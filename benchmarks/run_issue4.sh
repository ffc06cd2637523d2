#!/usr/bin/env bash
# Issue 4 benchmarks: stage-I throughput vs a plain loop, and a CPU-sized chain on the real sample.
# Run on a quiet machine from the repository root:  bash benchmarks/run_issue4.sh
set -euo pipefail
REAL=${REAL:-../shared/data/galaxyzoo2-sample}
OUT=benchmarks/out
mkdir -p "$OUT"
# 1. the plugin architecture costs nothing: gangal's DCGAN trainer vs a hand-written loop, same networks
python benchmarks/chain_throughput.py --data "galaxyzoo:$REAL" --width 32 --rounds 5 > "$OUT/chain_throughput_w32.json"
python benchmarks/chain_throughput.py --data "galaxyzoo:$REAL" --width 32 --rounds 5 --plain-format contiguous \
    > "$OUT/chain_throughput_w32_contig.json"
# 2. a CPU-sized chain (W = 32) on the first 1,200 real images (GalaxyID order); the last 200 are held out
rm -rf "$OUT/chain-real" "$OUT/chain-real-samples"
/usr/bin/time -v gangal train --chain dcgan,stackgan --data "galaxyzoo:$REAL" --data-option limit=1200 \
    --width 32 --epochs 200,45 --sample-every 10 --seed 0 --out "$OUT/chain-real" 2> "$OUT/chain-real.time"
gangal sample --chain dcgan,stackgan --model "$OUT/chain-real" -n 1000 --seed 1 --out "$OUT/chain-real-samples"
