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

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_DEFAULTS = {
    "weights": "", "backend": "dcmpnet", "device": "auto", "precision": "fp32", "mode": "auto", "warmup_width": 0,
    "warmup_height": 0, "torch_threads": 0, "max_pixels": 0, "max_input_pixels": 40_000_000,
    "inference_scale": 1.0, "publish_depth": True, "depth_scale": 0.0, "bypass_below": 0.53, "bypass_band": 0.05,
    "haze_warn_level": 0.6, "input_transport": "raw",
    "image_transport": "", "use_camera_info": True, "input_qos": "sensor_data", "input_qos_depth": 1,
    "output_qos": "default",
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


def test_pass_through_defaults_are_the_engines():
    from dcmpnet_core.inference import haze_level

    assert PARAMETERS["bypass_below"].default == haze_level.DEFAULT_BYPASS_BELOW
    assert PARAMETERS["bypass_band"].default == haze_level.DEFAULT_BYPASS_BAND
    assert PARAMETERS["bypass_below"].dynamic and PARAMETERS["bypass_band"].dynamic
    assert PARAMETERS["haze_warn_level"].dynamic
    with pytest.raises(ParameterError, match=r"^bypass_below: expected >= 0 and <= 0.99, got 1.0"):
        NodeParams(bypass_below=1.0)


def test_from_mapping_converts_and_is_frozen():
    params = NodeParams.from_mapping({"device": "cuda:1", "precision": "fp16", "max_pixels": 1_000_000,
                                      "inference_scale": 1, "depth_scale": 80, "lazy": True})
    assert params.device == "cuda:1" and params.max_pixels == 1_000_000
    assert params.inference_scale == 1.0 and isinstance(params.inference_scale, float)
    assert params.depth_scale == 80.0 and not params.relative_depth
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.device = "cpu"
    assert params.replace(publish_depth=False).publish_depth is False
    with pytest.raises(ParameterError, match=r"^depth_scale: expected >= 0 and <= 10000, got -1"):
        params.replace(depth_scale=-1)


@pytest.mark.parametrize("values,message", [
    ({"devcie": "cpu"}, r"^devcie: unknown parameter; known: weights, backend, device"),
    ({"zz": 1, "aa": 2}, r"^aa: unknown parameter \(also unknown: zz\)"),
    ({"backend": "ffa"}, r"^backend: expected one of: dcmpnet, dcp, got 'ffa'"),
    ({"device": "gpu"}, r"^device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
    ({"device": "cuda:x"}, r"^device: expected auto, cpu, cuda or cuda:N, got 'cuda:x'"),
    ({"device": 0}, r"^device: expected str, got int 0"),
    ({"precision": "int8"}, r"^precision: expected one of: fp32, tf32, fp16, bf16, got 'int8'"),
    ({"max_pixels": -1}, r"^max_pixels: expected 0 or >= 4096 and <= 1000000000, got -1"),
    ({"max_pixels": 100}, r"^max_pixels: expected 0 or >= 4096 and <= 1000000000, got 100"),
    ({"max_pixels": 2_000_000_000}, r"^max_pixels: expected 0 or >= 4096 and <= 1000000000, got 2000000000"),
    ({"depth_scale": 20000.0}, r"^depth_scale: expected >= 0 and <= 10000, got 20000.0"),
    ({"warmup_width": -1}, r"^warmup_width: expected >= 0 and <= 16384, got -1"),
    ({"torch_threads": 1000}, r"^torch_threads: expected >= 0 and <= 256, got 1000"),
    ({"image_transport": "theora"}, r'^image_transport: expected one of: "", raw, compressed, got \'theora\''),
    ({"image_transport": "raw", "input_transport": "compressed"},
     r"^image_transport: 'raw' contradicts input_transport 'compressed'; set only one of them"),
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
    ({"log_throttle_s": -0.5}, r"^log_throttle_s: expected >= 0 and <= 3600, got -0.5"),
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
    assert PARAMETERS["max_pixels"].constraints == "0 or >= 4096 and <= 1000000000"
    table = parameters_markdown()
    assert table.count("\n") == len(PARAMETERS) + 1 and "| `publish_depth` | bool | `true` |" in table


def test_readme_parameter_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Parameters"):readme.index("### Launch arguments")]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert "\n".join(rows) == parameters_markdown(), \
        "README's parameter table differs from the code: paste the output of `python -m dcmpnet_ros.params`"


def test_descriptors_are_typed_with_ranges():
    types = {"bool": bool, "integer": int, "double": float, "string": str}
    for name, spec in PARAMETERS.items():
        fields = spec.descriptor_fields()
        assert fields["name"] == name and types[fields["type"]] is spec.type
        assert fields["read_only"] == (not spec.dynamic) and fields["description"] == spec.description
        if spec.type in (int, float):
            low, high = fields["range"]
            assert type(low) is spec.type and type(high) is spec.type and low < high, name
            assert low <= spec.default <= high, name
            spec.validate(high)                                   # the range's ends are real values ...
            if not spec.low_open and name != "max_pixels":
                spec.validate(low)
            with pytest.raises(ParameterError):                   # ... and nothing beyond them passes
                spec.validate(high + (1 if spec.type is int else 1e-6 * max(1.0, high)))
        else:
            assert "range" not in fields
    assert PARAMETERS["inference_scale"].descriptor_fields()["range"] == (0.0, 1.0)
    assert PARAMETERS["input_qos_depth"].descriptor_fields()["range"] == (1, 1000)


@pytest.mark.parametrize("text,expected", [("SENSOR_DATA", "sensor_data"), ("Best_Effort", "best_effort"),
                                           ("System_Default", "system_default")])
def test_qos_names_in_any_case(text, expected):
    params = NodeParams.from_mapping({"input_qos": text, "output_qos": text})
    assert params.input_qos == expected and params.output_qos == expected
    assert qos_profile_spec(text, 1) == qos_profile_spec(expected, 1)


def test_image_transport_is_an_alias_of_input_transport():
    assert NodeParams(image_transport="compressed").input_transport == "compressed"
    assert NodeParams(image_transport="raw").input_transport == "raw"
    assert NodeParams(image_transport="compressed", input_transport="compressed").input_transport == "compressed"
    assert NodeParams().input_transport == "raw" and NodeParams().image_transport == ""


def test_warmup_shape():
    assert NodeParams().warmup_shape is None and NodeParams(warmup_width=640).warmup_shape is None
    assert NodeParams(warmup_width=640, warmup_height=480).warmup_shape == (480, 640)


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
    ("dehaze_node:\n  ros__parameters:\n    depth_scale: 20\n",
     r"^depth_scale: expected a double, got the integer 20 \(write 20\.0: the node declares it as a double"),
    ("- a\n- b\n", "expected a mapping of node names"),
])
def test_yaml_errors(text, message):
    with pytest.raises(ValueError, match=message):
        params_from_yaml_text(text)


def test_project_config_file_is_valid():
    """config/dehaze.yaml (written with the node) must pass the same validation the node applies."""
    path = ROOT / "config" / "dehaze.yaml"
    assert path.is_file(), f"{path} is missing"
    params = load_params_yaml(path)
    assert isinstance(params, NodeParams)
