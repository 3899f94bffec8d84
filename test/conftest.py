"""Shared fixtures. Tests run on CPU with tiny inputs; set DCMPNET_TEST_DEVICE=cuda to rerun on a GPU."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

TEST_DIR = Path(__file__).resolve().parent
DATA = TEST_DIR / "data"


@pytest.fixture(scope="session")
def device() -> str:
    return os.environ.get("DCMPNET_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


# ------------------------------------------------------------------------------------------ GPU tests
CUDA_SKIP_REASON = ("no CUDA device here (torch.cuda.is_available() is False); these tests run on a machine with a "
                    "GPU: `scripts/gpu_check.sh`, or `DCMPNET_TEST_DEVICE=cuda pytest test/core/inference/test_gpu.py`")


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU; skipped without one (" + CUDA_SKIP_REASON + ")")


def _cuda_wanted_but_missing() -> str | None:
    import torch

    if torch.cuda.is_available() or not os.environ.get("DCMPNET_TEST_DEVICE", "cpu").startswith("cuda"):
        return None
    return (f"DCMPNET_TEST_DEVICE=cuda, but torch {torch.__version__} (built for CUDA {torch.version.cuda}) "
            "sees no CUDA device")


def pytest_collection_modifyitems(config, items):
    """Skip ``@pytest.mark.cuda`` tests without CUDA, unless CUDA was asked for (then they fail, see below)."""
    gpu_items = [item for item in items if "cuda" in item.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available() or _cuda_wanted_but_missing():
        return
    for item in gpu_items:
        item.add_marker(pytest.mark.skip(reason=CUDA_SKIP_REASON))


def pytest_runtest_setup(item):
    """``DCMPNET_TEST_DEVICE=cuda`` where torch sees no GPU fails the GPU tests instead of skipping them silently."""
    if "cuda" in item.keywords:
        problem = _cuda_wanted_but_missing()
        if problem:
            pytest.fail(problem, pytrace=False)
