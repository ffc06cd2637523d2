#!/usr/bin/env bash
# The floor under `gangal simulate -n 1000000` to a RAM disk, measured in the same run:
# start-up (Python + torch import) plus dd writing the same 3,136,000,000 bytes, interleaved
# with the real commands so that every measurement sees the same memory state.
#   bash benchmarks/simulate_floor.sh [TRIALS]
set -euo pipefail
trials=${1:-3}
dir=/dev/shm/gangal-floor
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); python3 -c "print(f'{$e - $s:.2f}')"; }
echo "| trial | start-up (gangal --version) | dd 3.14 GB to /dev/shm | floor = sum | polynomial 1M | circle 1M |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
for i in $(seq 1 "$trials"); do
  rm -rf "$dir"; mkdir -p "$dir"
  su=$(t gangal --version)
  dd_s=$(t dd if=/dev/zero of="$dir/dd" bs=16M count=187)   # 187 x 16 MiB = 3.137 GB
  rm -rf "$dir"
  tp=$(t gangal simulate --simulator polynomial -n 1000000 --seed "$i" --out "$dir")
  rm -rf "$dir"
  tc=$(t gangal simulate --simulator circle -n 1000000 --seed "$i" --out "$dir")
  rm -rf "$dir"
  floor=$(python3 -c "print(f'{$su + $dd_s:.2f}')")
  echo "| $i | $su | $dd_s | $floor | $tp | $tc |"
done
