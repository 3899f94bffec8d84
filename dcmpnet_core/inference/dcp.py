"""Classical dehazing: the dark channel prior (He, Sun, Tang, CVPR 2009) with guided-filter refinement.

Needs no weights, so it is the fallback backend (``Dehazer(backend="dcp")``).  Steps, on an RGB
image ``I`` in [0, 1] and the scattering model ``I = J * t + A * (1 - t)``:

1. dark channel: per-pixel minimum over the colour channels, then a minimum over a square patch;
2. airlight ``A``: among the brightest 0.1 % of dark-channel pixels, the mean colour of the most
   intense tenth of them (He et al. take the single most intense one; the mean is less noisy);
3. transmission ``t = 1 - omega * dark_channel(I / A)`` (``omega`` ~ 0.95 keeps a little haze so
   far objects still look far);
4. refinement of ``t`` by a guided filter (He, Sun, Tang, ECCV 2010) with the grey image as guide,
   built from OpenCV box filters (``cv2.ximgproc`` is not part of opencv-python-headless);
5. radiance ``J = (I - A) / max(t, t0) + A``, clipped to [0, 1];
6. relative depth from ``t = exp(-beta * d)``: ``d ~ -ln t``, scaled to the project convention
   (larger = farther, divided by its maximum; see :mod:`dcmpnet_core.utils.depth_convention`).

Patch size and guided-filter radius default to values scaled with the image size (He et al.
used a 15 px patch and a radius of 60 px on ~600 x 400 images).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

# Smallest transmission used for -ln t; t itself is >= 1 - omega, so this only guards t = 0.
_T_LOG_FLOOR = 1e-3
# Smallest -ln t relative to the largest, so that haze-free pixels get a small positive depth.
_DEPTH_FLOOR = 1e-3


@dataclass(frozen=True)
class DCPParams:
    """Parameters of :func:`dehaze_dcp`; ``None`` patch/radius scale with the image.

    ``patch``: odd side of the dark-channel window in pixels; ``omega``: fraction of haze
    removed, (0, 1]; ``t0``: transmission floor for the radiance, (0, 1); ``top_fraction``:
    fraction of brightest dark-channel pixels that are airlight candidates; ``radius`` and
    ``eps``: guided-filter window radius (pixels) and regularisation (intensity^2 units).
    """

    patch: int | None = None
    omega: float = 0.95
    t0: float = 0.1
    top_fraction: float = 0.001
    radius: int | None = None
    eps: float = 1e-3

    def __post_init__(self) -> None:
        if self.patch is not None and (int(self.patch) != self.patch or self.patch < 1 or self.patch % 2 == 0):
            raise ValueError(f"DCPParams.patch must be an odd positive integer or None, got {self.patch!r}")
        if not 0.0 < self.omega <= 1.0:
            raise ValueError(f"DCPParams.omega must lie in (0, 1], got {self.omega!r}")
        if not 0.0 < self.t0 < 1.0:
            raise ValueError(f"DCPParams.t0 must lie in (0, 1), got {self.t0!r}")
        if not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"DCPParams.top_fraction must lie in (0, 1], got {self.top_fraction!r}")
        if self.radius is not None and (int(self.radius) != self.radius or self.radius < 1):
            raise ValueError(f"DCPParams.radius must be a positive integer or None, got {self.radius!r}")
        if not self.eps > 0:
            raise ValueError(f"DCPParams.eps must be positive, got {self.eps!r}")

    def sizes_for(self, height: int, width: int) -> tuple[int, int]:
        """(patch, radius) for an image of this size."""
        short = min(height, width)
        patch = self.patch if self.patch is not None else int(np.clip(2 * round(short / 60) + 1, 3, 15))
        radius = self.radius if self.radius is not None else int(np.clip(round(short / 10), 2, 60))
        return int(patch), int(radius)


class DCPResult(NamedTuple):
    """Output of :func:`dehaze_dcp`.

    ``dehazed`` (H,W,3) float32 in [0, 1]; ``transmission`` (H,W) float32 in (0, 1];
    ``airlight`` (3,) float32 in [0, 1]; ``depth`` (H,W) float32 relative depth in (0, 1].
    """

    dehazed: np.ndarray
    transmission: np.ndarray
    airlight: np.ndarray
    depth: np.ndarray


def dark_channel(image: np.ndarray, patch: int) -> np.ndarray:
    """Minimum over colour channels and a ``patch`` x ``patch`` window: (H,W,3) -> (H,W) float32."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (patch, patch))
    # Erosion = windowed minimum; border pixels take the minimum of the part of the window inside.
    # Channel minimum from slices: several times faster than ``image.min(axis=2)`` on an axis of length 3.
    channel_min = np.minimum(np.minimum(image[..., 0], image[..., 1]), image[..., 2])
    return cv2.erode(np.ascontiguousarray(channel_min, dtype=np.float32), kernel, borderType=cv2.BORDER_REFLECT)


