"""The bundled default weights (dcmpnet_core/checkpoints/weights/default.pt).

They are present, loadable, the documented recipe, and better than the hazy input on the held-out real photo.

The quality checks here run at a quarter of the benchmark's resolution (fast); the full benchmark and its
targets are `dcmpnet quality` (README, "Default weights").
"""
from __future__ import annotations

import pytest
import yaml
from hazy_photos import quarter_motorcycle_pairs

from dcmpnet_core.checkpoints.builder import load_model
from dcmpnet_core.checkpoints.bundled import DEFAULT_WEIGHTS, ENV_VAR, default_weights_path
from dcmpnet_core.evaluation.quality import run_quality
from dcmpnet_core.inference.engine import Dehazer
from dcmpnet_core.models.config import model_config_from
from dcmpnet_core.train.recipes import RECIPES_DIR


@pytest.fixture(autouse=True)
def bundled(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_bundled_checkpoint_is_installed_small_and_is_the_recipes_variant():
    assert default_weights_path() == DEFAULT_WEIGHTS
    assert DEFAULT_WEIGHTS.stat().st_size <= 25 * 2**20
    model = load_model(DEFAULT_WEIGHTS).model
    recipe = yaml.safe_load((RECIPES_DIR / "default.yaml").read_text())
    assert model.config == model_config_from(recipe["model"])
    assert all(bool(p.isfinite().all()) for p in model.parameters())
    engine = Dehazer.from_checkpoint(None, device="cpu", bypass_below=0.0)
    assert engine.backend == "dcmpnet" and engine.depth_kind == "relative_depth"


@pytest.fixture(scope="module")
def quarter_motorcycle():
    return quarter_motorcycle_pairs()


def test_default_weights_dehaze_the_held_out_real_photo(quarter_motorcycle):
    engines = {"dcmpnet": Dehazer.from_checkpoint(None, device="cpu", bypass_below=0.0),
               "dcp": Dehazer(backend="dcp", bypass_below=0.0)}
    methods = {name: (lambda hazy, e=e: (lambda r: (r.dehazed, r.depth))(e(hazy))) for name, e in engines.items()}
    report, _ = run_quality(methods, quarter_motorcycle)
    for density in ("light", "medium", "dense"):
        gain = report.mean("dcmpnet", "psnr", density) - report.mean("hazy", "psnr", density)
        assert gain > 1.0, f"{density} haze: only {gain:+.2f} dB over the hazy input"
    assert report.mean("dcmpnet", "psnr") > report.mean("dcp", "psnr")
    assert report.mean("dcmpnet", "ssim") > report.mean("hazy", "ssim")
    assert report.mean("dcmpnet", "depth_spearman") > 0.0            # depth at least ordered the right way
