"""The logic of the GPU fixes (issue #12) that runs without a GPU; CUDA itself is replaced only where it must be.

The same fixes on a real device are checked by ``test/core/inference/test_gpu.py`` (skipped without CUDA).
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import skimage.data
import torch

from dcmpnet_core import DCMPNet
from dcmpnet_core.inference import fastpath
from dcmpnet_core.inference.device import is_out_of_memory
from dcmpnet_core.inference.engine import Dehazer, raw_to_relative_depth
from dcmpnet_core.inference.fastpath import (
    GraphCache,
    InferenceRunner,
    fast_paths_for,
    numerics,
    precision_support_error,
    prepare_for_inference,
)
from dcmpnet_core.inference.gpu_io import DeviceIO, relative_depth
from dcmpnet_core.models.layers import RescaleNorm, WindowAttention, sdpa_is_efficient


def tiny(depth_kind: str = "relative_depth") -> DCMPNet:
    torch.manual_seed(0)
    model = DCMPNet("tiny", depth_kind=depth_kind)
    with torch.no_grad():
        model.depth_net.head.bias += 1.0              # positive depth from random weights
    return model.eval()


def frame(h: int = 40, w: int = 56) -> np.ndarray:
    import cv2

    return cv2.resize(skimage.data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------- CUDA graph cache policy
class FakeCapture:
    """Stands in for a CUDA graph capture: records shapes and pools, replays by calling ``fn``."""

    def __init__(self) -> None:
        self.shapes: list[tuple] = []
        self.pools: list[object] = []

    def __call__(self, x: torch.Tensor, pool: object):
        self.shapes.append(tuple(x.shape))
        self.pools.append(pool)
        return lambda inp: ("replayed", tuple(inp.shape))


def test_graph_cache_captures_recurring_shapes_only_and_keeps_two():
    cap = FakeCapture()
    pools = iter(range(100))
    cache = GraphCache(cap, max_graphs=2, new_pool=lambda: next(pools))
    a, b, c, odd = (torch.zeros(1, 3, h, 8) for h in (8, 16, 24, 32))
    assert cache.lookup(a) is None                    # first sighting: eager
    assert cache.lookup(a)(a) == ("replayed", (1, 3, 8, 8))
    assert cache.lookup(a) is not None and cap.shapes == [(1, 3, 8, 8)]
    assert cache.lookup(odd) is None                  # a one-off (warm-up, OOM retry, partial batch): eager
    assert cache.lookup(a) is not None
    for x in (b, b, c, c):
        cache.lookup(x)
    assert cap.shapes == [(1, 3, 8, 8), (1, 3, 16, 8), (1, 3, 24, 8)]
    assert len(cache) == 2 and cache.lookup(a) is None          # least recently used (a) was evicted
    assert set(cap.pools) == {0}                                  # one shared pool
    cache.clear()
    assert len(cache) == 0 and cache.lookup(c) is None           # after an OOM: nothing kept, nothing stale
    cache.lookup(c)
    assert cap.pools[-1] == 1                                     # a fresh pool


def test_graph_cache_keys_include_dtype_and_layout():
    cap = FakeCapture()
    cache = GraphCache(cap, new_pool=object)
    x = torch.zeros(1, 3, 8, 8)
    cache.lookup(x)
    assert cache.lookup(x.contiguous(memory_format=torch.channels_last)) is None
    assert cache.lookup(x.half()) is None and cap.shapes == []


def test_runner_runs_every_forward_inside_the_device_context(monkeypatch):
    """CUDA streams and graphs use the *current* device; the runner must make its model's device current."""
    entered = []

    @contextlib.contextmanager
    def recording(device):
        entered.append(device)
        yield

    monkeypatch.setattr(fastpath, "device_context", recording)
    runner = InferenceRunner(prepare_for_inference(tiny(), "cpu", "fp32", "fast"))
    inside = []
    forward = runner._forward
    runner._forward = lambda x: (inside.append(len(entered)), forward(x))[1]
    runner(torch.zeros(1, 3, 16, 16))
    assert entered == [torch.device("cpu")] and inside == [1]


