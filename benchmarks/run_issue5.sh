#!/usr/bin/env bash
# Issue 5 benchmarks: isophote fast path vs photutils, the real sample against itself, and the
# W=32 chain of run_issue4.sh against held-out real images.  Run from the repository root.
set -euo pipefail
REAL=${REAL:-../shared/data/galaxyzoo2-sample}
OUT=benchmarks/out
mkdir -p "$OUT"
# 1. agreement and speed of the two isophote paths on the same images
python benchmarks/isophote_agreement.py --data "galaxyzoo:$REAL" --n 400 --out "$OUT/isophote_agreement_real400.json"
python benchmarks/isophote_agreement.py --data "galaxyzoo:$REAL" --n 400 --offset 400 \
    --out "$OUT/isophote_agreement_real400_offset400.json"
python benchmarks/isophote_agreement.py --data synthetic --n 200 --out "$OUT/isophote_agreement_synthetic200.json"
# 2. the yardstick: two halves of the real sample (GalaxyID <= 553402 and above), at 128x128
rm -rf "$OUT/eval-real-halves" "$OUT/eval-chain-heldout" "$OUT/eval-chain-train"
gangal evaluate --real "galaxyzoo:$REAL" --real-option limit=700 \
    --generated "galaxyzoo:$REAL" --generated-option "catalogue=$REAL/labels.csv" \
    --generated-option "select=GalaxyID>553402" -n 700 --out "$OUT/eval-real-halves" --no-progress
# 3. the chain (run_issue4.sh) against the 200 held-out real images and against its 1,200 training images
gangal evaluate --real "galaxyzoo:$REAL" --real-option "catalogue=$REAL/labels.csv" \
    --real-option "select=GalaxyID>870063" --generated "$OUT/chain-real-samples" -n 1000 \
    --out "$OUT/eval-chain-heldout" --no-progress
gangal evaluate --real "galaxyzoo:$REAL" --real-option limit=1200 --generated "$OUT/chain-real-samples" \
    -n 1000 --out "$OUT/eval-chain-train" --no-progress
