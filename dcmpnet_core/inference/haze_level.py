"""How hazy a frame is, and when dehazing it is worth it: the haze level and the pass-through gate.

:func:`estimate_haze_level` maps an RGB frame to a number in [0, 1) (0 = clear), from two dark-channel
statistics (He et al., CVPR 2009) on a copy downscaled to :data:`WORK_SIDE` px on its long side (well under a
millisecond for a 640x480 frame on one CPU core):

* ``haze``: the mean of the dark channel of ``I / A`` (``A``: the airlight, the colour of the haziest
  patches, floored at :data:`AIRLIGHT_FLOOR`), i.e. ``1 -`` the dark channel prior's mean transmission;
* ``veil``: the :data:`VEIL_PERCENTILE`-th percentile of the dark channel, how far the darkest patches are
  lifted; in ``I = J t + A (1 - t)`` every pixel receives the veil ``A (1 - t)``, so in fog no patch stays dark,
  while a clear scene, even a bright one, keeps some shadow.

``level = 1 - exp(-(haze + VEIL_WEIGHT * veil))``.  Both terms grow with the haze density for a fixed scene
(``I`` moves towards ``A`` as ``t`` falls), so the level is monotone in the density; the exponential maps the
sum to [0, 1) without clipping, so it keeps ordering dense frames.  It is a statistic of the image, not a
measurement of visibility in metres, and it has blind spots:

* bright, low-contrast scenes without shadows (a white wall, snow, an overcast sky filling the frame, a product
  shot on white) read as hazy: nothing in one frame tells them from fog;
* night: dark frames read as clear (the dark channel stays low), even in fog lit by headlights;
* monochrome images: the dark channel of a grey image is its brightness, so bright grey frames read hazier than
  a colour camera's frame of the same scene.

:class:`HazeGate` turns the per-frame levels of one stream into the weight of the network's output in the
published frame (0 = pass-through: the input unchanged and no network run; 1 = the network's output): an
exponential moving average of the level, a backlash (play) of width ``2 * hysteresis`` on it, a linear ramp
from ``bypass_below`` to ``bypass_below + bypass_band``, and a limit on how much the weight changes per frame,
so that a level hovering near the threshold does not toggle the mode and the output never jumps in brightness
when the mode changes.  The first frame of a stream takes its weight at once (no fade-in).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .dcp import dark_channel, estimate_airlight
from .options import DEFAULT_BYPASS_BAND, DEFAULT_BYPASS_BELOW  # noqa: F401  (torch-free home, re-exported)

#: Long side (px) of the copy the level is computed on.
WORK_SIDE = 128
#: Dark-channel window (px, on the downscaled copy).
PATCH = 9
#: Airlight floor: a dim frame's brightest patch is not fog (keeps dark scenes from reading as hazy).
AIRLIGHT_FLOOR = 0.4
#: Percentile of the dark channel taken as the veil, and its weight in the level.
VEIL_PERCENTILE = 2.0
VEIL_WEIGHT = 3.0
#: Fraction of the brightest dark-channel pixels among which the airlight is sought.
AIRLIGHT_TOP = 0.01

#: HazeGate defaults: EMA weight of a new frame's level, backlash half-width, largest weight change per frame.
DEFAULT_SMOOTHING = 0.3
DEFAULT_HYSTERESIS = 0.02
DEFAULT_MAX_STEP = 0.05


def _downscale(rgb: np.ndarray) -> np.ndarray:
    """(h,w,3) float32 in [0, 1], long side at most WORK_SIDE (area interpolation)."""
    h, w = rgb.shape[:2]
    scale = WORK_SIDE / max(h, w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.clip(np.nan_to_num(rgb.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)


def estimate_haze_level(rgb: np.ndarray) -> float:
    """Haze level of one (H,W,3) RGB frame (uint8, or float in [0, 1]) in [0, 1): 0 clear, near 1 dense fog.

    See the module docstring for what it measures and where it is wrong. NaN/Inf count as 0 (black).
    """
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        shape = getattr(rgb, "shape", type(rgb).__name__)
        raise ValueError(f"estimate_haze_level: expected an (H, W, 3) RGB array, got {shape}")
    if rgb.dtype != np.uint8 and rgb.dtype.kind != "f":
        raise ValueError(f"estimate_haze_level: expected dtype uint8 or float, got {rgb.dtype}")
    small = _downscale(np.ascontiguousarray(rgb))
    patch = min(PATCH, 2 * (min(small.shape[:2]) // 4) + 1)
    dark = dark_channel(small, patch)
    airlight = np.maximum(estimate_airlight(small, dark, AIRLIGHT_TOP), AIRLIGHT_FLOOR)
    haze = float(np.clip(dark_channel(small / airlight, patch), 0.0, 1.0).mean())
    veil = float(np.percentile(dark, VEIL_PERCENTILE))
    return 1.0 - math.exp(-(haze + VEIL_WEIGHT * veil))


def check_bypass(bypass_below: float, bypass_band: float) -> tuple[float, float]:
    """The two thresholds as floats; ValueError naming the bad one (below in [0, 1), band in [0, 1])."""
    for name, value, high in (("bypass_below", bypass_below, 1.0), ("bypass_band", bypass_band, 1.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= high \
                or (name == "bypass_below" and value == high):
            limit = "[0, 1)" if name == "bypass_below" else "[0, 1]"
            raise ValueError(f"{name}: expected a number in {limit}, got {value!r}")
    return float(bypass_below), float(bypass_band)


def target_weight(level: float, bypass_below: float, bypass_band: float) -> float:
    """Network weight for a (smoothed) level: 0 below ``bypass_below``, 1 above the band, linear in between.

    ``bypass_below == 0`` disables the pass-through (always 1); ``bypass_band == 0`` makes it a step.
    """
    if bypass_below <= 0.0:
        return 1.0
    if bypass_band <= 0.0:
        return 1.0 if level >= bypass_below else 0.0
    return min(1.0, max(0.0, (level - bypass_below) / bypass_band))


@dataclass(frozen=True)
class GateStep:
    """One frame's decision: its ``level``, the ``smoothed`` level, and ``weight`` of the network output."""

    level: float
    smoothed: float
    weight: float

    @property
    def mode(self) -> str:
        """``"passthrough"`` (weight 0), ``"blend"`` or ``"dehaze"`` (weight 1)."""
        return "passthrough" if self.weight == 0.0 else "dehaze" if self.weight == 1.0 else "blend"


