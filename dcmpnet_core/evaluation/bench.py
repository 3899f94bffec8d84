"""Latency benchmark of the inference fast paths, as ratios against plain eager fp32 in the same run.

The first row is the reference: the network as published, in eager float32 (including the
``fuse_conv1`` branch that the original code computes and never uses).  Every other row reports
its median and p90 latency, fps, speed-up over the reference and the max abs difference of its
outputs (dehazed image and depth, on the [-1, 1] scale) to the reference outputs.
"""
from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
import skimage.data
import torch
from torch import nn

from ..inference.engine import Dehazer
from ..inference.fastpath import InferenceRunner, prepare_for_inference
from ..models.dcmpnet import DCMPNet
from .metrics import psnr


@dataclass
class BenchRow:
    mode: str
    median_ms: float
    p90_ms: float
    fps: float
    speedup: float
    max_abs_diff: float
    psnr_db: float
    note: str = ""
    host_ms: float = math.nan        # engine rows: median time per frame outside the network (pre/post-processing)


class _DeadBranch(nn.Module):
    """The published ``fuse_conv1`` (3x3 conv 168->24, InstanceNorm, ReLU): computed, never used."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.nn.functional.instance_norm(self.conv(fused)))


def as_published(model: DCMPNet) -> DCMPNet:
    """A copy of ``model`` that also computes the dead ``fuse_conv1`` branch, as the original forward does."""
    ref = copy.deepcopy(model)
    msaam = ref.dehaze_net.msaam
    msaam.unused_branch = _DeadBranch(msaam.score1.in_channels, ref.config.dehaze.embed_dims[0])
    return ref


def _time(fn: Callable[[], object], warmup: int, repeat: int, sync: Callable[[], None]) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (:func:`metrics.psnr`) of two network outputs in [-1, 1] (clamped), in [0, 1] units, over the batch."""
    a, b = ((x.detach().float().cpu().clamp(-1, 1).reshape(1, -1, *x.shape[-2:]) + 1) / 2 for x in (a, b))
    return float(psnr(a, b)[0])


def run_benchmark(model: DCMPNet, height: int, width: int, device: str = "cpu", modes: Sequence[str] = ("fast",),
                  precisions: Sequence[str] = ("fp32",), repeat: int = 5, warmup: int = 1, batch: int = 1,
                  seed: int = 0, progress: Callable[[str], None] | None = None) -> list[BenchRow]:
    """Time the reference and each (mode, precision) on one random frame; see the module docstring."""
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, 3, height, width, generator=gen) * 2 - 1).to(dev)

    rows: list[BenchRow] = []
    ref_runner = InferenceRunner(prepare_for_inference(as_published(model), dev, "fp32", "eager"))
    if progress:
        progress("reference: eager fp32, as published")
    ref_out = ref_runner(x)
    ref_times = _time(lambda r=ref_runner: r(x), warmup, repeat, sync)
    ref_median = statistics.median(ref_times)
    rows.append(_row("eager fp32 (as published, reference)", ref_times, ref_median, 0.0, math.inf, batch))
    ref_runner = None                                 # free the reference copy before the next rows

    for precision in precisions:
        for mode in modes:
            label = f"{mode} {precision}"
            if progress:
                progress(label)
            try:
                runner = InferenceRunner(prepare_for_inference(model, dev, precision, mode))
                out = runner(x)
                times = _time(lambda r=runner: r(x), warmup, repeat, sync)
            except (RuntimeError, ValueError) as exc:
                rows.append(BenchRow(label, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan,
                                     f"failed: {str(exc).splitlines()[0][:80]}"))
                continue
            diff = max(float((out[0] - ref_out[0]).abs().max()), float((out[1] - ref_out[1]).abs().max()))
            rows.append(_row(label, times, ref_median, diff, _psnr(out[0], ref_out[0]), batch))
    return rows


def _row(label: str, times: list[float], ref_median: float, diff: float, psnr: float, batch: int,
         host_ms: float = math.nan) -> BenchRow:
    med = statistics.median(times)
    p90 = sorted(times)[min(len(times) - 1, math.ceil(0.9 * len(times)) - 1)]
    return BenchRow(label, med, p90, 1e3 * batch / med, ref_median / med, diff, psnr, host_ms=host_ms)


