"""The dark-channel-prior backend on real photos hazed with the scattering model and a known depth."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import skimage.data

from dcmpnet_core.inference.dcp import DCPParams, dark_channel, dehaze_dcp, estimate_airlight, guided_filter
from dcmpnet_core.utils.depth_convention import disparity_to_depth

AIRLIGHT = np.array([0.86, 0.85, 0.9], np.float32)


def haze(clear: np.ndarray, depth: np.ndarray, beta: float) -> np.ndarray:
    t = np.exp(-beta * depth)[..., None]
    return (clear * t + AIRLIGHT * (1 - t)).astype(np.float32)


def spearmanr(a: np.ndarray, b: np.ndarray) -> tuple[float]:
    """Spearman rank correlation (ties get their average rank), as the first item like scipy's."""
    def rank(x: np.ndarray) -> np.ndarray:
        _, inverse, counts = np.unique(np.ravel(x), return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        return ((ends - counts + ends - 1) / 2.0)[inverse.ravel()]

    return (float(np.corrcoef(rank(a), rank(b))[0, 1]),)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def gradient_depth(h: int, w: int) -> np.ndarray:
    return np.linspace(1.0, 0.15, h, dtype=np.float32)[:, None] * np.ones(w, np.float32)


@pytest.mark.parametrize("name,hw", [("astronaut", (128, 128)), ("coffee", (100, 150)), ("coffee", (48, 64))])
def test_dcp_improves_psnr_and_recovers_depth_order(name, hw):
    clear = cv2.resize(getattr(skimage.data, name)(), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
    clear = clear.astype(np.float32) / 255
    depth = gradient_depth(*hw)
    hazy = haze(clear, depth, beta=1.5)
    out = dehaze_dcp(hazy)
    assert out.dehazed.shape == hazy.shape and out.dehazed.dtype == np.float32
    gain = psnr(out.dehazed, clear) - psnr(hazy, clear)
    assert gain > 5, f"{name}: DCP gained only {gain:.1f} dB"
    rho = spearmanr(out.depth.ravel(), depth.ravel())[0]
    assert rho > 0.8, f"{name}: Spearman {rho:.2f}"
    assert out.depth.dtype == np.float32 and out.depth.max() == pytest.approx(1.0) and out.depth.min() > 0
    np.testing.assert_allclose(out.airlight, AIRLIGHT, atol=0.08)
    assert out.transmission.min() > 0 and out.transmission.max() <= 1


def test_dcp_on_motorcycle_with_stereo_depth():
    """Real scene structure: depth from the Middlebury motorcycle disparity (invalid pixels = far)."""
    left, _, disparity = skimage.data.stereo_motorcycle()
    left = cv2.resize(left, (370, 250), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    disparity = cv2.resize(disparity, (370, 250), interpolation=cv2.INTER_NEAREST)
    depth = disparity_to_depth(disparity)
    hazy = haze(left, depth, beta=2.0)
    out = dehaze_dcp(hazy)
    assert psnr(out.dehazed, left) > psnr(hazy, left) + 2
    valid = np.isfinite(disparity) & (disparity > 0)
    rho = spearmanr(out.depth[valid], depth[valid])[0]
    assert rho > 0.3, f"Spearman {rho:.2f}"


def test_dark_channel_and_airlight():
    img = np.zeros((40, 40, 3), np.float32)
    img[..., 0] = 0.9                                # red everywhere, green/blue zero: dark channel 0
    img[30:, 30:] = 0.95                             # a bright white patch: dark channel 0.95 there
    dark = dark_channel(img, 5)
    assert dark[35, 35] == pytest.approx(0.95) and dark[5, 5] == 0 and dark[29, 29] == 0
    np.testing.assert_allclose(estimate_airlight(img, dark, 0.01), [0.95, 0.95, 0.95], atol=1e-6)


def test_guided_filter_keeps_edges_and_constants():
    guide = np.zeros((32, 32), np.float32)
    guide[:, 16:] = 1.0
    rng = np.random.default_rng(0)
    noisy = guide + rng.normal(0, 0.1, guide.shape).astype(np.float32)
    out = guided_filter(guide, noisy, 4, 1e-3)
    assert np.abs(out - guide).mean() < 0.5 * np.abs(noisy - guide).mean()
    assert out[:, :14].mean() < 0.1 and out[:, 18:].mean() > 0.9     # the step survives
    np.testing.assert_allclose(guided_filter(guide, np.full_like(guide, 0.3), 4, 1e-3), 0.3, atol=1e-5)


def test_haze_free_image_is_nearly_unchanged_in_structure():
    clear = cv2.resize(skimage.data.astronaut(), (96, 96), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    out = dehaze_dcp(clear)
    assert np.isfinite(out.dehazed).all() and np.isfinite(out.depth).all()
    assert np.corrcoef(out.dehazed.ravel(), clear.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("kwargs,message", [
    ({"patch": 4}, "DCPParams.patch must be an odd positive integer or None, got 4"),
    ({"omega": 1.2}, "DCPParams.omega must lie in (0, 1], got 1.2"),
    ({"t0": 0.0}, "DCPParams.t0 must lie in (0, 1), got 0.0"),
    ({"top_fraction": 0}, "DCPParams.top_fraction must lie in (0, 1], got 0"),
    ({"radius": 0}, "DCPParams.radius must be a positive integer or None, got 0"),
    ({"eps": -1.0}, "DCPParams.eps must be positive, got -1.0"),
])
def test_bad_params(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DCPParams(**kwargs)


def test_explicit_params_are_used():
    clear = cv2.resize(skimage.data.coffee(), (80, 60), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    hazy = haze(clear, gradient_depth(60, 80), beta=1.5)
    weak = dehaze_dcp(hazy, DCPParams(omega=0.3))
    strong = dehaze_dcp(hazy, DCPParams(omega=0.95, patch=7, radius=8))
    assert psnr(strong.dehazed, clear) > psnr(weak.dehazed, clear)
    assert DCPParams().sizes_for(600, 400) == (15, 40) and DCPParams().sizes_for(48, 64) == (3, 5)
