"""``dcmpnet infer`` end to end in real subprocesses, on real photos, a folder and a video, plus the previews."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from dcmpnet_core.checkpoints.builder import save_model
from dcmpnet_core.inference.engine import Dehazer
from dcmpnet_core.models.dcmpnet import DCMPNet
from dcmpnet_core.utils import fileio
from dcmpnet_core.utils.visualize import depth_to_color, side_by_side

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def _dcmpnet(*args, env=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "dcmpnet_ros.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=full_env)


def _photo(name: str, hw=(48, 64)) -> np.ndarray:
    return cv2.resize(getattr(skimage.data, name)(), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = DCMPNet("tiny")
    with torch.no_grad():
        model.depth_net.head.bias += 1.0          # random weights, but a positive, varying depth map
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_model(model, path)
    return path


def _no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def test_folder_with_unreadable_file_and_video(tmp_path, weights):
    src = tmp_path / "in"
    _write_rgb(src / "astronaut.png", _photo("astronaut"))
    _write_rgb(src / "coffee.jpg", _photo("coffee", (45, 61)))
    _write_rgb(src / "nested" / "deeper" / "chelsea.png", _photo("chelsea"))
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    (src / "notes.txt").write_text("not an input")
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for name in PHOTOS[:3]:
        writer.write(np.ascontiguousarray(_photo(name)[..., ::-1]))
    writer.release()
    out = tmp_path / "out"

    res = _dcmpnet("infer", src, video, tmp_path / "missing.png", "-o", out, "--weights", weights, "--device", "cpu")
    assert res.returncode == 1, res.stderr
    assert "2 input(s) could not be processed" in res.stderr
    assert f"{src / 'broken.png'}: not a readable image" in res.stderr
    assert f"{tmp_path / 'missing.png'}: no such file or folder" in res.stderr
    assert "3 image(s) and 3 video frame(s)" in res.stdout
    assert "frame/s" in res.stderr or "frame" in res.stderr             # tqdm progress

    expected = {"astronaut", "coffee", "nested/deeper/chelsea"} | {f"clip_{i:06d}" for i in range(3)}
    for stem in expected:
        for suffix in ("_dehazed.png", "_depth.npy", "_depth.png"):
            assert (out / f"{stem}{suffix}").is_file(), f"{stem}{suffix}"
    assert not (out / "broken_dehazed.png").exists() and not (out / "notes_dehazed.png").exists()
    assert _no_temp_files(out)

    # The files hold exactly what the engine computes.
    engine = Dehazer.from_checkpoint(weights, device="cpu")
    img = cv2.imread(str(src / "coffee.jpg"))[..., ::-1]
    ref = engine(np.ascontiguousarray(img))
    dehazed = cv2.imread(str(out / "coffee_dehazed.png"))[..., ::-1]
    depth = np.load(out / "coffee_depth.npy")
    assert dehazed.shape == (45, 61, 3) and depth.shape == (45, 61) and depth.dtype == np.float32
    np.testing.assert_array_equal(dehazed, ref.dehazed)
    np.testing.assert_allclose(depth, ref.depth, atol=1e-6)
    assert depth.max() == pytest.approx(1.0) and depth.min() < 0.999
    np.testing.assert_array_equal(cv2.imread(str(out / "coffee_depth.png"))[..., ::-1], depth_to_color(depth))

    # A second run into the same folder skips nothing new and finds no outputs as inputs.
    again = _dcmpnet("infer", src, "-o", src / "results", "--weights", weights, "--device", "cpu")
    again2 = _dcmpnet("infer", src, "-o", src / "results", "--weights", weights, "--device", "cpu")
    assert again.returncode == again2.returncode == 1
    assert "3 image(s) and 0 video frame(s)" in again2.stdout


def test_video_out_and_dcp_without_weights(tmp_path):
    video = tmp_path / "drive.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for name in PHOTOS:
        writer.write(np.ascontiguousarray(_photo(name)[..., ::-1]))
    writer.release()
    out = tmp_path / "out"
    res = _dcmpnet("infer", video, "-o", out, "--backend", "dcp", "--video-out", "--batch-size", "3",
                   env={"DCMPNET_DEFAULT_WEIGHTS": str(tmp_path / "none.pt")})
    assert res.returncode == 0, res.stderr
    assert "0 image(s) and 4 video frame(s)" in res.stdout
    produced = sorted(p.name for p in out.iterdir())
    assert produced == ["drive_dehazed.mp4", "drive_depth.mp4", "haze_levels.csv"], produced
    rows = (out / "haze_levels.csv").read_text().splitlines()
    assert rows[0] == "input,haze_level,weight,mode" and len(rows) == 5 and "drive.mp4 frame 3" in rows[-1]
    for name in produced[:2]:
        cap = cv2.VideoCapture(str(out / name))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        assert len(frames) == 4 and frames[0].shape == (48, 64, 3)


def test_missing_weights_exit_2(tmp_path):
    img = tmp_path / "a.png"
    _write_rgb(img, _photo("astronaut"))
    res = _dcmpnet("infer", img, "-o", tmp_path / "out", env={"DCMPNET_DEFAULT_WEIGHTS": str(tmp_path / "none.pt")})
    assert res.returncode == 2
    assert "dcmpnet infer: error: no DCMPNet weights given" in res.stderr
    assert "dcmpnet train" in res.stderr and "dcmpnet convert" in res.stderr and "--backend dcp" in res.stderr
    assert not (tmp_path / "out").exists()


def test_argument_errors(tmp_path, weights):
    res = _dcmpnet("infer", tmp_path, "-o", tmp_path / "o", "--backend", "dcp", "--weights", weights)
    assert res.returncode == 2 and "--weights has no effect with --backend dcp" in res.stderr
    res = _dcmpnet("infer", tmp_path, "-o", tmp_path / "o", "--weights", weights, "--scale", "2")
    assert res.returncode == 2 and "argument --scale: expected > 0 and <= 1, got 2.0" in res.stderr
    res = _dcmpnet("infer", tmp_path, "-o", tmp_path / "o", "--weights", weights, "--inference-scale", "0")
    assert res.returncode == 2 and "argument --inference-scale: expected > 0 and <= 1, got 0.0" in res.stderr
    res = _dcmpnet("infer", tmp_path, "-o", tmp_path / "o", "--weights", tmp_path / "nope.pt")
    assert res.returncode == 2 and "does not exist" in res.stderr
    if not torch.cuda.is_available():
        res = _dcmpnet("infer", tmp_path, "-o", tmp_path / "o", "--weights", weights, "--device", "cuda")
        assert res.returncode == 2
        assert "device 'cuda' was requested but CUDA is not available (torch.cuda.is_available() is False" in res.stderr


def test_max_pixels_and_small_image_reported(tmp_path, weights):
    _write_rgb(tmp_path / "in" / "big.png", _photo("astronaut", (96, 128)))
    _write_rgb(tmp_path / "in" / "tiny.png", _photo("coffee", (12, 20)))
    out = tmp_path / "out"
    res = _dcmpnet("infer", tmp_path / "in", "-o", out, "--weights", weights, "--device", "cpu",
                   "--max-pixels", "3072", "--batch-size", "4")
    assert res.returncode == 1
    assert "tiny.png: expected both sides >= 16 px, got 12x20" in res.stderr
    assert cv2.imread(str(out / "big_dehazed.png")).shape == (96, 128, 3)
    assert np.load(out / "big_depth.npy").shape == (96, 128)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "x_dehazed.png"

    def fail(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write_png(target, _photo("astronaut"))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------- previews
def test_depth_to_color_near_is_bright():
    depth = np.linspace(0.1, 1.0, 64, dtype=np.float32)[None].repeat(8, 0)     # far to the right
    depth[0, 0] = np.nan
    rgb = depth_to_color(depth)
    assert rgb.shape == (8, 64, 3) and rgb.dtype == np.uint8
    brightness = rgb[1:].astype(int).sum(axis=2).mean(axis=0)
    assert brightness[0] > brightness[32] > brightness[-1]
    assert (rgb[0, 0] == 0).all()
    with pytest.raises(ValueError, match=r"depth must have shape \(H, W\), got shape \(2, 3, 4\)"):
        depth_to_color(np.zeros((2, 3, 4)))


def test_side_by_side():
    hazy = _photo("astronaut")
    depth = np.linspace(0.2, 1, 48, dtype=np.float32)[:, None].repeat(64, 1)
    panel = side_by_side(hazy, hazy.astype(np.float32) / 255, depth, labels=False)
    assert panel.shape == (48, 192, 3) and panel.dtype == np.uint8
    np.testing.assert_array_equal(panel[:, :64], hazy)
    np.testing.assert_array_equal(panel[:, 64:128], hazy)
    np.testing.assert_array_equal(panel[:, 128:], depth_to_color(depth))
    labelled = side_by_side(hazy, hazy, depth)
    assert (labelled != panel).any()
    with pytest.raises(ValueError, match="hazy, dehazed and depth must share H and W"):
        side_by_side(hazy, hazy, depth[:10])


def test_clear_images_are_written_unchanged_and_listed_with_their_haze_level(tmp_path):
    import csv

    from dcmpnet_core.data.haze import apply_haze

    clear = _photo("coffee")
    depth_m = np.broadcast_to(np.linspace(20.0, 2.0, 48, dtype=np.float32)[:, None], (48, 64))
    fog = np.round(apply_haze(clear / 255.0, depth_m, 0.2, (0.85, 0.85, 0.85)) * 255).astype(np.uint8)
    _write_rgb(tmp_path / "in" / "clear.png", clear)
    _write_rgb(tmp_path / "in" / "fog.png", fog)
    out = tmp_path / "out"
    res = _dcmpnet("infer", tmp_path / "in", "-o", out, "--backend", "dcp")
    assert res.returncode == 0, res.stderr
    assert "1 passed through undehazed, haze level below 0.53" in res.stdout
    with open(out / "haze_levels.csv", newline="") as f:
        rows = {Path(r["input"]).name: r for r in csv.DictReader(f)}
    assert (rows["clear.png"]["mode"], rows["fog.png"]["mode"]) == ("passthrough", "dehaze")
    assert float(rows["clear.png"]["haze_level"]) < 0.53 < float(rows["fog.png"]["haze_level"])
    assert np.array_equal(cv2.imread(str(out / "clear_dehazed.png"))[..., ::-1], clear), "written unchanged"
    assert np.load(out / "clear_depth.npy").shape == (48, 64)
