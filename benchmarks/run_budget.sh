#!/usr/bin/env bash
# gangal calibrate within a simulation budget (issue 17), one run after the other on a quiet machine.
#
#   bash benchmarks/run_budget.sh BUDGET "SEEDS" [CASE ...]     e.g. bash benchmarks/run_budget.sh 20000 "0 1 2"
#
# Cases (the peers' cases, benchmarks/run_peers.sh): circle-table2 (Table II), polynomial-table1
# (Table I), circle-lowsignal (noise 0.5, brightness 0.25).  Each run: 2,000 true images drawn
# from the case's truth with the run's seed, the budget covering everything else.  Results:
# benchmarks/out/budget/CASE-BUDGET-sSEED/calibration.json; `python benchmarks/budget_table.py`
# tabulates them against the Tables' bar.  EXTRA="--recipe paper" adds options to every run;
# TAG=paper keeps such runs apart (benchmarks/out/budget-paper/...).  BUDGET "none" runs
# without a budget (the default calibration) on the same true images.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=${1:-20000}; seeds=${2:-0}; shift 2 || true
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(circle-table2 polynomial-table1 circle-lowsignal)
out=benchmarks/out/budget${TAG:+-$TAG}
mkdir -p "$out"
for case in "${cases[@]}"; do
    case "$case" in
        circle-table2) args=(--simulator circle) ;;
        polynomial-table1) args=(--simulator polynomial) ;;
        circle-lowsignal) args=(--simulator circle --range n=0.2:0.8 --range b=0.05:0.6
                                --truth n=0.5,0.05 --truth b=0.25,0.05) ;;
        *) echo "unknown case $case" >&2; exit 2 ;;
    esac
    for seed in $seeds; do
        run="$out/$case-$budget-s$seed"
        [ -f "$run/calibration.json" ] && continue
        rm -rf "$run"
        limit=(--budget "$budget"); [ "$budget" = none ] && limit=()
        # shellcheck disable=SC2086  # EXTRA is a list of options
        /usr/bin/time -f "%e s wall, %M KB" gangal calibrate "${args[@]}" "${limit[@]}" \
            --n-true 2000 --seed "$seed" --out "$run" --no-progress ${EXTRA:-} 2>&1 | tail -n 4
    done
done
