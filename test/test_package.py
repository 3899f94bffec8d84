"""package.xml, setup.py and the code agree on what the package needs and installs."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
catkin_pkg = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg (PyPI) parses package.xml")

# Python import name -> rosdep key declared in package.xml (ROS side).
ROSDEP_KEYS = {
    "rclpy": "rclpy", "sensor_msgs": "sensor_msgs", "std_msgs": "std_msgs", "diagnostic_msgs": "diagnostic_msgs",
    "launch": "launch", "launch_ros": "launch_ros", "builtin_interfaces": "builtin_interfaces",
    "numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml", "tqdm": "python3-tqdm",
    "launch_testing": "launch_testing", "launch_testing_ros": "launch_testing_ros", "pytest": "python3-pytest",
    "rcl_interfaces": "rcl_interfaces", "ament_index_python": "ament_index_python", "rosgraph_msgs": "rosgraph_msgs",
    "PIL": "python3-pil",
    "lifecycle_msgs": "lifecycle_msgs",
}
# Python import name -> pip distribution (documented pip dependencies, not in rosdep).
PIP_DISTS = {
    "torch": "torch", "scipy": "scipy", "torchvision": "torchvision", "timm": "timm", "rosbags": "rosbags",
    "skimage": "scikit-image",
    "onnx": "onnx", "onnxruntime": "onnxruntime", "onnxscript": "onnxscript",
    "torch_tensorboard": "tensorboard", "tensorboard": "tensorboard", "mcap": "mcap", "mcap_ros2": "mcap-ros2-support",
    "catkin_pkg": "catkin_pkg", "pytorch_msssim": "pytorch-msssim", "packaging": "packaging",
}
OWN = {"dcmpnet_core", "dcmpnet_ros"}


def _package():
    return catkin_pkg.parse_package(str(ROOT / "package.xml"))


def _imports(folders: list[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for n in names:
                    found.setdefault(n.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_package_xml_is_valid_format_3_ament_python():
    pkg = _package()
    pkg.validate()
    assert pkg.name == "dcmpnet_ros" and pkg.package_format == 3
    assert pkg.get_build_type() == "ament_python"


def test_package_xml_declares_the_required_dependencies():
    pkg = _package()
    exec_deps = {d.name for d in pkg.exec_depends}
    test_deps = {d.name for d in pkg.test_depends}
    assert {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "launch", "launch_ros",
            "python3-numpy", "python3-opencv"} <= exec_deps
    assert {"ament_flake8", "ament_pep257", "python3-pytest"} <= test_deps
    assert "cv_bridge" not in exec_deps, "messages are converted by dcmpnet_ros.conversions, not cv_bridge"


def test_every_import_is_declared():
    pkg = _package()
    declared_ros = {d.name for d in (*pkg.exec_depends, *pkg.test_depends)}
    requires = importlib.metadata.requires("dcmpnet_ros") or []
    declared_pip = {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in requires}
    stdlib = set(sys.stdlib_module_names)
    problems = []
    for name, where in sorted(_imports(["dcmpnet_core", "dcmpnet_ros", "launch", "test"]).items()):
        local_helper = (ROOT / "test" / "helpers" / f"{name}.py").exists()
        if name in stdlib or name in OWN or name == "__future__" or local_helper:
            continue
        if name in ROSDEP_KEYS:
            if ROSDEP_KEYS[name] not in declared_ros:
                problems.append(f"{name} ({sorted(where)[0]}): add <exec_depend>{ROSDEP_KEYS[name]}</exec_depend>")
        elif name in PIP_DISTS:
            dist = PIP_DISTS[name]
            if dist is not None and dist.lower() not in declared_pip:
                problems.append(f"{name} ({sorted(where)[0]}): add {dist} to setup.py")
        else:
            problems.append(f"{name} ({sorted(where)[0]}): unknown dependency, declare it")
    assert not problems, "\n".join(problems)


def test_core_pip_dependencies_are_ranges_not_pins():
    for req in importlib.metadata.requires("dcmpnet_ros") or []:
        spec = req.split(";")[0]
        assert "==" not in spec, f"{req}: use a range, not a pin"


def test_setup_installs_ros_resources():
    text = (ROOT / "setup.py").read_text()
    for needle in ("share/ament_index/resource_index/packages", "resource/", "package.xml",
                   "launch/*.launch.py", "config/*.yaml", "dcmpnet = dcmpnet_ros.cli:main",
                   "dehaze_node = dcmpnet_ros.node:main"):
        assert needle in text, needle
    assert (ROOT / "resource" / "dcmpnet_ros").exists()


def test_readme_quick_start_matches_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make demo" in readme
    assert re.search(r"^make test$", ci, re.M), ".ci/run must call the README's test command"


def test_dev_extra_installs_every_other_extra():
    """`make test` installs ".[dev]": it must bring every optional dependency the commands and tests use."""
    by_extra: dict[str, set[str]] = {}
    for req in importlib.metadata.requires("dcmpnet_ros") or []:
        found = re.search(r"""extra\s*==\s*['"]([\w-]+)['"]""", req)
        name = re.split(r"[<>=!~ ;\[]", req, maxsplit=1)[0].lower()
        by_extra.setdefault(found.group(1) if found else "", set()).add(name)
    assert {"train", "bag", "onnx", "dev"} <= set(by_extra)
    for extra, names in by_extra.items():
        assert extra == "" or names <= by_extra["dev"], f"[dev] lacks {sorted(names - by_extra['dev'])} of [{extra}]"
    assert not {"timm", "torchvision", "rosbags", "scikit-image", "scipy"} & by_extra[""], \
        "training and bag-replay packages belong in extras, not in the node's install_requires"
