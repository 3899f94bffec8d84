"""The nodes' wiring to rclpy, on a fake rclpy (test/helpers/fake_rclpy.py) where ROS 2 is not installed.

This runs node.py and lifecycle_node.py for real (typed descriptors, topics, the worker publishing, the
lifecycle transitions) against a recorder of rclpy calls; it does not test rclpy itself. Where ROS 2 exists,
test_node_ros.py and test_lifecycle_ros.py run the same nodes on a live graph and this file is skipped.
"""
from __future__ import annotations

import importlib.util
import time

import pytest
from msg_kinds import kit, photo

if importlib.util.find_spec("rclpy") is not None:
    pytest.skip("real rclpy present: test_node_ros.py / test_lifecycle_ros.py cover the nodes", allow_module_level=True)

import fake_rclpy  # noqa: E402

from dcmpnet_ros.params import PARAMETERS, ParameterError  # noqa: E402

K = kit("rclpy")
BASE = [fake_rclpy._Plain(name="backend", value="dcp"), fake_rclpy._Plain(name="device", value="cpu")]


def _overrides(**values):
    return BASE + [fake_rclpy._Plain(name=k, value=v) for k, v in values.items()]


@pytest.fixture
def nodes():
    with fake_rclpy.installed():
        from dcmpnet_ros import lifecycle_node, node

        yield node, lifecycle_node


def _frame(sec: int):
    rgb = photo("coffee")
    return K.image(rgb.tobytes(), rgb.shape[0], rgb.shape[1], "rgb8", 3 * rgb.shape[1], hdr=K.header(sec, 5))


