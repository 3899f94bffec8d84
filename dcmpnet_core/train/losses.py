"""Loss functions of DCMPNet's joint training: the difference perceiver, masked L1 and contrastive loss.

**The difference perceiver.**  The paper weights each network's L1 loss by a map that says where
the *other* task is failing: the DE network attends to pixels the dehazing network restores
badly (``A(d,r) = P(|u* - u|)``) and the dehazing network to pixels whose depth comes out wrong
(``A(e,r) = P(|M(u*) - M(u)|)``).  The released code computes ``P`` as one softmax over all
C*H*W values of a batch item; its weights sum to 1, so each is about 1/(3HW) and the weighted
terms are ~1e-5 of the plain L1: they vanish.  Here ``P`` maps a non-negative (B,C,H,W)
difference to weights (B,1,H,W) with **mean 1 per image**, so a weighted L1 has the scale of a
plain L1 and its loss weight means what it says.  The difference is first averaged over
channels and divided by its per-image mean (``r = d / mean(d)``): the weighting is then
independent of the error's overall scale and does not fade as training converges.  Forms:

* ``softmax`` (default): ``w = HW * softmax(r / tau)`` over the pixels of each image.
  A pixel with k times the mean error gets ``exp((k - 1) / tau)`` times the weight of an
  average one; ``tau`` (default 4) sets how peaked it is.  Bounded below by 0, smooth.  With
  ``tau = 1`` a few outlier pixels took weights of several hundred in training on synthetic
  haze, which made the weighted term (and the gradients) noisy; ``tau = 4`` keeps the largest
  weights near 10.
* ``linear``: ``w = r`` (weights proportional to the error).
* ``power``: ``w = r**p / mean(r**p)``; ``p = 1`` is ``linear``, ``p = 0`` uniform.
* ``upstream``: the release's softmax over all C*H*W values of the *unreduced* difference,
  summed over channels (weights ~1/(3HW)); only for comparison, it makes the terms vanish.

An all-zero difference gives uniform weights (all ones; ``upstream``: 1/(HW)).  Weights are
meant to be used detached (the task does so); the functions are differentiable all the same.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints.format import safe_torch_load

PERCEIVER_FORMS = ("softmax", "linear", "power", "upstream")


def perceiver(diff: torch.Tensor, form: str = "softmax", temperature: float = 4.0, power: float = 2.0,
              eps: float = 1e-8) -> torch.Tensor:
    """Difference map (B,C,H,W) >= 0 -> per-pixel weights (B,1,H,W) with mean 1 per image.

    See the module docstring for ``form``; ``temperature`` is the softmax's ``tau`` and ``power``
    the exponent of ``power``.  ``upstream`` returns the release's weights (sum 1 per image over
    pixels, not mean 1).
    """
    if diff.dim() != 4:
        raise ValueError(f"perceiver: expected a (B,C,H,W) difference map, got shape {tuple(diff.shape)}")
    if form not in PERCEIVER_FORMS:
        raise ValueError(f"perceiver: form must be one of {PERCEIVER_FORMS}, got {form!r}")
    b, c, h, w = diff.shape
    if form == "upstream":
        flat = diff.permute(0, 2, 3, 1).reshape(b, -1)
        weights = F.softmax(flat, dim=-1).reshape(b, h, w, c).permute(0, 3, 1, 2)
        return weights.sum(dim=1, keepdim=True)
    if temperature <= 0:
        raise ValueError(f"perceiver: temperature must be positive, got {temperature}")
    d = diff.mean(dim=1, keepdim=True).flatten(1)                    # (B, HW)
    r = d / (d.mean(dim=1, keepdim=True) + eps)
    if form == "softmax":
        weights = F.softmax(r / temperature, dim=1) * (h * w)
    else:
        p = 1.0 if form == "linear" else float(power)
        if p == 1.0:
            rp = r
        else:
            rp = torch.where(r > 0, r.clamp_min(eps) ** p, torch.zeros_like(r)) if p > 0 else torch.ones_like(r)
        mean = rp.mean(dim=1, keepdim=True)
        # An all-zero map has no preference: uniform weights.
        weights = torch.where(mean > eps, rp / mean.clamp_min(eps), torch.ones_like(rp))
    return weights.view(b, 1, h, w)


def resize_weights(weights: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinearly resize (B,1,H,W) weights to ``size`` and restore a per-image mean of 1."""
    if tuple(weights.shape[-2:]) == tuple(size):
        return weights
    out = F.interpolate(weights, size=tuple(size), mode="bilinear", align_corners=False).clamp_min(0)
    return out / out.flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``weight * |pred - target|`` over the pixels where ``mask`` is true.

    ``pred``/``target`` (B,C,H,W); ``mask`` bool and ``weight`` float, both broadcastable to
    (B,1,H,W) or (B,C,H,W).  The mean is taken over masked elements of the whole batch.  With no
    valid element the result is a zero that is still connected to ``pred``'s graph (its gradient
    is exactly zero), so a backward pass over it is harmless.
    """
    if pred.shape != target.shape:
        raise ValueError(f"masked_l1: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    err = (pred - target).abs()
    if weight is not None:
        err = err * weight
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype).expand_as(err)
    count = m.sum()
    return (err * m).sum() / count.clamp_min(1.0)


# --------------------------------------------------------------------------------- contrastive
# VGG19 ``features`` indices: the slices end after relu1_1, relu2_1, relu3_1, relu4_1 and
# relu5_1, weighted 1/32 ... 1 (the contrastive regularisation of AECR-Net, reused by DCMPNet).
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
VGG19_SLICE_ENDS = (2, 7, 12, 21, 30)
CR_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg19_features_to_relu5_1() -> nn.Sequential:
    """The first 30 modules of torchvision's ``vgg19().features`` (same indices, so the same keys)."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = int(v)
    return nn.Sequential(*layers[:VGG19_SLICE_ENDS[-1]])


