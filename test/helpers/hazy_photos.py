"""Test helper: real photos (shipped with scikit-image) hazed with the atmospheric scattering model.

``I = J * t + A * (1 - t)`` with ``t = exp(-beta * d)`` and a known, simple depth map ``d`` (a
tilted ground plane: farther towards the top), so the clear image, the hazy image and the depth
target are all exact.  Items follow the dataset API of ``dcmpnet_core.data.build_dataset``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "brick", "grass", "gravel", "camera")


def _photo(name: str) -> np.ndarray:
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return img[..., :3].astype(np.float32) / 255.0


def plane_depth(h: int, w: int, tilt: float) -> np.ndarray:
    """Relative depth (H,W) in (0, 1], max 1: larger towards the top, tilted sideways by ``tilt``."""
    y = np.linspace(1.0, 0.0, h, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    d = 0.25 + 0.75 * y + 0.15 * tilt * x
    d = np.clip(d, 0.05, None)
    return d / d.max()


def make_pair(index: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clear, hazy, depth) for sample ``index``: (size,size,3) in [0,1] twice and (size,size) depth."""
    import cv2

    rng = np.random.default_rng(1000 + index)
    img = _photo(PHOTOS[index % len(PHOTOS)])
    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.5, 0.9))
    y0, x0 = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    clear = cv2.resize(img[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_AREA)
    depth = plane_depth(size, size, rng.uniform(-1, 1))
    beta = rng.uniform(0.8, 2.0)
    airlight = rng.uniform(0.75, 1.0)
    t = np.exp(-beta * depth)[..., None]
    hazy = clear * t + airlight * (1.0 - t)
    return clear.astype(np.float32), hazy.astype(np.float32), depth.astype(np.float32)


def no_onednn() -> Iterator[None]:
    """Generator for a module-scoped fixture: oneDNN off while a test module runs, then restored.

    On small CPU tensors oneDNN's convolution backward spends most of its time creating
    primitives (2-4x slower than PyTorch's native kernels for the tiny variant at 32-64 px).
    """
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


class HazyPhotoPairs(Dataset):
    """``count`` hazy/clear/depth triples of ``size`` x ``size`` pixels, in the data API's item format."""

    def __init__(self, count: int = 8, size: int = 32, offset: int = 0, invalid_depth: bool = False) -> None:
        self.count, self.size, self.offset, self.invalid_depth = count, size, offset, invalid_depth
        self.items = [make_pair(offset + i, size) for i in range(count)]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict:
        clear, hazy, depth = self.items[i]
        to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1) * 2.0 - 1.0  # noqa: E731
        valid = np.zeros_like(depth, dtype=bool) if self.invalid_depth else np.ones_like(depth, dtype=bool)
        return {"hazy": to_t(hazy), "clear": to_t(clear), "depth": torch.from_numpy(depth)[None],
                "depth_valid": torch.from_numpy(valid)[None], "name": f"photo_{self.offset + i:03d}.png"}


def batch_of(dataset: Dataset, indices: list[int]) -> dict:
    """Collate items of ``dataset`` into one batch dict."""
    from torch.utils.data import default_collate

    return default_collate([dataset[i] for i in indices])


def write_pairs_layout(root: Path, train: int, test: int, size: int) -> Path:
    """Write ``root/{train,test}/{GT,hazy,depth}/NAME.png`` (depth as 16-bit PNG, relative depth * 65535)."""
    import cv2

    for split, count, offset in (("train", train, 0), ("test", test, 500)):
        for sub in ("GT", "hazy", "depth"):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            clear, hazy, depth = make_pair(offset + i, size)
            name = f"{offset + i:04d}.png"
            cv2.imwrite(str(root / split / "GT" / name), (clear[..., ::-1] * 255 + 0.5).astype(np.uint8))
            cv2.imwrite(str(root / split / "hazy" / name), (hazy[..., ::-1] * 255 + 0.5).astype(np.uint8))
            cv2.imwrite(str(root / split / "depth" / name), (depth * 65535 + 0.5).astype(np.uint16))
    return root


def quarter_motorcycle_pairs() -> list:
    """The held-out benchmark photo (Middlebury motorcycle) at a quarter size: clear, then 3 densities.

    One airlight; :class:`dcmpnet_core.evaluation.quality.EvalPair` items, fast enough for tests.
    """
    import cv2

    from dcmpnet_core.data.photos import motorcycle_scene
    from dcmpnet_core.evaluation.quality import depth_photo_pairs

    left, depth_m, _, valid = motorcycle_scene()
    size = (left.shape[1] // 4, left.shape[0] // 4)
    left = cv2.resize(left, size, interpolation=cv2.INTER_AREA)
    depth_m = cv2.resize(depth_m, size, interpolation=cv2.INTER_NEAREST)
    valid = cv2.resize(valid.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    return depth_photo_pairs("motorcycle", left, depth_m, valid, airlights=[(0.85, 0.85, 0.85)])