def estimate_airlight(image: np.ndarray, dark: np.ndarray, top_fraction: float = 0.001) -> np.ndarray:
    """Airlight (3,) float32: mean colour of the most intense tenth of the haziest dark-channel pixels."""
    flat_dark = dark.reshape(-1)
    n = max(1, int(round(flat_dark.size * top_fraction)))
    candidates = np.argpartition(flat_dark, flat_dark.size - n)[-n:]
    colours = image.reshape(-1, 3)[candidates].astype(np.float64)
    intensity = colours.sum(axis=1)
    k = max(1, n // 10)
    brightest = np.argpartition(intensity, n - k)[-k:]
    return colours[brightest].mean(axis=0).astype(np.float32)


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window (reflected border), per channel; float32 in, float32 out."""
    k = 2 * int(radius) + 1
    return cv2.boxFilter(x, -1, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of ``src`` steered by a grey ``guide`` (He et al., ECCV 2010).

    ``guide`` and ``src``: (H,W) float arrays on the same scale; returns (H,W) float32.  Per
    window ``src ~ a * guide + b`` is fitted by ridge regression (``eps`` penalises ``a``), the
    coefficients are averaged over the windows covering each pixel, and the result is
    ``mean_a * guide + mean_b``.
    """
    guide = np.asarray(guide, dtype=np.float32)
    src = np.asarray(src, dtype=np.float32)
    mean_i, mean_p = box_mean(guide, radius), box_mean(src, radius)
    cov_ip = box_mean(guide * src, radius) - mean_i * mean_p
    var_i = box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (np.maximum(var_i, 0.0) + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius) * guide + box_mean(b, radius)


def transmission_to_depth(transmission: np.ndarray) -> np.ndarray:
    """Relative depth (H,W) float32 in (0, 1] from a transmission map: ``-ln t`` divided by its max."""
    d = -np.log(np.clip(transmission.astype(np.float64), _T_LOG_FLOOR, 1.0))
    top = float(d.max())
    if not top > 0:                                # no haze anywhere: depth is unknown, call it uniform
        return np.ones(d.shape, dtype=np.float32)
    return (np.maximum(d, top * _DEPTH_FLOOR) / top).astype(np.float32)


def dehaze_dcp(image: np.ndarray, params: DCPParams | None = None) -> DCPResult:
    """Dehaze one RGB image (H,W,3) float in [0, 1] with the dark channel prior; see the module docstring."""
    p = params or DCPParams()
    img = np.ascontiguousarray(image, dtype=np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"dehaze_dcp expects an (H, W, 3) RGB image, got shape {img.shape}")
    h, w = img.shape[:2]
    patch, radius = p.sizes_for(h, w)
    airlight = np.maximum(estimate_airlight(img, dark_channel(img, patch), p.top_fraction), 1e-3)
    raw_t = 1.0 - p.omega * dark_channel(img / airlight, patch)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    t = np.clip(guided_filter(grey, raw_t, radius, p.eps), 1e-3, 1.0).astype(np.float32)
    dehazed = (img - airlight) / np.maximum(t, p.t0)[..., None] + airlight
    return DCPResult(np.clip(dehazed, 0.0, 1.0).astype(np.float32), t, airlight.astype(np.float32),
                     transmission_to_depth(t))
