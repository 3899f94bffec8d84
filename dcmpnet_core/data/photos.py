"""Hazy/clear/depth pairs from one real photograph with a known depth map (held-out real evaluation).

The default evaluation photo is scikit-image's ``stereo_motorcycle``: the left image of the
Middlebury 2014 *Motorcycle* scene, down-sampled by 4, with its ground-truth disparity.  It is
never used as a training texture.  Depth from disparity follows the Middlebury convention
``Z = baseline * f / (d + doffs)`` with, for the down-sampled images (scikit-image's docstring;
the full-size calib.txt has f = 3979.911 px, doffs = 124.343 px, baseline = 193.001 mm):

* focal length ``f`` = 994.978 px
* ``doffs`` (x-difference of the principal points) = 31.086 px
* baseline = 0.193001 m

which puts the scene at about 2-5 m.  Pixels without ground truth (NaN: occlusions) are filled
along each row with the farther of the nearest valid neighbours (occluded pixels belong to the
background) for hazing, and reported invalid in ``valid``.

The haze is the generator's model (:func:`dcmpnet_core.data.haze.apply_haze`):
``I = J * t + A * (1 - t)``, ``t = exp(-beta * d)`` with ``d`` in metres.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterator, Sequence

import cv2
import numpy as np

from ..utils.depth_convention import disparity_to_depth, normalize_depth
from .haze import apply_haze

MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_DOFFS_PX = 31.086
MOTORCYCLE_BASELINE_M = 0.193001
# transmission at the median depth for the default light / medium / dense versions
DEFAULT_T_MEDIAN = (0.8, 0.5, 0.25)
DEFAULT_AIRLIGHTS = ((0.85, 0.85, 0.85), (0.8, 0.83, 0.9), (0.92, 0.9, 0.82))


@dataclass
class PhotoPair:
    """One hazed version of a real photo.

    ``hazy``/``clear``: (H,W,3) float32 RGB in [0, 1]; ``depth``: (H,W) float32 relative depth in
    (0, 1] (project convention); ``depth_m``: (H,W) float32 metres (holes filled); ``valid``:
    (H,W) bool ground-truth mask; ``beta`` per metre; ``airlight`` RGB; ``name``.
    """

    name: str
    hazy: np.ndarray
    clear: np.ndarray
    depth: np.ndarray
    depth_m: np.ndarray
    valid: np.ndarray
    beta: float
    airlight: tuple


def fill_disparity_holes(disparity: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Fill invalid disparities (H,W) row-wise with the smaller (farther) of the nearest valid neighbours."""
    d = np.asarray(disparity, np.float64)
    ok = np.isfinite(d) & (d > 0)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    if not ok.any():
        raise ValueError("disparity map has no valid pixel")
    h, w = d.shape
    cols = np.arange(w)[None, :].repeat(h, 0)
    left = np.where(ok, cols, -1)
    np.maximum.accumulate(left, axis=1, out=left)
    right = np.where(ok, cols, w)
    right = np.minimum.accumulate(right[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    big = np.inf
    lv = np.where(left >= 0, d[rows, np.clip(left, 0, w - 1)], big)
    rv = np.where(right < w, d[rows, np.clip(right, 0, w - 1)], big)
    fill = np.minimum(lv, rv)
    fill = np.where(np.isfinite(fill), fill, np.min(d[ok]))      # rows without any valid pixel
    return np.where(ok, d, fill).astype(np.float32)


def disparity_to_metric(disparity: np.ndarray, focal_px: float = MOTORCYCLE_FOCAL_PX,
                        baseline_m: float = MOTORCYCLE_BASELINE_M,
                        doffs_px: float = MOTORCYCLE_DOFFS_PX) -> tuple[np.ndarray, np.ndarray]:
    """Metric depth ``Z = baseline * f / (d + doffs)`` (H,W) float32 metres and validity (H,W) bool."""
    if focal_px <= 0 or baseline_m <= 0:
        raise ValueError(f"focal_px and baseline_m must be positive, got {focal_px} and {baseline_m}")
    d = np.asarray(disparity, np.float64) + doffs_px
    valid = np.isfinite(d) & (d > 0)
    z = np.zeros(d.shape, np.float32)
    z[valid] = (baseline_m * focal_px / d[valid]).astype(np.float32)
    return z, valid


def motorcycle_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The held-out photo: (rgb (500,741,3) float32 in [0,1], depth_m filled (H,W), relative depth, valid)."""
    # scikit-image is an extra ([train], [bag]): imported only when a built-in photo is asked for
    import skimage.data

    left, _right, disp = skimage.data.stereo_motorcycle()
    valid = np.isfinite(disp) & (disp > 0)
    filled = fill_disparity_holes(disp, valid)
    depth_m, _ = disparity_to_metric(filled)
    # relative depth via the project's disparity convention (doffs makes disparity proportional to 1/Z)
    rel = disparity_to_depth(filled + MOTORCYCLE_DOFFS_PX)
    return left.astype(np.float32) / 255.0, depth_m, rel, valid


# OpenCV's sample images, as Debian/Ubuntu's ``opencv-doc`` package installs them (``cv2.samples``
# also searches $OPENCV_SAMPLES_DATA_PATH and the folders added with addSamplesDataSearchPath).
OPENCV_SAMPLES_DIRS = ("/usr/share/doc/opencv-doc/examples/data",)
# Middlebury 2006 *Aloe* as OpenCV ships it: full-size left view and its ground-truth disparity
# (pixels at full size, 0 = unknown).  The disparity offset of the crop is not shipped with it, so
# depth is taken as proportional to 1 / disparity (ranks are exact; the haze's depth profile uses
# that relative depth).  Scaled by ALOE_SCALE to the motorcycle's size.
ALOE_FILES = ("aloeL.jpg", "aloeGT.png")
ALOE_SCALE = 0.5


def find_opencv_sample(name: str) -> str | None:
    """Path of one of OpenCV's sample images (``cv2.samples.findFile``), or None when not installed."""
    for folder in OPENCV_SAMPLES_DIRS:
        cv2.samples.addSamplesDataSearchPath(folder)
    path = cv2.samples.findFile(name, required=False, silentMode=True)
    return path or None


def read_rgb_float(path: str) -> np.ndarray:
    """An 8-bit colour image file as (H,W,3) float32 RGB in [0, 1] (ValueError naming it if unreadable)."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def aloe_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The second held-out photo, Middlebury *Aloe* (from OpenCV's samples), or None when not installed.

    Returns ``(rgb (555,641,3) float32, depth filled (H,W) relative units, relative depth, valid)``
    like :func:`motorcycle_scene`; depth is ``1 / disparity`` (see :data:`ALOE_FILES`).
    """
    paths = [find_opencv_sample(n) for n in ALOE_FILES]
    if None in paths:
        return None
    rgb = read_rgb_float(paths[0])
    disp = cv2.imread(paths[1], cv2.IMREAD_UNCHANGED)
    if disp is None or disp.shape != rgb.shape[:2]:
        raise ValueError(f"{paths[1]}: expected a disparity image of {rgb.shape[:2]}")
    size = (int(round(rgb.shape[1] * ALOE_SCALE)), int(round(rgb.shape[0] * ALOE_SCALE)))
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    disp = cv2.resize(disp, size, interpolation=cv2.INTER_NEAREST).astype(np.float32) * ALOE_SCALE
    valid = disp > 0
    filled = fill_disparity_holes(disp, valid)
    depth = (1.0 / filled).astype(np.float32)
    return rgb, depth / float(np.median(depth)), disparity_to_depth(filled), valid


def photo_pairs(image: np.ndarray, depth_m: np.ndarray | None = None, disparity: np.ndarray | None = None,
                valid: np.ndarray | None = None, betas: Sequence[float] | None = None,
                t_median: Sequence[float] = DEFAULT_T_MEDIAN, airlights: Sequence = DEFAULT_AIRLIGHTS,
                focal_px: float = MOTORCYCLE_FOCAL_PX, baseline_m: float = MOTORCYCLE_BASELINE_M,
                doffs_px: float = MOTORCYCLE_DOFFS_PX, name: str = "photo") -> Iterator[PhotoPair]:
    """Hazy versions of one real photo: every (beta, airlight) combination.

    ``image``: (H,W,3) RGB, uint8 or float in [0, 1].  Give ``depth_m`` (H,W metres) or
    ``disparity`` (H,W pixels, NaN/<=0 = unknown; converted with ``focal_px``, ``baseline_m``,
    ``doffs_px``, defaults = Middlebury 2014 Motorcycle at scikit-image's quarter resolution).
    ``betas`` per metre; when None, one beta per ``t_median`` value so the transmission at the
    median depth equals it (light 0.8, medium 0.5, dense 0.25 by default).
    """
    img = np.asarray(image)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be (H,W,3) RGB, got shape {img.shape}")
    if (depth_m is None) == (disparity is None):
        raise ValueError("give exactly one of depth_m and disparity")
    if disparity is not None:
        disp = np.asarray(disparity, np.float64)
        ok = np.isfinite(disp) & (disp > 0) if valid is None else np.asarray(valid, bool)
        depth_m, _ = disparity_to_metric(fill_disparity_holes(disp, ok), focal_px, baseline_m, doffs_px)
        valid = ok
    depth_m = np.asarray(depth_m, np.float32)
    if depth_m.shape != img.shape[:2]:
        raise ValueError(f"depth is {depth_m.shape} but the image is {img.shape[:2]}")
    if valid is None:
        valid = np.isfinite(depth_m) & (depth_m > 0)
    if not np.all(np.isfinite(depth_m) & (depth_m > 0)):
        raise ValueError("depth_m must be positive and finite everywhere (fill holes first)")
    if betas is None:
        med = float(np.median(depth_m))
        betas = [-np.log(t) / med for t in t_median]
    rel = normalize_depth(depth_m)
    for (i, beta), (j, a) in itertools.product(enumerate(betas), enumerate(airlights)):
        hazy = apply_haze(img, depth_m, float(beta), np.asarray(a, np.float32))
        yield PhotoPair(f"{name}_b{i}_a{j}", hazy, img, rel, depth_m, np.asarray(valid, bool), float(beta),
                        tuple(float(x) for x in a))
