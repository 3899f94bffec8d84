"""``dcmpnet demo``: foggy bag from real photos, replay through the bag code, previews; and its haze model."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from bag_factory import read_bag

from dcmpnet_ros import demo

ROOT = Path(__file__).resolve().parents[2]
# This checkout first, then whatever the environment already has (a sourced ROS workspace, ...).
PYTHONPATH = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def dcmpnet(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dcmpnet_ros.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env={**os.environ, "PYTHONPATH": PYTHONPATH, **(env or {})})


def test_haze_follows_the_scattering_model():
    clean, depth = demo.load_scene("coffee", 48, 64)
    beta, airlight = 1.7, (0.8, 0.85, 0.9)
    hazy = demo.add_haze(clean, depth, beta, airlight)
    t = np.exp(-beta * depth.astype(np.float64))[..., None]
    expected = clean / 255.0 * t + np.asarray(airlight) * (1 - t)
    np.testing.assert_allclose(hazy / 255.0, expected, atol=0.5 / 255 + 1e-6)
    assert hazy.std() < clean.std()                         # fog lowers contrast
    far = depth > 0.9
    assert np.abs(hazy[far] / 255.0 - airlight).mean() < np.abs(clean[far] / 255.0 - airlight).mean()


def test_psnr_of_uint8_images_is_the_closed_form_and_inf_when_equal():
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (12, 10, 3), dtype=np.uint8) for _ in range(2))
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    assert demo.psnr(a, b) == pytest.approx(10 * np.log10(255.0 ** 2 / mse), rel=1e-12)
    assert demo.psnr(a, a) == np.inf


def test_ground_plane_depth_is_far_at_the_horizon_and_near_at_the_bottom():
    d = demo.ground_plane_depth(100, 30)
    column = d[:, 0]
    assert d.shape == (100, 30) and d.dtype == np.float32 and (d == column[:, None]).all()
    assert column.max() == 1.0 and (column[: int(demo.HORIZON * 100)] == 1.0).all()
    assert np.all(np.diff(column) <= 0) and column[-1] == pytest.approx(demo.NEAREST, rel=0.1)


def test_motorcycle_depth_comes_from_its_real_disparity():
    from skimage import data

    _, depth = demo.load_scene("motorcycle", 120, 160)
    assert depth.shape == (120, 160) and 0 < depth.min() and depth.max() == pytest.approx(1.0)
    _, _, disparity = data.stereo_motorcycle()
    crop = demo._center_crop(disparity, 160 / 120)
    small = cv2.resize(np.where(np.isfinite(crop), crop, np.nan).astype(np.float32), (160, 120),
                       interpolation=cv2.INTER_NEAREST)
    ok = np.isfinite(small) & (small > 0)
    # depth is proportional to 1 / disparity where the disparity is known (up to resampling at depth edges)
    ratio = depth[ok] * small[ok]
    error = np.abs(ratio / np.median(ratio) - 1)
    assert np.median(error) < 0.01 and (error < 0.1).mean() > 0.9


def test_demo_command_with_fallback_to_dcp(tmp_path):
    out = tmp_path / "demo"
    res = dcmpnet("demo", "--out", str(out), "--frames", "3", "--no-progress",
                  env={"DCMPNET_DEFAULT_WEIGHTS": str(tmp_path / "absent.pt")})
    assert res.returncode == 0, res.stderr
    assert "no trained DCMPNet weights are installed" in res.stdout and "dark-channel-prior" in res.stdout
    for path in ("foggy_bag", "dehazed_bag", "preview/frame_000.png", "preview_grid.png"):
        assert str(out / path) in res.stdout
    foggy = read_bag(out / "foggy_bag")
    assert {t: len(v) for t, v in foggy.items()} == {"/camera/image_raw": 3, "/camera/camera_info": 3}
    dehazed = read_bag(out / "dehazed_bag")
    assert {t: len(v) for t, v in dehazed.items()} == {
        "/camera/image_raw": 3, "/camera/camera_info": 3, "/dehazed/image": 3, "/dehazed/depth": 3,
        "/dehazed/camera_info": 3, "/dehazed/haze_level": 3}
    assert all(m.relative_humidity > 0.53 for _, m, _ in dehazed["/dehazed/haze_level"]), "foggy frames: dehazed"
    for (t_in, hazy, _), (t_out, img, _) in zip(foggy["/camera/image_raw"], dehazed["/dehazed/image"]):
        assert t_in == t_out
        assert (hazy.header.stamp.sec, hazy.header.stamp.nanosec, hazy.header.frame_id) == \
            (img.header.stamp.sec, img.header.stamp.nanosec, img.header.frame_id)
        assert (img.height, img.width, img.encoding) == (240, 320, "bgr8")
    previews = sorted((out / "preview").glob("*.png"))
    assert [p.name for p in previews] == ["frame_000.png", "frame_001.png", "frame_002.png"]
    row = cv2.imread(str(previews[0]))
    assert row.shape == (240, 4 * 320, 3)
    assert cv2.imread(str(out / "preview_grid.png")).shape == (3 * 240, 4 * 320, 3)
    # the dehazed panel is closer to the clean photo than the hazy one (PSNR table printed by the command)
    rows = [line.split() for line in res.stdout.splitlines() if line.strip()[:1].isdigit() and len(line.split()) == 5]
    assert len(rows) == 3 and all(float(r[4]) > float(r[3]) for r in rows)

    # a second run replaces the demo's own directory
    res = dcmpnet("demo", "--out", str(out), "--frames", "1", "--backend", "dcp", "--storage", "mcap",
                  "--no-progress")
    assert res.returncode == 0, res.stderr
    assert len(list((out / "preview").glob("*.png"))) == 1 and list((out / "dehazed_bag").glob("*.mcap"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_demo_never_touches_a_directory_it_did_not_make(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.csv").write_text("1,2")
    res = dcmpnet("demo", "--out", str(tmp_path / "mine"), "--frames", "1", "--backend", "dcp")
    assert res.returncode == 2 and "not made by dcmpnet demo" in res.stderr
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["data.csv"]


def test_demo_with_a_checkpoint_uses_dcmpnet(tmp_path):
    from dcmpnet_core.checkpoints.builder import save_model
    from dcmpnet_core.models.dcmpnet import DCMPNet

    save_model(DCMPNet("tiny"), tmp_path / "tiny.pt")
    res = dcmpnet("demo", "--out", str(tmp_path / "d"), "--frames", "1", "--size", "48x64", "--device", "cpu",
                  "--weights", str(tmp_path / "tiny.pt"), "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "engine: DCMPNet, given weights" in res.stdout and "backend='dcmpnet'" in res.stdout
    assert cv2.imread(str(tmp_path / "d" / "preview_grid.png")).shape == (48, 4 * 64, 3)
    res = dcmpnet("demo", "--out", str(tmp_path / "e"), "--backend", "dcmpnet",
                  env={"DCMPNET_DEFAULT_WEIGHTS": str(tmp_path / "absent.pt")})
    assert res.returncode == 2 and "--backend dcp" in res.stderr and not (tmp_path / "e").exists()


@pytest.mark.parametrize("size", [(240, 320), (96, 128), (720, 1280)])
def test_label_outline_stays_under_its_text(size):
    """The dark outline must follow the white text: a thicker outline stroke ran wider and smeared the label."""
    from dcmpnet_core.utils.visualize import draw_label

    panel = np.full((*size, 3), 128, np.uint8)
    draw_label(panel, "depth (near=bright)")
    white = np.where((panel > 168).all(axis=2).any(axis=0))[0]
    dark = np.where((panel < 88).all(axis=2).any(axis=0))[0]
    assert white.size and dark.size
    assert dark.max() <= white.max() + 2 and dark.min() >= white.min() - 2, (white.max(), dark.max())