def format_table(rows: Sequence[BenchRow]) -> str:
    """Fixed-width table; engine rows add the host (non-network) time per frame and its share of the latency."""
    host = any(not math.isnan(r.host_ms) for r in rows)
    head = f"{'mode':<40} {'median ms':>10} {'p90 ms':>9} {'fps':>7} {'speed-up':>9} {'max |diff|':>11} {'PSNR dB':>8}"
    head += f" {'host ms':>8} {'host %':>7}" if host else ""
    lines = [head, "-" * len(head)]
    for r in rows:
        psnr = "inf" if math.isinf(r.psnr_db) else f"{r.psnr_db:.1f}"
        line = (f"{r.mode:<40} {r.median_ms:>10.1f} {r.p90_ms:>9.1f} {r.fps:>7.2f} {r.speedup:>8.2f}x "
                f"{r.max_abs_diff:>11.2e} {psnr:>8}")
        if host:
            line += f" {r.host_ms:>8.2f} {100 * r.host_ms / r.median_ms:>6.1f}%"
        lines.append(line + (f"  {r.note}" if r.note else ""))
    return "\n".join(lines)


def sample_frame(height: int, width: int) -> np.ndarray:
    """A real photo (scikit-image's astronaut) resized to (height, width): (H,W,3) uint8 RGB."""
    img = np.ascontiguousarray(skimage.data.astronaut())
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if height < 512 else cv2.INTER_LINEAR)


def run_engine_benchmark(model: DCMPNet, height: int, width: int, device: str = "cpu",
                         modes: Sequence[str] = ("auto",), precisions: Sequence[str] = ("fp32",),
                         max_pixels: int | None = None, repeat: int = 5, warmup: int = 1,
                         progress: Callable[[str], None] | None = None) -> list[BenchRow]:
    """End-to-end latency of :class:`~dcmpnet_core.inference.engine.Dehazer` on a uint8 photo frame.

    Includes everything a camera frame goes through (conversion, padding, the network, guided
    upsampling when ``max_pixels`` is set, depth normalisation).  The reference row is the engine
    in eager fp32 at full resolution; ``max_abs_diff`` and PSNR compare the dehazed uint8 images.
    ``host_ms`` is the median time per frame outside the network and the wait for the device
    (validation, conversion, staging, post-processing: what limits the frame rate on a GPU).
    """
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    frame = sample_frame(height, width)
    if progress:
        progress("reference: engine, eager fp32, full resolution")
    ref_engine = Dehazer(model, device=dev, precision="fp32", mode="eager", bypass_below=0.0)
    ref = ref_engine(frame).dehazed.astype(np.float32) / 255
    hosts: list[float] = []
    ref_times = _time(_host_timed(ref_engine, frame, hosts), warmup, repeat, sync)
    ref_median = statistics.median(ref_times)
    rows = [_row("engine eager fp32 full-res (reference)", ref_times, ref_median, 0.0, math.inf, 1,
                 statistics.median(hosts[-repeat:]))]
    ref_engine = None
    for precision in precisions:
        for mode in modes:
            label = f"engine {mode} {precision}" + (f" max_pixels={max_pixels}" if max_pixels else "")
            if progress:
                progress(label)
            try:
                engine = Dehazer(model, device=dev, precision=precision, mode=mode, max_pixels=max_pixels,
                                 bypass_below=0.0)
                out = engine(frame).dehazed.astype(np.float32) / 255
                hosts = []
                times = _time(_host_timed(engine, frame, hosts), warmup, repeat, sync)
            except (RuntimeError, ValueError) as exc:
                rows.append(BenchRow(label, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan,
                                     f"failed: {str(exc).splitlines()[0][:80]}"))
                continue
            rows.append(_row(label, times, ref_median, float(np.abs(out - ref).max()),
                             float(psnr(*(torch.from_numpy(x).permute(2, 0, 1)[None] for x in (out, ref)))[0]), 1,
                             statistics.median(hosts[-repeat:])))
    return rows


def _host_timed(engine, frame: np.ndarray, hosts: list[float]) -> Callable[[], None]:
    """One engine call that appends its time outside the network (ms) to ``hosts``."""
    def call() -> None:
        res = engine(frame)
        hosts.append(max(0.0, res.latency_ms - engine.last_network_ms))
    return call
