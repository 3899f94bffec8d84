"""Frozen config dataclasses that reject unknown keys, and the named variants."""
from __future__ import annotations

import dataclasses

import pytest

from dcmpnet_core.models.config import (
    VARIANTS,
    ConfigError,
    DehazeNetConfig,
    ModelConfig,
    from_dict,
    get_variant,
    model_config_from,
    to_dict,
)


def test_paper_variant_is_the_published_shape():
    cfg = get_variant("paper").dehaze
    assert cfg.embed_dims == (24, 48, 96, 48, 24) and cfg.depths == (8, 8, 8, 4, 4)
    assert cfg.num_heads == (2, 4, 6, 1, 1) and cfg.attn_ratios == (0.25, 0.5, 0.75, 0.0, 0.0)
    assert cfg.guide_width == 64 and get_variant("paper").depth.widths == (24, 48, 96, 128)


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_variant("paper").dehaze.window_size = 4


def test_unknown_keys_are_rejected_by_name():
    with pytest.raises(ConfigError, match=r"^config\.dehaze\.embed_dim: unknown key; known: embed_dims, depths"):
        from_dict(ModelConfig, {"dehaze": {"embed_dim": [1, 2, 3, 4, 5]}})
    with pytest.raises(ConfigError, match=r"^model\.colour: unknown key; known: dehaze, depth"):
        model_config_from({"variant": "tiny", "colour": "red"})
    with pytest.raises(ConfigError, match=r"^model\.dehaze\.prior\.width: unknown key; known: widths, growth"):
        model_config_from({"dehaze": {"prior": {"width": 3}}})


def test_invalid_values_are_named():
    with pytest.raises(ConfigError, match=r"num_heads\[2\]=5 must divide embed_dims\[2\]=96"):
        DehazeNetConfig(num_heads=(2, 4, 5, 1, 1))
    with pytest.raises(ConfigError, match="decoder stages must mirror"):
        DehazeNetConfig(embed_dims=(24, 48, 96, 32, 24))
    with pytest.raises(ConfigError, match="expected 5 values"):
        DehazeNetConfig(depths=(1, 2))
    with pytest.raises(ConfigError, match="unknown model variant 'huge'"):
        get_variant("huge")


def test_dict_round_trip_and_overrides():
    for name, cfg in VARIANTS.items():
        assert from_dict(ModelConfig, to_dict(cfg)) == cfg, name
    cfg = model_config_from({"variant": "small", "dehaze": {"depths": [1, 1, 1, 1, 1]}})
    assert cfg.dehaze.depths == (1, 1, 1, 1, 1) and cfg.dehaze.embed_dims == VARIANTS["small"].dehaze.embed_dims


def test_variants_get_smaller():
    from dcmpnet_core.evaluation.complexity import count_macs

    costs = {n: count_macs(c, 96, 128) for n, c in VARIANTS.items()}
    assert costs["paper"]["dehaze_macs"] > costs["small"]["dehaze_macs"] > costs["tiny"]["dehaze_macs"]
    # The paper network at 480x640 costs ~312 GMACs (dehazing, without the dead branch) + ~61 (DE).
    paper = count_macs(VARIANTS["paper"], 480, 640)
    assert 300e9 < paper["dehaze_macs"] < 320e9 and 60e9 < paper["depth_macs"] < 62e9
