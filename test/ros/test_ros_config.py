"""config/dehaze.yaml is a valid ROS 2 parameter file for dehaze_node; checked with PyYAML, without ROS."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dcmpnet_ros.params import PARAMETERS, NodeParams, ParameterError, load_params_yaml, params_from_yaml_text

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "dehaze.yaml"


def _section() -> dict:
    doc = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    # One section, for the launch file's node name in any namespace.
    assert list(doc) == ["/**/dehaze_node"]
    return doc["/**/dehaze_node"]["ros__parameters"]


def test_validates_through_node_params():
    params = NodeParams.from_mapping(_section())
    assert params == load_params_yaml(CONFIG)


def test_sets_every_parameter_and_nothing_else():
    assert list(_section()) == list(PARAMETERS), "same names, in declaration order"


def test_values_are_the_node_defaults():
    # The file documents the defaults; a differing value would make the file and `ros2 param describe` disagree.
    section = _section()
    for name, spec in PARAMETERS.items():
        assert section[name] == spec.default and type(section[name]) is spec.type, name


def test_every_parameter_has_a_comment_line_above_it():
    lines = CONFIG.read_text(encoding="utf-8").splitlines()
    for name in PARAMETERS:
        idx = next(i for i, line in enumerate(lines) if re.match(rf"^\s+{name}:", line))
        above = lines[idx - 1].strip()
        assert above.startswith("#") and len(above) > 10, f"{name}: needs a comment on the line above"


def test_run_time_marks_match_the_dynamic_parameters():
    lines = CONFIG.read_text(encoding="utf-8").splitlines()
    for name, spec in PARAMETERS.items():
        idx = next(i for i, line in enumerate(lines) if re.match(rf"^\s+{name}:", line))
        assert ("(run time)" in lines[idx - 1]) == spec.dynamic, f"{name}: '(run time)' mark vs dynamic={spec.dynamic}"


def test_a_bad_value_in_such_a_file_is_named():
    text = CONFIG.read_text(encoding="utf-8").replace('backend: "dcmpnet"', 'backend: "dehazeformer"')
    with pytest.raises(ParameterError, match=r"^backend: expected one of: dcmpnet, dcp, got 'dehazeformer'"):
        params_from_yaml_text(text, source="edited.yaml")


def test_installed_by_setup_py():
    assert '("share/" + PACKAGE + "/config", glob("config/*.yaml"))' in (ROOT / "setup.py").read_text()


def test_cpu_live_profile_is_a_valid_partial_parameter_file():
    path = ROOT / "config" / "dehaze_cpu_live.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert list(doc) == ["/**/dehaze_node"]
    section = doc["/**/dehaze_node"]["ros__parameters"]
    assert set(section) <= set(PARAMETERS)
    params = load_params_yaml(path)
    assert (params.precision, params.mode, params.max_pixels) == ("bf16", "auto", 76800)
    assert (params.torch_threads, params.warmup_width, params.warmup_height) == (1, 640, 480)
    defaults = NodeParams.from_mapping({})
    assert params.weights == defaults.weights and params.backend == defaults.backend
