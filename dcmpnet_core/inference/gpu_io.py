"""Frame pre- and post-processing on the inference device (used by the engine on CUDA).

On a GPU the per-frame work around the network is what limits the frame rate when it is done
on the CPU in NumPy (at 1920x1080: uint8 -> float32, stacking, NCHW -> NHWC, float64 depth
normalisation and the conversion back to uint8 cost about 45 ms on a CPU core), and float32
transfers move 4x the bytes of uint8.  :class:`DeviceIO` instead

* copies the uint8 (or float32) frames into one page-locked (pinned) host buffer and uploads it
  with ``non_blocking=True``;
* converts to the network's [-1, 1] input on the device;
* on the way back clamps, scales, rounds and converts to uint8 (or float32 in [0, 1]) and
  normalises the depth map (same rules as :func:`dcmpnet_core.inference.engine.raw_to_relative_depth`,
  in float32) on the device, then downloads both into pinned buffers with one synchronisation.

Pinned buffers come from torch's caching host allocator, which recycles a block only after the
copies that used it have finished, so nothing here is overwritten while in flight; the returned
arrays own their (pinned) memory.  Non-finite network outputs (fp16 overflow) are not cast
silently: they are set to black / to the "nothing known" depth of their image and counted.
The functions are plain torch code and run on any device (the tests run them on the CPU).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..utils.depth_convention import DEPTH_FLOOR, DISPARITY_FLOOR, check_depth_kind


@dataclass
class DeviceOutput:
    """Host results of one batch.

    ``dehazed`` (N,H,W,3) uint8 or float32 in [0, 1]; ``depth`` (N,H,W) float32 in (0, 1];
    ``nonfinite``: per frame, output pixels (dehazed or depth) that were NaN/Inf; ``wait_ms``: time spent
    waiting for the device (network and copies) in :meth:`DeviceIO.download`.
    """

    dehazed: np.ndarray
    depth: np.ndarray
    nonfinite: list
    wait_ms: float


class DeviceIO:
    """Upload frames to ``device`` and bring results back; ``pin`` defaults to True on CUDA."""

    def __init__(self, device: torch.device | str, pin: bool | None = None) -> None:
        self.device = torch.device(device)
        self.pin = self.device.type == "cuda" if pin is None else pin

    def _host(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, pin_memory=self.pin)

    def upload(self, images: list[np.ndarray]) -> torch.Tensor:
        """Same-size (H,W,3) frames, uint8 or float32 in [0, 1] -> (N,3,H,W) float32 in [-1, 1] on the device."""
        first = images[0]
        dtype = torch.uint8 if first.dtype == np.uint8 else torch.float32
        staging = self._host((len(images), *first.shape), dtype)
        view = staging.numpy()
        for k, img in enumerate(images):
            np.copyto(view[k], img, casting="same_kind")
        x = staging.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        # The same arithmetic as the CPU path (/255, then *2-1), so both give the same network input bits.
        return (x / 255.0 if dtype == torch.uint8 else x) * 2.0 - 1.0

    def download(self, dehazed: torch.Tensor, raw_depth: torch.Tensor, depth_kind: str,
                 as_uint8: bool) -> DeviceOutput:
        """Network outputs (N,3,H,W) in [-1, 1] and (N,H,W) raw depth -> host arrays, one synchronisation."""
        with torch.inference_mode():
            bad = ~torch.isfinite(dehazed).all(dim=1) | ~torch.isfinite(raw_depth)
            nonfinite = bad.flatten(1).sum(1)
            img = ((torch.nan_to_num(dehazed, nan=-1.0, posinf=1.0, neginf=-1.0).clamp(-1.0, 1.0) + 1.0) * 0.5)
            img = img.permute(0, 2, 3, 1)
            img = (img * 255.0).round().to(torch.uint8) if as_uint8 else img.float()
            depth = relative_depth(raw_depth, depth_kind)
            host_img = self._host(tuple(img.shape), img.dtype)
            host_depth = self._host(tuple(depth.shape), torch.float32)
            host_img.copy_(img, non_blocking=True)
            host_depth.copy_(depth, non_blocking=True)
            host_count = self._host(tuple(nonfinite.shape), nonfinite.dtype)
            host_count.copy_(nonfinite, non_blocking=True)
            start = time.perf_counter()
            if self.device.type == "cuda":
                torch.cuda.current_stream(self.device).synchronize()
            wait_ms = (time.perf_counter() - start) * 1e3
        return DeviceOutput(host_img.numpy(), host_depth.numpy(), [int(n) for n in host_count.tolist()], wait_ms)


def relative_depth(raw: torch.Tensor, depth_kind: str = "relative_depth") -> torch.Tensor:
    """Per-image (N,H,W) raw network depth -> relative depth in (0, 1], larger = farther, float32.

    The rules of :func:`dcmpnet_core.inference.engine.raw_to_relative_depth`, batched on any device:
    the statistics use the finite values only, non-finite pixels become 1 (unknown = as far as
    the farthest, the project convention), a map with nothing known gives all ones.
    """
    check_depth_kind(depth_kind)
    d = raw.float()
    finite = torch.isfinite(d)
    top = torch.where(finite, d, -torch.inf).flatten(1).amax(dim=1).view(-1, 1, 1)
    if depth_kind == "relative_depth":
        known = top > 0
        safe_top = torch.where(known, top, torch.ones_like(top))
        out = torch.maximum(d, safe_top * DEPTH_FLOOR) / safe_top
    else:
        lo = torch.where(finite, d, torch.inf).flatten(1).amin(dim=1).view(-1, 1, 1)
        span = top - lo
        known = span > 1e-12 * torch.clamp(top.abs(), min=1.0)      # False also for inf - inf (nothing finite)
        norm = (d - lo) / torch.where(known, span, torch.ones_like(span))
        out = 1.0 / torch.clamp(torch.where(finite, norm, torch.ones_like(norm)), min=DISPARITY_FLOOR)
        out = out / out.flatten(1).amax(dim=1).view(-1, 1, 1)
    return torch.where(known & finite, out, torch.ones_like(d))
