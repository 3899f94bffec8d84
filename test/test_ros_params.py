"""Node parameters: defaults, validation with the parameter named, QoS presets and ROS 2 YAML parameter files."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dcmpnet_ros.params import (
    PARAMETERS,
    QOS_NAMES,
    NodeParams,
    ParameterError,
    load_params_yaml,
    parameters_markdown,
    params_from_yaml_text,
    qos_profile_spec,
)

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_DEFAULTS = {
    "weights": "", "backend": "dcmpnet", "device": "auto", "precision": "fp32", "mode": "auto", "max_pixels": 0,
    "inference_scale": 1.0, "publish_depth": True, "depth_scale": 0.0, "input_transport": "raw",
    "use_camera_info": True, "input_qos": "sensor_data", "input_qos_depth": 1, "output_qos": "default",
    "output_qos_depth": 10, "lazy": False, "diagnostics_period": 1.0, "log_throttle_s": 5.0,
}


def test_defaults_agree_everywhere():
    assert list(PARAMETERS) == list(EXPECTED_DEFAULTS)
    assert NodeParams().to_dict() == EXPECTED_DEFAULTS
    assert NodeParams.from_mapping({}) == NodeParams()
    fields = {f.name: f.default for f in dataclasses.fields(NodeParams)}
    for name, spec in PARAMETERS.items():
        assert fields[name] == spec.default and type(spec.default) is spec.type
        assert spec.description.endswith(".") and len(spec.description) > 20
    assert NodeParams().relative_depth


def test_from_mapping_converts_and_is_frozen():
    params = NodeParams.from_mapping({"device": "cuda:1", "precision": "fp16", "max_pixels": 1_000_000,
                                      "inference_scale": 1, "depth_scale": 80, "lazy": True})
    assert params.device == "cuda:1" and params.max_pixels == 1_000_000
    assert params.inference_scale == 1.0 and isinstance(params.inference_scale, float)
    assert params.depth_scale == 80.0 and not params.relative_depth
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.device = "cpu"
    assert params.replace(publish_depth=False).publish_depth is False
    with pytest.raises(ParameterError, match=r"^depth_scale: expected >= 0, got -1"):
        params.replace(depth_scale=-1)


@pytest.mark.parametrize("values,message", [
    ({"devcie": "cpu"}, r"^devcie: unknown parameter; known: weights, backend, device"),
    ({"zz": 1, "aa": 2}, r"^aa: unknown parameter \(also unknown: zz\)"),
    ({"backend": "ffa"}, r"^backend: expected one of: dcmpnet, dcp, got 'ffa'"),
    ({"device": "gpu"}, r"^device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
    ({"device": "cuda:x"}, r"^device: expected auto, cpu, cuda or cuda:N, got 'cuda:x'"),
    ({"device": 0}, r"^device: expected str, got int 0"),
    ({"precision": "int8"}, r"^precision: expected one of: fp32, tf32, fp16, bf16, got 'int8'"),
    ({"max_pixels": -1}, r"^max_pixels: expected 0 or >= 4096, got -1"),
    ({"max_pixels": 100}, r"^max_pixels: expected 0 or >= 4096, got 100"),
    ({"max_pixels": 1.5e6}, r"^max_pixels: expected int, got float 1500000.0"),
    ({"max_pixels": True}, r"^max_pixels: expected int, got bool True"),
    ({"inference_scale": 0.0}, r"^inference_scale: expected > 0 and <= 1, got 0.0"),
    ({"inference_scale": 1.5}, r"^inference_scale: expected > 0 and <= 1, got 1.5"),
    ({"inference_scale": float("nan")}, r"^inference_scale: expected a finite number, got nan"),
    ({"publish_depth": "true"}, r"^publish_depth: expected bool, got str 'true'"),
    ({"publish_depth": 1}, r"^publish_depth: expected bool, got int 1"),
    ({"depth_scale": float("inf")}, r"^depth_scale: expected a finite number, got inf"),
    ({"input_transport": "theora"}, r"^input_transport: expected one of: raw, compressed, got 'theora'"),
    ({"input_qos": "fast"}, r"^input_qos: expected one of: sensor_data, default, system_default, reliable, "
                            r"best_effort, got 'fast'"),
    ({"input_qos_depth": 0}, r"^input_qos_depth: expected >= 1 and <= 1000, got 0"),
    ({"output_qos_depth": 5000}, r"^output_qos_depth: expected >= 1 and <= 1000, got 5000"),
    ({"diagnostics_period": 0}, r"^diagnostics_period: expected > 0 and <= 3600, got 0.0"),
    ({"log_throttle_s": -0.5}, r"^log_throttle_s: expected >= 0, got -0.5"),
    ({"weights": None}, r"^weights: expected str, got NoneType None"),
])
def test_bad_values_name_the_parameter(values, message):
    with pytest.raises(ParameterError, match=message) as info:
        NodeParams.from_mapping(values)
    assert info.value.name == str(message[1:]).split(":")[0]


def test_ros_builtin_parameters_are_skipped():
    values = {"use_sim_time": True, "qos_overrides./image.subscription.depth": 5, "device": "cpu"}
    assert NodeParams.from_mapping(values) == NodeParams(device="cpu")


def test_constructor_validates_too():
    with pytest.raises(ParameterError, match="^precision: "):
        NodeParams(precision="fp64")
    with pytest.raises(TypeError, match="values: expected a mapping"):
        NodeParams.from_mapping([("device", "cpu")])


def test_every_choice_is_accepted():
    for name, spec in PARAMETERS.items():
        for choice in spec.choices:
            assert getattr(NodeParams.from_mapping({name: choice}), name) == choice
    for device in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert NodeParams(device=device).device == device
    assert NodeParams(max_pixels=4096).max_pixels == 4096 and NodeParams(inference_scale=1e-3)


@pytest.mark.parametrize("name", QOS_NAMES)
def test_qos_profile_spec(name):
    spec = qos_profile_spec(name, 3)
    assert set(spec) == {"reliability", "history", "durability", "depth"} and spec["depth"] == 3
    expected = {"sensor_data": "best_effort", "best_effort": "best_effort", "default": "reliable",
                "reliable": "reliable", "system_default": "system_default"}[name]
    assert spec["reliability"] == expected
    assert spec["history"] in ("keep_last", "system_default")
    assert spec["durability"] in ("volatile", "system_default")


def test_qos_profile_spec_errors():
    with pytest.raises(ParameterError, match="^input_qos: expected one of: sensor_data"):
        qos_profile_spec("fastest", 1, param="input_qos")
    with pytest.raises(ParameterError, match="^output_qos_depth: expected an int >= 1, got 0"):
        qos_profile_spec("default", 0, param="output_qos")


def test_constraints_text_for_descriptors():
    assert PARAMETERS["inference_scale"].constraints == "> 0 and <= 1"
    assert PARAMETERS["backend"].constraints == "one of: dcmpnet, dcp"
    assert PARAMETERS["max_pixels"].constraints == "0 or >= 4096"
    table = parameters_markdown()
    assert table.count("\n") == len(PARAMETERS) + 1 and "| `publish_depth` | bool | `true` |" in table


# ------------------------------------------------------------------------------------ ROS 2 parameter files
GOOD_YAML = """
/**:
  ros__parameters:
    use_sim_time: false
    log_throttle_s: 2.0
dehaze_node:
  ros__parameters:
    device: cuda
    precision: fp16
    max_pixels: 921600
    publish_depth: true
    depth_scale: 0.0
    input_qos: sensor_data
"""


def test_yaml_sections_merge(tmp_path):
    path = tmp_path / "dehaze.yaml"
    path.write_text(GOOD_YAML)
    params = load_params_yaml(path)
    assert (params.device, params.precision, params.max_pixels, params.log_throttle_s) == ("cuda", "fp16", 921600,
                                                                                           2.0)
    assert params.input_qos_depth == 1                            # default


def test_yaml_namespaced_node_and_override():
    text = """
/robot/dehaze_node:
  ros__parameters: {device: cpu, lazy: true}
dehaze_node:
  ros__parameters: {device: cuda:0}
"""
    params = params_from_yaml_text(text)
    assert params.device == "cpu" and params.lazy                 # the namespaced section is the most specific


@pytest.mark.parametrize("text,message", [
    ("dehaze_node:\n  ros__parameters:\n    precision: fp8\n", "^precision: expected one of"),
    ("dehaze_node:\n  ros__parameters:\n    max_pixels: '1000000'\n", "^max_pixels: expected int, got str"),
    ("dehaze_node:\n  ros__parameters:\n    qos:\n      depth: 3\n", r"^qos\.depth: unknown parameter"),
    ("other_node:\n  ros__parameters:\n    device: cpu\n", "no 'dehaze_node: ros__parameters:' section"),
    ("dehaze_node:\n  device: cpu\n", "'dehaze_node' needs a 'ros__parameters:' mapping"),
    ("dehaze_node: [1, 2\n", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping of node names"),
])
def test_yaml_errors(text, message):
    with pytest.raises(ValueError, match=message):
        params_from_yaml_text(text)


def test_project_config_file_is_valid():
    """config/dehaze.yaml (written with the node) must pass the same validation the node applies."""
    path = ROOT / "config" / "dehaze.yaml"
    if not path.exists():
        pytest.skip("config/dehaze.yaml is not there yet")
    params = load_params_yaml(path)
    assert isinstance(params, NodeParams)