def test_runner_turns_graph_capture_oom_into_a_retryable_oom_and_drops_graphs():
    runner = InferenceRunner(prepare_for_inference(tiny(), "cpu", "fp32", "fast"))

    def failing_capture(x, pool):
        try:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        except torch.cuda.OutOfMemoryError:
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")  # noqa: B904 (as torch raises it)

    runner.graphs = GraphCache(failing_capture, new_pool=object)
    x = torch.zeros(1, 3, 16, 16)
    runner(x)                                          # eager
    with pytest.raises(RuntimeError) as info:
        runner(x)                                      # capture fails inside
    assert is_out_of_memory(info.value) and len(runner.graphs) == 0


def test_runner_falls_back_to_eager_when_capture_fails_otherwise():
    runner = InferenceRunner(prepare_for_inference(tiny(), "cpu", "fp32", "fast"))

    def failing_capture(x, pool):
        raise RuntimeError("operation not permitted when stream is capturing")

    runner.graphs = GraphCache(failing_capture, new_pool=object)
    x = torch.rand(1, 3, 16, 16)
    ref = runner(x)
    with pytest.warns(RuntimeWarning, match="CUDA graph capture failed"):
        got = runner(x)
    assert runner.graphs is None
    torch.testing.assert_close(got, ref, atol=0, rtol=0)


# --------------------------------------------------------------------------- torch.compile
def test_compile_failure_falls_back_once_and_never_retries(monkeypatch):
    calls = []

    def broken_compile(fn, **kwargs):
        def compiled(x):
            calls.append(tuple(x.shape))
            raise RuntimeError("Cannot find a working triton installation. More information on installing Triton")
        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = tiny()
    runner = InferenceRunner(prepare_for_inference(model, "cpu", "fp32", "compile"))
    ref = InferenceRunner(prepare_for_inference(model, "cpu", "fp32", "fast"))
    x = torch.rand(1, 3, 16, 24)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*triton.*fast eager path"):
        got = runner(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runner(x)
    assert calls == [(1, 3, 16, 24)]
    torch.testing.assert_close(got, ref(x), atol=1e-5, rtol=0)


def test_compile_is_used_for_the_first_shape_only(monkeypatch):
    calls = []

    def fake_compile(fn, **kwargs):
        assert kwargs.get("dynamic") is False
        return lambda x: (calls.append(tuple(x.shape)), fn(x))[1]

    monkeypatch.setattr(torch, "compile", fake_compile)
    runner = InferenceRunner(prepare_for_inference(tiny(), "cpu", "fp32", "compile"))
    for shape in [(1, 3, 16, 24), (1, 3, 16, 24), (1, 3, 32, 32), (2, 3, 16, 24), (1, 3, 16, 24)]:
        runner(torch.rand(shape))
    assert calls == [(1, 3, 16, 24)] * 3                # other sizes run eagerly instead of recompiling


def test_each_compiled_runner_raises_the_recompile_limit(monkeypatch):
    import torch._dynamo.config as dynamo_config

    name = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"
    monkeypatch.setattr(dynamo_config, name, 8)
    monkeypatch.setattr(fastpath, "_COMPILED_RUNNERS", 0)
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    for _ in range(3):
        InferenceRunner(prepare_for_inference(tiny(), "cpu", "fp32", "compile"))
    assert getattr(dynamo_config, name) == 11


def test_warmup_needs_the_frame_size_in_compile_mode(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)
    engine = Dehazer(tiny(), device="cpu", mode="compile")
    with pytest.raises(ValueError, match=r"warmup\(\) in mode 'compile' needs the camera's frame size"):
        engine.warmup()
    assert engine.warmup(24, 32) > 0


# ------------------------------------------------------------------------------ precision
def test_bf16_is_refused_on_gpus_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    msg = precision_support_error("bf16", torch.device("cuda", 1))
    assert msg == ("precision 'bf16' needs a GPU with compute capability >= 8.0 (Ampere or newer); cuda:1 "
                   "(Tesla T4) has 7.5: use precision 'fp16'")
    assert precision_support_error("fp16", torch.device("cuda", 1)) is None
    with pytest.raises(ValueError, match="Tesla T4"):
        prepare_for_inference(tiny(), "cuda:1", "bf16", "fast")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 7))
    assert precision_support_error("bf16", torch.device("cuda", 0)) is None
    assert precision_support_error("bf16", torch.device("cpu")) is None


