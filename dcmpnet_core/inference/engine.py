"""The inference engine behind every user path: the ROS node, bag replay and ``dcmpnet infer``.

:class:`Dehazer` turns RGB images (NumPy, HWC) into a dehazed image and a relative depth map,
with either DCMPNet (``backend="dcmpnet"``, needs weights) or the classical dark channel prior
(``backend="dcp"``, no weights; :mod:`dcmpnet_core.inference.dcp`).

Input contract (checked at every public call; violations raise ``ValueError`` naming expected
and actual):

* an ``np.ndarray`` of shape (H, W, 3), RGB channel order;
* dtype ``uint8`` (0-255) or ``float32`` / ``float64`` in [0, 1];
* both sides at least 16 px: smaller images are **rejected**, not upscaled, because the network
  downsamples by 16 and invented pixels would only produce invented output;
* float values slightly outside [0, 1] (resampling overshoot) are clipped; values below -0.5 or
  above 1.5 are rejected (usually 0-255 data passed as float);
* NaN / +-Inf in float input are **replaced by 0** (black), counted in
  :attr:`DehazeResult.nonfinite_pixels` and reported with a ``RuntimeWarning``, so one bad pixel
  never loses a frame.

Output: :class:`DehazeResult` with ``dehazed`` in the dtype, value convention and size of the
input, and ``depth`` (H, W) float32 in the project convention (relative depth, larger = farther,
divided by its per-image maximum; :mod:`dcmpnet_core.utils.depth_convention`).

Reduced-resolution inference (``max_pixels`` / ``inference_scale``) runs the backend on an
area-downsampled copy and brings the *restoration* back to full resolution, not the image: the
haze model ``I = J t + A (1 - t)`` makes the restored image a per-pixel affine function of the
hazy one, ``J = a I + b`` with ``a = 1/t``, ``b = A (1 - 1/t)``, and ``t`` varies smoothly.  So
``a`` and ``b`` are fitted per colour channel in small windows at low resolution
(``dehazed_lr ~ a * hazy_lr + b``, a guided-filter regression), upsampled bilinearly and applied
to the full-resolution input, which keeps the input's fine detail (see :func:`guided_upsample`).
Depth is upsampled bilinearly.

Output faults: NaN/Inf in the backend's output (e.g. an fp16 overflow) are replaced by 0 and counted in
:attr:`DehazeResult.nonfinite_output`; an output that is constant although the input is not (weights saturated
or broken) sets :attr:`DehazeResult.collapsed_output`.  Either is warned about once per Dehazer with its likely
cause and counted in :attr:`Dehazer.output_faults`.  :meth:`Dehazer.from_checkpoint` refuses weights whose
output on a small probe image is not finite.

Out of GPU (or CPU) memory, a frame is retried with ``max_pixels`` halved, at most
``max_oom_retries`` times, with a ``RuntimeWarning``; the lower limit then stays in force for
later frames (a camera stream would otherwise run out of memory on every frame).  A batch that
runs out of memory is first split into single frames.

Haze-aware operation (:mod:`dcmpnet_core.inference.haze_level`): every frame gets a haze level in [0, 1)
(:attr:`DehazeResult.haze_level`, computed on a 128 px copy).  Frames of a stream whose smoothed level stays
below ``bypass_below`` are **passed through**: the output is the input, unchanged, and the dehazing network is
not run (depth comes from the depth network on the input, or is None with ``passthrough_depth=False``).  In a
band of width ``bypass_band`` above it the output is a blend of input and dehazed frame; above the band it is
the network's output, exactly as with ``bypass_below=0`` (which disables all of this).  ``stream`` (a key, one
per camera) selects the sequence whose state (smoothing, hysteresis, fade) a frame continues; ``stream=None``
decides each frame on its own level (independent images).

Threading: a Dehazer is meant to be used from one worker thread (the ROS node runs it in its
processing thread).  Calls are serialised by an internal lock, so sharing one between threads is
safe but gains nothing; for parallel work use one Dehazer per thread or device.
"""
from __future__ import annotations

import math
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from ..checkpoints.bundled import WeightsNotFoundError, default_weights_path, missing_weights_message
from ..utils.depth_convention import DEPTH_FLOOR, DISPARITY_FLOOR, check_depth_kind  # noqa: F401  (re-exported)
from .dcp import DCPParams, box_mean, dehaze_dcp, guided_filter
from .device import is_out_of_memory, resolve_device
from .fastpath import InferenceRunner, prepare_for_inference
from .gpu_io import DeviceIO
from .haze_level import (
    DEFAULT_BYPASS_BAND,
    DEFAULT_BYPASS_BELOW,
    GateStep,
    HazeGate,
    blend,
    check_bypass,
    estimate_haze_level,
)
from .options import (  # noqa: F401  (PRECISIONS, BACKENDS, REFINES re-exported)
    BACKEND,
    BACKENDS,
    INFERENCE_SCALE,
    MAX_PIXELS,
    MIN_SIDE,
    MODE,
    PRECISION,
    PRECISIONS,
    REFINE,
    REFINES,
)

