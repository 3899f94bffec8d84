"""Pictures for people: colour-mapped depth and hazy | dehazed | depth panels.

Colour convention of every depth preview in this project (:func:`depth_to_color`, the one function
that draws depth): the INFERNO colour map with **near = bright (yellow), far = dark (black/purple)**,
stretched per image between the nearest and the farthest finite pixel (so previews show relative
structure, never absolute distance).  Non-finite depth is drawn black.  Metric depth over a wide
range (the synthetic generator's previews) is stretched in log depth instead (``log=True``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # torch is not imported here: the CLI and the ROS side use this module without it
    import torch


def to_uint8_rgb(img: torch.Tensor) -> np.ndarray:
    """A network image (3,H,W) in [-1, 1] (any values: clamped) -> (H,W,3) uint8 RGB."""
    unit = (img.float().clamp(-1.0, 1.0) + 1.0) * 0.5
    return (unit.permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def _as_uint8_rgb(image: np.ndarray, name: str) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3) RGB, got shape {img.shape}")
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    if img.dtype == np.uint16:
        return np.ascontiguousarray((img >> 8).astype(np.uint8))
    if np.issubdtype(img.dtype, np.floating):
        return np.ascontiguousarray(np.round(np.clip(np.nan_to_num(img), 0.0, 1.0) * 255.0).astype(np.uint8))
    raise ValueError(f"{name} must be uint8, uint16 or float in [0, 1], got dtype {img.dtype}")


def depth_to_color(depth: np.ndarray, log: bool = False) -> np.ndarray:
    """Depth (H,W) -> (H,W,3) uint8 RGB; near = bright, far = dark (INFERNO), stretched per image.

    ``log``: stretch ``log(depth)`` rather than depth (depth must then be > 0; other pixels are drawn black).
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[..., 0]
    if d.ndim != 2:
        raise ValueError(f"depth must have shape (H, W), got shape {d.shape}")
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(d > 0, np.log(d), np.nan)
    ok = np.isfinite(d)
    nearness = np.zeros(d.shape, dtype=np.float64)
    if ok.any():
        lo, hi = float(d[ok].min()), float(d[ok].max())
        nearness[ok] = (hi - d[ok]) / (hi - lo) if hi > lo else 0.5
    grey = np.round(nearness * 255.0).astype(np.uint8)
    bgr = cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)
    bgr[~ok] = 0
    return np.ascontiguousarray(bgr[..., ::-1])


def draw_label(panel: np.ndarray, text: str) -> None:
    """Write ``text`` in the top-left corner of ``panel`` (uint8 RGB, in place): white on a dark outline.

    The outline is the same text, same thickness, shifted one pixel in eight directions: OpenCV's Hershey fonts
    advance each glyph by the line thickness, so a thicker outline stroke would run wider than the text on top
    of it and smear the label.
    """
    h, w = panel.shape[:2]
    scale = max(0.3, min(h, w) / 400.0)
    thick = max(1, int(round(scale * 2)))
    x, y = max(2, int(6 * scale)), max(10, int(22 * scale))
    for dx, dy in ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)):
        cv2.putText(panel, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    cv2.putText(panel, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def side_by_side(hazy: np.ndarray, dehazed: np.ndarray, depth: np.ndarray, labels: bool = True) -> np.ndarray:
    """Hazy | dehazed | depth colour map, each (H,W); returns (H, 3W, 3) uint8 RGB.

    ``hazy`` and ``dehazed``: (H,W,3) RGB, uint8 or float in [0, 1]; ``depth``: (H,W) relative
    depth (see :func:`depth_to_color`).  ``labels`` writes "hazy", "dehazed", "depth (near=bright)".
    """
    a = _as_uint8_rgb(hazy, "hazy").copy()
    b = _as_uint8_rgb(dehazed, "dehazed").copy()
    c = depth_to_color(depth)
    if a.shape != b.shape or a.shape[:2] != c.shape[:2]:
        raise ValueError(f"hazy, dehazed and depth must share H and W, got {a.shape}, {b.shape} and {c.shape[:2]}")
    if labels:
        for panel, text in ((a, "hazy"), (b, "dehazed"), (c, "depth (near=bright)")):
            draw_label(panel, text)
    return np.concatenate([a, b, c], axis=1)