def test_tf32_only_for_precision_tf32_and_flags_restored():
    cuda = torch.device("cuda", 0)                    # numerics() only sets the backend flags
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    for precision, want in [("fp32", False), ("fp16", False), ("tf32", True)]:
        with numerics(cuda, precision, cudnn_benchmark=True):
            assert torch.backends.cuda.matmul.allow_tf32 is want and torch.backends.cudnn.allow_tf32 is want
            assert torch.backends.cudnn.benchmark is True
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                torch.backends.cudnn.benchmark) == saved
    torch.backends.cudnn.allow_tf32 = not saved[1]
    try:
        with numerics(torch.device("cpu"), "fp32"):
            assert torch.backends.cudnn.allow_tf32 is (not saved[1])   # CPU runs leave the flags alone
    finally:
        torch.backends.cudnn.allow_tf32 = saved[1]


def test_fast_paths_per_device():
    cpu, gpu = fast_paths_for("fast", "cpu"), fast_paths_for("fast", "cuda")
    assert cpu.channels_last and not cpu.cudnn_benchmark
    assert not gpu.channels_last and gpu.cudnn_benchmark        # NCHW: CUDA reflection pad is NCHW-only
    assert fast_paths_for("fast+nhwc", "cuda").channels_last
    assert not fast_paths_for("cuda_graphs+nchw", "cuda").channels_last
    assert fast_paths_for("cuda_graphs", "cuda").cuda_graphs
    assert not fast_paths_for("eager", "cuda").cudnn_benchmark
    with pytest.raises(ValueError, match=r"unknown mode suffix 'fp8' in 'fast\+fp8'; expected one of \+nhwc, \+nchw"):
        fast_paths_for("fast+fp8", "cpu")


def test_half_precision_keeps_norm_statistics_and_depth_head_in_fp32():
    prepared = prepare_for_inference(tiny(), "cpu", "bf16", "fast")
    assert prepared.precision == "bf16" and prepared.paths == fast_paths_for("fast", "cpu")
    norms = [m for m in prepared.model.modules() if isinstance(m, RescaleNorm)]
    assert norms and all(p.dtype == torch.float32 for m in norms for p in m.parameters())
    assert prepared.model.depth_net.head.weight.dtype == torch.float32
    assert prepared.model.dehaze_net.msaam.to_half.weight.dtype == torch.bfloat16
    dehazed, depth = InferenceRunner(prepared)(torch.rand(1, 3, 16, 24) * 2 - 1)
    assert torch.isfinite(dehazed).all() and torch.isfinite(depth).all()


def test_rescale_norm_statistics_do_not_overflow_in_fp16():
    """|x - mean| > 256 squares past fp16's 65504: std = inf when the module is cast to fp16, fine when kept fp32."""
    torch.manual_seed(0)
    x = (torch.randn(1, 8, 6, 6) * 1000).half()
    cast_out, cast_rescale, _ = RescaleNorm(8).half()(x)
    assert (cast_out == 0).all() and not torch.isfinite(cast_rescale).all()      # normalised to nothing, inf scale
    kept = RescaleNorm(8)                              # what keep_fp32_islands leaves in a half model
    out, rescale, rebias = kept(x)
    assert out.dtype == rescale.dtype == rebias.dtype == torch.float16
    ref = kept(x.float())
    torch.testing.assert_close(out.float(), ref[0], atol=1e-2, rtol=1e-2)


# -------------------------------------------------------------------------- OOM classification
@pytest.mark.parametrize("exc,oom", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"), True),
    (RuntimeError("CUDA error: out of memory"), True),
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_NOT_ENOUGH_WORKSPACE"), True),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory"), True),
    (MemoryError(), True),
    (RuntimeError("CUDA error: invalid configuration argument"), False),
    (RuntimeError("Cannot find a working triton installation"), False),
    (ValueError("out of memory"), False),
], ids=lambda v: v if isinstance(v, bool) else str(v)[:40])
def test_out_of_memory_classification(exc, oom):
    assert is_out_of_memory(exc) is oom


def test_out_of_memory_inside_a_graph_capture_is_found_through_the_exception_chain():
    try:
        try:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        except torch.cuda.OutOfMemoryError:
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture")  # noqa: B904 (as torch raises it)
    except RuntimeError as exc:
        assert is_out_of_memory(exc)


# ----------------------------------------------------------------------------------- SDPA
def test_sdpa_dispatch_rule():
    assert not sdpa_is_efficient(12, torch.float16, "cuda")        # paper model, fp16: manual path
    assert not sdpa_is_efficient(12, torch.bfloat16, "cuda")
    assert sdpa_is_efficient(16, torch.float16, "cuda") and sdpa_is_efficient(48, torch.bfloat16, "cuda")
    assert sdpa_is_efficient(12, torch.float32, "cuda")
    assert sdpa_is_efficient(12, torch.bfloat16, "cpu")