# Float input further outside [0, 1] than this is taken as a scale mistake (e.g. 0-255 floats).
_FLOAT_LOW, _FLOAT_HIGH = -0.5, 1.5
# Guided upsampling: window radius in low-resolution pixels and ridge regularisation
# (intensity^2 units, [0, 1] scale).
UPSAMPLE_RADIUS = 1
UPSAMPLE_EPS = 1e-4
# Guided refinement of a full-resolution restoration (refine="guided"): window radius as a fraction of the
# frame's shorter side, and the ridge weight (measured on the held-out benchmark, README "Default weights").
REFINE_RADIUS_FRACTION = 0.1
REFINE_EPS = 3e-5
REFINE_DEPTH_EPS = 1e-2            # depth: smoothed along the input's edges (grey guide), not re-expressed


class InputError(ValueError):
    """A frame the engine refuses: the message is ``<argument>: <detail>`` (``images[2]: expected ...``).

    ``name`` is the argument (``image``, ``images[k]``), ``detail`` the message without it, for callers that name
    the frame their own way (``dcmpnet infer`` names the file).
    """

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


@dataclass
class DehazeResult:
    """One processed frame.

    ``dehazed``: (H,W,3) RGB, same dtype and convention as the input (uint8 0-255, or float in
    [0, 1]); ``depth``: (H,W) float32 relative depth in (0, 1], larger = farther;
    ``latency_ms``: wall time of the call (for a batch: its share of the batch time);
    ``scale``: linear resolution factor the backend ran at (1.0 = full resolution);
    ``nonfinite_pixels``: input pixels with NaN/Inf that were replaced by 0;
    ``warnings``: messages about this frame (non-finite input or output, out-of-memory retries);
    ``nonfinite_output``: NaN/Inf values in the backend's output (dehazed image and depth), replaced by 0;
    ``collapsed_output``: the output is constant although the input is not (see :func:`check_output`);
    ``haze_level``: the frame's haze level in [0, 1) (:func:`dcmpnet_core.inference.haze_level.estimate_haze_level`);
    ``haze_smoothed``: the stream's smoothed level after this frame; ``weight``: share of the network's output
    in ``dehazed`` (0: pass-through, the input unchanged; 1: the network's output). In pass-through ``depth`` is
    None when the Dehazer was made with ``passthrough_depth=False``, and ``scale`` is 0 (no network ran).
    """

    dehazed: np.ndarray
    depth: np.ndarray | None
    latency_ms: float
    scale: float = 1.0
    nonfinite_pixels: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)
    nonfinite_output: int = 0
    collapsed_output: bool = False
    haze_level: float = 0.0
    haze_smoothed: float = 0.0
    weight: float = 1.0

    @property
    def output_faulty(self) -> bool:
        """True when the backend's output was non-finite or collapsed; ``warnings[-1]`` then says why."""
        return bool(self.nonfinite_output or self.collapsed_output)

    @property
    def mode(self) -> str:
        """``"passthrough"`` (weight 0), ``"blend"`` or ``"dehaze"`` (weight 1)."""
        return GateStep(self.haze_level, self.haze_smoothed, self.weight).mode


@dataclass
class _Frame:
    source: np.ndarray           # (H,W,3) uint8 as given, or float32 in [0, 1] (cleaned)
    dtype: np.dtype
    nonfinite: int
    notes: list[str]
    given: np.ndarray            # the caller's array, for pass-through

    def passthrough(self) -> np.ndarray:
        """The input as the output: a copy of the caller's array (NaN/Inf -> 0, clipped to [0, 1] for floats)."""
        if self.dtype == np.uint8:
            return self.given.copy()
        out = np.nan_to_num(self.given.astype(self.dtype), nan=0.0, posinf=0.0, neginf=0.0)
        return np.clip(out, 0.0, 1.0, out=out)

    @property
    def image(self) -> np.ndarray:
        """(H,W,3) float32 in [0, 1]."""
        return _as_float01(self.source)


