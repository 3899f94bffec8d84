"""GPU behaviour that only a CUDA device can show (skipped without one; see conftest.CUDA_SKIP_REASON).

Run on a GPU machine with ``scripts/gpu_check.sh`` (which runs this file with
``DCMPNET_TEST_DEVICE=cuda``) or ``DCMPNET_TEST_DEVICE=cuda pytest test/core/inference/test_gpu.py``.  Each test
names the finding of issue #12 it guards.  The CPU-testable logic of the same fixes is in
``test/core/inference/test_gpu_logic.py``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from upstream_rule import upstream_state_dict

from dcmpnet_core import DCMPNet
from dcmpnet_core.checkpoints.builder import convert_upstream
from dcmpnet_core.inference.device import is_out_of_memory
from dcmpnet_core.inference.engine import Dehazer
from dcmpnet_core.inference.fastpath import InferenceRunner, prepare_for_inference
from dcmpnet_core.models.layers import WindowAttention

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def published():
    """The paper network with deterministic upstream-format weights (real BatchNorm statistics)."""
    return convert_upstream(upstream_state_dict("dehaze", 1), upstream_state_dict("depth", 1))


def rand(seed: int, h: int = 64, w: int = 96, batch: int = 1) -> torch.Tensor:
    return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.cpu().clamp(-1, 1) - b.cpu().clamp(-1, 1)) / 2).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def cpu_reference(model: DCMPNet, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return InferenceRunner(prepare_for_inference(model, "cpu", "fp32", "eager"))(x)


# ------------------------------------------------------------------ 1 + 3: CUDA graphs
@pytest.mark.parametrize("index", sorted({0, torch.cuda.device_count() - 1}) if torch.cuda.is_available() else [0])
def test_cuda_graphs_replay_new_inputs_on_the_right_device(published, index):
    """Two different inputs (a stale replay returns the first one's output), from a thread on device 0."""
    device = f"cuda:{index}"
    runner = InferenceRunner(prepare_for_inference(published, device, "fp32", "cuda_graphs"))
    eager = InferenceRunner(prepare_for_inference(published, device, "fp32", "fast"))
    torch.cuda.set_device(0)                          # the node's worker thread starts on device 0
    first, second = rand(1), rand(2)
    for x in (first, first, second, first, second):   # eager, capture, replay, replay, replay
        got = runner(x)
        ref = eager(x)
        for a, b in zip(got, ref):
            assert a.device == torch.device(device)
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    assert runner.graphs.captures == 1


def test_cuda_graph_cache_stays_bounded(published):
    runner = InferenceRunner(prepare_for_inference(published, "cuda", "fp32", "cuda_graphs"))
    for h, w in [(48, 64), (64, 64), (32, 48), (48, 80)]:
        for _ in range(2):
            runner(rand(0, h, w))
    assert runner.graphs.captures == 4 and len(runner.graphs) == 2
    runner.release()
    assert len(runner.graphs) == 0
    torch.testing.assert_close(runner(rand(3, 48, 80))[0], cpu_reference(published, rand(3, 48, 80))[0].cuda(),
                               atol=1e-4, rtol=0)


# -------------------------------------------------------------------------------- 2: TF32
def test_fp32_is_exact_on_gpu_and_tf32_is_close(published):
    x = rand(4, 64, 96)
    ref = cpu_reference(published, x)
    exact = InferenceRunner(prepare_for_inference(published, "cuda", "fp32", "fast"))(x)
    for a, b in zip(exact, ref):
        torch.testing.assert_close(a.cpu(), b, atol=1e-4, rtol=0)
    assert torch.backends.cudnn.allow_tf32 is True        # the process-wide default is restored
    tf32 = InferenceRunner(prepare_for_inference(published, "cuda", "tf32", "fast"))(x)
    diff = float((tf32[0].cpu() - ref[0]).abs().max())
    assert diff < 2e-2 and psnr(tf32[0], ref[0]) > 50


# --------------------------------------------------------------------------- 4: compile
def test_compile_falls_back_or_matches():
    """On a build without Triton the compiled path must warn once and then run the eager one.

    The tiny variant keeps inductor's compile time within the check script's budget.
    """
    torch.manual_seed(0)
    model = DCMPNet("tiny").eval()
    runner = InferenceRunner(prepare_for_inference(model, "cuda", "fp32", "compile"))
    x = rand(5, 32, 48)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = runner(x)
        runner(rand(6, 48, 32))                       # another size: eager, no recompile
    ref = cpu_reference(model, x)
    torch.testing.assert_close(got[0].cpu(), ref[0], atol=1e-3, rtol=0)
    assert len([w for w in caught if "torch.compile failed" in str(w.message)]) <= 1


# ------------------------------------------------------------------------------ 6: SDPA
def test_fp16_attention_with_head_dim_12_and_more_than_65535_windows():
    torch.manual_seed(0)
    attn = WindowAttention(24, 2, 8).cuda().half().eval()
    attn.use_sdpa = True
    qkv = torch.randn(70_000, 64, 72, device="cuda", dtype=torch.float16)
    with torch.inference_mode():
        got = attn(qkv)
        attn.use_sdpa = False
        ref = attn.float()(qkv.float())
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), ref, atol=2e-2, rtol=2e-2)


