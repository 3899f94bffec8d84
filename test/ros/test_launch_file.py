"""launch/dehaze.launch.py declares the documented arguments; checked without ROS (AST, plus its pure helpers)."""
from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "dehaze.launch.py"
EXPECTED_DEFAULTS = {
    "image_topic": "/camera/image_raw",
    "namespace": "",
    "weights": "",
    "device": "",
    "backend": "",
    "use_sim_time": "false",
    "dehazed_image_topic": "",
    "dehazed_depth_topic": "",
    "dehazed_camera_info_topic": "",
    "log_level": "info",
    "lifecycle": "false",
    "autostart": "true",
}
HELPERS = ("camera_info_topic", "parse_bool", "parse_log_level", "output_remappings")


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
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in HELPERS
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


def test_log_level_words():
    parse_log_level = _helpers().parse_log_level
    assert [parse_log_level(w) for w in ("DEBUG", "info", " Warn ", "error", "fatal")] == \
        ["debug", "info", "warn", "error", "fatal"]
    with pytest.raises(ValueError, match="log_level: expected one of debug, info, warn, error, fatal, got 'loud'"):
        parse_log_level("loud")


def test_output_remappings():
    remap = _helpers().output_remappings
    assert remap({"dehazed_image_topic": "", "dehazed_depth_topic": " ", "dehazed_camera_info_topic": ""}) == []
    assert remap({"dehazed_image_topic": "/perception/image", "dehazed_depth_topic": "",
                  "dehazed_camera_info_topic": "/perception/camera_info"}) == [
        ("dehazed/image", "/perception/image"), ("dehazed/camera_info", "/perception/camera_info")]


def test_lifecycle_node_is_a_console_script_and_the_launch_drives_it():
    source = LAUNCH.read_text(encoding="utf-8")
    assert 'LIFECYCLE_EXECUTABLE = "dehaze_lifecycle_node"' in source
    assert '"dehaze_lifecycle_node = dcmpnet_ros.lifecycle_node:main"' in (ROOT / "setup.py").read_text()
    for needle in ("LifecycleNode(executable=LIFECYCLE_EXECUTABLE", "Transition.TRANSITION_CONFIGURE",
                   'goal_state="inactive"', "Transition.TRANSITION_ACTIVATE",
                   '"--log-level", parse_log_level(arg("log_level"))'):
        assert needle in source, needle


# ------------------------------------------------------------------ README launch examples use real arguments
def _readme_launch_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.split("#")[0].strip() for line in text.splitlines()
            if "ros2 launch dcmpnet_ros dehaze.launch.py" in line and not line.lstrip().startswith("`")]


def _check_argument(name: str, value: str) -> None:
    helpers = _helpers()
    assert name in _declared_arguments(), f"README passes {name}:= but the launch file declares no such argument"
    if name in ("use_sim_time", "lifecycle", "autostart"):
        helpers.parse_bool(name, value)
    if name == "log_level":
        helpers.parse_log_level(value)
    if name.endswith("_topic"):
        assert value.startswith("/") or value.startswith("$"), f"{name}: give an absolute topic, got {value!r}"


def test_readme_launch_commands_use_declared_arguments():
    commands = _readme_launch_commands()
    assert len(commands) >= 8
    for command in commands:
        tail = command.split("ros2 launch dcmpnet_ros dehaze.launch.py", 1)[1]
        for word in tail.split():
            if ":=" in word:
                _check_argument(*word.split(":=", 1))


def test_readme_python_launch_examples_use_declared_arguments():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    includes = 0
    for block in blocks:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "IncludeLaunchDescription":
                source = ast.unparse(node.args[0])
                args = _keyword(node, "launch_arguments")
                if "dehaze.launch.py" not in source or args is None:
                    continue
                includes += 1
                if isinstance(args, ast.Call) and getattr(args.func, "attr", "") == "items":
                    args = args.func.value                       # the usual {...}.items()
                for key, value in ast.literal_eval(args).items():
                    _check_argument(key, value)
    assert includes >= 2, "the recipes include dehaze.launch.py from Python launch files"
