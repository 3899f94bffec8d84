"""The engine options are declared once and spelled the same in every command that builds an engine."""
from __future__ import annotations

import argparse

import pytest

from dcmpnet_core.cli import build_parser
from dcmpnet_core.cli.common import CommandError, parse_size
from dcmpnet_core.inference import haze_level
from dcmpnet_core.inference.options import DEFAULT_BYPASS_BAND, DEFAULT_BYPASS_BELOW, ENGINE_OPTIONS
from dcmpnet_ros import bag_cli, demo


def _flags(command: str) -> dict[str, argparse.Action]:
    parser = build_parser([bag_cli, demo])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {s: a for a in sub._actions for s in a.option_strings}


@pytest.mark.parametrize("command,names", [
    ("infer", ["device", "precision", "backend", "mode", "refine", "max_pixels", "inference_scale"]),
    ("bag", ["device", "precision", "backend", "mode", "refine", "max_pixels", "inference_scale"]),
    ("quality", ["device", "precision", "mode", "refine", "max_pixels", "inference_scale"]),
    ("bench", ["device", "precision", "mode", "max_pixels"]),
    ("eval", ["device", "precision"]),
    ("demo", ["device", "backend"]),
])
def test_every_command_spells_the_engine_options_the_same(command, names):
    flags = _flags(command)
    for name in names:
        opt = ENGINE_OPTIONS[name]
        assert opt.flag in flags and flags[opt.flag].dest == name, (command, opt.flag)
        for alias in opt.aliases:
            if alias in flags:                         # older spellings are accepted but not listed
                assert flags[alias].dest == name and flags[alias].help == argparse.SUPPRESS


def test_values_are_checked_while_parsing_with_the_engines_words(capsys):
    parser = build_parser([bag_cli, demo])
    args = parser.parse_args(["infer", "x.png", "-o", "out", "--scale", "0.5", "--mode", "eager"])
    assert args.inference_scale == 0.5 and args.mode == "eager" and args.refine == "auto"
    args = parser.parse_args(["bench", "--modes", "fast", "fast+nhwc"])
    assert args.mode == ["fast", "fast+nhwc"] and args.device == "cpu"
    with pytest.raises(SystemExit):
        parser.parse_args(["bag", "in", "out", "--inference-scale", "1.5"])
    assert "argument --inference-scale: expected > 0 and <= 1, got 1.5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["infer", "x.png", "-o", "out", "--device", "gpu"])
    assert "argument --device: expected auto, cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err


def test_pass_through_defaults_are_the_engines():
    assert (DEFAULT_BYPASS_BELOW, DEFAULT_BYPASS_BAND) == (haze_level.DEFAULT_BYPASS_BELOW,
                                                           haze_level.DEFAULT_BYPASS_BAND)


def test_parse_size():
    assert parse_size("48x64") == (48, 64)
    with pytest.raises(CommandError, match="--size must look like 480x640"):
        parse_size("big")
    with pytest.raises(CommandError, match="at least 16x16"):
        parse_size("8x8")
