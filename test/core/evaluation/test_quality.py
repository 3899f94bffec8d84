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
from dcmpnet_core.checkpoints.builder import save_model
from dcmpnet_core.data import synth, textures
from dcmpnet_core.data.photos import find_opencv_sample
from dcmpnet_core.evaluation.quality import (
    CLEAR_PHOTOS,
    HELD_OUT_SOURCES,
    depth_spearman,
    evaluation_pairs,
    preview_grid,
    run_quality,
    score_image,
)
from dcmpnet_core.inference.engine import Dehazer

OPENCV_SAMPLES = find_opencv_sample("aloeL.jpg") is not None
needs_opencv_samples = pytest.mark.skipif(not OPENCV_SAMPLES, reason="OpenCV's sample images are not installed "
                                          "(Debian/Ubuntu: apt install opencv-doc)")


@pytest.fixture(scope="module")
def small_pairs():
    return quarter_motorcycle_pairs()


def test_motorcycle_is_clear_then_three_densities_by_three_airlights():
    missing: list = []
    pairs = evaluation_pairs(missing, photos=["motorcycle"])
    assert missing == [] and len(pairs) == 10
    assert {p.hazy.shape for p in pairs} == {(500, 741, 3)}
    assert [p.density for p in pairs] == ["none"] + ["light"] * 3 + ["medium"] * 3 + ["dense"] * 3
    assert pairs[0].hazy is pairs[0].clear                  # the clear frame is scored output-vs-input
    means = [float(np.mean(p.hazy)) for p in pairs[1::3]]
    assert means[0] < means[1] < means[2]              # denser haze is brighter (airlight ~0.85)
    with pytest.raises(ValueError, match="unknown photo.*nope"):
        evaluation_pairs(photos=["nope"])


@needs_opencv_samples
def test_whole_set_has_two_depth_photos_and_clear_road_outdoor_indoor_photos():
    missing: list = []
    pairs = evaluation_pairs(missing)
    assert missing == []
    by_photo = {}
    for p in pairs:
        by_photo.setdefault(p.photo, []).append(p.density)
    assert by_photo["aloe"] == by_photo["motorcycle"] and len(by_photo["aloe"]) == 10
    clear = [f.rsplit(".", 1)[0] for f, _ in CLEAR_PHOTOS]
    assert all(by_photo[c] == ["none"] for c in clear) and len(by_photo) == 2 + len(clear)
    aloe = [p for p in pairs if p.photo == "aloe"]
    assert aloe[0].valid.mean() > 0.8 and aloe[0].depth.shape == aloe[0].hazy.shape[:2]


def test_held_out_photos_never_reach_a_training_path():
    """No training source (texture library, photo family, procedural names) is a held-out photo."""
    held = {s.rsplit(".", 1)[0].lower() for s in HELD_OUT_SOURCES} | {"motorcycle", "aloe"}
    training = set(textures.PHOTO_SOURCES) | set(synth.PHOTO_FAMILY_SOURCES) | set(textures.PROCEDURAL)
    assert not held & {t.lower() for t in training}
    assert set(textures.FORBIDDEN_SOURCES) <= set(HELD_OUT_SOURCES)
    lib = textures.TextureLibrary.load()
    assert {t.name for t in lib.textures} <= training
    # the generator reads only scikit-image's photos: nothing in the data package looks up OpenCV's samples
    import inspect
    for module in (synth, textures):
        assert "find_opencv_sample" not in inspect.getsource(module) and "opencv-doc" not in inspect.getsource(module)


def test_scores_are_the_fields_metrics(small_pairs):
    p = small_pairs[1]
    assert score_image(p.clear, p.clear)[1] == pytest.approx(1.0)
    assert score_image(p.clear, p.clear)[0] > 90       # identical images: capped / very high
    assert depth_spearman(p.depth, p.depth, p.valid) == pytest.approx(1.0)
    assert depth_spearman(-p.depth, p.depth, p.valid) == pytest.approx(-1.0)


def test_dcp_beats_the_hazy_input_on_medium_and_dense_haze(small_pairs, tmp_path):
    dcp = Dehazer(backend="dcp", bypass_below=0.0)          # the method on every frame, clear ones too

    def method(hazy):
        r = dcp(hazy)
        return r.dehazed, r.depth

    report, outputs = run_quality({"dcp": method}, small_pairs)
    assert report.methods() == ["hazy", "dcp"]
    for density in ("medium", "dense"):
        assert report.mean("dcp", "psnr", density) > report.mean("hazy", "psnr", density) + 2
    checks = report.check_targets("dcp", baseline="dcp")
    assert len(checks) == 8 and checks["hazy mean: PSNR >= dcp + 3 dB"][0] is False   # cannot beat itself by 3 dB
    assert checks["hazy mean: SSIM >= dcp's"][0] and checks["hazy mean: depth Spearman >= dcp's"][0]
    assert not checks["clear frames: PSNR >= 30 dB"][0]        # DCP changes a clear frame
    assert "PSNR light" in report.table() and "clear PSNR" in report.table() and "motorcycle" in report.photo_table()
    report.write_csv(tmp_path / "q.csv")
    rows = list(csv.DictReader(open(tmp_path / "q.csv")))
    assert len(rows) == 2 * len(small_pairs) and {r["method"] for r in rows} == {"hazy", "dcp"}
    assert {r["density"] for r in rows} == {"none", "light", "medium", "dense"}
    grid = preview_grid(outputs, ["dcp"], width=64)
    assert grid.dtype == np.uint8 and grid.shape[1] == 64 * 5   # hazy | dcp | clear | dcp depth | measured depth


def test_identity_meets_the_clear_frame_targets_only(small_pairs):
    """Returning the input is perfect on clear frames and no better than the input on haze."""
    report, _ = run_quality({"identity": lambda hazy: (hazy, None)}, small_pairs)
    checks = report.check_targets("identity", baseline="hazy")
    assert checks["clear frames: PSNR >= 30 dB"][0] and checks["clear frames: SSIM >= 0.95"][0]
    assert checks["light haze: PSNR >= hazy's and the hazy input's"][0]           # equal counts as >=
    assert not checks["hazy mean: PSNR >= hazy + 3 dB"][0]


def test_quality_command_end_to_end(tmp_path):
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pt"
    save_model(DCMPNet("tiny"), ckpt)
    out = tmp_path / "q"
    photos = "motorcycle,leuvenA" if OPENCV_SAMPLES else "motorcycle"
    cmd = [sys.executable, "-m", "dcmpnet_ros.cli", "quality", "--weights", str(ckpt), "--device", "cpu",
           "--max-pixels", "40000", "--photos", photos, "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "hazy PSNR" in res.stdout and "NOT met" in res.stdout       # random weights miss targets
    assert (out / "quality.csv").exists()
    preview = cv2.imread(str(out / "quality_preview.png"))
    assert preview is not None and preview.shape[0] > 100
    assert "motorcycle" in res.stdout and ("leuvenA" in res.stdout) == OPENCV_SAMPLES
    res = subprocess.run(cmd + ["--check"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 1
    res = subprocess.run(cmd[:-2] + ["--photos", "nope"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 2 and "unknown photo(s) nope" in res.stderr and "Traceback" not in res.stderr
