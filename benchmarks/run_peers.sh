#!/usr/bin/env bash
# gangal vs sbi (NPE) on the same true images, one case after the other on a quiet machine.
#
#   bash benchmarks/run_peers.sh [CASE ...]     # default: all four cases
#
# Each case: sbi (benchmarks/peers_sbi.py: 20,000 simulations, CNN embedding, 500 posterior
# samples per true image, 2 threads) then gangal's default `calibrate` (2 threads), both on the
# same 2,000 true images (seed 0).  Results: benchmarks/out/peers/CASE-sbi.json and
# benchmarks/out/peers/CASE-gangal/calibration.json; `python benchmarks/peers_table.py` tabulates.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/out/peers
mkdir -p "$out"
N_TRUE=2000
SEED=0
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(circle-table2 polynomial-table1 circle-lowsignal circle-misspecified)
for case in "${cases[@]}"; do
    if [ ! -f "$out/$case-sbi.json" ]; then
        /usr/bin/time -f "%e s wall, %M KB" python benchmarks/peers_sbi.py --case "$case" \
            --out "$out/$case-sbi.json" --n-true $N_TRUE --seed $SEED 2>&1 | tail -n 25
    fi
    run="$out/$case-gangal"
    [ -f "$run/calibration.json" ] && continue
    rm -rf "$run"
    case "$case" in
        circle-table2) args=(--simulator circle) ;;
        polynomial-table1) args=(--simulator polynomial) ;;
        circle-lowsignal) args=(--simulator circle --range n=0.2:0.8 --range b=0.05:0.6
                                --truth n=0.5,0.05 --truth b=0.25,0.05) ;;
        circle-misspecified)
            python -c "import numpy as np, sys; sys.path.insert(0, '.'); \
from benchmarks.peers_sbi import true_set; \
np.save('$out/$case-true.npy', true_set('$case', $N_TRUE, $SEED)[1].numpy())"
            args=(--simulator circle --true-data "$out/$case-true.npy") ;;
        *) echo "unknown case $case" >&2; exit 2 ;;
    esac
    [ "$case" != circle-misspecified ] && args+=(--n-true $N_TRUE)
    /usr/bin/time -f "%e s wall, %M KB" gangal calibrate "${args[@]}" --seed $SEED --out "$run" \
        --no-progress 2>&1 | tail -n 25
done
