"""The project's one depth convention, used by datasets, training targets, checkpoints and inference.

**Relative depth**: float32, larger = farther, scaled per image so that its maximum over valid
pixels is 1 (``depth / max(depth)``): ratios between distances are kept, which is what the
scattering model ``t = exp(-beta * d)`` depends on.  Sky or invalid (non-finite, <= 0) pixels
take the value 1 (as far as the farthest valid point).  Absolute scale is unknown; the ROS node
and ``dcmpnet infer`` publish it as relative depth unless the user supplies a metric scale.
"""
from __future__ import annotations

import numpy as np

CONVENTION = "relative_depth: larger = farther, depth / max(depth) per image, in (0, 1]"
# What a DE network's raw output means (stored as ``depth_kind`` in every checkpoint and ONNX file):
# relative_depth (larger = farther, this project's training target) or relative_disparity (larger =
# nearer: networks of the original release, trained against a disparity-predicting teacher).
RELATIVE_DEPTH = "relative_depth"
RELATIVE_DISPARITY = "relative_disparity"
DEPTH_KINDS = (RELATIVE_DEPTH, RELATIVE_DISPARITY)
# Network output -> convention (dcmpnet_core.inference.engine.raw_to_relative_depth, and its device twin in
# dcmpnet_core.inference.gpu_io): relative_disparity: min-max normalised disparity is floored here before
# inverting, so the farthest pixel is at most 1 / DISPARITY_FLOOR times as far as the nearest.
DISPARITY_FLOOR = 0.01
# relative_depth: raw values are floored at this fraction of the maximum (the DE network is not
# constrained to positive output, and depth 0 has no meaning in the convention).
DEPTH_FLOOR = 1e-3


def check_depth_kind(depth_kind: object) -> str:
    """``depth_kind`` itself when it is one of :data:`DEPTH_KINDS`, else ValueError naming both."""
    if depth_kind not in DEPTH_KINDS:
        raise ValueError(f"depth_kind must be 'relative_depth' or 'relative_disparity', got {depth_kind!r}")
    return depth_kind


def normalize_depth(depth: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Map metric or relative depth (H,W) to the project convention; invalid pixels -> 1.0."""
    d = np.asarray(depth, dtype=np.float64)
    ok = np.isfinite(d) & (d > 0)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    out = np.ones(d.shape, dtype=np.float32)
    if ok.any():
        out[ok] = (d[ok] / d[ok].max()).astype(np.float32)
    return out


def disparity_to_depth(disparity: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Relative depth from a disparity map (depth is proportional to 1 / disparity)."""
    disp = np.asarray(disparity, dtype=np.float64)
    ok = np.isfinite(disp) & (disp > 0)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    depth = np.full(disp.shape, np.inf)
    depth[ok] = 1.0 / disp[ok]
    return normalize_depth(depth, ok)
