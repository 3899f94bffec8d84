#!/usr/bin/env bash
# One-shot GPU check (issue #12): versions, the GPU tests, CUDA-graph / attention / fp16 / bf16 / OOM
# checks and the benchmark rows, written as one table to $OUT/gpu_check.md (default ./gpu_check_out).
# Runs as is on a machine with a GPU in at most ~8 minutes, and to the end on a CPU-only machine
# (GPU parts skipped with their reason; CI runs `scripts/gpu_check.sh --quick`).
#
#   scripts/gpu_check.sh [--quick] [--budget-s SECONDS]
#
# Python: $PYTHON if set; else the first of ./.venv/bin/python and python3 whose torch sees a GPU; else
# the first of them that imports torch at all; else `scripts/setup.sh` is run (needs the network) and
# ./.venv is used. The device machines lent to this project have python3 with a CUDA torch preinstalled
# and no network, so there the system python3 is used; the package's other imports (numpy, opencv,
# scikit-image, pytest, timm) must then be installed there too -- the first table rows name what is missing.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_check_out}"
mkdir -p "$OUT"
export OUT

has_torch() { "$1" -c "import torch" >/dev/null 2>&1; }
has_cuda() { "$1" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; }

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  candidates=()
  [ -x ./.venv/bin/python ] && candidates+=(./.venv/bin/python)
  command -v python3 >/dev/null 2>&1 && candidates+=("$(command -v python3)")
  for c in "${candidates[@]}"; do if has_cuda "$c"; then PY="$c"; break; fi; done
  if [ -z "$PY" ]; then
    for c in "${candidates[@]}"; do if has_torch "$c"; then PY="$c"; break; fi; done
  fi
  if [ -z "$PY" ]; then
    echo "[gpu_check] no python with torch found; running scripts/setup.sh to create .venv" >&2
    scripts/setup.sh || { echo "[gpu_check] scripts/setup.sh failed: install torch for python3" >&2; exit 2; }
    PY=./.venv/bin/python
  fi
fi
echo "[gpu_check] python: $PY; output: $OUT/gpu_check.md"
missing=$("$PY" -c "
import importlib.util as u
print(' '.join(m for m in ('numpy', 'cv2', 'skimage', 'timm', 'pytest') if u.find_spec(m) is None))")
[ -n "$missing" ] && echo "[gpu_check] WARNING: missing Python modules for $PY: $missing" >&2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# SIGINT at the limit lets the Python part write the table of what it finished; KILL 20 s later.
timeout --signal=INT --kill-after=20 470 "$PY" scripts/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