def _as_float01(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image


# --------------------------------------------------------------------------------------- helpers
def raw_to_relative_depth(raw: np.ndarray, depth_kind: str = "relative_depth") -> np.ndarray:
    """The DE network's raw output (H,W) -> relative depth (H,W) float32 in (0, 1], larger = farther.

    ``relative_depth``: values below ``DEPTH_FLOOR * max`` are raised to it, then divided by the
    max.  ``relative_disparity`` (larger = nearer, up to unknown scale and shift): min-max
    normalised to [0, 1], floored at ``DISPARITY_FLOOR``, inverted, divided by the max; so the
    farthest pixel gets 1 and the nearest ``DISPARITY_FLOOR``.  A constant map (nothing known)
    gives all ones.  Non-finite values (half-precision overflow) take no part in the statistics and
    become 1 (unknown, as far as the farthest: the project convention), not "nearest".
    """
    check_depth_kind(depth_kind)
    d = np.asarray(raw, dtype=np.float64)
    finite = np.isfinite(d)
    out = np.ones(d.shape, dtype=np.float32)
    if not finite.any():
        return out
    if depth_kind == "relative_depth":
        top = float(d[finite].max())
        if top > 0:
            out[finite] = np.maximum(d[finite], top * DEPTH_FLOOR) / top
        return out
    else:
        lo, hi = float(d[finite].min()), float(d[finite].max())
        if hi - lo > 1e-12 * max(1.0, abs(hi)):
            depth = 1.0 / np.maximum((d[finite] - lo) / (hi - lo), DISPARITY_FLOOR)
            out[finite] = depth / depth.max()
    return out


def guided_upsample(low_in: np.ndarray, low_out: np.ndarray, full_in: np.ndarray,
                    radius: int = UPSAMPLE_RADIUS, eps: float = UPSAMPLE_EPS) -> np.ndarray:
    """Carry a low-resolution restoration to full resolution through a local affine model.

    ``low_in``, ``low_out``: (h,w,3) float32, the backend's input and output at low resolution;
    ``full_in``: (H,W,3) float32, the full-resolution input.  Per channel and window of radius
    ``radius`` (low-res pixels), ``low_out ~ a * low_in + b`` is fitted with ridge weight ``eps``
    on ``a``; ``a``, ``b`` are averaged over overlapping windows, resized bilinearly to (H,W) and
    applied to ``full_in``.  Returns (H,W,3) float32, unclamped.  This is the "fast guided
    filter" of He and Sun (2015) used for upsampling a filter's output.
    """
    h_full, w_full = full_in.shape[:2]
    mean_i, mean_p = box_mean(low_in, radius), box_mean(low_out, radius)
    cov = box_mean(low_in * low_out, radius) - mean_i * mean_p
    var = box_mean(low_in * low_in, radius) - mean_i * mean_i
    a = cov / (np.maximum(var, 0.0) + eps)
    b = mean_p - a * mean_i
    a_up = cv2.resize(box_mean(a, radius), (w_full, h_full), interpolation=cv2.INTER_LINEAR)
    b_up = cv2.resize(box_mean(b, radius), (w_full, h_full), interpolation=cv2.INTER_LINEAR)
    return a_up * full_in + b_up


def refine_guided(image: np.ndarray, restored: np.ndarray, depth: np.ndarray | None = None,
                  radius_fraction: float = REFINE_RADIUS_FRACTION) -> tuple[np.ndarray, np.ndarray | None]:
    """Refine a full-resolution restoration and depth with the input as the guide.

    ``image``, ``restored``: (H,W,3) float32 in [0, 1]; ``depth``: (H,W) relative depth or None.
    Windows of radius ``radius_fraction * min(H, W)``.  The restoration is re-expressed per channel as
    ``a * image + b`` (:func:`guided_upsample` at full resolution, ridge weight :data:`REFINE_EPS`): the
    network decides the local colour and contrast, the input keeps its structure, so network artefacts
    that no affine map of the input can produce (blotches, ringing) are dropped.  The depth is guided-
    filtered with the grey input (:data:`REFINE_DEPTH_EPS`): smoothed inside regions, kept at the input's
    edges, then renormalised to the project's convention.  Returns (restored clipped to [0, 1], depth).
    """
    radius = max(1, int(round(radius_fraction * min(image.shape[:2]))))
    out = np.clip(guided_upsample(image, restored, image, radius, REFINE_EPS), 0.0, 1.0)
    return out, (None if depth is None else refine_depth(image, depth, radius_fraction))


def refine_depth(image: np.ndarray, depth: np.ndarray, radius_fraction: float = REFINE_RADIUS_FRACTION) -> np.ndarray:
    """Relative depth (H,W) guided-filtered with the grey input (see :func:`refine_guided`), renormalised."""
    radius = max(1, int(round(radius_fraction * min(image.shape[:2]))))
    grey = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    d = guided_filter(grey, depth, radius, REFINE_DEPTH_EPS)
    top = float(d.max())
    d = np.clip(d / top, DEPTH_FLOOR, 1.0) if top > 0 else np.ones_like(d)
    return d.astype(np.float32)


@dataclass(frozen=True)
class OutputCheck:
    """What :func:`check_output` found in one frame's backend output."""

    nonfinite: int = 0
    collapsed: bool = False

    @property
    def faulty(self) -> bool:
        return bool(self.nonfinite or self.collapsed)


# An input whose values span less than this is flat; only a varying input's constant output counts as collapsed.
_FLAT_INPUT = 2.0 / 255.0
_FLAT_OUTPUT = 1e-6


def _collapsed(img: np.ndarray, out: np.ndarray, dep: np.ndarray) -> bool:
    """The input varies (range > 2/255) but the dehazed image (clipped to [0, 1]) or the depth is constant.

    uint8 arrays are read on the 0-255 scale, float ones on [0, 1].
    """
    def span(a: np.ndarray) -> float:
        return float(np.ptp(a)) / (255.0 if a.dtype == np.uint8 else 1.0)

    if span(img) <= _FLAT_INPUT:
        return False
    clipped = out if out.dtype == np.uint8 else np.clip(out, 0.0, 1.0)
    scale = max(1.0, float(np.abs(dep).max()))
    return span(clipped) < _FLAT_OUTPUT or float(np.ptp(dep)) < _FLAT_OUTPUT * scale


def check_output(inputs: Sequence[np.ndarray], dehazed: np.ndarray, depth: np.ndarray,
                 nonfinite: Sequence[int] | None = None) -> list[OutputCheck]:
    """Per frame: NaN/Inf in ``dehazed`` (N,h,w,3) and ``depth`` (N,h,w), and whether the output collapsed.

    Collapsed: the input varies (range > 2/255) but the dehazed image clipped to [0, 1], or the depth, is
    constant (range < 1e-6 of its scale) - what saturated or broken weights produce.  Non-finite values are
    replaced by 0 in place, so the frame stays well defined.  ``nonfinite``: per-frame counts already
    taken (and the values already replaced) on the device.
    """
    checks = []
    for k, (img, out, dep) in enumerate(zip(inputs, dehazed, depth)):
        if nonfinite is not None:
            bad = int(nonfinite[k])
        else:
            bad = int(out.size - np.count_nonzero(np.isfinite(out)) + dep.size - np.count_nonzero(np.isfinite(dep)))
            if bad:
                np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
                np.nan_to_num(dep, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        checks.append(OutputCheck(bad, _collapsed(img, out, dep)))
    return checks


def _output_fault_message(check: OutputCheck, precision: str) -> str:
    if check.nonfinite:
        cause = ("likely an overflow of reduced precision: try precision='fp32'" if precision != "fp32" else
                 "likely weights out of range (a broken or wrongly converted checkpoint)")
        what = f"held {check.nonfinite} NaN/Inf value(s), replaced by 0"
    else:
        cause = "likely saturated or broken weights, or an overflow of reduced precision"
        what = "was a constant image or depth although the input varies"
    return (f"the network's output {what} ({cause}); such frames are counted in Dehazer.output_faults and "
            "not warned about again")


def probe_model(model: torch.nn.Module, what: str) -> None:
    """Run ``model`` (fp32, on its device) on a small textured image; ValueError if its output is not finite."""
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32) / 31.0
    rgb = np.stack([xx, yy, 0.5 * (xx + yy)], axis=0)[None]
    with torch.inference_mode():
        out = model(torch.from_numpy(rgb * 2.0 - 1.0))
        counts = [int((~torch.isfinite(t)).sum()) for t in (out[0], out[1])]
    if any(counts):
        raise ValueError(f"{what}: the network's output on a 32x32 probe image holds {counts[0]} NaN/Inf dehazed "
                         f"value(s) and {counts[1]} depth value(s); refusing these weights (they are out of range "
                         "or corrupt)")


def _validate_image(image: object, name: str) -> _Frame:
    if not isinstance(image, np.ndarray):
        raise InputError(name, f"expected a numpy.ndarray of shape (H, W, 3), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        hint = " (drop the alpha channel)" if image.ndim == 3 and image.shape[2] == 4 else ""
        raise InputError(name, f"expected shape (H, W, 3) RGB, got shape {image.shape}{hint}")
    if image.dtype.byteorder not in ("=", "|") and image.dtype.newbyteorder("=") in (np.float32, np.float64):
        image = image.astype(image.dtype.newbyteorder("="))     # big-endian float: same values, native order
    if image.dtype not in (np.uint8, np.float32, np.float64):
        raise InputError(name, f"expected dtype uint8, float32 or float64, got {image.dtype}")
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise InputError(name, f"image is empty, shape {image.shape}")
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InputError(name, f"expected both sides >= {MIN_SIDE} px, got {h}x{w} (H x W); "
                         "smaller images are not upscaled")
    notes: list[str] = []
    if image.dtype == np.uint8:
        return _Frame(image, image.dtype, 0, notes, image)   # converted where it runs (device or CPU)
    img = image.astype(np.float32)
    finite = np.isfinite(img)
    nonfinite = 0
    if not finite.all():
        nonfinite = int((~finite.all(axis=2)).sum())
        img = np.where(finite, img, np.float32(0.0))
        msg = f"{name}: {nonfinite} pixel(s) with NaN/Inf replaced by 0"
        warnings.warn(msg, RuntimeWarning, stacklevel=4)
        notes.append(msg)
    lo, hi = float(img.min()), float(img.max())
    if lo < _FLOAT_LOW or hi > _FLOAT_HIGH:
        raise InputError(name, f"float images must hold values in [0, 1], got range [{lo:g}, {hi:g}] "
                         "(for 0-255 data pass uint8 or divide by 255)")
    return _Frame(np.clip(img, 0.0, 1.0), image.dtype, nonfinite, notes, image)


def _to_output(img01: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if img01.dtype == dtype:                          # already converted (on the device)
        return img01
    if dtype == np.uint8:
        return np.round(img01 * 255.0).astype(np.uint8)
    return img01.astype(dtype)


# ---------------------------------------------------------------------------------------- engine
class Dehazer:
    """Dehazing + relative depth for RGB frames; see the module docstring for the full contract.

    ``model``: a :class:`~dcmpnet_core.models.dcmpnet.DCMPNet` (required for ``backend="dcmpnet"``, must
    be None for ``"dcp"``).  ``device``: "auto" | "cpu" | "cuda" | "cuda:N" (the dcp backend
    always runs on the CPU and only checks the spelling).  ``precision``: "fp32" | "tf32" | "fp16" |
    "bf16".  ``max_pixels``: run the backend on at most this many pixels per frame (>= 256).
    ``inference_scale``: linear factor in (0, 1] for the backend resolution.  ``mode``: fast-path
    selection passed to :func:`dcmpnet_core.inference.fastpath.prepare_for_inference`, which works on a
    copy (the caller's model is left as it is); the prepared copy is :attr:`model`, run through
    :class:`dcmpnet_core.inference.fastpath.InferenceRunner`.  The default ``"auto"`` takes every exact fast
    path (same outputs as ``"eager"`` within 1e-5); ``"compile"`` adds ``torch.compile``.
    ``bypass_below``, ``bypass_band``: the pass-through threshold and blend band on the haze level (None: the
    defaults of :mod:`dcmpnet_core.inference.haze_level`; 0 disables the pass-through; attributes, may be changed
    between frames); ``passthrough_depth``: compute depth (the depth network on the input) for frames passed through;
    see the module docstring.  ``refine``: ``"guided"`` re-expresses a full-resolution restoration as a
    local affine map of the input (:func:`refine_guided`), ``"none"`` leaves the network's output as it is,
    ``"auto"`` (default) follows the checkpoint's metadata in :meth:`from_checkpoint` (``refine``; none when
    absent, so converted paper weights stay exact, and for a model passed directly).  Reduced-resolution
    inference is already carried back this way (guided upsampling).
    """

    def __init__(self, model: torch.nn.Module | None = None, device: str | torch.device = "auto",
                 precision: str = "fp32", backend: str = "dcmpnet", max_pixels: int | None = None,
                 inference_scale: float = 1.0, mode: str = "auto", max_oom_retries: int = 3,
                 dcp_params: DCPParams | None = None, bypass_below: float | None = None,
                 bypass_band: float | None = None, passthrough_depth: bool = True, refine: str = "auto") -> None:
        for option, value in ((REFINE, refine), (BACKEND, backend), (PRECISION, precision), (MODE, mode)):
            option.validate(value)             # ConfigError (a ValueError): "name: expected ..., got ..."
        if isinstance(max_oom_retries, bool) or not isinstance(max_oom_retries, int) or max_oom_retries < 0:
            raise ValueError(f"max_oom_retries must be a non-negative integer, got {max_oom_retries!r}")
        self.backend = backend
        self.precision = precision
        self.mode = mode
        # The resolution settings are written by two threads in the node (a run-time parameter change and
        # this engine's out-of-memory retry): every read-modify-write of them holds this lock.
        self._settings_lock = threading.Lock()
        self.set_resolution(max_pixels, inference_scale)
        self.max_oom_retries = max_oom_retries
        self.dcp_params = dcp_params or DCPParams()
        self.bypass_below, self.bypass_band = check_bypass(
            DEFAULT_BYPASS_BELOW if bypass_below is None else bypass_below,
            DEFAULT_BYPASS_BAND if bypass_band is None else bypass_band)
        self.passthrough_depth = bool(passthrough_depth)
        self._gates: dict[object, HazeGate] = {}
        self._lock = threading.Lock()
        self.output_faults = 0                 # frames whose output was non-finite or collapsed
        self._output_checks: list[OutputCheck] = []
        self._device_io = None
        # Milliseconds of the last call spent in the network (including waiting for the device);
        # the rest of latency_ms is host work (dcmpnet bench --engine reports its share).
        self.last_network_ms = 0.0
        if backend == "dcp":
            if model is not None:
                raise ValueError("backend 'dcp' uses no network; pass model=None")
            resolve_device(device)                    # spelling check only: DCP runs in NumPy/OpenCV
            self.device = torch.device("cpu")
            self.model = None
            self.depth_kind = "relative_depth"
            self.refine = "none"
            return
        if model is None:
            raise ValueError("backend 'dcmpnet' needs a model; use Dehazer.from_checkpoint(path) or pass "
                             "backend='dcp'")

        self.device = resolve_device(device)
        self.depth_kind = getattr(model, "depth_kind", "relative_depth")
        self.refine = "none" if refine == "auto" else refine    # a bare model has no checkpoint metadata
        prepared = prepare_for_inference(model, self.device, precision, mode)
        self.model = prepared.model
        self._runner = InferenceRunner(prepared)
        # CUDA: frames go up as uint8 from pinned memory and are converted on the device (gpu_io).
        self._device_io = DeviceIO(self.device) if self.device.type == "cuda" else None

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, device: str | torch.device = "auto",
                        precision: str = "fp32", backend: str = "dcmpnet", max_pixels: int | None = None,
                        inference_scale: float = 1.0, mode: str = "auto", **kwargs) -> Dehazer:
        """Load a project checkpoint (``path=None``: the bundled default weights) into a Dehazer.

        With ``backend="dcp"`` no weights are used and ``path`` must be None.  Raises
        :class:`~dcmpnet_core.checkpoints.bundled.WeightsNotFoundError` (a ``FileNotFoundError``) when no
        path is given and no default weights are installed; its message says how to get weights.
        """
        if backend == "dcp":
            if path is not None:
                raise ValueError(f"backend 'dcp' uses no weights, got path={os.fspath(path)!r}")
            return cls(None, device=device, precision=precision, backend="dcp", max_pixels=max_pixels,
                       inference_scale=inference_scale, mode=mode, **kwargs)
        BACKEND.validate(backend)
        if path is None:
            path = default_weights_path()
            if path is None:
                raise WeightsNotFoundError(missing_weights_message())
        resolve_device(device)                        # fail on a missing GPU before reading weights
        from ..checkpoints.builder import load_model

        loaded = load_model(Path(path), map_location="cpu")
        probe_model(loaded.model, repr(os.fspath(path)))
        if kwargs.get("refine", "auto") == "auto":
            kwargs["refine"] = loaded.refine
        return cls(loaded.model, device=device, precision=precision, backend=backend, max_pixels=max_pixels,
                   inference_scale=inference_scale, mode=mode, **kwargs)

    def __repr__(self) -> str:
        return (f"Dehazer(backend={self.backend!r}, device={str(self.device)!r}, precision={self.precision!r}, "
                f"max_pixels={self.max_pixels!r}, inference_scale={self.inference_scale!r}, mode={self.mode!r}, "
                f"bypass_below={self.bypass_below!r}, bypass_band={self.bypass_band!r})")

    def set_resolution(self, max_pixels: int | None, inference_scale: float = 1.0) -> None:
        """Change ``max_pixels`` / ``inference_scale`` (thread-safe; takes effect from the next frame)."""
        max_pixels = MAX_PIXELS.validate(max_pixels)
        inference_scale = INFERENCE_SCALE.validate(inference_scale)
        with self._settings_lock:
            self.max_pixels = max_pixels
            self.inference_scale = inference_scale

    # ------------------------------------------------------------------------------- public calls
    def __call__(self, image: np.ndarray, stream: object = "default") -> DehazeResult:
        """Dehaze one (H,W,3) RGB frame (uint8, or float in [0, 1]); see :class:`DehazeResult`.

        ``stream``: the frame sequence this frame continues (pass-through state); None: decide on this frame alone.
        """
        start = time.perf_counter()
        frame = _validate_image(image, "image")
        with self._lock:
            step = self._gate_step(frame, stream)
            if step.weight == 0.0:
                return self._passthrough(frame, step, start)
            self._output_checks.clear()
            notes: list[str] = []
            (dehazed, depth), scale = self._restore_with_retry([frame.source], notes)
        return self._result(frame, dehazed[0], depth[0], scale, notes, (time.perf_counter() - start) * 1e3, step)

    def process_batch(self, images: Sequence[np.ndarray], stream: object = None) -> list[DehazeResult]:
        """Dehaze several frames; frames of equal size run as one batch; results in input order.

        Results equal frame-by-frame calls (up to float rounding of batched kernels).
        ``latency_ms`` of each result is its share of its size group's time.  ``stream``: None (default) treats
        the frames as independent images for the pass-through decision; a key continues that stream's sequence,
        the frames taken in list order.
        """
        if isinstance(images, np.ndarray) or not isinstance(images, Sequence):
            raise ValueError(f"images: expected a sequence (list/tuple) of (H, W, 3) arrays, "
                             f"got {type(images).__name__}")
        frames = [_validate_image(img, f"images[{i}]") for i, img in enumerate(images)]
        results: list[DehazeResult | None] = [None] * len(frames)
        with self._lock:
            steps = [self._gate_step(f, stream) for f in frames]
            groups: dict[tuple[int, int], list[int]] = {}
            for i, f in enumerate(frames):
                if steps[i].weight == 0.0:
                    results[i] = self._passthrough(f, steps[i], time.perf_counter())
                else:
                    groups.setdefault(f.source.shape[:2], []).append(i)
            for idx in groups.values():
                start = time.perf_counter()
                notes: list[str] = []
                self._output_checks.clear()
                outs = self._restore_group(idx, frames, notes)
                share = (time.perf_counter() - start) * 1e3 / len(idx)
                for i, (dehazed, depth, scale) in zip(idx, outs):
                    results[i] = self._result(frames[i], dehazed, depth, scale, notes, share, steps[i])
        return results  # type: ignore[return-value]

    def reset_stream(self, stream: object = None) -> None:
        """Forget the pass-through state of ``stream`` (None: of every stream); its next frame starts afresh."""
        if stream is None:
            self._gates.clear()
        else:
            self._gates.pop(stream, None)

    def warmup(self, height: int | None = None, width: int | None = None, frames: int = 1) -> float:
        """Run grey frames so that lazy initialisation is not paid by the first real one; returns ms of the last.

        Pass the camera's frame size: ``mode="compile"`` compiles for the first size it sees, and
        CUDA graphs are captured for a size seen twice in a row (``frames=2`` captures it here).
        Without a size, the compiling and graph modes refuse (a 256x256 warm-up would prepare the
        wrong size) and the others warm up at 256x256.  The frames belong to no stream (a uniform grey frame
        reads as dense haze, so the network runs).
        """
        if height is None or width is None:
            if self.model is not None and (self._runner.paths.compile or self._runner.paths.cuda_graphs):
                raise ValueError(f"warmup() in mode {self.mode!r} needs the camera's frame size: "
                                 "warmup(height, width)")
            height, width = 256, 256
        frame = np.full((height, width, 3), 128, np.uint8)
        return [self(frame, stream=None) for _ in range(max(1, frames))][-1].latency_ms

    # ------------------------------------------------------------------------------------ internals
    def _gate_step(self, frame: _Frame, stream: object) -> GateStep:
        """The frame's haze level and pass-through decision, advancing ``stream``'s gate (None: a fresh gate)."""
        self.bypass_below, self.bypass_band = check_bypass(self.bypass_below, self.bypass_band)
        level = estimate_haze_level(frame.source)
        gate = HazeGate() if stream is None else self._gates.setdefault(stream, HazeGate())
        return gate.step(level, self.bypass_below, self.bypass_band)

    def _passthrough(self, frame: _Frame, step: GateStep, start: float) -> DehazeResult:
        """A frame below the threshold: the input as output, depth from the depth network alone (or None)."""
        net_start = time.perf_counter()
        depth = self._depth_only(frame.image) if self.passthrough_depth else None
        self.last_network_ms = (time.perf_counter() - net_start) * 1e3
        return DehazeResult(frame.passthrough(), depth, (time.perf_counter() - start) * 1e3, 0.0, frame.nonfinite,
                            tuple(frame.notes), haze_level=step.level, haze_smoothed=step.smoothed, weight=0.0)

    def _depth_only(self, image: np.ndarray) -> np.ndarray:
        """(H,W) depth of a clear frame: the DE network on the input (dcp: the prior's transmission depth)."""
        if self.backend == "dcp":
            return dehaze_dcp(image, self.dcp_params).depth
        h, w = image.shape[:2]
        lh, lw = self._work_size(h, w)
        low = image if (lh, lw) == (h, w) else cv2.resize(image, (lw, lh), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(low[None]).to(self.device).permute(0, 3, 1, 2) * 2.0 - 1.0
        raw = self._runner.depth(x.contiguous())[0, 0].cpu().numpy()
        depth = raw_to_relative_depth(raw, self.depth_kind)
        if (lh, lw) != (h, w):
            return self._upsample_depth(depth, h, w)
        return refine_depth(image, depth) if self.refine == "guided" else depth

    def _result(self, frame: _Frame, dehazed01: np.ndarray, depth: np.ndarray, scale: float, notes: list[str],
                latency_ms: float, step: GateStep) -> DehazeResult:
        check = self._output_checks.pop(0) if self._output_checks else OutputCheck()
        extra = []
        if check.faulty:
            self.output_faults += 1
            msg = _output_fault_message(check, self.precision)
            extra.append(msg)
            if self.output_faults == 1:
                warnings.warn(msg, RuntimeWarning, stacklevel=4)
        if step.weight < 1.0:                         # the blend band: input + weight * (dehazed - input)
            dehazed01 = blend(frame.image, _as_float01(dehazed01), step.weight)
        return DehazeResult(_to_output(dehazed01, frame.dtype), depth, float(latency_ms), float(scale),
                            frame.nonfinite, tuple(frame.notes + notes + extra), check.nonfinite, check.collapsed,
                            step.level, step.smoothed, step.weight)

    def _restore_group(self, idx: list[int], frames: list[_Frame], notes: list[str]) -> list:
        images = [frames[i].source for i in idx]
        if len(images) > 1:
            try:
                (dehazed, depth), scale = self._restore(images)
                return [(dehazed[k], depth[k], scale) for k in range(len(images))]
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
            self._free_memory()
            msg = f"out of memory on {self.device} with a batch of {len(images)}; processing those frames one by one"
            warnings.warn(msg, RuntimeWarning, stacklevel=4)
            notes.append(msg)
        outs = []
        for img in images:
            (dehazed, depth), scale = self._restore_with_retry([img], notes)
            outs.append((dehazed[0], depth[0], scale))
        return outs

    def _work_size(self, h: int, w: int) -> tuple[int, int]:
        with self._settings_lock:
            s, max_pixels = self.inference_scale, self.max_pixels
        if max_pixels is not None and h * w * s * s > max_pixels:
            s = math.sqrt(max_pixels / (h * w))
        if s >= 1.0:
            return h, w
        # Never below the network's minimum side, never above the input.
        return min(h, max(MIN_SIDE, int(s * h))), min(w, max(MIN_SIDE, int(s * w)))

    def _restore_with_retry(self, images: list[np.ndarray], notes: list[str]) -> tuple:
        h, w = images[0].shape[:2]
        for attempt in range(self.max_oom_retries + 1):
            lh, lw = self._work_size(h, w)
            try:
                return self._restore(images)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                if attempt == self.max_oom_retries or lh * lw <= MIN_SIDE * MIN_SIDE:
                    raise RuntimeError(
                        f"out of memory on {self.device} at a {lh}x{lw} network input after {attempt} "
                        f"retr{'y' if attempt == 1 else 'ies'} at reduced resolution; lower max_pixels or "
                        "inference_scale, use precision='fp16', or run on another device") from exc
            # Outside the except block, so the traceback no longer pins the failed step's tensors.
            self._free_memory()
            # Halve the nominal pixel budget (not the rounded work size), so retries follow 1/2, 1/4, ...
            with self._settings_lock:
                budget = h * w * self.inference_scale ** 2
                if self.max_pixels is not None:
                    budget = min(budget, self.max_pixels)
                self.max_pixels = new_budget = max(MIN_SIDE * MIN_SIDE, int(budget) // 2)
            msg = (f"out of memory on {self.device} at a {lh}x{lw} network input; retrying with "
                   f"max_pixels={new_budget} (kept for later frames)")
            warnings.warn(msg, RuntimeWarning, stacklevel=4)
            notes.append(msg)
        raise AssertionError("unreachable")

    def _free_memory(self) -> None:
        if self.device.type == "cuda":
            self._runner.release()                    # CUDA graphs hold their own memory pool
            torch.cuda.empty_cache()

    def _restore(self, images: list[np.ndarray]) -> tuple[tuple[np.ndarray, np.ndarray], float]:
        """Same-size frames (uint8, or float32 in [0, 1]) -> ((N,H,W,3) dehazed, (N,H,W) depth), scale.

        ``dehazed`` is float in [0, 1], or already uint8 for uint8 frames processed on the device.
        """
        self.last_network_ms = 0.0
        h, w = images[0].shape[:2]
        lh, lw = self._work_size(h, w)
        full = (lh, lw) == (h, w)
        if full and self._device_io is not None and self.backend == "dcmpnet" and self.refine == "none":
            if len({img.dtype for img in images}) > 1:  # a size group mixing uint8 and float frames
                images = [_as_float01(img) for img in images]
            return self._restore_on_device(images), 1.0
        images = [_as_float01(img) for img in images]
        low = images if full else [cv2.resize(img, (lw, lh), interpolation=cv2.INTER_AREA) for img in images]
        dehazed_lr, depth_lr = self._backend(low)
        self._output_checks.extend(check_output(low, dehazed_lr, depth_lr))
        if full:
            if self.refine == "guided":
                refined = [refine_guided(img, out, dep) for img, out, dep in zip(images, dehazed_lr, depth_lr)]
                return (np.stack([r[0] for r in refined]), np.stack([r[1] for r in refined])), 1.0
            return (np.clip(dehazed_lr, 0.0, 1.0), depth_lr), 1.0
        dehazed = np.stack([np.clip(guided_upsample(lo, out, img), 0.0, 1.0)
                            for lo, out, img in zip(low, dehazed_lr, images)])
        depth = np.stack([self._upsample_depth(d, h, w) for d in depth_lr])
        return (dehazed, depth), math.sqrt(lh * lw / (h * w))

    @staticmethod
    def _upsample_depth(depth: np.ndarray, h: int, w: int) -> np.ndarray:
        up = cv2.resize(depth, (w, h), interpolation=cv2.INTER_LINEAR)
        return (up / up.max()).astype(np.float32)

    def _backend(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(N,h,w,3) float32 [0, 1] -> dehazed (N,h,w,3) float32 (unclamped), depth (N,h,w) convention."""
        if self.backend == "dcp":
            outs = [dehaze_dcp(img, self.dcp_params) for img in images]
            return np.stack([o.dehazed for o in outs]), np.stack([o.depth for o in outs])
        x = torch.from_numpy(np.stack(images)).to(self.device).permute(0, 3, 1, 2) * 2.0 - 1.0
        # The runner casts to the model's dtype and layout and returns float32 (dehazed, raw depth).
        start = time.perf_counter()
        dehazed, raw_depth = self._runner(x.contiguous())
        self.last_network_ms += (time.perf_counter() - start) * 1e3
        with torch.inference_mode():
            dehazed = ((dehazed + 1.0) * 0.5).permute(0, 2, 3, 1).cpu().numpy()
            raw_depth = raw_depth[:, 0].cpu().numpy()
        depth = np.stack([raw_to_relative_depth(r, self.depth_kind) for r in raw_depth])
        return np.ascontiguousarray(dehazed), depth

    def _restore_on_device(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Full-resolution frames through the network with conversion and depth normalisation on the device."""
        x = self._device_io.upload(images)
        start = time.perf_counter()
        dehazed, raw_depth = self._runner(x)
        launched = time.perf_counter()
        out = self._device_io.download(dehazed, raw_depth[:, 0], self.depth_kind, images[0].dtype == np.uint8)
        self.last_network_ms += (launched - start) * 1e3 + out.wait_ms
        # NaN/Inf were set to black / far on the device; counted and warned once per stream like the CPU path's
        self._output_checks.extend(check_output(images, out.dehazed, out.depth, out.nonfinite))
        return out.dehazed, out.depth
