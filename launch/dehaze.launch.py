"""Start dcmpnet_ros's dehaze_node on a camera topic.

``ros2 launch dcmpnet_ros dehaze.launch.py`` subscribes to ``/camera/image_raw`` and publishes
``/dehazed/image``, ``/dehazed/depth`` and ``/dehazed/camera_info``. Arguments (``name:=value``):

* ``image_topic``: the camera's image topic; ``<image_topic>/compressed`` is used with
  ``input_transport: compressed`` and the ``camera_info`` topic beside it (``/camera/camera_info`` for
  ``/camera/image_raw``), as image_transport names them.
* ``namespace``: pushes the node and its outputs into a namespace (``/<namespace>/dehazed/image``).
* ``params_file``: a YAML parameter file (default: the installed ``config/dehaze.yaml``).
* ``weights``, ``device``, ``backend``: override the parameter file when not empty.
* ``use_sim_time``: ``true`` to follow ``/clock`` (``ros2 bag play --clock``).
"""
from __future__ import annotations

import os

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "dcmpnet_ros"
NODE_NAME = "dehaze_node"
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def camera_info_topic(image_topic: str) -> str:
    """The ``camera_info`` topic beside ``image_topic`` (``/cam/image_raw`` -> ``/cam/camera_info``)."""
    head, sep, _ = image_topic.rstrip("/").rpartition("/")
    return f"{head}{sep}camera_info"


def parse_bool(name: str, text: str) -> bool:
    """A launch argument's text as a bool; raises ValueError naming the argument."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"launch argument {name}: expected true or false, got {text!r}")


def default_params_file() -> str:
    """The installed config/dehaze.yaml (empty when the package is not installed in the ament index)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return ""
    try:
        return os.path.join(get_package_share_directory(PACKAGE), "config", "dehaze.yaml")
    except PackageNotFoundError:
        return ""


def _node(context: LaunchContext) -> list:
    def arg(name: str) -> str:
        return LaunchConfiguration(name).perform(context).strip()

    image_topic = arg("image_topic")
    if not image_topic:
        raise ValueError("launch argument image_topic: expected a topic name, got an empty string")
    params_file = arg("params_file")
    if params_file and not os.path.isfile(params_file):
        raise FileNotFoundError(f"launch argument params_file: no such file: {params_file!r}")
    overrides = {name: arg(name) for name in ("weights", "device", "backend") if arg(name)}
    overrides["use_sim_time"] = parse_bool("use_sim_time", arg("use_sim_time"))
    return [Node(
        package=PACKAGE,
        executable=NODE_NAME,
        name=NODE_NAME,
        namespace=arg("namespace"),
        # Later entries win: explicit launch arguments override the file.
        parameters=([params_file] if params_file else []) + [overrides],
        remappings=[
            ("image", image_topic),
            ("image/compressed", image_topic.rstrip("/") + "/compressed"),
            ("camera_info", camera_info_topic(image_topic)),
        ],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="camera image topic (sensor_msgs/Image); its /compressed and the "
                                          "camera_info topic beside it are used as image_transport names them"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and of its dehazed/* outputs"),
        DeclareLaunchArgument("params_file", default_value=default_params_file(),
                              description="YAML parameter file with a /**/dehaze_node: ros__parameters: section"),
        DeclareLaunchArgument("weights", default_value="",
                              description="checkpoint path; empty: the parameter file's value"),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu, cuda or cuda:N; empty: the parameter file's value"),
        DeclareLaunchArgument("backend", default_value="",
                              description="dcmpnet or dcp (no weights needed); empty: the parameter file's value"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="true to use /clock, e.g. with ros2 bag play --clock"),
        OpaqueFunction(function=_node),
    ])
