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
* ``dehazed_image_topic``, ``dehazed_depth_topic``, ``dehazed_camera_info_topic``: remap the outputs (empty:
  ``dehazed/image`` etc. in the node's namespace), e.g. straight onto a detector's input topic.
* ``log_level``: debug, info, warn, error or fatal (the node's ``--log-level``).
* ``lifecycle``: ``true`` starts ``dehaze_lifecycle_node`` (a managed node) instead of ``dehaze_node``;
  ``autostart`` (default ``true``) then configures and activates it, ``false`` leaves that to a lifecycle
  manager (e.g. nav2_lifecycle_manager) or ``ros2 lifecycle set``.
"""
from __future__ import annotations

import os

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "dcmpnet_ros"
NODE_NAME = "dehaze_node"
LIFECYCLE_EXECUTABLE = "dehaze_lifecycle_node"
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
OUTPUTS = {"dehazed_image_topic": "dehazed/image", "dehazed_depth_topic": "dehazed/depth",
           "dehazed_camera_info_topic": "dehazed/camera_info"}
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


def parse_log_level(text: str) -> str:
    """A launch argument's log level in lower case; raises ValueError naming the argument."""
    word = text.strip().lower()
    if word not in LOG_LEVELS:
        raise ValueError(f"launch argument log_level: expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return word


def output_remappings(topics: dict) -> list:
    """(node topic, target) pairs for the output arguments that are not empty; ``topics`` maps argument -> text."""
    return [(OUTPUTS[name], topic.strip()) for name, topic in topics.items() if topic.strip()]


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
    lifecycle = parse_bool("lifecycle", arg("lifecycle"))
    autostart = parse_bool("autostart", arg("autostart"))
    options = dict(
        package=PACKAGE,
        name=NODE_NAME,
        namespace=arg("namespace"),
        # Later entries win: explicit launch arguments override the file.
        parameters=([params_file] if params_file else []) + [overrides],
        remappings=[
            ("image", image_topic),
            ("image/compressed", image_topic.rstrip("/") + "/compressed"),
            ("camera_info", camera_info_topic(image_topic)),
        ] + output_remappings({name: arg(name) for name in OUTPUTS}),
        arguments=["--ros-args", "--log-level", parse_log_level(arg("log_level"))],
        output="screen",
        emulate_tty=True,
    )
    if not lifecycle:
        return [Node(executable=NODE_NAME, **options)]
    return _lifecycle_node(options, autostart)


def _lifecycle_node(options: dict, autostart: bool) -> list:
    """The managed node; with ``autostart`` configure it at once and activate it once it is inactive."""
    from launch.actions import EmitEvent, RegisterEventHandler
    from launch.events import matches_action
    from launch_ros.actions import LifecycleNode
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    node = LifecycleNode(executable=LIFECYCLE_EXECUTABLE, **options)
    if not autostart:
        return [node]

    def change(transition: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition))

    activate = RegisterEventHandler(OnStateTransition(target_lifecycle_node=node, goal_state="inactive",
                                                      entities=[change(Transition.TRANSITION_ACTIVATE)]))
    return [node, activate, change(Transition.TRANSITION_CONFIGURE)]


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
        DeclareLaunchArgument("dehazed_image_topic", default_value="",
                              description="topic for the dehazed image; empty: dehazed/image in the namespace"),
        DeclareLaunchArgument("dehazed_depth_topic", default_value="",
                              description="topic for the relative depth; empty: dehazed/depth in the namespace"),
        DeclareLaunchArgument("dehazed_camera_info_topic", default_value="",
                              description="topic for the re-stamped camera_info; empty: dehazed/camera_info"),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="the node's log level: debug, info, warn, error or fatal"),
        DeclareLaunchArgument("lifecycle", default_value="false",
                              description="true: run dehaze_lifecycle_node, a managed node (configure loads the "
                                          "model and warms it up, activate subscribes)"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="with lifecycle:=true, configure and activate at once; false: wait for "
                                          "a lifecycle manager"),
        OpaqueFunction(function=_node),
    ])
