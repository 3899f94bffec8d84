"""The held-out real-photo quality benchmark used to judge the default weights."""
from __future__ import annotations

import csv
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from hazy_photos import quarter_motorcycle_pairs

from dcmpnet_core import DCMPNet
from dcmpnet_core.inference import Dehazer
from dcmpnet_core.quality import depth_spearman, evaluation_pairs, preview_grid, run_quality, score_image


@pytest.fixture(scope="module")
def small_pairs():
    return quarter_motorcycle_pairs()


def test_evaluation_set_is_the_held_out_motorcycle_at_three_densities():
    pairs = evaluation_pairs()
    assert len(pairs) == 9
    assert {p.hazy.shape for p in pairs} == {(500, 741, 3)}
    means = [float(np.mean(p.hazy)) for p in pairs[::3]]
    assert means[0] < means[1] < means[2]              # denser haze is brighter (airlight ~0.85)


def test_scores_are_the_fields_metrics(small_pairs):
    p = small_pairs[1]
    assert score_image(p.clear, p.clear)[1] == pytest.approx(1.0)
    assert score_image(p.clear, p.clear)[0] > 90       # identical images: capped / very high
    assert depth_spearman(p.depth, p.depth, p.valid) == pytest.approx(1.0)
    assert depth_spearman(-p.depth, p.depth, p.valid) == pytest.approx(-1.0)


def test_dcp_beats_the_hazy_input_on_medium_and_dense_haze(small_pairs, tmp_path):
    dcp = Dehazer(backend="dcp")

    def method(hazy):
        r = dcp(hazy)
        return r.dehazed, r.depth

    report, outputs = run_quality({"dcp": method}, small_pairs)
    assert report.methods() == ["hazy", "dcp"]
    for density in ("medium", "dense"):
        assert report.mean("dcp", "psnr", density) > report.mean("hazy", "psnr", density) + 2
    checks = report.check_targets("dcp", baseline="dcp")
    assert set(checks) == {"PSNR >= DCP + 4 dB", "never below the hazy input", "mean SSIM >= 0.90",
                           "depth Spearman >= 0.85"}
    assert checks["PSNR >= DCP + 4 dB"][0] is False     # a method cannot beat itself by 4 dB
    assert "PSNR light" in report.table()
    report.write_csv(tmp_path / "q.csv")
    rows = list(csv.DictReader(open(tmp_path / "q.csv")))
    assert len(rows) == 2 * len(small_pairs) and {r["method"] for r in rows} == {"hazy", "dcp"}
    grid = preview_grid(outputs, ["dcp"], width=64)
    assert grid.dtype == np.uint8 and grid.shape[1] == 64 * 5   # hazy | dcp | clear | dcp depth | measured depth


def test_quality_command_end_to_end(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    DCMPNet("tiny").save_checkpoint(ckpt)
    out = tmp_path / "q"
    cmd = [sys.executable, "-m", "dcmpnet_ros.cli", "quality", "--weights", str(ckpt), "--device", "cpu",
           "--max-pixels", "40000", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "mean PSNR" in res.stdout and "NOT met" in res.stdout       # random weights meet no target
    assert (out / "quality.csv").exists()
    preview = cv2.imread(str(out / "quality_preview.png"))
    assert preview is not None and preview.shape[0] > 100
    res = subprocess.run(cmd + ["--check"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 1
