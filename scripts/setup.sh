#!/usr/bin/env bash
# Set up .venv for dcmpnet_ros on a fresh machine (idempotent; reruns only what changed).
# PyTorch first: timm needs torchvision, and PyPI's torchvision only imports beside its matching
# torch. Override the pair for your CUDA, e.g.
#   TORCH_SPEC="torch==2.5.1 torchvision==0.20.1" TORCH_INDEX=https://download.pytorch.org/whl/cu121 make test
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
STAMP="$VENV/.dcmpnet-setup"
want="$TORCH_SPEC|$(cat setup.py | sha1sum | cut -c1-12)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
pipq() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither" || true; }
echo "[setup] installing $TORCH_SPEC (a few minutes the first time)"
# shellcheck disable=SC2086
if [ -n "${TORCH_INDEX:-}" ]; then pipq $TORCH_SPEC --index-url "$TORCH_INDEX"; else pipq $TORCH_SPEC; fi
echo "[setup] installing dcmpnet_ros (editable) with test dependencies"
pipq -e ".[dev]"
"$VENV/bin/python" -c "import torch, torchvision, timm, cv2, rosbags, dcmpnet_core" \
  || { echo "[setup] import check failed" >&2; exit 1; }
echo "$want" > "$STAMP"
echo "[setup] ready: $VENV (torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'))"