def _wait_for(pub, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(pub.sent) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(pub.sent) >= count, f"{pub.topic}: {len(pub.sent)} of {count} messages"


def test_plain_node_declares_typed_ranged_parameters_and_publishes(nodes):
    node_mod, _ = nodes
    n = node_mod.DehazeNode(parameter_overrides=_overrides(input_qos="SENSOR_DATA", warmup_width=64,
                                                           warmup_height=48))
    try:
        d = n.descriptors
        assert set(d) == set(PARAMETERS)
        assert d["inference_scale"].type == 3 and not d["inference_scale"].dynamic_typing
        assert (d["inference_scale"].floating_point_range[0].from_value,
                d["inference_scale"].floating_point_range[0].to_value) == (0.0, 1.0)
        assert d["max_pixels"].integer_range[0].to_value == 1_000_000_000 and d["weights"].type == 4
        assert n.params.input_qos == "sensor_data"
        assert set(n.subscriptions) == {"image", "camera_info"}
        logs = [text for _, text in n.logger.lines]
        assert any("warm-up 64x48" in t for t in logs) and any("RELATIVE depth" in t for t in logs)

        n.subscriptions["image"].callback(_frame(7))
        image = n.publisher("dehazed/image")
        _wait_for(image, 1)
        _wait_for(n.publisher("dehazed/depth"), 1)
        assert image.sent[0].header.stamp.sec == 7 and image.sent[0].encoding == "rgb8"
        haze = n.publisher("dehazed/haze_level")
        _wait_for(haze, 1)
        assert haze.sent[0].header.stamp.sec == 7 and 0.0 <= haze.sent[0].relative_humidity < 1.0

        n.timers[0].callback()                                       # the diagnostics timer
        status = n.publisher("/diagnostics").sent[-1].status[0]
        values = {kv.key: kv.value for kv in status.values}
        assert float(values["frame age mean (ms)"]) > 0 and values["frames published"] == "1"
        assert values["depth units"] == "relative, not metres (depth_scale 0)"

        assert n.set(depth_scale=20.0).successful and n.params.depth_scale == 20.0
        assert dict(n.stats.to_key_values())["depth units"].startswith("relative x depth_scale 20")
        refused = n.set(backend="dcmpnet")
        assert not refused.successful and refused.reason.startswith("backend: read-only")
    finally:
        n.destroy_node()
    assert not n.pipeline.running


@pytest.mark.parametrize("values,message", [
    ({"depth_scale": 20}, r"^depth_scale: expected double \(a double needs a decimal point, e.g. 20.0\)"),
    ({"max_pixels": -3}, r"^max_pixels: expected 0 or >= 4096 and <= 1000000000: "),
    ({"image_transport": "raw", "input_transport": "compressed"}, r"^image_transport: 'raw' contradicts"),
])
def test_plain_node_refuses_bad_overrides_naming_them(nodes, values, message):
    node_mod, _ = nodes
    with pytest.raises(ParameterError, match=message):
        node_mod.DehazeNode(parameter_overrides=_overrides(**values))


def test_image_transport_alias_subscribes_compressed(nodes):
    node_mod, _ = nodes
    n = node_mod.DehazeNode(parameter_overrides=_overrides(image_transport="compressed", use_camera_info=False))
    try:
        assert set(n.subscriptions) == {"/image/compressed"}      # image_transport: the resolved image + /compressed
    finally:
        n.destroy_node()


def test_lifecycle_transitions(nodes):
    _, lc_mod = nodes
    SUCCESS = fake_rclpy.TransitionCallbackReturn.SUCCESS
    n = lc_mod.DehazeLifecycleNode(parameter_overrides=_overrides(warmup_width=64, warmup_height=48))
    try:
        assert n.pipeline is None and not n.publishers and not n.subscriptions
        assert n.on_configure(None) == SUCCESS
        assert n.pipeline is not None and not n.subscriptions
        image = n.publisher("dehazed/image")
        assert image.lifecycle and not image.active
        assert any("warm-up 64x48" in text for _, text in n.logger.lines)

        assert n.on_activate(None) == SUCCESS
        assert set(n.subscriptions) == {"image", "camera_info"} and image.active and n.pipeline.running
        n.subscriptions["image"].callback(_frame(11))
        _wait_for(image, 1)
        assert image.sent[0].header.stamp.sec == 11

        assert n.on_deactivate(None) == SUCCESS
        assert not n.subscriptions and not n.timers and not n.pipeline.running and not image.active
        engine = n.pipeline.engine

        assert n.on_activate(None) == SUCCESS                      # the same engine: nothing reloaded
        assert n.pipeline.engine is engine and n.pipeline.running
        n.subscriptions["image"].callback(_frame(12))
        _wait_for(image, 2)

        assert n.on_deactivate(None) == SUCCESS and n.on_cleanup(None) == SUCCESS
        assert n.pipeline is None and not n.publishers and image.destroyed
        assert n.on_configure(None) == SUCCESS and n.on_shutdown(None) == SUCCESS and n.pipeline is None
    finally:
        n.destroy_node()


def test_lifecycle_configure_fails_with_the_reason(nodes, tmp_path):
    _, lc_mod = nodes
    n = lc_mod.DehazeLifecycleNode(parameter_overrides=_overrides(backend="dcmpnet",
                                                                 weights=str(tmp_path / "none.pt")))
    try:
        assert n.on_configure(None) == fake_rclpy.TransitionCallbackReturn.FAILURE
        assert n.pipeline is None
        level, text = n.logger.lines[-1]
        assert level == "error" and text.startswith("configure failed: ") and "backend:=dcp" in text
    finally:
        n.destroy_node()


def test_main_reports_a_bad_parameter_with_exit_2(nodes, monkeypatch):
    node_mod, _ = nodes
    lines = []
    monkeypatch.setattr(node_mod, "get_logger", lambda name: fake_rclpy._Plain(fatal=lines.append))

    def bad():
        raise ParameterError("input_qos", "expected one of: sensor_data, ...")

    assert node_mod.run_node(bad) == node_mod.EXIT_BAD_PARAMETER
    assert lines == ["invalid parameter input_qos: expected one of: sensor_data, ..."]
