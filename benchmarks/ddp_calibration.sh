#!/usr/bin/env bash
# Data-parallel calibration: the default circle calibration (pretraining included) in one
# process with 2 threads, and under torchrun in 2 processes of 1 thread, same seed, same
# global batch, on the same 2 cores, one after the other.
#   bash benchmarks/ddp_calibration.sh [SEED] [EMULATOR_DIR]
# With EMULATOR_DIR, both runs calibrate with that pretrained emulator (no pretraining).
set -euo pipefail
seed=${1:-0}
emu=()
if [ -n "${2:-}" ]; then emu=(--emulator "$2"); fi
out=benchmarks/out/ddp
rm -rf "$out"; mkdir -p "$out"
t() { local s e; s=$(date +%s.%N); "$@" > "$out/last.log" 2>&1; e=$(date +%s.%N); python3 -c "print(f'{$e - $s:.1f}')"; }
single=$(OMP_NUM_THREADS=2 t python -m gangal_core calibrate --simulator circle --seed "$seed" "${emu[@]}" --no-progress --out "$out/single")
cp "$out/last.log" "$out/single.log"
ddp=$(OMP_NUM_THREADS=1 t python -m torch.distributed.run --standalone --nproc-per-node 2 -m gangal_core calibrate --simulator circle --seed "$seed" "${emu[@]}" --no-progress --out "$out/ddp2")
cp "$out/last.log" "$out/ddp2.log"
echo "single process (2 threads): ${single} s; torchrun 2 processes (1 thread each): ${ddp} s"
python3 - "$out/single/calibration.json" "$out/ddp2/calibration.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
print("| parameter | true mu, sigma | single: mu, sigma | 2 processes: mu, sigma | max diff / sigma_true |")
print("| --- | --- | --- | --- | ---: |")
for k, p in a["parameters"].items():
    q = b["parameters"][k]
    d = max(abs(p["mean"] - q["mean"]), abs(p["std"] - q["std"])) / p["true_std"]
    print(f"| {k} | {p['true_mean']:.4g}, {p['true_std']:.4g} | {p['mean']:.4g}, {p['std']:.4g} | "
          f"{q['mean']:.4g}, {q['std']:.4g} | {d:.2e} |")
for name, doc in (("single", a), ("2 processes", b)):
    print(name, "timing:", doc.get("timing_seconds"))
PY
