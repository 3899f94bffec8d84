"""Paired augmentation: one random crop/flip/rotation applied identically to hazy, clear and depth.

Arrays are NumPy (H,W,C) or (H,W); geometry ops keep every array aligned pixel for pixel.
Randomness comes from the ``numpy.random.Generator`` passed in, never from global state.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch


def ensure_min_size(arrays: Sequence[np.ndarray], size: int, nearest: Sequence[bool]) -> list[np.ndarray]:
    """Upscale all arrays (same factor) so that the short side is at least ``size``.

    ``nearest[i]`` selects nearest-neighbour resampling (depth, masks) instead of bilinear (images).
    """
    h, w = arrays[0].shape[:2]
    if min(h, w) >= size:
        return list(arrays)
    s = size / min(h, w)
    nh, nw = max(size, int(np.ceil(h * s))), max(size, int(np.ceil(w * s)))
    out = []
    for a, nn in zip(arrays, nearest):
        src = a.astype(np.uint8) if a.dtype == bool else a
        r = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_NEAREST if nn else cv2.INTER_LINEAR)
        out.append(r.astype(bool) if a.dtype == bool else r)
    return out


def crop_window(h: int, w: int, size: int, rng: np.random.Generator | None) -> tuple[int, int]:
    """Top-left corner of a ``size`` crop: uniform random with ``rng``, centred without."""
    if rng is None:
        return (h - size) // 2, (w - size) // 2
    return int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))


def paired_augment(arrays: Sequence[np.ndarray], crop: int | None, rng: np.random.Generator | None,
                   hflip_only: bool = False, nearest: Sequence[bool] | None = None) -> list[np.ndarray]:
    """Crop (and, with ``rng``, randomly flip/rotate) all arrays identically.

    ``crop``: square crop side or None for the full image.  ``rng`` None = no randomness (centre
    crop, no flip): evaluation.  With ``rng``: random crop, horizontal flip (p=0.5) and, unless
    ``hflip_only``, a rotation by a random multiple of 90 degrees (as DehazeFormer/DCMPNet train).
    """
    arrays = list(arrays)
    nearest = list(nearest) if nearest is not None else [a.ndim == 2 for a in arrays]
    if crop is not None:
        arrays = ensure_min_size(arrays, crop, nearest)
        h, w = arrays[0].shape[:2]
        y, x = crop_window(h, w, crop, rng)
        arrays = [a[y:y + crop, x:x + crop] for a in arrays]
    if rng is not None:
        if rng.random() < 0.5:
            arrays = [a[:, ::-1] for a in arrays]
        if not hflip_only:
            k = int(rng.integers(0, 4))
            if k:
                arrays = [np.rot90(a, k, axes=(0, 1)) for a in arrays]
    return [np.ascontiguousarray(a) for a in arrays]


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H,W,3) float RGB in [0, 1] -> FloatTensor (3,H,W) in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))
    return t.mul_(2.0).sub_(1.0)


def map_to_tensor(a: np.ndarray) -> torch.Tensor:
    """(H,W) array -> tensor (1,H,W) keeping dtype (float32 depth, bool mask)."""
    return torch.from_numpy(np.ascontiguousarray(a)[None])
