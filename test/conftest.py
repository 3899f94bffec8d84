"""Shared fixtures. Tests run on CPU with tiny inputs; set DCMPNET_TEST_DEVICE=cuda to rerun on a GPU."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TEST_DIR = Path(__file__).resolve().parent
DATA = TEST_DIR / "data"
sys.path.insert(0, str(TEST_DIR))          # test helpers (upstream_rule, ...)


@pytest.fixture(scope="session")
def device() -> str:
    return os.environ.get("DCMPNET_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA
