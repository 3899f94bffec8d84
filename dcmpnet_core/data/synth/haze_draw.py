"""Each image's haze: its density (``beta``), its airlight and the airlight's gradient.

The haze itself is the package's one scattering model, :func:`dcmpnet_core.data.haze.apply_haze`:
``I = J * t + A * (1 - t)``, ``t = exp(-beta * d)``, with ``J`` the clear image as stored (8-bit),
``d`` the stored depth (float16 metres) and ``A`` a per-image airlight (grey 0.6-1.0 with a
bluish or yellowish tint, optionally a mild linear gradient over the image: :func:`airlight_map`).

The haze density is continuous, from none to dense, because a camera sees every weather: by
default a fraction :data:`HAZE_FREE_FRACTION` (10 %) of the images is haze-free (``beta = 0``: the
hazy image *is* the clear one, so the network learns to leave a clear frame alone), and the rest
draws the optical depth at the median scene depth, ``tau = beta * d_median = -ln t_median``,
uniformly in :data:`OPTICAL_DEPTH_RANGE` (0.02-2.4: transmission 0.98 to 0.09 at the median
depth).  The ``density`` recorded in each sample's meta names the band the draw fell in: none
(``t_median`` 1), very light (> 0.9), light (0.55-0.9), medium (0.25-0.55) or dense (< 0.25).
``beta_range`` fixes a range of ``beta`` instead (density ``range``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import SynthError
from .geometry import SKY

# haze density: a haze-free fraction, then the optical depth at the median (non-sky) depth,
# tau = beta * d_median = -ln(t_median), uniform in OPTICAL_DEPTH_RANGE
HAZE_FREE_FRACTION = 0.1
OPTICAL_DEPTH_RANGE = (0.02, 2.4)
# the bands that name a draw in the meta (lower bound of t_median for each; "dense" below 0.25)
HAZE_BANDS = (("none", 1.0), ("very light", 0.9), ("light", 0.55), ("medium", 0.25), ("dense", 0.0))
AIRLIGHT_GREY = (0.6, 1.0)
AIRLIGHT_TINTS = ("neutral", "neutral", "bluish", "yellowish")     # drawn uniformly: half of them neutral


@dataclass(frozen=True)
class HazeDistribution:
    """How densities are drawn: a haze-free fraction, then tau = -ln(t_median) uniform in ``optical_depth``."""

    free_fraction: float = HAZE_FREE_FRACTION
    optical_depth: tuple = OPTICAL_DEPTH_RANGE

    def __post_init__(self) -> None:
        lo, hi = (float(x) for x in self.optical_depth)
        if not 0.0 <= self.free_fraction <= 1.0 or not 0.0 <= lo <= hi:
            raise SynthError(f"haze distribution: expected a haze-free fraction in [0, 1] and optical depths "
                             f"0 <= lo <= hi, got {self.free_fraction} and {self.optical_depth}")


def airlight_map(airlight, gradient, height: int, width: int) -> np.ndarray:
    """Per-pixel airlight (H,W,3) float32: ``A * (1 + gx * (x/W - 0.5) + gy * (y/H - 0.5))``."""
    a = np.asarray(airlight, np.float32).reshape(1, 1, 3)
    gx, gy = (float(g) for g in gradient)
    if gx == 0 and gy == 0:
        return np.broadcast_to(a, (height, width, 3))
    xs = ((np.arange(width) + 0.5) / width - 0.5).astype(np.float32)
    ys = ((np.arange(height) + 0.5) / height - 0.5).astype(np.float32)
    g = 1.0 + np.float32(gx) * xs[None, :] + np.float32(gy) * ys[:, None]
    return a * g[..., None]


def haze_band(t_median: float) -> str:
    """The name of the density band a transmission at the median depth falls in (:data:`HAZE_BANDS`)."""
    for name, lower in HAZE_BANDS:
        if t_median >= lower:
            return name
    return HAZE_BANDS[-1][0]


def sample_haze(rng: np.random.Generator, depth: np.ndarray, labels: np.ndarray,
                beta_range: tuple | None = None, haze: HazeDistribution | None = None) -> dict:
    """Random haze parameters for one image: beta, airlight RGB, airlight gradient, density band."""
    haze = haze or HazeDistribution()
    solid = labels != SKY
    d_med = float(np.median(depth[solid])) if solid.any() else float(np.median(depth))
    if beta_range is not None:
        beta = float(rng.uniform(*beta_range))
        density = "range"
    elif rng.random() < haze.free_fraction:
        beta, density = 0.0, "none"
    else:
        tau = float(rng.uniform(*haze.optical_depth))
        beta = tau / max(d_med, 0.1)
        density = haze_band(math.exp(-tau))
    grey = rng.uniform(*AIRLIGHT_GREY)
    kind = AIRLIGHT_TINTS[int(rng.integers(len(AIRLIGHT_TINTS)))]
    tint = {"neutral": rng.uniform(-0.01, 0.01, 3),
            "bluish": np.array([-1.0, -0.3, 1.0]) * rng.uniform(0.01, 0.06),
            "yellowish": np.array([1.0, 0.6, -1.0]) * rng.uniform(0.01, 0.06)}[kind]
    airlight = np.clip(grey + tint, 0.5, 1.0)
    gradient = (0.0, 0.0)
    if rng.random() < 0.3:
        gradient = (float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.1, 0.05)))
    return {"beta": float(beta), "airlight": [float(a) for a in airlight], "airlight_gradient": list(gradient),
            "airlight_tint": kind, "density": density, "median_depth": d_med}
