"""scripts/gpu_check.sh, the one-shot GPU check, runs to the end here so that it cannot rot before a GPU is lent."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_script_runs_end_to_end_and_writes_one_table(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "out"), PYTHON=sys.executable, PYTHONPATH=str(REPO))
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--quick"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    text = (tmp_path / "out" / "gpu_check.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| section | item | status | median ms | fps |")
    sections = {row.split(" | ")[0].strip("| ") for row in rows[2:]}
    assert sections >= {"env", "tests", "checks", "bench", "bench network", "bench engine"}
    assert not [row for row in rows if "| FAIL |" in row]
    bench = [row for row in rows if row.startswith("| bench network | eager fp32 (as published, reference)")]
    assert len(bench) == 1 and "| 1.00 |" in bench[0]
    assert (tmp_path / "out" / "gpu_check.log").read_text().count("gpu_check:") == 1
    if not torch.cuda.is_available():
        skipped = [row for row in rows if "skipped: needs CUDA (torch.cuda.is_available() is False" in row]
        assert any("two-input replay" in row for row in skipped) and any("out-of-memory" in row for row in skipped)
