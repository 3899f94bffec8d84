"""dcmpnet_core never imports ROS; the ROS-free parts of dcmpnet_ros do not import rclpy."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "cv_bridge", "diagnostic_msgs", "launch_ros", "rosidl_runtime_py")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return set(res.stdout.split())


def test_core_loads_no_ros_module():
    mods = _loaded_after("import dcmpnet_core, dcmpnet_core.models.dcmpnet, dcmpnet_core.cli")
    assert "dcmpnet_core" in mods
    assert not {m for m in mods if m.split(".")[0] in ROS_MODULES}


def test_cli_help_is_fast_and_ros_free():
    mods = _loaded_after("import dcmpnet_ros.cli")
    assert not {m for m in mods if m.split(".")[0] in ROS_MODULES}
    assert "torch" not in mods, "the CLI parser must not import torch before a command runs"


def test_node_logic_modules_are_ros_free():
    mods = _loaded_after("import dcmpnet_ros.pipeline, dcmpnet_ros.params, dcmpnet_ros.diagnostics")
    assert not {m for m in mods if m.split(".")[0] in ROS_MODULES}
