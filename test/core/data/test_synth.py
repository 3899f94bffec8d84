"""Synthetic hazy-scene generator: scattering model, depth geometry, textures, atomic output, CLI, photo pairs."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dcmpnet_core.data import DatasetError, build_dataset, detect_layout, list_pairs, synth
from dcmpnet_core.data import textures as textures_mod
from dcmpnet_core.data.photos import (
    MOTORCYCLE_DOFFS_PX,
    disparity_to_metric,
    fill_disparity_holes,
    motorcycle_scene,
    photo_pairs,
)
from dcmpnet_core.utils.depth_convention import disparity_to_depth, normalize_depth
from dcmpnet_core.utils.visualize import depth_to_color

ROOT = Path(__file__).resolve().parents[3]


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "set"
    synth.write_dataset(out, 8, (48, 64), seed=11, split_test=2, progress=False)
    return out


def recompute_hazy(clear_u8: np.ndarray, depth_m: np.ndarray, meta: dict) -> np.ndarray:
    """I = J t + A (1 - t), t = exp(-beta d), written out independently of the generator, in float64."""
    h, w = depth_m.shape
    gx, gy = meta["airlight_gradient"]
    xs = (np.arange(w) + 0.5) / w - 0.5
    ys = (np.arange(h) + 0.5) / h - 0.5
    a = np.asarray(meta["airlight"])[None, None, :] * (1 + gx * xs[None, :, None] + gy * ys[:, None, None])
    t = np.exp(-meta["beta"] * depth_m.astype(np.float64))[..., None]
    return np.clip(clear_u8 / 255.0 * t + a * (1 - t), 0, 1) * 255


def test_output_layout_and_scattering_model_exact(small_set):
    manifest = json.loads((small_set / "synth.json").read_text())
    assert manifest["layout"] == "synthetic" and manifest["count"] == {"train": 6, "test": 2}
    assert detect_layout(small_set) == "synthetic"
    assert (small_set / "preview.png").is_file()
    assert [r.name for r in list_pairs(small_set, "test")] == ["000006", "000007"]
    with pytest.raises(DatasetError, match="no 'val' folder \\(it has: test, train\\)"):
        list_pairs(small_set, "val")
    for rec in list_pairs(small_set, "train") + list_pairs(small_set, "test"):
        meta = json.loads(rec.meta.read_text())
        depth = np.load(rec.depth)
        assert depth.dtype == np.float16 and depth.shape == (48, 64) and float(depth.min()) > 0
        hazy, clear = read_rgb(rec.hazy), read_rgb(rec.clear)
        expected = recompute_hazy(clear, depth, meta)
        # the stored hazy image is the model rounded to 8 bits: within half a level (+ float32 slack)
        assert np.abs(hazy - expected).max() <= 0.51, rec.name
        assert meta["beta"] >= 0 and all(0.5 <= a <= 1.0 for a in meta["airlight"])
        assert meta["depth"]["unit"] == "m" and meta["scene"] in synth.SCENE_FAMILIES


def test_preview_draws_depth_with_the_project_colour_map(small_set):
    """preview.png rows: hazy | clear | depth_to_color(log depth), the project's one depth colour convention."""
    preview = read_rgb(small_set / "preview.png")
    stems = [r.name for r in list_pairs(small_set, "train")]
    assert preview.shape == (48 * len(stems), 64 * 3, 3)
    for k, stem in enumerate(stems):
        row = preview[48 * k:48 * (k + 1)]
        np.testing.assert_array_equal(row[:, :64], read_rgb(small_set / "train" / "hazy" / f"{stem}.png"))
        depth = np.load(small_set / "train" / "depth" / f"{stem}.npy")
        np.testing.assert_array_equal(row[:, 128:], depth_to_color(depth, log=True))
    # log=True stretches log(depth): near is bright, the geometric middle is mid-grey, non-positive depth is black
    color = depth_to_color(np.array([[1.0, 10.0, 100.0, 0.0]]), log=True)
    np.testing.assert_array_equal(color[0, :3], depth_to_color(np.array([[0.0, 1.0, 2.0]]))[0])
    assert color[0, 0].sum() > color[0, 1].sum() > color[0, 2].sum() and (color[0, 3] == 0).all()