def load_vgg19_features(path: str | os.PathLike) -> nn.Sequential:
    """VGG19 features up to relu5_1 from a torchvision ``vgg19`` state-dict file (frozen, eval mode).

    Accepts ``torchvision.models.vgg19().state_dict()`` (keys ``features.N.weight``...;
    ``classifier.*`` is ignored) or ``vgg19().features.state_dict()`` (keys ``N.weight``).
    Nothing is downloaded.  Raises FileNotFoundError or ValueError naming what is wrong.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"VGG19 weights {str(p)!r} not found: pass the path of a torchvision vgg19 "
                                "state dict (e.g. vgg19-dcbb9e9d.pth), or disable the contrastive loss")
    sd = safe_torch_load(p)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{str(p)!r} holds a {type(sd).__name__}, not a VGG19 state dict")
    features = _vgg19_features_to_relu5_1()
    expected = features.state_dict()
    prefixed = any(str(k).startswith("features.") for k in sd)
    picked = {}
    for k, v in expected.items():
        src = f"features.{k}" if prefixed else k
        if src not in sd:
            raise ValueError(f"{str(p)!r} is not a torchvision VGG19 state dict: tensor {src!r} is missing "
                             f"(it has {len(sd)} tensors, e.g. {sorted(map(str, sd))[:4]})")
        t = sd[src]
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != tuple(v.shape):
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{str(p)!r} is not a VGG19 state dict: {src!r} has shape {shape}, "
                             f"expected {tuple(v.shape)} (a VGG16 or another network?)")
        picked[k] = t
    if prefixed and "features.34.weight" not in sd:
        raise ValueError(f"{str(p)!r} is not a VGG19 state dict: it has no 'features.34.weight' (VGG19's 16th conv)")
    features.load_state_dict(picked)
    features.requires_grad_(False)
    return features.eval()


class ContrastiveLoss(nn.Module):
    """Contrastive regularisation on VGG19 features (clear image = positive, hazy input = negative).

    ``sum_i w_i * L1(f_i(u*), f_i(u)) / (L1(f_i(u*), f_i(hazy)) + 1e-7)`` over the relu1_1 ...
    relu5_1 features ``f_i`` with weights 1/32, 1/16, 1/8, 1/4, 1.  Images (B,3,H,W) in [-1, 1]
    are mapped to [0, 1] and ImageNet-normalised before VGG (what its weights were trained on;
    the release fed [-1, 1] images as they were).  The release also passed the relu5_1 features
    through three randomly initialised 1x1-conv MLPs that no optimizer updated; they are left out.
    """

    def __init__(self, vgg_weights: str | os.PathLike) -> None:
        super().__init__()
        self.features = load_vgg19_features(vgg_weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "ContrastiveLoss":
        # The VGG is a fixed feature extractor: never let a .train() call change it.
        super().train(mode)
        self.features.eval()
        return self

    def _feats(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1.0) * 0.5 - self.mean) / self.std
        out = []
        start = 0
        for end in VGG19_SLICE_ENDS:
            for i in range(start, end):
                x = self.features[i](x)
            out.append(x)
            start = end
        return out

    def forward(self, output: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        fa = self._feats(output)
        with torch.no_grad():
            fp = self._feats(positive)
            fn = self._feats(negative)
        loss = output.new_zeros(())
        for w, a, p, n in zip(CR_LAYER_WEIGHTS, fa, fp, fn):
            loss = loss + w * F.l1_loss(a, p) / (F.l1_loss(a, n) + 1e-7)
        return loss
