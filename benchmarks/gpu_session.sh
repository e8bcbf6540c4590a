#!/usr/bin/env bash
# One device call that does all the GPU work of issues 4 and 5 (run it from the repo root on
# the GPU machine; device time is scarce, so everything is in one script with time caps):
#   1. a training run of the `default` preset from the compact cache,
#   2. the half-precision export that is shipped as fetalhead/weights/fetalhead_default.pt,
#   3. the benchmark (throughput reference vs default, MFU, time to val Dice 0.97, latency).
# Needs: a CUDA torch (python3 on the device image has one), the compact cache built here with
#   fetalhead prepare-cache --size 256x384 --out .cache/hc18_256x384.npz
# and $OUT (the device tool's output folder; defaults to ./gpu_out).
# Held-out evaluation at 540x800 needs the full data: run `fetalhead evaluate` afterwards on a
# machine that has HC18 (the CPU is enough).
set -euo pipefail
OUT="${OUT:-gpu_out}"; mkdir -p "$OUT"
CACHE="${CACHE:-.cache/hc18_256x384.npz}"
PY="${PY:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY - <<'PY' | tee -a "$OUT/gpu.txt"
import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())
PY
# 1. training first (it matters most): the default preset, early stopping on validation Dice.
#    The cap keeps the whole script under the device tool's 10-minute limit per call; if it
#    cuts the run, best.pt still holds the best epoch so far (set --epochs so the one-cycle
#    schedule ends inside the cap once the speed is known).
timeout 330 $PY -m fetalhead train --preset default --cache "$CACHE" --out "$OUT/run-default" --quiet --overwrite ${EPOCHS:+--epochs $EPOCHS} 2>&1 | tee "$OUT/train.txt" || echo "training stopped by its time cap" | tee -a "$OUT/train.txt"
# 2. the shipped file: fp16 weights + config + validation metrics (< 10 MB)
$PY - "$OUT" <<'PY'
import sys
from pathlib import Path
from fetalhead.train import export_weights, load_checkpoint
out = Path(sys.argv[1])
model, cfg, meta = load_checkpoint(out / "run-default" / "best.pt")
export_weights(model, cfg, meta.get("metrics", {}), out / "fetalhead_default.pt", epoch=meta.get("epoch"))
print("exported", (out / "fetalhead_default.pt").stat().st_size / 2**20, "MiB")
PY
# 3. benchmark: throughput of both recipes, MFU, latency; time to Dice 0.97 capped at 60 s
timeout 200 $PY -m fetalhead.bench --cache "$CACHE" --cap 60 --steps 15 --out "$OUT/bench.json" 2>&1 | tee "$OUT/bench.txt" || echo "bench failed or timed out" | tee -a "$OUT/bench.txt"
cp "$OUT/run-default/history.csv" "$OUT/history_default.csv"
rm -rf "$OUT/run-default"   # only 8 files come back; keep the small ones
ls -la "$OUT"
