"""The atmospheric scattering model, the one haze model of the package.

``I = J*t + A*(1-t)`` with transmission ``t = exp(-beta*d)``: used by the synthetic scene generator
(:mod:`.synth`), the held-out real photos (:mod:`.photos`), the haze-level benchmark and the ROS demo
(:mod:`dcmpnet_ros.demo`).  Nothing else in the package computes the model.
"""

from __future__ import annotations

import numpy as np

HAZE_MODEL = "I = J*t + A*(1-t), t = exp(-beta*d)"     # the model in words, as recorded in generated samples


def transmission(depth: np.ndarray, beta: float, dtype=np.float32) -> np.ndarray:
    """Transmission ``t = exp(-beta*d)`` of depth ``d`` (any shape, metres) at ``beta`` per metre, in ``dtype``."""
    d = np.asarray(depth, dtype)
    return np.exp(d.dtype.type(-beta) * d)


def apply_haze(clear: np.ndarray, depth: np.ndarray, beta: float, airlight) -> np.ndarray:
    """Atmospheric scattering ``I = J*t + A*(1-t)``, ``t = exp(-beta*d)``.

    ``clear`` (H,W,3) float in [0, 1]; ``depth`` (H,W) metres; ``airlight`` (3,) or (H,W,3).
    Returns (H,W,3) float32 in [0, 1] (computed in float32).
    """
    t = transmission(depth, beta)[..., None]
    a = np.asarray(airlight, np.float32)
    if a.ndim == 1:
        a = a.reshape(1, 1, 3)
    out = np.asarray(clear, np.float32) * t + a * (np.float32(1) - t)
    return np.clip(out, 0.0, 1.0, out=out)


def apply_haze_uint8(clear: np.ndarray, depth: np.ndarray, beta: float, airlight) -> np.ndarray:
    """:func:`apply_haze` of a (H,W,3) uint8 image, rounded back to uint8."""
    hazy = apply_haze(np.asarray(clear, np.float32) / np.float32(255), depth, beta, airlight)
    return np.round(hazy * 255.0).astype(np.uint8)
