#!/usr/bin/env bash
# Calibrate a simulator gangal cannot call, end to end: stored simulations, a TOML spec, no plugin.
# Usage: bash run.sh [WORK_FOLDER] [BANK_SIZE] [ITERATIONS] [PRETRAIN_ITERATIONS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-external-run}; bank=${2:-20000}; iterations=${3:-3000}; pretrain=${4:-4000}
mkdir -p "$work"
# 1. the program simulates a bank over the declared ranges, and (here) the observed images
python "$here/ring_program.py" bank "$work/sims" "$bank" 1
python "$here/ring_program.py" truth "$work/obs" 2000 2
# 2. gangal calibrates from the files: the discriminator sees emulated images only
gangal calibrate --simulator-spec "$here/ring.toml" --bank "$work/sims/images.npy" \
    --bank-parameters "$work/sims/parameters.csv" --true-data "$work/obs/images.npy" \
    --true-params "$work/obs/parameters.csv" --iterations "$iterations" \
    --pretrain-iterations "$pretrain" --out "$work/run" --no-progress
# 3. the program simulates the best match gangal wrote; gangal computes the predictive check
python "$here/ring_program.py" at "$work/run/best_match_parameters.csv" "$work/best" 3
gangal check --run "$work/run" --simulations "$work/best/images.npy"
