#!/usr/bin/env bash
# The GPU path in one go (< 4 minutes on one GPU): the CUDA tests, `bench speed --device cuda` and
# `bench live --device cuda`, each figure printed. Run from the repository root on a machine with a
# CUDA GPU:  bash bench/gpu_check.sh [OUT_DIR]   (default bench_results/gpu). Exits non-zero on the
# first failure; without a GPU it stops at once (the CPU paths are what `make test` checks).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SL=${SL:-.venv/bin/soundlens}
OUT=${1:-bench_results/gpu}
mkdir -p "$OUT"

"$PY" - <<'PYEOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to torch; nothing to check here")
p = torch.cuda.get_device_properties(0)
print(f"gpu_check: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}")
PYEOF

echo "== 1/3 CUDA tests (pytest -m cuda)"
QT_QPA_PLATFORM=offscreen timeout 90 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/models/test_speed.py

echo "== 2/3 bench speed --device cuda (reference vs optimised, batch 1 and 16)"
timeout 100 "$SL" bench speed --device cuda --methods ezvsl,lvs,slavc,sslalign,jsa,sira --batch 1,16 \
    --repeats 5 --out "$OUT/speed_cuda.json"

echo "== 3/3 bench live --device cuda (procedural source, default model)"
timeout 40 "$SL" bench live --device cuda --seconds 15 --out "$OUT/live_cuda.json"

echo "gpu_check: done; figures in $OUT (speed_cuda.json/.md, live_cuda.json)"
