#!/usr/bin/env bash
# Every figure of the model-assisted GAN section of RESULTS.md, in order, on a quiet machine.
#   bash benchmarks/run_issue3.sh 2>&1 | tee benchmarks/out/run_issue3.log
set -euo pipefail
cd "$(dirname "$0")/.."
B=benchmarks
O=$B/out
mkdir -p $O
rm -f $O/calibration_tables.json
# Tables I and II: the default command, pretraining included, three seeds each
python $B/calibration_tables.py --simulator circle --simulator polynomial --seeds 0 1 2
# a new calibration with a pretrained emulator (the emulators of seed 0)
python $B/calibration_tables.py --simulator circle --seeds 3 4 --tag=-pretrained -- --emulator $O/calibrate-circle-0/emulator
python $B/calibration_tables.py --simulator polynomial --seeds 3 --tag=-pretrained -- --emulator $O/calibrate-polynomial-0/emulator
# other truths, well inside the ranges (not the paper's)
python $B/calibration_tables.py --simulator circle --seeds 5 --tag=-truth2 -- --emulator $O/calibrate-circle-0/emulator \
  --truth x0=16.5,0.6 --truth y0=19,1.0 --truth r=7,0.4 --truth n=0.1,0.03 --truth b=1.0,0.03
python $B/calibration_tables.py --simulator polynomial --seeds 5 --tag=-truth2 -- --emulator $O/calibrate-polynomial-0/emulator \
  --truth m=1.0,0.2 --truth x0=9.5,0.4 --truth c=0.4,0.08 --truth xsteps=8.5,0.4
# a simulator other than the built-ins: the example plugin (32x32, Poisson noise), default command
python $B/calibration_tables.py --simulator star --seeds 0
# Table III: simulator vs emulator speed
python $B/table3_speed.py --repeats 2 --emulator circle=$O/calibrate-circle-0/emulator \
  --emulator polynomial=$O/calibrate-polynomial-0/emulator
