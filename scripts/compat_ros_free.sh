#!/usr/bin/env bash
# Run the ROS-free message/queue/diagnostics/parameter tests with the library versions a ROS 2 machine has,
# without torch:
#   humble (default): Python 3.10, NumPy 1.21, OpenCV 4.5  -> .venv-compat
#   jazzy:            Python 3.12, NumPy 1.26, OpenCV 4.6  -> .venv-compat-jazzy
# Usage: scripts/compat_ros_free.sh [humble|jazzy] [pytest args...]
# Idempotent: the venv is (re)built only when its Python or the pinned versions change (~30 s), then the tests
# take a few seconds. COMPAT_PYTHON overrides the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=humble
if [ $# -gt 0 ] && [[ "$1" != -* ]]; then PROFILE=$1; shift; fi
case "$PROFILE" in
  humble)
    PYVER=3.10; VENV=.venv-compat
    # Ubuntu 22.04 ships NumPy 1.21.5 and OpenCV 4.5.4; rosbags 0.9.20 fails on 3.10, 0.9.21+ works.
    PINS=("numpy==1.21.6" "opencv-python-headless==4.5.5.64" "rosbags==0.11.9" "scikit-image==0.19.3"
          "scipy==1.11.4" "pyyaml==6.0.3" "pytest==9.2.0" "pytest-timeout==2.4.0") ;;
  jazzy)
    PYVER=3.12; VENV=.venv-compat-jazzy
    # Ubuntu 24.04 ships NumPy 1.26.4 and OpenCV 4.6.0.
    PINS=("numpy==1.26.4" "opencv-python-headless==4.6.0.66" "rosbags==0.11.9" "scikit-image==0.22.0"
          "pyyaml==6.0.3" "pytest==9.2.0" "pytest-timeout==2.4.0") ;;
  *) echo "usage: $0 [humble|jazzy] [pytest args...]" >&2; exit 2 ;;
esac
NUMPY_WANT=$(printf '%s\n' "${PINS[@]}" | sed -n 's/^numpy==//p')

TESTS=(test/ros/test_ros_conversions.py test/ros/test_ros_malformed.py test/ros/test_frame_queue.py
       test/ros/test_ros_diagnostics.py test/ros/test_ros_params.py)

find_python() {
  if [ -n "${COMPAT_PYTHON:-}" ]; then echo "$COMPAT_PYTHON"; return; fi
  local cand
  for cand in /root/.pyenv/versions/"$PYVER".*/bin/python"$PYVER" "$(command -v python"$PYVER" || true)"; do
    if [ -x "$cand" ]; then echo "$cand"; return; fi
  done
  echo "[compat] no Python $PYVER found (install one with pyenv, or set COMPAT_PYTHON)" >&2
  exit 1
}
PY=$(find_python)
STAMP="$VENV/.compat-stamp"
want="$("$PY" --version 2>&1) | ${PINS[*]}"

if [ ! -x "$VENV/bin/python" ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "[compat] building $VENV ($("$PY" --version 2>&1); ${PINS[*]})"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  echo "*" > "$VENV/.gitignore"          # keep the venv out of git without touching the project's .gitignore
  log=$(mktemp)
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -q "${PINS[@]}" >"$log" 2>&1; then
    grep -v "is ignored: it is neither" "$log" >&2 || true
    rm -f "$log"
    echo "[compat] pip install failed" >&2
    exit 1
  fi
  rm -f "$log"
  echo "$want" > "$STAMP"
fi

# The environment must be what it claims: the pinned NumPy, and no torch at all.
env -u PYTHONPATH "$VENV/bin/python" - "$NUMPY_WANT" <<'EOF'
import importlib.util
import sys

import cv2
import numpy
import rosbags  # noqa: F401
from importlib.metadata import version

assert numpy.__version__ == sys.argv[1], f"numpy {numpy.__version__} is installed, expected {sys.argv[1]}"
assert importlib.util.find_spec("torch") is None, "torch must not be installed in the compat venv"
print(f"[compat] Python {sys.version.split()[0]}, numpy {numpy.__version__}, OpenCV {cv2.__version__}, "
      f"rosbags {version('rosbags')}, scikit-image {version('scikit-image')}")
EOF

# Run from the work tree (the package itself is not installed: its setup.py requires torch).
PYTHONPATH="$PWD" exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}" "$@"
