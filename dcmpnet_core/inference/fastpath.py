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
AMX/AVX512-BF16, at reduced accuracy); the normalisation statistics (RescaleNorm, instance norm)
and the depth head stay in float32 (:func:`keep_fp32_islands`).  ``tf32`` keeps float32 weights
and lets CUDA matrix products and convolutions use TF32 tensor cores (Ampere and newer; about
1e-3 differences); every other precision runs with TF32 *off*, so ``fp32`` is exact on a GPU too
(:func:`numerics`).  On CUDA, ``cudnn.benchmark`` is on for every mode but ``eager`` (a camera's
frame size is fixed, so the kernel search is paid once per size).

Rules for the GPU paths, each kept by :class:`InferenceRunner`:

* every CUDA call (warm-up, capture, replay, compiled and eager forwards) runs inside
  ``torch.cuda.device(model's device)``, so a worker thread whose current device is another GPU
  captures and replays on the right one;
* CUDA graphs (:class:`GraphCache`): a shape is captured the second time it is seen in a row
  (one-off shapes such as a warm-up frame, an out-of-memory retry or a partial batch run
  eagerly); at most ``max_graphs`` graphs are kept, least recently used evicted, all in one
  shared memory pool; an out-of-memory error drops every graph and the pool;
* ``torch.compile`` compiles for one input shape (the first one seen, i.e. the camera's); other
  shapes run the fast eager path, and any compile failure (no Triton, no C++ compiler, ...)
  falls back to it for good with one warning.
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import torch
from torch import nn

from ..models.dcmpnet import DCMPNet
from ..models.layers import DoubleConv, RescaleNorm, WindowAttention
from .device import is_out_of_memory
from .options import NETWORK_MODES

PRECISIONS = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class FastPaths:
    """Which fast paths to apply; ``FastPaths.eager()`` is the reference, ``FastPaths.fast()`` all exact ones."""

    fold_bn: bool = False
    channels_last: bool = False
    sdpa: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    cudnn_benchmark: bool = False

    @classmethod
    def eager(cls) -> FastPaths:
        return cls()

    @classmethod
    def fast(cls, device: torch.device | str = "cpu") -> FastPaths:
        """Every exact eager fast path for ``device``.

        channels_last: measured 1.8x on CPU (oneDNN).  On CUDA it is *off* by default: CUDA's
        reflection padding (before every window attention and in every depth-wise conv) is
        NCHW-only, so NHWC would copy around each pad; unmeasured on a GPU, compare with the
        ``+nhwc`` mode suffix (``dcmpnet bench --mode fast fast+nhwc``).
        """
        cuda = torch.device(device).type == "cuda"
        return cls(fold_bn=True, channels_last=not cuda, sdpa=True, cudnn_benchmark=cuda)


MODES = NETWORK_MODES
# Mode suffixes for measuring one choice against another (``fast+nhwc``, ``cuda_graphs+nchw``).
LAYOUT_SUFFIXES = {"nhwc": True, "nchw": False}


def fast_paths_for(mode: str, device: torch.device | str = "cpu") -> FastPaths:
    """``eager`` | ``fast`` (all exact eager fast paths) | ``compile`` | ``cuda_graphs`` | ``auto`` (= fast).

    A ``+nhwc`` / ``+nchw`` suffix forces the memory layout (for benchmarks).
    """
    dev = torch.device(device)
    base, _, suffix = str(mode).partition("+")
    if suffix and suffix not in LAYOUT_SUFFIXES:
        raise ValueError(f"unknown mode suffix {suffix!r} in {mode!r}; expected one of "
                         f"{', '.join('+' + k for k in LAYOUT_SUFFIXES)}")
    if base in ("auto", "fast"):
        paths = FastPaths.fast(dev)
    elif base == "eager":
        paths = FastPaths.eager()
    elif base == "compile":
        paths = replace(FastPaths.fast(dev), compile=True)
    elif base == "cuda_graphs":
        if dev.type != "cuda":
            raise ValueError("mode 'cuda_graphs' needs a CUDA device, got device " + str(dev))
        paths = replace(FastPaths.fast(dev), cuda_graphs=True)
    else:
        raise ValueError(f"unknown inference mode {mode!r}; expected one of auto, {', '.join(MODES)}")
    return replace(paths, channels_last=LAYOUT_SUFFIXES[suffix]) if suffix else paths


def precision_support_error(precision: str, device: torch.device | str) -> str | None:
    """Why ``precision`` cannot run on ``device`` (None when it can).

    bf16 needs compute capability 8.0 (Ampere) or newer: T4, V100, RTX 20xx and Jetson Xavier
    lack it (torch would emulate it, slowly, or fail).
    """
    dev = torch.device(device)
    if precision == "bf16" and dev.type == "cuda":
        major, minor = torch.cuda.get_device_capability(dev)
        if major < 8:
            return (f"precision 'bf16' needs a GPU with compute capability >= 8.0 (Ampere or newer); "
                    f"{dev} ({torch.cuda.get_device_name(dev)}) has {major}.{minor}: use precision 'fp16'")
    return None


@contextlib.contextmanager
def numerics(device: torch.device, precision: str, cudnn_benchmark: bool = False) -> Iterator[None]:
    """TF32 (only for precision ``tf32``) and ``cudnn.benchmark`` for one forward, restored afterwards.

    The flags are process-wide; setting them per call keeps an exact runner exact even when another
    runner in the same process allows TF32.  They only affect CUDA kernels.
    """
    if torch.device(device).type != "cuda":
        yield
        return
    tf32 = precision == "tf32"
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = cudnn_benchmark
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


def device_context(device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.cuda.device(device)`` for a CUDA device (streams and graphs use the *current* device)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def keep_fp32_islands(model: nn.Module) -> nn.Module:
    """Return RescaleNorm modules and the depth head to float32 in a half-precision model, in place."""
    for mod in model.modules():
        if isinstance(mod, RescaleNorm):
            mod.float()
    depth_net = getattr(model, "depth_net", None)
    if depth_net is not None:
        depth_net.head.float()
    return model


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


@dataclass(frozen=True)
class PreparedModel:
    """What :func:`prepare_for_inference` returns and :class:`InferenceRunner` runs.

    ``model``: the prepared copy (eval mode, on its device, its weights in ``precision``'s dtype);
    ``paths``: the fast paths applied to it, or to be applied by the runner (``compile``, ``cuda_graphs``);
    ``precision``: one of :data:`PRECISIONS`.
    """

    model: DCMPNet
    paths: FastPaths = FastPaths()
    precision: str = "fp32"


def prepare_for_inference(model: DCMPNet, device: torch.device | str = "cpu", precision: str = "fp32",
                          mode: str = "eager") -> PreparedModel:
    """A copy of ``model`` on ``device`` in eval mode, in ``precision``, with the fast paths of ``mode``.

    The original model is left untouched (folding BatchNorm changes modules).  ``compile`` and
    ``cuda_graphs`` are applied by :class:`InferenceRunner`, which owns the forward call.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    paths = fast_paths_for(mode, device)
    problem = precision_support_error(precision, device) if precision == "bf16" else None
    if problem:
        raise ValueError(problem)
    prepared = copy.deepcopy(model).eval()
    if paths.fold_bn:
        fold_batchnorm(prepared)
    set_attention_impl(prepared, paths.sdpa)
    prepared = prepared.to(device=device, dtype=PRECISIONS[precision])
    if PRECISIONS[precision] != torch.float32:
        keep_fp32_islands(prepared)
    if paths.channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    return PreparedModel(prepared, paths, precision)


class GraphCache:
    """CUDA graphs for recurring input shapes, bounded, in one shared memory pool.

    ``capture(x)`` must return a callable ``replay(x) -> outputs``.  A shape is captured when it
    is seen for the second time in a row (a camera's fixed size); other calls return None and
    the caller runs eagerly.  At most ``max_graphs`` captures are kept (least recently used
    evicted).  Sharing one pool is safe here because every cached graph's static input and
    outputs stay referenced while it is cached and replays are serialised on one stream.
    """

    def __init__(self, capture: Callable[[torch.Tensor, object], Callable], max_graphs: int = 2,
                 new_pool: Callable[[], object] | None = None) -> None:
        self._capture = capture
        self.max_graphs = max_graphs
        self._new_pool = new_pool or torch.cuda.graph_pool_handle
        self._pool: object | None = None
        self._graphs: OrderedDict[tuple, Callable] = OrderedDict()
        self._last_key: tuple | None = None
        self.captures = 0

    def __len__(self) -> int:
        return len(self._graphs)

    def lookup(self, x: torch.Tensor) -> Callable | None:
        """The replay function for ``x``'s shape, capturing it if it recurs; None: run eagerly."""
        key = (tuple(x.shape), x.dtype, tuple(x.stride()))
        seen_before, self._last_key = self._last_key == key, key
        if key in self._graphs:
            self._graphs.move_to_end(key)
            return self._graphs[key]
        if not seen_before:
            return None
        while len(self._graphs) >= self.max_graphs:
            self._graphs.popitem(last=False)
        if self._pool is None:
            self._pool = self._new_pool()
        self._graphs[key] = self._capture(x, self._pool)
        self.captures += 1
        return self._graphs[key]

    def clear(self) -> None:
        """Drop every graph and the shared pool (after an out-of-memory error)."""
        self._graphs.clear()
        self._pool = None
        self._last_key = None


class InferenceRunner:
    """Runs a :class:`PreparedModel`: input (B,3,H,W) in [-1, 1] -> (dehazed (B,3,H,W), raw depth (B,1,H,W)), float32.

    Applies the input layout and dtype of the prepared model, the TF32 / cuDNN settings of its
    precision and mode (:func:`numerics`) and the device context, and owns the compiled callable
    and the CUDA graphs (see the module docstring for their policies).
    """

    def __init__(self, prepared: PreparedModel, max_graphs: int = 2) -> None:
        self.model = prepared.model
        self.paths = prepared.paths
        self.precision = prepared.precision
        self.device = next(self.model.parameters()).device
        self.dtype = PRECISIONS[self.precision]
        self._compiled: Callable | None = None
        self._compiled_key: tuple | None = None
        if self.paths.compile:
            _allow_one_more_compiled_runner()
            self._compiled = torch.compile(self._forward, dynamic=False)
        self.graphs = GraphCache(self._capture, max_graphs) if self.paths.cuda_graphs else None

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dehazed = self.model.dehaze_net(x).dehazed
        return dehazed, self.model.depth_net.predict(dehazed)

    def _capture(self, x: torch.Tensor, pool: object) -> Callable:
        static_in = x.clone()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):                     # warm-up outside the graph, as CUDA graphs require
                self._forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            static_out = self._forward(static_in)

        def replay(inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            static_in.copy_(inp)
            graph.replay()
            return static_out[0].clone(), static_out[1].clone()
        return replay

    def _graphed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            replay = self.graphs.lookup(x)
        except Exception as exc:
            self.graphs.clear()
            torch.cuda.empty_cache()
            if is_out_of_memory(exc):                 # also when the capture's end masks the allocation failure
                raise
            warnings.warn(f"CUDA graph capture failed ({_first_line(exc)}); running the fast eager path instead",
                          RuntimeWarning, stacklevel=4)
            self.graphs = None
            return self._forward(x)
        return replay(x) if replay is not None else self._forward(x)

    def _compiled_or_eager(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (tuple(x.shape), x.dtype)
        if self._compiled is None or self._compiled_key not in (None, key):
            return self._forward(x)                   # one compiled shape; others run eagerly, never recompile
        self._compiled_key = key
        # Freezing lets inductor fold the (constant) weights and pre-pack them for oneDNN, which is
        # what makes compilation pay off on CPU; it applies to inference graphs only.
        import torch._inductor.config as inductor_config

        try:
            with inductor_config.patch(freezing=True):
                return self._compiled(x)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise
            warnings.warn(f"torch.compile failed ({_first_line(exc)}); running the fast eager path instead",
                          RuntimeWarning, stacklevel=4)
            self._compiled = None
            return self._forward(x)

    def release(self) -> None:
        """Drop CUDA graphs (their memory) after an out-of-memory error; the next frames recapture."""
        if self.graphs is not None:
            self.graphs.clear()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.device, self.dtype)
        if self.paths.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with device_context(self.device), numerics(self.device, self.precision, self.paths.cudnn_benchmark):
            if self.graphs is not None:
                dehazed, depth = self._graphed(x)
            elif self.paths.compile:
                dehazed, depth = self._compiled_or_eager(x)
            else:
                dehazed, depth = self._forward(x)
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

_COMPILED_RUNNERS = 0


def _allow_one_more_compiled_runner() -> None:
    """Raise dynamo's per-function recompile limit by one per compiled runner.

    Every runner compiles the same ``_forward`` code, and dynamo counts each runner's graph against one
    shared limit (8 by default), after which it silently stops compiling.
    """
    global _COMPILED_RUNNERS
    _COMPILED_RUNNERS += 1
    # only for mode=compile: torch._dynamo is slow to import
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), 8 + _COMPILED_RUNNERS))
            break


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__