def test_generator_never_imports_torch(tmp_path):
    """Generator and workers (they import the same module, dcmpnet_core.data.synth.writer) run without torch."""
    code = ("import sys; from dcmpnet_core.data.synth import writer; "
            f"writer.write_dataset({str(tmp_path / 'o')!r}, 2, (24, 32), progress=True, preview=2); "
            "print(' '.join(sorted(sys.modules)))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    mods = set(res.stdout.split())
    assert "dcmpnet_core.data.synth.writer" in mods and "torch" not in mods


def test_loader_reads_generator_depth(small_set):
    ds = build_dataset(small_set, "train", crop=None, augment=False)
    assert len(ds) == 6 and ds.depth_source(ds.records[0]) == "synthetic"
    rendered = [i for i, r in enumerate(ds.records) if json.loads(r.meta.read_text())["scene"] != "photo"]
    i = rendered[0]
    item = ds[i]
    depth = np.load(small_set / "train" / "depth" / f"{ds.records[i].name}.npy").astype(np.float32)
    np.testing.assert_allclose(item["depth"][0].numpy(), normalize_depth(depth), rtol=1e-6)
    assert item["depth_valid"].all()
    assert build_dataset(small_set, "train", crop=32, depth="synthetic")[0]["hazy"].shape == (3, 32, 32)


def test_same_seed_same_sample_and_workers_do_not_matter(tmp_path, small_set):
    a = synth.render_sample(11, 3, 48, 64)
    b = synth.render_sample(11, 3, 48, 64)
    assert np.array_equal(a["hazy"], b["hazy"]) and np.array_equal(a["depth"], b["depth"])
    np.testing.assert_array_equal(a["clear"], read_rgb(small_set / "train" / "GT" / "000003.png"))
    c = synth.render_sample(12, 3, 48, 64)
    assert not np.array_equal(a["clear"], c["clear"])
    out = tmp_path / "par"
    synth.write_dataset(out, 3, (48, 64), seed=11, workers=2, progress=False, preview=0)
    for i in range(3):
        name = f"{i:06d}.png"
        assert np.array_equal(read_rgb(out / "train" / "hazy" / name), read_rgb(small_set / "train" / "hazy" / name))


def test_ground_depth_is_exact_and_recedes_to_the_horizon():
    lib = textures_mod.TextureLibrary.load()
    cam = synth.Camera(60, 80, hfov_deg=60, position=(0, 1.5, 0))
    mat = textures_mod.Material(tex=lib.index("gravel"), texel=0.005)
    r = synth.render(synth.Scene(cam, [synth.Ground(mat, far=1e4)]), lib)
    # the focal length in pixels: half the image width over the tangent of half the horizontal field of view
    f, cy = 40 / math.tan(math.radians(30)), (60 - 1) / 2
    rows = np.arange(60)
    below = rows > cy
    # a level camera at height h sees the ground at z-depth h * f / (row - cy), in every column
    expected = 1.5 * f / (rows[below] - cy)
    np.testing.assert_allclose(r.depth[below, :], np.repeat(expected[:, None], 80, axis=1), rtol=1e-4)
    assert (r.labels[below] == synth.GROUND).all() and (r.labels[~below] == synth.SKY).all()
    assert (r.depth[~below] == r.sky_depth).all() and r.sky_depth > r.depth[below].max()
    # pitched down by alpha: the ray through a row leaves the optical axis phi = atan((row - cy) / f) further down,
    # meets the ground h / sin(alpha + phi) along the ray, which is a z-depth of cos(phi) times that
    h, alpha = 2.0, math.radians(12)
    cam3 = synth.Camera(60, 80, hfov_deg=60, position=(0, h, 0), pitch_deg=-12)
    r3 = synth.render(synth.Scene(cam3, [synth.Ground(mat, far=1e4)]), lib)
    phi = np.arctan((rows - cy) / f)
    with np.errstate(divide="ignore"):
        expected = np.where(alpha + phi > 0, h * np.cos(phi) / np.sin(alpha + phi), np.inf)
    ground = expected < 5e3                       # the plane ends 10 km out: nearer rows are all ground
    assert ground.sum() > 40
    assert (r3.labels[ground] == synth.GROUND).all() and (r3.labels[expected == np.inf] == synth.SKY).all()
    np.testing.assert_allclose(r3.depth[ground, :], np.repeat(expected[ground, None], 80, axis=1), rtol=1e-4)
    # a pitched, rolled camera: ground depth still grows toward the horizon in every column
    cam2 = synth.Camera(60, 80, hfov_deg=70, position=(0, 2.0, 0), pitch_deg=-12, roll_deg=3)
    r2 = synth.render(synth.Scene(cam2, [synth.Ground(mat, far=1e4)]), lib)
    for x in range(0, 80, 7):
        col = r2.depth[:, x][r2.labels[:, x] == synth.GROUND]
        assert len(col) > 10 and (np.diff(col) < 0).all()


@pytest.mark.parametrize("family", [f for f in synth.SCENE_FAMILIES if f != "photo"])
def test_random_scenes_have_ground_receding_upward(family):
    checked = 0
    for i in range(3):
        smp = synth.render_sample(5, i, 48, 64, family=family)
        depth, labels = smp["depth"].astype(np.float32), smp["labels"]
        assert np.isfinite(depth).all() and depth.min() >= synth.NEAR
        for x in range(0, 64, 8):
            ground = np.flatnonzero(labels[:, x] == synth.GROUND)
            if len(ground) < 6:
                continue
            run = ground[ground >= ground.max() - 5]          # the lowest ground pixels of the column
            if (np.diff(run) == 1).all():
                # moving up the image, ground depth grows (sidewalk kerbs are 4 cm high: allow 5 %)
                d = depth[run, x]
                assert (d[:-1] >= d[1:] * 0.95).all(), (family, i, x, d)
                checked += 1
        meta = smp["meta"]
        lo, hi = meta["transmission_range"]
        assert 0 <= lo <= hi <= 1 and (lo < hi or meta["beta"] == 0)
    if family != "indoor":
        assert checked > 0


def test_haze_covers_none_to_dense():
    """Continuous density: haze-free samples (hazy == clear, beta 0) and every band up to dense."""
    t_lo, t_hi, classes = [], [], set()
    for i in range(40):
        smp = synth.render_sample(21, i, 24, 32)
        meta = smp["meta"]
        t_lo.append(meta["transmission_range"][0])
        t_hi.append(meta["transmission_range"][1])
        classes.add(meta["density"])
        if meta["density"] == "none":
            assert meta["beta"] == 0.0 and np.array_equal(smp["hazy"], smp["clear"])
        else:
            t_med = np.exp(-meta["beta"] * meta["median_depth"])
            assert meta["density"] == synth.haze_band(t_med) != "none"
    assert min(t_lo) < 0.1 and max(t_hi) > 0.9
    assert {"none", "light", "medium", "dense"} <= classes
    meta = synth.render_sample(21, 0, 32, 40, beta_range=(0.01, 0.02))["meta"]
    assert 0.01 <= meta["beta"] <= 0.02 and meta["density"] == "range"


def test_haze_distribution_is_configurable(tmp_path):
    """--haze-free / --optical-depth: no haze-free sample at fraction 0, every tau inside the range."""
    dist = synth.HazeDistribution(0.0, (0.5, 1.0))
    for i in range(12):
        meta = synth.render_sample(21, i, 24, 32, distribution=dist)["meta"]
        assert meta["density"] != "none" and 0.5 <= meta["beta"] * meta["median_depth"] <= 1.0 + 1e-9
    assert {synth.render_sample(21, i, 24, 32, distribution=synth.HazeDistribution(1.0))["meta"]["density"]
            for i in range(3)} == {"none"}
    with pytest.raises(synth.SynthError, match="haze-free fraction in \\[0, 1\\]"):
        synth.HazeDistribution(1.5)
    out = tmp_path / "d"
    synth.write_dataset(out, 2, (24, 32), seed=1, progress=False, preview=0, haze=dist)
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["haze"]["haze_free_fraction"] == 0.0
    assert manifest["haze"]["optical_depth_at_median_depth"] == [0.5, 1.0]


def test_photo_family_hazes_real_photos_without_a_depth_target(tmp_path, monkeypatch):
    """The "photo" family: real-photo statistics under the scattering model; its haze depth is no DE target."""
    for i in range(4):
        smp = synth.render_sample(9, i, 48, 64, family="photo")
        meta = smp["meta"]
        assert meta["scene"] == "photo" and meta["depth_target"] is False
        assert set(meta["textures"]) <= set(synth.PHOTO_FAMILY_SOURCES)
        expected = recompute_hazy(smp["clear"], smp["depth"], meta)
        assert np.abs(smp["hazy"] - expected).max() <= 0.51
        assert float(smp["depth"].min()) > 0
    monkeypatch.setattr(synth.scenes, "SCENE_WEIGHTS", tuple(float(f == "photo") for f in synth.SCENE_FAMILIES))
    out = tmp_path / "photos"
    synth.write_dataset(out, 3, (48, 64), seed=4, progress=False)
    ds = build_dataset(out, "train", crop=None, augment=False)
    for k in range(len(ds)):
        item = ds[k]
        assert not item["depth_valid"].any() and item["hazy"].shape == (3, 48, 64)


def test_motorcycle_is_never_a_texture(monkeypatch):
    import skimage.data

    def forbidden():
        raise AssertionError("stereo_motorcycle must not be loaded by the generator")

    monkeypatch.setattr(skimage.data, "stereo_motorcycle", forbidden)
    textures_mod._library.cache_clear()
    try:
        lib = textures_mod.TextureLibrary.load()
        names = lib.names()
        assert not any("motorcycle" in n for n in names)
        assert set(lib.names("photo")) <= set(textures_mod.PHOTO_SOURCES)
        used = set()
        for i in range(8):
            used |= set(synth.render_sample(2, i, 32, 40, lib=lib)["meta"]["textures"])
        assert used and used <= set(names)
        # the photos really are the named scikit-image images
        astro = lib.textures[lib.index("astronaut")].levels[0]
        ref = skimage.data.astronaut().astype(np.float32) / 255
        np.testing.assert_allclose(astro, ref, atol=1e-6)
    finally:
        textures_mod._library.cache_clear()
    with pytest.raises(ValueError, match="held-out"):
        textures_mod._load_photo("stereo_motorcycle")


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = synth.render_sample

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth.writer, "render_sample", flaky)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        synth.write_dataset(out, 5, (32, 40), progress=False)
    assert calls["n"] == 3
    assert list(tmp_path.iterdir()) == []                 # no OUT, no temporary folder

    # an existing set survives a failed --overwrite run untouched
    monkeypatch.setattr(synth.writer, "render_sample", real)
    synth.write_dataset(out, 2, (32, 40), progress=False, preview=0)
    before = sorted(p.name for p in (out / "train" / "hazy").iterdir())
    calls["n"] = 0
    monkeypatch.setattr(synth.writer, "render_sample", flaky)
    with pytest.raises(KeyboardInterrupt):
        synth.write_dataset(out, 5, (32, 40), overwrite=True, progress=False)
    assert sorted(p.name for p in (out / "train" / "hazy").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with pytest.raises(synth.SynthError, match="exists"):
        synth.write_dataset(out, 1, (32, 40), progress=False)


def test_bad_generator_arguments(tmp_path):
    with pytest.raises(synth.SynthError, match="--count"):
        synth.write_dataset(tmp_path / "a", 0, (32, 32))
    with pytest.raises(synth.SynthError, match="--size"):
        synth.write_dataset(tmp_path / "a", 1, (8, 32))
    with pytest.raises(synth.SynthError, match="--split-test"):
        synth.write_dataset(tmp_path / "a", 2, (32, 32), split_test=3)
    with pytest.raises(synth.SynthError, match="--beta-range"):
        synth.write_dataset(tmp_path / "a", 2, (32, 32), beta_range=(0.5, 0.1))
    assert not (tmp_path / "a").exists()


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "dcmpnet_ros.cli", "synth", str(out), "--count", "3", "--size", "40", "56",
           "--split-test", "1", "--seed", "4", "--no-progress"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout and "2 train + 1 test" in res.stdout
    ds = build_dataset(out, "test", crop=None, augment=False)
    assert ds[0]["hazy"].shape == (3, 40, 56) and ds[0]["depth_valid"].all()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "exists; pass --overwrite" in res.stderr
    bad = [sys.executable, "-m", "dcmpnet_ros.cli", "synth", str(tmp_path / "x"), "--count", "2",
           "--beta-range", "0", "1"]
    res = subprocess.run(bad, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "--beta-range must be" in res.stderr and not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- real photo with known depth
def test_disparity_holes_filled_with_background():
    d = np.array([[10.0, np.nan, np.nan, 30.0, np.nan]], np.float32)
    np.testing.assert_array_equal(fill_disparity_holes(d), [[10, 10, 10, 30, 30]])


def test_motorcycle_pairs_follow_the_model():
    rgb, depth_m, rel, valid = motorcycle_scene()
    assert rgb.shape == (500, 741, 3) and depth_m.shape == rel.shape == valid.shape == (500, 741)
    assert 1.5 < float(depth_m.min()) and float(depth_m.max()) < 6.0        # a 2-5 m studio scene
    assert 0.85 < valid.mean() < 0.99
    import skimage.data

    disp = skimage.data.stereo_motorcycle()[2]
    # Z = baseline * f / (d + doffs) with the full-size calib.txt of Middlebury 2014 Motorcycle (f 3979.911 px,
    # doffs 124.343 px, baseline 193.001 mm); scikit-image's images are a quarter of that size, so f and doffs / 4
    expected = 0.193001 * (3979.911 / 4) / (disp.astype(np.float64) + 124.343 / 4)
    z, ok = disparity_to_metric(disp)
    assert ok[valid].all()
    np.testing.assert_allclose(z[valid], expected[valid], rtol=1e-5)
    np.testing.assert_allclose(depth_m[valid], expected[valid], rtol=1e-5)
    np.testing.assert_allclose(rel[valid], disparity_to_depth(disp + MOTORCYCLE_DOFFS_PX, valid)[valid] *
                               (depth_m[valid].max() / depth_m.max()), rtol=1e-4)
    pairs = list(photo_pairs(rgb, depth_m=depth_m, valid=valid, name="motorcycle"))
    assert len(pairs) == 9 and pairs[0].name == "motorcycle_b0_a0"
    med = float(np.median(depth_m))
    for p in pairs[::4]:
        t = np.exp(-p.beta * depth_m.astype(np.float64))[..., None]
        expected = rgb * t + np.asarray(p.airlight) * (1 - t)
        np.testing.assert_allclose(p.hazy, expected, atol=1e-5)
    assert [round(math.exp(-p.beta * med), 3) for p in pairs[::3]] == [0.8, 0.5, 0.25]
    from_disp = next(photo_pairs(rgb, disparity=disp, betas=[0.3], airlights=[(0.9, 0.9, 0.9)]))
    np.testing.assert_allclose(from_disp.depth_m, depth_m, rtol=1e-5)
    with pytest.raises(ValueError, match="exactly one"):
        next(photo_pairs(rgb))
