"""Dataset loaders on small fixture trees of real photos, in every public layout, and their errors."""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from dcmpnet_core.data import DatasetError, build_dataset, detect_layout, list_pairs
from dcmpnet_core.data.datasets import HazeDataset, PairRecord
from dcmpnet_core.utils.depth_convention import disparity_to_depth, normalize_depth

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def photo(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A real photo (RGB uint8) resized to h x w."""
    img = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def ramp_depth(h: int, w: int, near: float = 1.0, far: float = 9.0) -> np.ndarray:
    """A ground-like depth map in metres: far at the top, near at the bottom."""
    return np.repeat(np.linspace(far, near, h)[:, None], w, axis=1).astype(np.float32)


def haze(rgb: np.ndarray, depth: np.ndarray, beta: float = 0.3, a: float = 0.9) -> np.ndarray:
    t = np.exp(-beta * depth)[..., None]
    return np.round((rgb / 255.0 * t + a * (1 - t)) * 255).astype(np.uint8)


def write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def to01(t: torch.Tensor) -> np.ndarray:
    return ((t.numpy().transpose(1, 2, 0) + 1) / 2)


def make_pairs(root: Path, n_train: int = 3, n_test: int = 2, h: int = 48, w: int = 64) -> None:
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            clear = photo(i + (10 if split == "test" else 0), h, w)
            write(root / split / "GT" / f"img{i}.png", clear)
            write(root / split / "hazy" / f"img{i}.png", haze(clear, ramp_depth(h, w)))


# --------------------------------------------------------------------------- pairs
def test_pairs_layout_items_and_stored_depth(tmp_path):
    make_pairs(tmp_path)
    d = ramp_depth(48, 64)
    (tmp_path / "train" / "depth").mkdir()
    cv2.imwrite(str(tmp_path / "train" / "depth" / "img0.png"), np.round(d * 1000).astype(np.uint16))
    np.save(tmp_path / "train" / "depth" / "img1.npy", d * 2)
    assert detect_layout(tmp_path) == "pairs"
    recs = list_pairs(tmp_path, "train", "pairs")
    assert [r.name for r in recs] == ["img0", "img1", "img2"]
    ds = build_dataset(tmp_path, "train", crop=None, augment=False)
    assert len(ds) == 3
    item = ds[0]
    assert set(item) == {"hazy", "clear", "depth", "depth_valid", "name"}
    assert item["hazy"].shape == (3, 48, 64) and item["hazy"].dtype == torch.float32
    assert item["depth"].shape == (1, 48, 64) and item["depth_valid"].dtype == torch.bool
    assert -1 <= item["hazy"].min() and item["clear"].max() <= 1
    # images are RGB and exact
    np.testing.assert_allclose(to01(item["clear"]) * 255, photo(0), atol=1e-3)
    # stored depth (16-bit mm and .npy metres) -> the project convention
    np.testing.assert_allclose(item["depth"][0].numpy(), normalize_depth(np.round(d * 1000) / 1000), rtol=1e-6)
    assert item["depth_valid"].all()
    np.testing.assert_allclose(ds[1]["depth"][0].numpy(), normalize_depth(d), rtol=1e-6)
    # a pair without depth in 'auto' mode: no depth target, all invalid
    assert not ds[2]["depth_valid"].any() and float(ds[2]["depth"].min()) == 1.0
    with pytest.raises(DatasetError, match="lack a depth file.*img2"):
        build_dataset(tmp_path, "train", depth="stored")
    test = build_dataset(tmp_path, "test", crop=32, augment=False)
    assert test[0]["hazy"].shape == (3, 32, 32) and test[0]["name"] == "img0"


def test_missing_pair_is_listed(tmp_path):
    make_pairs(tmp_path)
    (tmp_path / "train" / "GT" / "img1.png").unlink()
    with pytest.raises(DatasetError, match=r"1 hazy image\(s\) have no clear image.*img1"):
        list_pairs(tmp_path, "train", "pairs")


def test_unmatched_names_listed_with_count(tmp_path):
    make_pairs(tmp_path, n_train=1)
    clear = photo(0, 16, 16)
    for i in range(25):
        write(tmp_path / "train" / "hazy" / f"extra{i:02d}.png", clear)
    write(tmp_path / "train" / "GT" / "lonely.png", clear)
    with pytest.raises(DatasetError) as err:
        list_pairs(tmp_path, "train", "pairs")
    msg = str(err.value)
    assert "25 hazy image(s)" in msg and "extra00" in msg and "and 5 more" in msg
    assert "1 clear image(s) have no hazy image" in msg and "lonely" in msg


def test_empty_folder_and_missing_root_are_named(tmp_path):
    (tmp_path / "train" / "hazy").mkdir(parents=True)
    (tmp_path / "train" / "GT").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"hazy folder .*train/hazy holds no images"):
        list_pairs(tmp_path, "train", "pairs")
    with pytest.raises(DatasetError, match="does not exist"):
        build_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no 'val' folder"):
        list_pairs(tmp_path / "train" / "hazy", "val", "pairs")


def test_size_mismatch_names_the_file(tmp_path):
    make_pairs(tmp_path, n_train=2)
    write(tmp_path / "train" / "GT" / "img1.png", photo(1, 40, 64))
    ds = build_dataset(tmp_path, "train", crop=None, augment=False)
    ds[0]
    with pytest.raises(DatasetError, match=r"size mismatch for .*hazy/img1.png: hazy is 64x48 but clear .*64x40"):
        ds[1]


def test_bad_arguments(tmp_path):
    make_pairs(tmp_path, n_train=1)
    with pytest.raises(DatasetError, match="layout must be one of"):
        build_dataset(tmp_path, layout="nyu")
    with pytest.raises(DatasetError, match="crop must be"):
        build_dataset(tmp_path, crop=3)
    with pytest.raises(DatasetError, match="depth must be one of"):
        build_dataset(tmp_path, depth="lidar")
    with pytest.raises(DatasetError, match="needs depth_model"):
        build_dataset(tmp_path, depth="model")


# --------------------------------------------------------------------------- RESIDE
def test_reside_its_names_and_transmission_depth(tmp_path):
    root = tmp_path / "ITS"
    h, w = 48, 64
    # depth receding upward in one image, to the right in the other
    depths = {1: ramp_depth(h, w, 1.5, 6.0), 2: np.tile(np.linspace(2.0, 9.0, w)[None, :], (h, 1))}
    expected = {}
    (root / "trans").mkdir(parents=True)
    for cid in (1, 2):
        clear = photo(cid, h, w)
        write(root / "clear" / f"{cid}.png", clear)
        for k, (a, beta) in enumerate([(0.90179, 0.8), (0.76, 1.4)], start=1):
            write(root / "hazy" / f"{cid}_{k}_{a}.png", haze(clear, depths[cid], beta, a))
            t8 = np.clip(np.round(np.exp(-beta * depths[cid]) * 255), 1, 254).astype(np.uint8)
            cv2.imwrite(str(root / "trans" / f"{cid}_{k}.png"), t8)
            dd = -np.log(t8 / 255.0)
            expected[f"{cid}_{k}_{a}"] = dd / dd.max()
    assert detect_layout(root) == "reside_its"
    with pytest.warns(UserWarning, match="no 'train' folder"):
        recs = list_pairs(root, "train", "auto")
    assert len(recs) == 4
    r = {x.name: x for x in recs}["1_1_0.90179"]
    assert r.clear.name == "1.png" and r.transmission.name == "1_1.png"
    assert r.airlight == pytest.approx(0.90179) and r.beta is None
    with pytest.warns(UserWarning):
        ds = build_dataset(root, "train", crop=None, augment=False, depth="transmission")
    for i in range(len(ds)):
        item = ds[i]
        np.testing.assert_allclose(item["depth"][0].numpy(), expected[item["name"]], rtol=1e-5, atol=1e-6)
        assert item["depth_valid"].all()
    # ITS test names <id>_<k> without a trans folder: depth 'auto' falls back to none
    write(root / "hazy" / "3_1.png", photo(3, h, w))
    with pytest.raises(DatasetError, match="3_1.png"):
        list_pairs(root, "all", "reside_its")


def test_reside_ots_names(tmp_path):
    root = tmp_path / "OTS"
    for i, cid in enumerate(("0001", "0002")):
        clear = photo(i, 40, 56)
        write(root / "train" / "clear" / f"{cid}.jpg", clear)
        write(root / "train" / "hazy" / f"{cid}_0.8_0.2.jpg", haze(clear, ramp_depth(40, 56), 0.2, 0.8))
        write(root / "train" / "hazy" / f"{cid}_0.95_0.04.jpg", haze(clear, ramp_depth(40, 56), 0.04, 0.95))
    assert detect_layout(root) == "reside_ots"
    recs = list_pairs(root, "train")
    assert len(recs) == 4
    r = recs[0]
    assert (r.name, r.clear.name, r.airlight, r.beta) == ("0001_0.8_0.2", "0001.jpg", 0.8, 0.2)
    item = build_dataset(root, "train", crop=24, augment=True)[3]
    assert item["hazy"].shape == (3, 24, 24) and not item["depth_valid"].any()
    write(root / "train" / "hazy" / "0003_0.8_0.2.jpg", photo(0, 40, 56))
    with pytest.raises(DatasetError, match=r"1 hazy image\(s\) have no clear image.*0003_0.8_0.2.jpg"):
        list_pairs(root, "train", "reside_ots")
    write(root / "train" / "hazy" / "0004_x_y.jpg", photo(0, 40, 56))
    with pytest.raises(DatasetError, match="do not follow the reside_ots pattern"):
        list_pairs(root, "train", "reside_ots")


def test_sots_centre_crop(tmp_path):
    root = tmp_path / "SOTS" / "indoor"
    big = cv2.resize(skimage.data.astronaut(), (640, 480), interpolation=cv2.INTER_AREA)
    write(root / "gt" / "1400.png", big)
    write(root / "hazy" / "1400_1.png", haze(big[10:-10, 10:-10], ramp_depth(460, 620), 0.2, 0.85))
    write(root / "hazy" / "1400_2.png", haze(big[10:-10, 10:-10], ramp_depth(460, 620), 0.4, 0.9))
    assert detect_layout(tmp_path / "SOTS") == "sots"
    recs = list_pairs(tmp_path / "SOTS", "indoor", "sots")
    assert [r.name for r in recs] == ["1400_1", "1400_2"] and recs[0].clear_border == 10
    item = build_dataset(tmp_path / "SOTS", "indoor", layout="sots", crop=None, augment=False)[0]
    assert item["hazy"].shape == item["clear"].shape == (3, 460, 620)
    np.testing.assert_allclose(to01(item["clear"]) * 255, big[10:-10, 10:-10], atol=1e-3)
    # detection from the sizes alone, without "sots" in the path
    other = tmp_path / "indoor_test"
    write(other / "gt" / "5.png", big)
    write(other / "hazy" / "5_3.png", big[10:-10, 10:-10])
    assert detect_layout(other) == "sots"


def test_haze4k_layout_names_and_transmission(tmp_path):
    root = tmp_path / "Haze4K"
    h, w = 48, 64
    d = ramp_depth(h, w, 1.0, 5.0)
    for split, ids in (("train", (1, 2)), ("test", (7,))):
        for cid in ids:
            a, beta = 0.89, 1.56 if cid != 2 else 0.66
            clear = photo(cid, h, w)
            write(root / split / "gt" / f"{cid}.png", clear)
            write(root / split / "haze" / f"{cid}_{a}_{beta}.png", haze(clear, d, beta, a))
            (root / split / "trans").mkdir(exist_ok=True)
            cv2.imwrite(str(root / split / "trans" / f"{cid}.png"),
                        np.round(np.exp(-beta * d) * 255).astype(np.uint8))
    assert detect_layout(root) == "haze4k"
    recs = list_pairs(root, "train")
    assert [(r.name, r.clear.name, r.transmission.name, r.airlight, r.beta) for r in recs] == [
        ("1_0.89_1.56", "1.png", "1.png", 0.89, 1.56), ("2_0.89_0.66", "2.png", "2.png", 0.89, 0.66)]
    ds = build_dataset(root, "test", crop=None, augment=False)
    item = ds[0]
    t8 = np.round(np.exp(-1.56 * d) * 255).astype(np.uint8)
    dd = -np.log(np.clip(t8 / 255.0, 0.5 / 255, 1 - 0.5 / 255))
    assert ds.depth_source(ds.records[0]) == "transmission"
    # t stored as 0 only bounds depth from below: invalid, and 1 (as far as the farthest valid pixel)
    np.testing.assert_allclose(item["depth"][0].numpy(), normalize_depth(dd, t8 > 0), rtol=1e-5)
    assert (item["depth_valid"][0].numpy() == (t8 > 0)).all() and (t8 == 0).any()
    # depth is farther at the top of this ramp, as the transmission says
    assert item["depth"][0, 0].mean() > item["depth"][0, -1].mean()
    (root / "test" / "gt" / "8.png").write_bytes((root / "test" / "gt" / "7.png").read_bytes())
    with pytest.raises(DatasetError, match=r"1 clear image\(s\) have no hazy image.*8"):
        list_pairs(root, "test")


# --------------------------------------------------------------------------- O-HAZE family
def test_ohaze_subfolders_and_nhhaze_flat(tmp_path):
    o = tmp_path / "O-HAZE"
    for n in ("01", "02", "03"):
        clear = photo(int(n), 40, 60)
        write(o / "GT" / f"{n}_outdoor_GT.jpg", clear)
        write(o / "hazy" / f"{n}_outdoor_hazy.jpg", haze(clear, ramp_depth(40, 60)))
    assert detect_layout(o) == "ohaze"
    with pytest.warns(UserWarning):
        recs = list_pairs(o, "train")
    assert [r.name for r in recs] == ["01_outdoor", "02_outdoor", "03_outdoor"]
    assert recs[1].clear.name == "02_outdoor_GT.jpg"

    nh = tmp_path / "NH-HAZE"
    for n in ("01", "02"):
        clear = photo(int(n), 40, 60)
        write(nh / "train" / f"{n}_GT.png", clear)
        write(nh / "train" / f"{n}_hazy.png", haze(clear, ramp_depth(40, 60)))
    assert detect_layout(nh) == "ohaze"
    ds = build_dataset(nh, "train", crop=32)
    assert len(ds) == 2 and ds[1]["name"] == "02" and ds[1]["clear"].shape == (3, 32, 32)
    (nh / "train" / "02_GT.png").unlink()
    with pytest.raises(DatasetError, match=r"02_hazy.png"):
        list_pairs(nh, "train", "ohaze")


# --------------------------------------------------------------------------- augmentation
def _coordinate_tree(root: Path, h: int = 40, w: int = 56) -> np.ndarray:
    """Hazy/clear encode each pixel's (x, y) in R and G; depth = 1 + x + w*y (unique per pixel)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 4, yy * 4, np.full_like(xx, 128)], axis=2).astype(np.uint8)
    write(root / "train" / "GT" / "p.png", img)
    write(root / "train" / "hazy" / "p.png", img)
    depth = (1.0 + xx + w * yy).astype(np.float32)
    (root / "train" / "depth").mkdir()
    np.save(root / "train" / "depth" / "p.npy", depth)
    return depth


@pytest.mark.parametrize("hflip_only", [False, True])
def test_augmentation_keeps_hazy_clear_depth_aligned(tmp_path, hflip_only):
    w = 56
    _coordinate_tree(tmp_path, 40, w)
    ds = build_dataset(tmp_path, "train", crop=24, augment=True, hflip_only=hflip_only, seed=3)
    torch.manual_seed(0)
    seen = set()
    for _ in range(12):
        item = ds[0]
        hz, cl = to01(item["hazy"]) * 255, to01(item["clear"]) * 255
        np.testing.assert_allclose(hz, cl, atol=1e-3)
        x = np.round(hz[..., 0] / 4).astype(int)
        y = np.round(hz[..., 1] / 4).astype(int)
        raw = 1.0 + x + w * y
        np.testing.assert_allclose(item["depth"][0].numpy(), raw / raw.max(), rtol=1e-6)
        if hflip_only:   # no rotation: y grows downward in every crop
            assert (np.diff(y, axis=0) == 1).all()
        seen.add((int(x[0, 0]), int(y[0, 0]), int(x[0, 1] - x[0, 0]), int(y[1, 0] - y[0, 0])))
    assert len(seen) > 6                               # crops, flips and rotations vary
    # evaluation: no randomness, centre crop
    ev = build_dataset(tmp_path, "train", crop=24, augment=False)
    a, b = ev[0], ev[0]
    assert torch.equal(a["hazy"], b["hazy"])
    x0 = int(round(float(to01(a["hazy"])[0, 0, 0] * 255 / 4)))
    assert x0 == (56 - 24) // 2


def test_augmentation_is_seeded_by_torch_and_works_in_workers(tmp_path):
    _coordinate_tree(tmp_path)
    ds = build_dataset(tmp_path, "train", crop=16, augment=True)
    torch.manual_seed(5)
    a = ds[0]["hazy"]
    torch.manual_seed(5)
    assert torch.equal(a, ds[0]["hazy"])
    records = ds.records * 4
    ds4 = HazeDataset(records, crop=16)
    loader = torch.utils.data.DataLoader(ds4, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["hazy"].shape == (2, 3, 16, 16)
    assert batches[0]["depth_valid"].dtype == torch.bool and batches[0]["name"] == ["p", "p"]


def test_small_images_are_upscaled_to_the_crop(tmp_path):
    make_pairs(tmp_path, n_train=1, h=20, w=30)
    item = build_dataset(tmp_path, "train", crop=32, augment=True)[0]
    assert item["hazy"].shape == (3, 32, 32)


# --------------------------------------------------------------------------- depth from a model
class _Disparity(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 + x.mean(dim=1, keepdim=True)


def test_torchscript_depth_model_source(tmp_path):
    make_pairs(tmp_path, n_train=2, h=64, w=96)
    path = tmp_path / "tiny_depth.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(_Disparity()).save(str(path))
    ds = build_dataset(tmp_path, "train", crop=None, augment=False, depth="model", depth_model=str(path),
                       depth_model_output="disparity")
    item = ds[1]
    clear = read(tmp_path / "train" / "GT" / "img1.png").astype(np.float32) / 255.0
    np.testing.assert_allclose(item["depth"][0].numpy(), disparity_to_depth(1.0 + clear.mean(axis=2)), rtol=1e-5)
    assert item["depth_valid"].all()
    # 'auto' uses the model only when nothing better ships with the data; workers reload it
    ds_auto = build_dataset(tmp_path, "train", crop=32, depth_model=str(path))
    assert ds_auto.depth_source(ds_auto.records[0]) == "model"
    loader = torch.utils.data.DataLoader(ds_auto, batch_size=2, num_workers=1)
    assert next(iter(loader))["depth_valid"].all()
    with pytest.raises(DatasetError, match="does not exist"):
        build_dataset(tmp_path, "train", depth="model", depth_model=str(tmp_path / "missing.pt"))


def test_pair_record_is_plain_data(tmp_path):
    r = PairRecord("a", tmp_path / "a.png", tmp_path / "b.png", "pairs")
    assert r.depth is None and r.clear_border == 0
