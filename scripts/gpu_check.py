"""One-shot device check for the GPU path (issue #12); started by scripts/gpu_check.sh.

Sections, in order (each row of the one output table says pass / FAIL / skipped and why):

1. versions and GPU(s);
2. the GPU tests (``DCMPNET_TEST_DEVICE=cuda pytest`` on test/core/inference/test_gpu.py and test_gpu_logic.py);
3. checks: CUDA-graph replay of two different inputs on the last GPU from a thread on GPU 0,
   fp16 attention with the paper model's head dimension 12 and > 65,535 windows, fp16/bf16 PSNR
   against fp32 with TF32 off (paper config + depth), a real out-of-memory retry under
   ``torch.cuda.set_per_process_memory_fraction``;
4. ``dcmpnet bench`` rows: paper config + depth at 1280x720 (eager fp32 reference first, then
   fast fp32 / tf32 / fp16, cuda_graphs fp16, fast+nhwc fp16) and the engine with the bundled
   weights (uint8 in and out, host time per frame).

Without CUDA every GPU part is skipped with its reason and the CPU-runnable parts run at tiny
sizes, so CI keeps this script from rotting (``--quick`` also skips the pytest run).  A time
budget (``--budget-s``) stops before the slow parts when they would not fit.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

NO_CUDA = ("skipped: needs CUDA (torch.cuda.is_available() is False with torch "
           f"{torch.__version__}, built for CUDA {torch.version.cuda})")


@dataclass
class Row:
    section: str
    item: str
    status: str                    # pass | FAIL | info | skipped: <why>
    detail: str = ""
    ms: float = math.nan
    fps: float = math.nan
    speedup: float = math.nan
    psnr: float = math.nan
    host_ms: float = math.nan


class Check:
    def __init__(self, budget_s: float) -> None:
        self.rows: list[Row] = []
        self.start = time.monotonic()
        self.budget_s = budget_s

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def add(self, *args, **kwargs) -> None:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        print(f"[gpu_check {time.monotonic() - self.start:6.1f}s] {row.section} | {row.item} | {row.status}"
              + (f" | {row.detail}" if row.detail else ""), flush=True)

    def run(self, section: str, item: str, fn: Callable[[], tuple[str, str]], need_s: float = 0.0) -> None:
        """``fn`` returns (status, detail); an exception becomes a FAIL row with its first line."""
        if self.left() < need_s:
            self.add(section, item, f"skipped: time budget ({self.left():.0f} s left, needs ~{need_s:.0f} s)")
            return
        try:
            status, detail = fn()
        except Exception as exc:                      # noqa: BLE001 - every failure is reported, the rest still runs
            text = str(exc).strip()
            status, detail = "FAIL", f"{type(exc).__name__}: {text.splitlines()[0][:160] if text else ''}"
        self.add(section, item, status, detail)


# ------------------------------------------------------------------------------------------- 1
def environment(check: Check) -> None:
    check.add("env", "python / torch", "info", f"Python {platform.python_version()}, torch {torch.__version__}, "
              f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, NumPy {np.__version__}")
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed (torch.compile on GPU will fall back to eager)"
    check.add("env", "triton", "info", triton_version)
    if not torch.cuda.is_available():
        check.add("env", "GPU", NO_CUDA)
        return
    for i in range(torch.cuda.device_count()):
        prop = torch.cuda.get_device_properties(i)
        check.add("env", f"cuda:{i}", "info", f"{prop.name}, compute capability {prop.major}.{prop.minor}, "
                  f"{prop.total_memory / 2**30:.1f} GiB, bf16 {'yes' if prop.major >= 8 else 'no'}")


# ------------------------------------------------------------------------------------------- 2
def gpu_tests(check: Check, quick: bool) -> None:
    files = ["test/core/inference/test_gpu.py", "test/core/inference/test_gpu_logic.py"]
    if quick:
        check.add("tests", "pytest " + " ".join(files), "skipped: --quick")
        return
    try:
        import pytest  # noqa: F401
    except ImportError:
        check.add("tests", "pytest", "skipped: pytest is not installed for " + sys.executable)
        return
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if torch.cuda.is_available():
        env["DCMPNET_TEST_DEVICE"] = "cuda"
    if torch.cuda.is_available():       # the engine's own tests, on the GPU
        files += ["test/core/inference/test_inference.py", "test/core/inference/test_fastpath.py"]

    def run() -> tuple[str, str]:
        timeout = max(30.0, min(300.0, check.left() - 150))
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", *files],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        tail = [line for line in proc.stdout.strip().splitlines() if line.strip()]
        print("\n".join(tail[-40:]), flush=True)
        summary = tail[-1] if tail else proc.stderr.strip()[-200:]
        return ("pass" if proc.returncode == 0 else "FAIL"), summary.strip("= ")
    check.run("tests", " ".join(files), run, need_s=60)


# ------------------------------------------------------------------------------------------- 3
def paper_model(seed: int = 0):
    from dcmpnet_core import DCMPNet

    torch.manual_seed(seed)
    return DCMPNet("paper").eval()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float().cpu().clamp(-1, 1) - b.float().cpu().clamp(-1, 1)) / 2).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def check_graph_replay() -> tuple[str, str]:
    from dcmpnet_core.inference.fastpath import InferenceRunner, prepare_for_inference

    model = paper_model()
    device = f"cuda:{torch.cuda.device_count() - 1}"
    graphs = InferenceRunner(prepare_for_inference(model, device, "fp32", "cuda_graphs"))
    eager = InferenceRunner(prepare_for_inference(model, device, "fp32", "fast"))
    torch.cuda.set_device(0)
    inputs = [torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(s)) * 2 - 1 for s in (1, 1, 2, 3)]
    worst = max(float((g - e).abs().max()) for x in inputs for g, e in zip(graphs(x), eager(x)))
    ok = worst < 1e-4 and graphs.graphs.captures == 1
    return ("pass" if ok else "FAIL"), f"{device}, 3 distinct inputs, max |graph - eager| {worst:.1e}, " \
                                        f"captures {graphs.graphs.captures}"


def check_attention(device: str) -> tuple[str, str]:
    from dcmpnet_core.models.layers import WindowAttention

    torch.manual_seed(0)
    windows = 70_000 if device.startswith("cuda") else 40
    dtype = torch.float16 if device.startswith("cuda") else torch.bfloat16
    attn = WindowAttention(24, 2, 8).to(device).eval()
    qkv = torch.randn(windows, 64, 72, device=device)
    with torch.inference_mode():
        ref = attn(qkv)
        attn.to(dtype).use_sdpa = True
        got = attn(qkv.to(dtype)).float()
    err = float((got - ref).abs().max())
    ok = bool(torch.isfinite(got).all()) and err < 5e-2
    return ("pass" if ok else "FAIL"), f"{windows} windows, head dim 12, {str(dtype)[6:]}: max |diff| to fp32 {err:.1e}"


def check_half(device: str, precision: str, size: tuple[int, int]) -> tuple[str, str]:
    from dcmpnet_core.inference.fastpath import InferenceRunner, precision_support_error, prepare_for_inference

    problem = precision_support_error(precision, device)
    if problem:
        return "skipped: " + problem, ""
    model = paper_model()
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ref = InferenceRunner(prepare_for_inference(model, device, "fp32", "fast"))(x)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    got = InferenceRunner(prepare_for_inference(model, device, precision, "fast"))(x)
    peak = f", peak {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB" if device.startswith("cuda") else ""
    bad = int((~torch.isfinite(got[0])).sum() + (~torch.isfinite(got[1])).sum())
    psnr = _psnr(got[0], ref[0])
    floor = 40.0 if precision == "fp16" else 30.0
    ok = bad == 0 and psnr >= floor
    return ("pass" if ok else "FAIL"), (f"{size[0]}x{size[1]} paper (random weights): PSNR {psnr:.1f} dB vs fp32 "
                                        f"TF32-off (need >= {floor:.0f}), non-finite {bad}{peak}")


def check_oom() -> tuple[str, str]:
    from dcmpnet_core import DCMPNet
    from dcmpnet_core.inference.engine import Dehazer

    torch.cuda.empty_cache()
    torch.manual_seed(0)
    engine = Dehazer(DCMPNet("tiny"), device="cuda:0", max_oom_retries=8)
    total = torch.cuda.get_device_properties(0).total_memory
    cap = torch.cuda.memory_allocated(0) + 600 * 2**20
    frame = np.full((2048, 2048, 3), 120, np.uint8)
    try:
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), 0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = engine(frame)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()
    retries = sum("out of memory" in str(w.message) for w in caught)
    ok = res.dehazed.shape == frame.shape and res.scale < 1.0 and retries > 0
    return ("pass" if ok else "FAIL"), f"2048x2048 under a {cap / 2**20:.0f} MiB cap: {retries} retr(ies), " \
                                        f"ran at scale {res.scale:.2f}"


def checks(check: Check, quick: bool) -> None:
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    size = (720, 1280) if cuda else (32, 48)
    if cuda:
        check.run("checks", "CUDA graphs: two-input replay on the last GPU", check_graph_replay, need_s=30)
    else:
        check.add("checks", "CUDA graphs: two-input replay on the last GPU", NO_CUDA)
    check.run("checks", f"attention: half precision, head dim 12, chunked windows ({device})",
              lambda: check_attention(device), need_s=10)
    for precision in ("fp16", "bf16"):
        if not cuda and precision == "fp16":
            check.add("checks", "fp16 vs fp32 (TF32 off)", NO_CUDA)
            continue
        check.run("checks", f"{precision} vs fp32 (TF32 off) ({device})",
                  lambda p=precision: check_half(device, p, size), need_s=30)
    if cuda:
        check.run("checks", "real out-of-memory retried at lower resolution", check_oom, need_s=30)
    else:
        check.add("checks", "real out-of-memory retried at lower resolution", NO_CUDA)


# ------------------------------------------------------------------------------------------- 4
def bench(check: Check, quick: bool) -> None:
    from dcmpnet_core import DCMPNet
    from dcmpnet_core.checkpoints.builder import load_model
    from dcmpnet_core.checkpoints.bundled import default_weights_path
    from dcmpnet_core.evaluation.bench import run_benchmark, run_engine_benchmark

    cuda = torch.cuda.is_available()
    if cuda:
        device, (h, w), repeat, warmup = "cuda", (720, 1280), 20, 3
        modes, precisions = ["fast", "cuda_graphs", "fast+nhwc"], ["fp32", "tf32", "fp16"]
        model, name = paper_model(), "paper (random weights)"
    else:
        device, (h, w), repeat, warmup = "cpu", (32, 48), 1, 0
        modes, precisions = ["fast"], ["fp32", "tf32"]
        torch.manual_seed(0)
        model, name = DCMPNet("tiny").eval(), "tiny (random weights; CPU smoke run)"
        check.add("bench", f"paper + depth, 1280x720, {device}", NO_CUDA.replace("skipped", "skipped (GPU rows)"))
    rows = []

    def network() -> tuple[str, str]:
        rows.extend(run_benchmark(model, h, w, device, modes=modes, precisions=precisions, repeat=repeat,
                                  warmup=warmup))
        return "info", ""
    check.run("bench", f"network {name}, {h}x{w}", network, need_s=90 if cuda else 5)
    _add_bench_rows(check, "bench network", rows)

    weights = default_weights_path()
    engine_rows = []

    def engine() -> tuple[str, str]:
        bundled = load_model(weights).model if weights else DCMPNet("tiny")
        engine_modes = ["fast", "cuda_graphs"] if cuda else ["fast"]
        engine_precisions = ["fp16"] if cuda else ["fp32"]
        engine_rows.extend(run_engine_benchmark(bundled, h, w, device, modes=engine_modes,
                                                precisions=engine_precisions, repeat=repeat, warmup=warmup))
        return "info", f"weights {weights.name if weights else 'tiny (random)'}, uint8 frame in/out"
    check.run("bench", f"engine, bundled weights, {h}x{w}", engine, need_s=60 if cuda else 5)
    _add_bench_rows(check, "bench engine", engine_rows)


def _add_bench_rows(check: Check, section: str, rows) -> None:
    for r in rows:
        status = "FAIL" if r.note.startswith("failed") else "info"
        check.add(section, r.mode, status, r.note or f"max |diff| {r.max_abs_diff:.1e}", ms=r.median_ms, fps=r.fps,
                  speedup=r.speedup, psnr=r.psnr_db, host_ms=r.host_ms)


# -------------------------------------------------------------------------------------- output
def table(rows: list[Row]) -> str:
    def num(v: float, fmt: str) -> str:
        return "" if math.isnan(v) else ("inf" if math.isinf(v) else format(v, fmt))
    lines = ["| section | item | status | median ms | fps | vs ref | PSNR dB | host ms | detail |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r.section} | {r.item} | {r.status} | {num(r.ms, '.2f')} | {num(r.fps, '.1f')} | "
                     f"{num(r.speedup, '.2f')} | {num(r.psnr, '.1f')} | {num(r.host_ms, '.2f')} | "
                     f"{r.detail.replace('|', '/')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu_check_out", help="folder for gpu_check.md")
    parser.add_argument("--quick", action="store_true", help="skip the pytest run (for CI on CPU)")
    parser.add_argument("--budget-s", type=float, default=440.0, help="stop starting slow parts after this long")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check = Check(args.budget_s)
    parts = (environment, lambda c: gpu_tests(c, args.quick), lambda c: checks(c, args.quick),
             lambda c: bench(c, args.quick))
    try:
        for part in parts:
            part(check)
    except KeyboardInterrupt:                         # scripts/gpu_check.sh's time limit: still write the table
        check.add("run", "interrupted", "FAIL", "stopped by SIGINT (time limit?) before the end")
    text = (f"gpu_check {time.strftime('%Y-%m-%d %H:%M:%S')}, {time.monotonic() - check.start:.0f} s, "
            f"host {platform.node()}\n\n{table(check.rows)}\n")
    tmp = out / "gpu_check.md.tmp"
    tmp.write_text(text)
    tmp.replace(out / "gpu_check.md")
    print("\n" + text, flush=True)
    failed = [r for r in check.rows if r.status == "FAIL"]
    print(f"gpu_check: {len(failed)} failed, table in {out / 'gpu_check.md'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
