"""Image-quality metrics for dehazing, with the field's evaluation convention.

Convention (DehazeFormer's evaluation, followed by DCMPNet and most RESIDE results):

* images are RGB in [0, 1] (network outputs in [-1, 1] are clamped first, see :func:`to_unit`);
* **PSNR** on the full image, ``10 * log10(1 / MSE)`` over all pixels and channels;
* **SSIM** after average-pooling both images by ``r = max(1, round(min(H, W) / 256))`` (Python's
  ``round``), then Gaussian-window SSIM (window 11, sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1)
  over the *valid* part of the image (no padding), averaged over pixels and channels.  This equals
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=...)`` and ``pytorch_msssim.ssim`` on the
  pooled images.  ``full_res=True`` skips the pooling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) in [-1, 1] (any values) -> clamped to [-1, 1] and mapped to [0, 1]."""
    return (x.clamp(-1.0, 1.0) + 1.0) * 0.5


def _check_pair(pred: torch.Tensor, target: torch.Tensor, what: str) -> None:
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"{what}: expected two torch tensors, got {type(pred).__name__} and {type(target).__name__}")
    if pred.dim() != 4 or pred.shape != target.shape:
        raise ValueError(f"{what}: expected two (B,C,H,W) tensors of the same shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB of (B,C,H,W) images with values in [0, ``data_range``] -> (B,).

    Identical images give ``inf``.
    """
    _check_pair(pred, target, "psnr")
    dtype = torch.promote_types(pred.dtype, torch.float32)
    mse = (pred.to(dtype) - target.to(dtype)).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range ** 2 / mse)


def ssim_downsample_factor(height: int, width: int) -> int:
    """The pooling factor of the DehazeFormer evaluation: ``max(1, round(min(H, W) / 256))``."""
    return max(1, round(min(height, width) / 256))


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * SSIM_SIGMA ** 2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def ssim(pred: torch.Tensor, target: torch.Tensor, full_res: bool = False, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM of (B,C,H,W) images in [0, ``data_range``] -> (B,), see the module docstring.

    Computed in at least float32 (float64 inputs stay float64).  After pooling both sides must be
    at least 11 pixels (the window).
    """
    _check_pair(pred, target, "ssim")
    dtype = torch.promote_types(pred.dtype, torch.float32)
    x, y = pred.to(dtype), target.to(dtype)
    h, w = x.shape[-2:]
    if not full_res:
        r = ssim_downsample_factor(h, w)
        if r > 1:
            size = (int(h / r), int(w / r))
            x, y = F.adaptive_avg_pool2d(x, size), F.adaptive_avg_pool2d(y, size)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim: images of {h}x{w} are {x.shape[-2]}x{x.shape[-1]} after pooling; SSIM needs at "
                         f"least {SSIM_WINDOW}x{SSIM_WINDOW}")
    c = x.shape[1]
    g = _gaussian_window(dtype, x.device)
    gh = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    gv = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, gh, groups=c), gv, groups=c)

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x ** 2
    syy = blur(y * y) - mu_y ** 2
    sxy = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


@dataclass
class MetricMeter:
    """Running means of named per-image metrics (``inf`` PSNRs are counted but kept out of the mean)."""

    sums: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)

    def update(self, **values: float) -> None:
        for k, v in values.items():
            v = float(v)
            if math.isfinite(v):
                self.sums[k] = self.sums.get(k, 0.0) + v
                self.counts[k] = self.counts.get(k, 0) + 1

    def means(self) -> dict:
        return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]}


@torch.no_grad()
def evaluate_dataset(dehaze: Callable[[torch.Tensor], torch.Tensor], dataset: Sequence[Mapping[str, Any]],
                     indices: Iterable[int] | None = None, device: str | torch.device = "cpu",
                     full_res_ssim: bool = False, hazy_baseline: bool = True, progress: bool = False,
                     callback: Callable[[int, Mapping[str, Any], torch.Tensor], None] | None = None) -> list[dict]:
    """Per-image metrics of a dehazing function over dataset items, one full image at a time.

    ``dehaze`` maps a hazy (1,3,H,W) batch in [-1, 1] to the dehazed (1,3,H,W) image (any range:
    it is clamped to [-1, 1]); items are ``{"hazy", "clear", "name"}`` as the data API returns
    them.  Returns dicts ``{name, psnr, ssim}`` plus ``hazy_psnr``/``hazy_ssim`` (the input
    against the clear image) when ``hazy_baseline``.  ``callback(index, item, dehazed)`` sees
    each output, e.g. to save it.
    """
    idx = list(range(len(dataset))) if indices is None else list(indices)
    records = []
    for i in tqdm(idx, desc="eval", unit="img", disable=not progress, dynamic_ncols=True):
        item = dataset[i]
        hazy = item["hazy"][None].to(device)
        clear = to_unit(item["clear"][None].to(device).float())
        out = dehaze(hazy).float()
        if out.shape != hazy.shape:
            raise ValueError(f"dehazing output has shape {tuple(out.shape)} for an input of {tuple(hazy.shape)}")
        pred = to_unit(out)
        rec = {"name": str(item.get("name", i)), "psnr": float(psnr(pred, clear)[0]),
               "ssim": float(ssim(pred, clear, full_res=full_res_ssim)[0])}
        if hazy_baseline:
            h = to_unit(hazy.float())
            rec.update(hazy_psnr=float(psnr(h, clear)[0]), hazy_ssim=float(ssim(h, clear, full_res=full_res_ssim)[0]))
        records.append(rec)
        if callback is not None:
            callback(i, item, out)
    return records