# -------------------------------------------------------------------- 8 + 10: fp16, bf16
@pytest.mark.parametrize("precision,min_psnr", [("fp16", 40.0), ("bf16", 30.0)])
def test_half_precisions_are_close_and_finite(published, precision, min_psnr):
    if precision == "bf16" and torch.cuda.get_device_capability()[0] < 8:
        with pytest.raises(ValueError, match="compute capability"):
            prepare_for_inference(published, "cuda", precision, "fast")
        return
    x = rand(7, 64, 96)
    ref = cpu_reference(published, x)
    got = InferenceRunner(prepare_for_inference(published, "cuda", precision, "fast"))(x)
    assert torch.isfinite(got[0]).all() and torch.isfinite(got[1]).all()
    assert psnr(got[0], ref[0]) > min_psnr


def test_fp16_survives_large_activations(published):
    """Inputs far outside [-1, 1] push RescaleNorm's (x - mean)^2 past the fp16 range without fp32 statistics."""
    x = rand(8, 64, 64) * 300
    got = InferenceRunner(prepare_for_inference(published, "cuda", "fp16", "fast"))(x)
    assert torch.isfinite(got[0]).all() and torch.isfinite(got[1]).all()


# --------------------------------------------------------------------- 5: device I/O
@pytest.mark.parametrize("depth_kind", ["relative_depth", "relative_disparity"])
def test_engine_on_gpu_matches_the_cpu_engine(depth_kind):
    import skimage.data

    torch.manual_seed(0)
    model = DCMPNet("tiny", depth_kind=depth_kind).eval()
    frame = np.ascontiguousarray(skimage.data.astronaut()[::8, ::8])       # 64x64 uint8
    gpu = Dehazer(model, device="cuda")
    assert gpu._device_io is not None and gpu._device_io.pin
    cpu = Dehazer(model, device="cpu")
    for img in (frame, frame.astype(np.float32) / 255):
        a, b = gpu(img), cpu(img)
        assert a.dehazed.dtype == b.dehazed.dtype and a.dehazed.shape == b.dehazed.shape
        assert np.abs(a.dehazed.astype(np.float64) - b.dehazed.astype(np.float64)).max() <= (1 if img.dtype == np.uint8
                                                                                              else 1e-3)
        np.testing.assert_allclose(a.depth, b.depth, atol=1e-3)
    assert 0 < gpu.last_network_ms


# ------------------------------------------------------------------------------- 9: OOM
def test_real_out_of_memory_is_retried_at_lower_resolution():
    """A real CUDA OOM under a memory cap: the engine halves max_pixels and still returns a full-size frame."""
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.manual_seed(0)
    engine = Dehazer(DCMPNet("tiny"), device="cuda:0", max_oom_retries=8)
    base = torch.cuda.memory_allocated(0)
    frame = np.full((2048, 2048, 3), 120, np.uint8)
    try:
        torch.cuda.set_per_process_memory_fraction(min(1.0, (base + 600 * 2**20) / total), 0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = engine(frame)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()
    assert res.dehazed.shape == frame.shape and res.scale < 1.0
    assert any("out of memory" in str(w.message) for w in caught)


def test_real_out_of_memory_is_classified():
    try:
        torch.empty(torch.cuda.get_device_properties(0).total_memory * 2, dtype=torch.uint8, device="cuda")
    except Exception as exc:                          # noqa: BLE001 - the point is how it is classified
        assert is_out_of_memory(exc)
    else:
        pytest.fail("allocating twice the GPU's memory did not fail")
