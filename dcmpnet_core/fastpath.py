"""Preparing a model for inference: device, precision and the optional fast paths.

Every fast path computes the same function as the plain eager float32 forward (checked in the
tests and by ``dcmpnet bench``, which prints the max abs difference of each):

* ``inference_mode``: no autograd bookkeeping (always on in the engine).
* ``fold_bn``: the U-Net guide's BatchNorms folded into the preceding convs (eval statistics).
* ``channels_last``: NHWC memory layout; oneDNN's convolutions are markedly faster in it on CPU.
* ``sdpa``: window attention through ``F.scaled_dot_product_attention`` (fused kernels).
* dead compute: the published network computes a ``fuse_conv1`` branch whose output is never
  used; this implementation never builds it.
* ``compile``: ``torch.compile`` of both networks (opt-in: it takes minutes and, on CPU, was
  not faster here; see the README's benchmark table).
* ``cuda_graphs``: CUDA graph capture for a fixed input shape (GPU only).

Precision ``fp16``/``bf16`` casts the weights and inputs (GPU; ``bf16`` also runs on CPUs with
AMX/AVX512-BF16, at reduced accuracy).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .layers import DoubleConv, WindowAttention
from .model import DCMPNet

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class FastPaths:
    """Which fast paths to apply; ``FastPaths.eager()`` is the reference, ``FastPaths.fast()`` all exact ones."""

    fold_bn: bool = False
    channels_last: bool = False
    sdpa: bool = False
    compile: bool = False
    cuda_graphs: bool = False

    @classmethod
    def eager(cls) -> FastPaths:
        return cls()

    @classmethod
    def fast(cls, device: torch.device | str = "cpu") -> FastPaths:
        return cls(fold_bn=True, channels_last=True, sdpa=True)


MODES = ("eager", "fast", "compile", "cuda_graphs")


def fast_paths_for(mode: str, device: torch.device | str = "cpu") -> FastPaths:
    """``eager`` | ``fast`` (all exact eager fast paths) | ``compile`` | ``cuda_graphs`` | ``auto`` (= fast)."""
    dev = torch.device(device)
    if mode in ("auto", "fast"):
        return FastPaths.fast(dev)
    if mode == "eager":
        return FastPaths.eager()
    if mode == "compile":
        return FastPaths(fold_bn=True, channels_last=True, sdpa=True, compile=True)
    if mode == "cuda_graphs":
        if dev.type != "cuda":
            raise ValueError("mode 'cuda_graphs' needs a CUDA device, got device " + str(dev))
        return FastPaths(fold_bn=True, channels_last=True, sdpa=True, cuda_graphs=True)
    raise ValueError(f"unknown inference mode {mode!r}; expected one of auto, {', '.join(MODES)}")


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold eval-mode BatchNorms of every :class:`DoubleConv` into its convs, in place."""
    for mod in model.modules():
        if isinstance(mod, DoubleConv):
            for conv_name, bn_name in (("conv1", "bn1"), ("conv2", "bn2")):
                conv, bn = getattr(mod, conv_name), getattr(mod, bn_name)
                if not isinstance(bn, nn.BatchNorm2d):
                    continue
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                  conv.padding, conv.dilation, conv.groups, bias=True,
                                  device=conv.weight.device, dtype=conv.weight.dtype)
                with torch.no_grad():
                    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
                    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
                setattr(mod, conv_name, fused)
                setattr(mod, bn_name, nn.Identity())
    return model


def set_attention_impl(model: nn.Module, use_sdpa: bool) -> nn.Module:
    for mod in model.modules():
        if isinstance(mod, WindowAttention):
            mod.use_sdpa = use_sdpa
    return model


def prepare_for_inference(model: DCMPNet, device: torch.device | str = "cpu", precision: str = "fp32",
                          mode: str = "eager") -> DCMPNet:
    """A copy of ``model`` on ``device`` in eval mode, in ``precision``, with the fast paths of ``mode``.

    The original model is left untouched (folding BatchNorm changes modules).  ``compile`` and
    ``cuda_graphs`` are applied by :class:`InferenceRunner`, which owns the forward call.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    paths = fast_paths_for(mode, device)
    prepared = copy.deepcopy(model).eval()
    prepared.fast_paths = paths
    if paths.fold_bn:
        fold_batchnorm(prepared)
    set_attention_impl(prepared, paths.sdpa)
    prepared = prepared.to(device=device, dtype=PRECISIONS[precision])
    if paths.channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    return prepared


class InferenceRunner:
    """Runs a prepared model: input (B,3,H,W) in [-1, 1] -> (dehazed (B,3,H,W), raw depth (B,1,H,W)), float32.

    Applies the input layout and dtype of the prepared model and, for ``compile`` /
    ``cuda_graphs``, owns the compiled or captured callable (one capture per input shape).
    """

    def __init__(self, model: DCMPNet) -> None:
        self.model = model
        self.paths: FastPaths = getattr(model, "fast_paths", FastPaths.eager())
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self._fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = self._forward
        if self.paths.compile:
            self._fn = torch.compile(self._forward, dynamic=False)
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, tuple]] = {}

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dehazed = self.model.dehaze_net(x).dehazed
        return dehazed, self.model.depth_net.predict(dehazed)

    def _graphed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = tuple(x.shape)
        if key not in self._graphs:
            static_in = x.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):                     # warm-up outside the graph, as CUDA graphs require
                    self._forward(static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._forward(static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out[0].clone(), static_out[1].clone()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.device, self.dtype)
        if self.paths.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.paths.cuda_graphs:
            dehazed, depth = self._graphed(x)
        elif self.paths.compile:
            # Freezing lets inductor fold the (constant) weights and pre-pack them for oneDNN, which is
            # what makes compilation pay off on CPU; it applies to inference graphs only.
            import torch._inductor.config as inductor_config

            with inductor_config.patch(freezing=True):
                dehazed, depth = self._fn(x)
        else:
            dehazed, depth = self._fn(x)
        return dehazed.float().contiguous(), depth.float().contiguous()

    @torch.inference_mode()
    def depth(self, x: torch.Tensor) -> torch.Tensor:
        """The depth network alone on ``x`` (B,3,H,W) in [-1, 1] -> raw depth (B,1,H,W) float32.

        For frames passed through undehazed; runs the prepared model's depth network with its dtype and layout
        (not compiled nor graph-captured: those paths capture the whole model).
        """
        x = x.to(self.device, self.dtype)
        if self.paths.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model.depth_net.predict(x).float().contiguous()
