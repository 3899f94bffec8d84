"""Preparing a model for inference: device, precision and the optional fast paths.

Every fast path is checked against the plain eager float32 forward in the tests and by
``dcmpnet bench``.
"""
from __future__ import annotations

import torch

from .model import DCMPNet


def prepare_for_inference(model: DCMPNet, device: torch.device | str = "cpu", precision: str = "fp32",
                          mode: str = "eager") -> DCMPNet:
    """Move ``model`` to ``device`` in eval mode; ``mode`` selects fast paths ("eager" = none)."""
    if precision not in ("fp32", "fp16", "bf16"):
        raise ValueError(f"precision must be 'fp32', 'fp16' or 'bf16', got {precision!r}")
    if mode != "eager":
        raise ValueError(f"unknown inference mode {mode!r}")
    model = model.eval().to(device)
    if precision != "fp32":
        model = model.to(torch.float16 if precision == "fp16" else torch.bfloat16)
    return model
