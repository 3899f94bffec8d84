"""DehazeLifecycleNode on a live ROS 2 graph, driven over the lifecycle services as a lifecycle manager does.

Needs ROS 2 (rclpy, lifecycle_msgs); skipped otherwise, e.g. in CI. The node runs the dark-channel-prior backend
(no weights needed) and talks to a probe node over the middleware.
"""
from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy): source /opt/ros/<distro>/setup.bash")
pytest.importorskip("rclpy.lifecycle", reason="needs rclpy.lifecycle (ROS 2 Humble or newer)")
pytestmark = pytest.mark.ros

from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_graph import Probe, image_msg, init_rclpy, photo  # noqa: E402

from dcmpnet_ros.lifecycle_node import DehazeLifecycleNode  # noqa: E402

REMAP = ["--ros-args", "-r", "image:=/test_cam/image_raw", "-r", "camera_info:=/test_cam/camera_info"]


@pytest.fixture(scope="module", autouse=True)
def ros():
    init_rclpy()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def probe():
    p = Probe("lifecycle_probe")
    yield p
    p.close()


@pytest.fixture
def managed(probe):
    created = []

    def start(**overrides) -> DehazeLifecycleNode:
        params = [Parameter("backend", value="dcp"), Parameter("device", value="cpu")]
        params += [Parameter(k, value=v) for k, v in overrides.items()]
        node = DehazeLifecycleNode(parameter_overrides=params, cli_args=REMAP)
        probe.executor_.add_node(node)
        created.append(node)
        return node

    yield start
    for node in created:
        probe.executor_.remove_node(node)
        node.destroy_node()


def _call(probe: Probe, srv_type, name: str, request):
    client = probe.create_client(srv_type, name)
    try:
        probe.spin_until(lambda: client.service_is_ready(), 10, f"service {name}")
        future = client.call_async(request)
        probe.spin_until(future.done, 60, f"reply of {name}")
        return future.result()
    finally:
        probe.destroy_client(client)


def _transition(probe: Probe, transition_id: int) -> bool:
    req = ChangeState.Request()
    req.transition.id = transition_id
    return _call(probe, ChangeState, "/dehaze_node/change_state", req).success


def _state(probe: Probe) -> int:
    return _call(probe, GetState, "/dehaze_node/get_state", GetState.Request()).current_state.id


def test_full_cycle_subscribes_only_while_active(probe, managed):
    node = managed(warmup_width=96, warmup_height=64)
    engine_calls = []
    assert _state(probe) == State.PRIMARY_STATE_UNCONFIGURED and node.pipeline is None
    assert probe.count_subscribers("/test_cam/image_raw") == 0

    assert _transition(probe, Transition.TRANSITION_CONFIGURE)
    assert _state(probe) == State.PRIMARY_STATE_INACTIVE and node.pipeline is not None
    assert probe.count_subscribers("/test_cam/image_raw") == 0, "inactive: no camera subscription yet"
    inner = node.pipeline.engine
    node.pipeline.engine = lambda rgb: (engine_calls.append(rgb.shape), inner(rgb))[1]

    assert _transition(probe, Transition.TRANSITION_ACTIVATE)
    probe.wait_for_node("/test_cam/image_raw")
    rgb = photo("chelsea", (64, 96))
    sent, out = probe.send_until_output(lambda s: image_msg(rgb, "rgb8", s), probe.pub_image, 100)
    assert out["image"].header.stamp.sec == sent.header.stamp.sec and engine_calls

    assert _transition(probe, Transition.TRANSITION_DEACTIVATE)
    assert _state(probe) == State.PRIMARY_STATE_INACTIVE
    probe.spin_until(lambda: probe.count_subscribers("/test_cam/image_raw") == 0, 10, "the subscription to go")
    assert node.pipeline is not None and not node.pipeline.running, "the model stays loaded, the worker stops"

    assert _transition(probe, Transition.TRANSITION_ACTIVATE)      # immediate: nothing to load
    probe.wait_for_node("/test_cam/image_raw")
    probe.send_until_output(lambda s: image_msg(rgb, "rgb8", s), probe.pub_image, 200)

    assert _transition(probe, Transition.TRANSITION_DEACTIVATE)
    assert _transition(probe, Transition.TRANSITION_CLEANUP)
    assert _state(probe) == State.PRIMARY_STATE_UNCONFIGURED and node.pipeline is None
    assert probe.count_publishers("/dehazed/image") == 0


def test_warm_up_runs_at_configure(probe, managed):
    node = managed(warmup_width=96, warmup_height=64)
    assert _transition(probe, Transition.TRANSITION_CONFIGURE)
    assert node.pipeline.stats.output.count == 0, "the warm-up frame is not published or counted"


def test_configure_fails_with_missing_weights_and_can_be_retried(probe, managed):
    node = managed(backend="dcmpnet", weights="/nonexistent/model.pt")
    assert not _transition(probe, Transition.TRANSITION_CONFIGURE)
    assert _state(probe) == State.PRIMARY_STATE_UNCONFIGURED and node.pipeline is None


def test_invalid_parameter_stops_the_constructor():
    from dcmpnet_ros.params import ParameterError

    with pytest.raises(ParameterError, match=r"^inference_scale: expected > 0 and <= 1"):
        DehazeLifecycleNode(parameter_overrides=[Parameter("inference_scale", value=0.0)])
