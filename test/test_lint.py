"""Code style: ruff (pycodestyle, pyflakes, import order, pydocstyle pep257) over the package and tests."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(__import__("sys").executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install ruff)")
    res = subprocess.run([ruff, "check", "--no-cache", "dcmpnet_core", "dcmpnet_ros", "launch", "test", "setup.py"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
