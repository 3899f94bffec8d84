"""launch/dehaze.launch.py declares the documented arguments; checked without ROS (AST, plus its pure helpers)."""
from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "dehaze.launch.py"
EXPECTED_DEFAULTS = {
    "image_topic": "/camera/image_raw",
    "namespace": "",
    "weights": "",
    "device": "",
    "backend": "",
    "use_sim_time": "false",
}


def _declared_arguments() -> dict[str, ast.Call]:
    tree = ast.parse(LAUNCH.read_text(encoding="utf-8"))
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            name = node.args[0].value if node.args else next(k.value.value for k in node.keywords if k.arg == "name")
            assert name not in found, f"{name} declared twice"
            found[name] = node
    return found


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _helpers() -> types.ModuleType:
    """The launch file's module-level functions that need no ROS (launch imports are left out)."""
    tree = ast.parse(LAUNCH.read_text(encoding="utf-8"))
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in ("camera_info_topic", "parse_bool")
            or isinstance(n, ast.Assign) or isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    module = types.ModuleType("dehaze_launch_helpers")
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(LAUNCH), "exec"), module.__dict__)
    return module


def test_declares_exactly_the_documented_arguments():
    assert set(_declared_arguments()) == set(EXPECTED_DEFAULTS) | {"params_file"}


@pytest.mark.parametrize("name,default", sorted(EXPECTED_DEFAULTS.items()))
def test_literal_defaults(name, default):
    value = _keyword(_declared_arguments()[name], "default_value")
    assert isinstance(value, ast.Constant), f"{name}: default must be a literal"
    assert value.value == default


def test_every_argument_has_a_description():
    for name, call in _declared_arguments().items():
        desc = _keyword(call, "description")
        assert desc is not None and isinstance(ast.literal_eval(desc), str) and ast.literal_eval(desc).strip(), name


def test_params_file_defaults_to_the_installed_config():
    value = _keyword(_declared_arguments()["params_file"], "default_value")
    assert isinstance(value, ast.Call) and value.func.id == "default_params_file"
    source = LAUNCH.read_text(encoding="utf-8")
    assert 'get_package_share_directory(PACKAGE), "config", "dehaze.yaml"' in source
    assert (ROOT / "config" / "dehaze.yaml").is_file()


def test_node_is_the_console_script_and_remaps_its_inputs():
    source = LAUNCH.read_text(encoding="utf-8")
    assert 'NODE_NAME = "dehaze_node"' in source and "executable=NODE_NAME" in source
    assert '"dehaze_node = dcmpnet_ros.node:main"' in (ROOT / "setup.py").read_text(encoding="utf-8")
    for remap in ('("image", image_topic)', '("image/compressed", image_topic.rstrip("/") + "/compressed")',
                  '("camera_info", camera_info_topic(image_topic))'):
        assert remap in source


@pytest.mark.parametrize("image,info", [
    ("/camera/image_raw", "/camera/camera_info"),
    ("/stereo/left/image_rect_color", "/stereo/left/camera_info"),
    ("image_raw", "camera_info"),
    ("cam/image", "cam/camera_info"),
    ("/image", "/camera_info"),
    ("/camera/image_raw/", "/camera/camera_info"),
])
def test_camera_info_is_the_sibling_topic(image, info):
    assert _helpers().camera_info_topic(image) == info


def test_use_sim_time_words():
    parse_bool = _helpers().parse_bool
    assert parse_bool("use_sim_time", "True") is True and parse_bool("use_sim_time", "false") is False
    with pytest.raises(ValueError, match="use_sim_time: expected true or false, got 'maybe'"):
        parse_bool("use_sim_time", "maybe")