class HazeGate:
    """Pass-through decisions for one frame sequence (one camera); see the module docstring.

    ``smoothing``: weight of a new level in the moving average, (0, 1]; ``hysteresis``: half-width of the
    backlash on the smoothed level (a level that moves back and forth by less than twice this changes nothing);
    ``max_step``: largest change of the weight between two frames, (0, 1].
    """

    def __init__(self, smoothing: float = DEFAULT_SMOOTHING, hysteresis: float = DEFAULT_HYSTERESIS,
                 max_step: float = DEFAULT_MAX_STEP) -> None:
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"smoothing: expected a number in (0, 1], got {smoothing!r}")
        if not 0.0 <= hysteresis < 0.5:
            raise ValueError(f"hysteresis: expected a number in [0, 0.5), got {hysteresis!r}")
        if not 0.0 < max_step <= 1.0:
            raise ValueError(f"max_step: expected a number in (0, 1], got {max_step!r}")
        self.smoothing, self.hysteresis, self.max_step = float(smoothing), float(hysteresis), float(max_step)
        self.reset()

    def reset(self) -> None:
        """Forget the sequence: the next frame is treated as the first."""
        self._smoothed: float | None = None
        self._held = 0.0
        self._weight = 0.0

    def step(self, level: float, bypass_below: float, bypass_band: float) -> GateStep:
        """Advance by one frame of haze level ``level``; returns the frame's decision."""
        level = float(level)
        if self._smoothed is None:
            self._smoothed = self._held = level
            self._weight = target_weight(level, bypass_below, bypass_band)
            return GateStep(level, level, self._weight)
        self._smoothed += self.smoothing * (level - self._smoothed)
        self._held = min(max(self._held, self._smoothed - self.hysteresis), self._smoothed + self.hysteresis)
        target = target_weight(self._held, bypass_below, bypass_band)
        self._weight += min(self.max_step, max(-self.max_step, target - self._weight))
        if abs(self._weight - target) < 1e-9:          # land exactly on 0 / 1 (no float residue)
            self._weight = target
        return GateStep(level, self._smoothed, self._weight)


def blend(source: np.ndarray, dehazed: np.ndarray, weight: float) -> np.ndarray:
    """``source + weight * (dehazed - source)`` for (H,W,3) float32 images in [0, 1]; exact at weight 0 and 1."""
    if weight >= 1.0:
        return dehazed
    if weight <= 0.0:
        return source
    return source + np.float32(weight) * (dehazed - source)