@pytest.mark.parametrize("use_sdpa", [False, True])
def test_attention_in_window_chunks_equals_one_call(monkeypatch, use_sdpa):
    torch.manual_seed(0)
    attn = WindowAttention(24, 2, 4).eval()
    attn.use_sdpa = use_sdpa
    qkv = torch.randn(11, 16, 72)
    with torch.inference_mode():
        whole = attn(qkv)
        monkeypatch.setattr("dcmpnet_core.models.layers.MAX_WINDOWS_PER_CALL", 3)
        chunked = attn(qkv)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------- device pre/post I/O
@pytest.mark.parametrize("depth_kind", ["relative_depth", "relative_disparity"])
def test_device_depth_normalisation_equals_the_numpy_one(depth_kind):
    rng = np.random.default_rng(0)
    maps = [rng.normal(1.0, 0.5, (6, 7)), np.full((6, 7), 0.3), -np.abs(rng.normal(size=(6, 7))),
            np.where(rng.random((6, 7)) < 0.2, np.nan, rng.normal(2.0, 1.0, (6, 7))),
            np.full((6, 7), np.inf)]
    raw = np.stack(maps).astype(np.float32)
    got = relative_depth(torch.from_numpy(raw), depth_kind).numpy()
    for k, m in enumerate(raw):
        np.testing.assert_allclose(got[k], raw_to_relative_depth(m, depth_kind), atol=1e-6, rtol=1e-5)
    assert got[3][np.isnan(raw[3])].tolist() == [1.0] * int(np.isnan(raw[3]).sum())   # unknown = far


@pytest.mark.parametrize("depth_kind", ["relative_depth", "relative_disparity"])
def test_engine_device_io_path_equals_the_cpu_path(depth_kind):
    """The CUDA pre/post-processing (uint8 up, convert on device, uint8 down) run on the CPU against the CPU path."""
    model = tiny(depth_kind)
    cpu = Dehazer(model, device="cpu", bypass_below=0.0)     # the network on every frame (no pass-through)
    dev = Dehazer(model, device="cpu", bypass_below=0.0)
    dev._device_io = DeviceIO("cpu")
    img = frame()
    for x in (img, img.astype(np.float32) / 255, img.astype(np.float64) / 255):
        a, b = dev(x), cpu(x)
        assert a.dehazed.dtype == x.dtype and a.dehazed.shape == x.shape and a.depth.dtype == np.float32
        tol = 1 if x.dtype == np.uint8 else 1e-5
        assert np.abs(a.dehazed.astype(np.float64) - b.dehazed.astype(np.float64)).max() <= tol
        np.testing.assert_allclose(a.depth, b.depth, atol=1e-5)
    images = [img, img[::-1].copy(), img[:24, :40].copy(), img[::-1].astype(np.float32) / 255]
    for got, x in zip(dev.process_batch(images), images):           # a size group mixing uint8 and float
        want = cpu(x).dehazed
        assert got.dehazed.dtype == x.dtype
        assert np.abs(got.dehazed.astype(np.float64) - want.astype(np.float64)).max() <= (1 if x.dtype == np.uint8
                                                                                          else 1e-5)
    assert dev.last_network_ms > 0


def test_device_io_counts_non_finite_output_instead_of_casting_it():
    model = tiny()
    with torch.no_grad():
        model.dehaze_net.head.bias.fill_(float("nan"))
    dev = Dehazer(model, device="cpu", bypass_below=0.0)
    dev._device_io = DeviceIO("cpu")
    img = frame()
    with pytest.warns(RuntimeWarning, match=r"NaN/Inf value"):
        res = dev(img)
    assert (res.dehazed == 0).all()                   # black, by rule, not whatever a NaN cast gives
    h, w = img.shape[:2]
    assert res.nonfinite_output == h * w and res.output_faulty and dev.output_faults == 1


def test_device_io_upload_converts_on_the_device():
    io = DeviceIO("cpu")
    assert io.pin is False and DeviceIO("cuda:0").pin is True
    img = frame(16, 20)
    x = io.upload([img, img])
    assert x.shape == (2, 3, 16, 20) and x.dtype == torch.float32
    ref = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1) * 2 - 1
    torch.testing.assert_close(x[1], ref, atol=1e-6, rtol=0)
