"""Every inference fast path computes the same function as the plain eager float32 forward."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from upstream_rule import upstream_state_dict

from dcmpnet_core import DCMPNet
from dcmpnet_core.checkpoints.builder import convert_upstream
from dcmpnet_core.evaluation.bench import as_published, format_table, run_benchmark
from dcmpnet_core.inference.fastpath import (
    FastPaths,
    InferenceRunner,
    PreparedModel,
    fast_paths_for,
    fold_batchnorm,
    prepare_for_inference,
)


@pytest.fixture(scope="module")
def published():
    """The paper network with deterministic upstream-format weights (real BatchNorm statistics)."""
    return convert_upstream(upstream_state_dict("dehaze", 1), upstream_state_dict("depth", 1))


@pytest.fixture(scope="module")
def reference(data_dir):
    return dict(np.load(data_dir / "reference_seed1.npz"))


@pytest.mark.parametrize("mode", ["eager", "fast"])
def test_fast_paths_match_the_original_implementation(published, reference, mode):
    runner = InferenceRunner(prepare_for_inference(published, "cpu", "fp32", mode))
    dehazed, _ = runner(torch.from_numpy(reference["hazy"]))
    np.testing.assert_allclose(dehazed.numpy(), reference["dehazed"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("paths", [FastPaths(fold_bn=True), FastPaths(channels_last=True), FastPaths(sdpa=True)],
                         ids=["fold_bn", "channels_last", "sdpa"])
def test_each_fast_path_alone_equals_eager(published, paths):
    x = torch.rand(1, 3, 44, 52, generator=torch.Generator().manual_seed(3)) * 2 - 1
    ref = InferenceRunner(prepare_for_inference(published, "cpu", "fp32", "eager"))(x)
    model = prepare_for_inference(published, "cpu", "fp32", "eager").model
    if paths.fold_bn:
        fold_batchnorm(model)
    if paths.sdpa:
        from dcmpnet_core.inference.fastpath import set_attention_impl
        set_attention_impl(model, True)
    if paths.channels_last:
        model = model.to(memory_format=torch.channels_last)
    got = InferenceRunner(PreparedModel(model, paths, "fp32"))(x)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_fold_batchnorm_removes_every_batchnorm_and_leaves_the_original(published):
    prepared = prepare_for_inference(published, "cpu", "fp32", "fast").model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in published.modules())


def test_fast_path_batch_and_odd_sizes(published):
    runner = InferenceRunner(prepare_for_inference(published, "cpu", "fp32", "fast"))
    ref = InferenceRunner(prepare_for_inference(published, "cpu", "fp32", "eager"))
    x = torch.rand(2, 3, 37, 29) * 2 - 1
    for a, b in zip(runner(x), ref(x)):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_bf16_on_cpu_is_close(published):
    x = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ref = InferenceRunner(prepare_for_inference(published, "cpu", "fp32", "eager"))(x)[0]
    got = InferenceRunner(prepare_for_inference(published, "cpu", "bf16", "fast"))(x)[0]
    assert got.dtype == torch.float32
    mse = float(((got.clamp(-1, 1) - ref.clamp(-1, 1)) / 2).pow(2).mean())
    assert 10 * np.log10(1 / mse) > 30


def test_unknown_mode_and_precision_are_named(published):
    with pytest.raises(ValueError, match="unknown inference mode 'turbo'"):
        prepare_for_inference(published, "cpu", "fp32", "turbo")
    with pytest.raises(ValueError, match="precision must be one of fp32, tf32, fp16, bf16, got .int4."):
        prepare_for_inference(published, "cpu", "int4", "fast")
    with pytest.raises(ValueError, match="cuda_graphs' needs a CUDA device"):
        fast_paths_for("cuda_graphs", "cpu")


def test_as_published_reference_costs_the_dead_branch_but_gives_the_same_output(published):
    ref = as_published(published)
    assert ref.dehaze_net.msaam.unused_branch is not None
    assert published.dehaze_net.msaam.unused_branch is None
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.inference_mode():
        torch.testing.assert_close(ref(x).dehazed, published(x).dehazed, atol=0, rtol=0)


def test_benchmark_table_reports_ratios_against_the_first_row():
    torch.manual_seed(0)
    rows = run_benchmark(DCMPNet("tiny"), 32, 48, "cpu", modes=["eager", "fast"], repeat=2)
    assert rows[0].mode.startswith("eager fp32 (as published") and rows[0].speedup == 1.0
    assert [r.mode for r in rows[1:]] == ["eager fp32", "fast fp32"]
    for r in rows[1:]:
        assert r.max_abs_diff < 1e-4 and r.median_ms > 0 and r.fps > 0
    table = format_table(rows)
    assert "speed-up" in table and table.count("\n") == len(rows) + 1


def test_engine_benchmark_reference_row_and_reduced_resolution():
    from dcmpnet_core.evaluation.bench import run_engine_benchmark

    torch.manual_seed(0)
    rows = run_engine_benchmark(DCMPNet("tiny"), 48, 64, "cpu", modes=["auto"], precisions=["fp32"],
                                max_pixels=768, repeat=1)
    assert rows[0].mode == "engine eager fp32 full-res (reference)" and rows[0].speedup == 1.0
    assert rows[1].mode == "engine auto fp32 max_pixels=768"
    assert rows[1].median_ms > 0 and 10 < rows[1].psnr_db < float("inf")     # approximate, not exact
    assert all(0 < r.host_ms < r.median_ms for r in rows)                    # time outside the network
    assert "host ms" in format_table(rows)
    assert "host ms" not in format_table([dataclasses.replace(rows[0], host_ms=float("nan"))])
    exact = run_engine_benchmark(DCMPNet("tiny"), 48, 64, "cpu", modes=["auto"], repeat=1)
    assert exact[1].max_abs_diff <= 1 / 255 + 1e-6                               # exact up to uint8 rounding
