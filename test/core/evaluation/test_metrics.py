"""PSNR/SSIM agree with scikit-image and pytorch-msssim, with the DehazeFormer evaluation convention."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from hazy_photos import HazyPhotoPairs
from pytorch_msssim import ssim as msssim_ssim
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dcmpnet_core.evaluation.metrics import MetricMeter, evaluate_dataset, psnr, ssim, ssim_downsample_factor, to_unit


def _pair(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A real photo and a hazed, noisy version of it, (H,W,3) float64 in [0, 1]."""
    import cv2

    clear = cv2.resize(skimage.data.astronaut(), (w, h), interpolation=cv2.INTER_AREA).astype(np.float64) / 255
    rng = np.random.default_rng(3)
    t = np.linspace(0.9, 0.4, h)[:, None, None]
    degraded = np.clip(clear * t + 0.85 * (1 - t) + rng.normal(0, 0.02, clear.shape), 0, 1)
    return clear, degraded


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]


def _sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
                                 channel_axis=2)


def test_psnr_matches_skimage():
    clear, degraded = _pair(120, 160)
    ours = psnr(_t(degraded), _t(clear)).item()
    assert ours == pytest.approx(peak_signal_noise_ratio(clear, degraded, data_range=1), abs=1e-9)
    assert psnr(_t(clear), _t(clear)).item() == float("inf")


def test_full_resolution_ssim_matches_skimage_and_pytorch_msssim():
    clear, degraded = _pair(120, 160)
    ours64 = ssim(_t(degraded), _t(clear), full_res=True).item()
    assert ours64 == pytest.approx(_sk_ssim(clear, degraded), abs=1e-9)
    ours32 = ssim(_t(degraded).float(), _t(clear).float(), full_res=True).item()
    ref = msssim_ssim(_t(degraded).float(), _t(clear).float(), data_range=1, size_average=False).item()
    assert ours32 == pytest.approx(ref, abs=1e-5)
    assert 0.3 < ours64 < 0.95


def test_dehazeformer_ssim_pools_first():
    # 460x620 like SOTS-indoor: factor round(460/256) = 2.
    clear, degraded = _pair(460, 620)
    assert ssim_downsample_factor(460, 620) == 2
    a, b = _t(degraded), _t(clear)
    pooled = [F.adaptive_avg_pool2d(x, (230, 310)) for x in (a, b)]
    ours = ssim(a, b).item()
    sk = _sk_ssim(pooled[1][0].permute(1, 2, 0).numpy(), pooled[0][0].permute(1, 2, 0).numpy())
    ms = msssim_ssim(pooled[0].float(), pooled[1].float(), data_range=1, size_average=False).item()
    assert ours == pytest.approx(sk, abs=1e-9)
    assert ours == pytest.approx(ms, abs=1e-5)
    assert abs(ours - ssim(a, b, full_res=True).item()) > 1e-3     # pooling matters


@pytest.mark.parametrize("hw,factor", [((256, 256), 1), ((100, 90), 1), ((460, 620), 2), ((384, 600), 2),
                                       ((640, 1000), 2), ((1080, 1920), 4)])
def test_downsample_factor_uses_python_round(hw, factor):
    assert ssim_downsample_factor(*hw) == factor


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="same shape"):
        psnr(torch.zeros(1, 3, 20, 20), torch.zeros(1, 3, 20, 21))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 10, 30), torch.zeros(1, 3, 10, 30))
    with pytest.raises(TypeError, match="torch tensors"):
        psnr(np.zeros((1, 3, 4, 4)), torch.zeros(1, 3, 4, 4))


def test_to_unit_clamps():
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 2.0])
    assert torch.equal(to_unit(x), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_evaluate_dataset_identity_equals_hazy_baseline():
    ds = HazyPhotoPairs(3, 48)
    seen = []
    recs = evaluate_dataset(lambda x: x, ds, callback=lambda i, item, out: seen.append(i))
    assert seen == [0, 1, 2] and [r["name"] for r in recs] == [ds[i]["name"] for i in range(3)]
    for i, r in enumerate(recs):
        assert r["psnr"] == r["hazy_psnr"] and r["ssim"] == r["hazy_ssim"]
        clear = (ds[i]["clear"].permute(1, 2, 0).numpy().astype(np.float64) + 1) / 2
        hazy = (ds[i]["hazy"].permute(1, 2, 0).numpy().astype(np.float64) + 1) / 2
        assert r["psnr"] == pytest.approx(peak_signal_noise_ratio(clear, hazy, data_range=1), abs=1e-3)
    # The clear image itself scores perfectly.
    perfect = evaluate_dataset(lambda x: ds[0]["clear"][None], ds, indices=[0], hazy_baseline=False)
    assert perfect[0]["psnr"] == float("inf") and perfect[0]["ssim"] == pytest.approx(1.0)


def test_meter_skips_infinite():
    m = MetricMeter()
    m.update(psnr=30.0, ssim=0.9)
    m.update(psnr=float("inf"), ssim=1.0)
    assert m.means() == {"psnr": 30.0, "ssim": pytest.approx(0.95)}
