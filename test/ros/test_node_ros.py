"""DehazeNode in this process on a live ROS 2 graph: parameters, QoS, lazy mode, stale frames, failures.

Needs ROS 2 (rclpy and the message packages); skipped otherwise, e.g. in CI. The node runs the real
dark-channel-prior backend (no weights needed) and talks to a probe node over the middleware.
"""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy): source /opt/ros/<distro>/setup.bash")
pytestmark = pytest.mark.ros

import numpy as np  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import DescribeParameters, SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_graph import Probe, image_array, image_msg, init_rclpy, jpeg_msg, photo  # noqa: E402

from dcmpnet_core.inference.engine import Dehazer  # noqa: E402
from dcmpnet_ros.node import DehazeNode  # noqa: E402
from dcmpnet_ros.params import PARAMETERS, ParameterError  # noqa: E402

REMAP = ["--ros-args", "-r", "image:=/test_cam/image_raw", "-r", "camera_info:=/test_cam/camera_info"]


@pytest.fixture(scope="module", autouse=True)
def ros():
    init_rclpy()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def make_node():
    """Start DehazeNode (dcp backend) with parameter overrides; spun by the probe's executor."""
    created = []

    def start(probe: Probe, dehazer_factory=None, **overrides) -> DehazeNode:
        params = [Parameter("backend", value="dcp"), Parameter("device", value="cpu")]
        params += [Parameter(k, value=v) for k, v in overrides.items()]
        kwargs = {"parameter_overrides": params, "cli_args": REMAP}
        node = DehazeNode(dehazer_factory, **kwargs) if dehazer_factory else DehazeNode(**kwargs)
        probe.executor_.add_node(node)
        created.append((probe, node))
        probe.wait_for_node("/test_cam/image_raw")
        return node

    yield start
    for probe, node in created:
        probe.executor_.remove_node(node)
        node.destroy_node()


@pytest.fixture
def probe():
    p = Probe("node_probe")
    yield p
    p.close()


def _call(probe: Probe, srv_type, name: str, request):
    client = probe.create_client(srv_type, name)
    try:
        probe.spin_until(lambda: client.service_is_ready(), 10, f"service {name}")
        future = client.call_async(request)
        probe.spin_until(future.done, 10, f"reply of {name}")
        return future.result()
    finally:
        probe.destroy_client(client)


def _set(probe: Probe, **values):
    req = SetParameters.Request()
    for name, value in values.items():
        req.parameters.append(Parameter(name, value=value).to_parameter_msg())
    return _call(probe, SetParameters, "/dehaze_node/set_parameters", req).results


def test_parameters_are_declared_with_descriptions_and_constraints(probe, make_node):
    make_node(probe)
    reply = _call(probe, DescribeParameters, "/dehaze_node/describe_parameters",
                  DescribeParameters.Request(names=list(PARAMETERS)))
    by_name = {d.name: d for d in reply.descriptors}
    assert set(by_name) == set(PARAMETERS)
    types = {"bool": ParameterType.PARAMETER_BOOL, "integer": ParameterType.PARAMETER_INTEGER,
             "double": ParameterType.PARAMETER_DOUBLE, "string": ParameterType.PARAMETER_STRING}
    for name, spec in PARAMETERS.items():
        d = by_name[name]
        assert d.description == spec.description
        assert d.read_only == (not spec.dynamic), name
        assert d.type == types[spec.ros_type] and not d.dynamic_typing, name
        if spec.type is int:
            assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == spec.descriptor_fields()["range"]
        elif spec.type is float:
            r = d.floating_point_range[0]
            assert (r.from_value, r.to_value) == pytest.approx(spec.descriptor_fields()["range"])
    assert by_name["backend"].additional_constraints == "one of: dcmpnet, dcp"


def test_run_time_parameters_are_validated_and_applied(probe, make_node):
    node = make_node(probe)
    ok, = _set(probe, inference_scale=0.5)
    assert ok.successful and node.params.inference_scale == 0.5 and node.dehazer.inference_scale == 0.5
    bad, = _set(probe, inference_scale=1.5)
    # rclpy checks the descriptor's range before the node's callback sees the value, and says so in one line
    assert not bad.successful and "inference_scale" in bad.reason and "out of range" in bad.reason
    assert node.params.inference_scale == 0.5
    wrong_type, = _set(probe, max_pixels="many")
    # typed parameters: rclpy refuses the wrong type itself ("Wrong parameter type, expected 'Type.INTEGER' ...")
    assert not wrong_type.successful and "INTEGER" in wrong_type.reason and "STRING" in wrong_type.reason
    fixed, = _set(probe, backend="dcmpnet")
    assert not fixed.successful and "backend" in fixed.reason
    # Typed parameters: an integer for a double is refused by rclpy (as `ros2 param set ... 20` would be).
    req = SetParameters.Request(parameters=[ParameterMsg(
        name="depth_scale", value=ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=20))])
    assert not _call(probe, SetParameters, "/dehaze_node/set_parameters", req).results[0].successful
    out_of_range, = _set(probe, depth_scale=20000.0)
    assert not out_of_range.successful and node.params.depth_scale == 0.0
    ok, = _set(probe, depth_scale=20.0)
    assert ok.successful and node.params.depth_scale == 20.0

    rgb = photo("chelsea", (64, 96))
    _, out = probe.send_until_output(lambda s: image_msg(rgb, "rgb8", s), probe.pub_image, 100,
                                     kinds=("image", "depth"))
    depth = image_array(out["depth"])
    assert depth.max() == pytest.approx(20.0), "depth_scale > 0 publishes relative depth * depth_scale"


def test_invalid_start_parameter_raises_naming_it(probe):
    with pytest.raises(ParameterError, match=r"^inference_scale: expected > 0 and <= 1, got 0\.0"):
        DehazeNode(parameter_overrides=[Parameter("inference_scale", value=0.0)])
    assert "dehaze_node" not in probe.get_node_names(), "a node that failed to start leaves nothing behind"


@pytest.mark.parametrize("args,code,message", [
    (["-p", "input_qos:=fast"], 2, "invalid parameter input_qos: expected one of: sensor_data"),
    (["-p", "backend:=dcp", "-p", "max_pixels:=-3"], 2, "invalid parameter max_pixels: expected 0 or >= 4096"),
    (["-p", "backend:=dcp", "-p", "depth_scale:=20"], 2, "invalid parameter depth_scale: expected double (a double "
                                                         "needs a decimal point"),
    (["-p", "backend:=dcp", "-p", "image_transport:=raw", "-p", "input_transport:=compressed"], 2,
     "invalid parameter image_transport: 'raw' contradicts input_transport 'compressed'"),
    (["-p", "weights:=/nonexistent/model.pt"], 1, "backend:=dcp"),
])
def test_main_exits_non_zero_with_the_reason(args, code, message):
    res = subprocess.run([sys.executable, "-m", "dcmpnet_ros.node", "--ros-args", *args],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == code, res.stdout + res.stderr
    assert message in res.stdout + res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_main_shuts_down_cleanly_on_a_signal(probe, sig):
    proc = subprocess.Popen([sys.executable, "-m", "dcmpnet_ros.node", *REMAP, "-p", "backend:=dcp"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        probe.wait_for_node("/test_cam/image_raw")
        rgb = photo("chelsea", (48, 64))
        probe.send_until_output(lambda s: image_msg(rgb, "rgb8", s), probe.pub_image, 900)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "dehazed/image" in out, out
    probe.spin_until(lambda: "dehaze_node" not in probe.get_node_names(), 10, "the node leaving the graph")


def test_output_qos_parameter_sets_the_publishers(probe, make_node):
    make_node(probe, output_qos="best_effort", output_qos_depth=3)
    info = probe.get_publishers_info_by_topic("/dehazed/image")
    assert len(info) == 1
    assert info[0].qos_profile.reliability.name == "BEST_EFFORT" and info[0].qos_profile.depth == 3
    subs = probe.get_subscriptions_info_by_topic("/test_cam/image_raw")
    assert [s.qos_profile.reliability.name for s in subs] == ["BEST_EFFORT"], "sensor-data input by default"


def test_lazy_node_runs_nothing_without_subscribers(make_node):
    blind = Probe("blind_probe", subscribe_outputs=False)     # publishes the camera, subscribes no output
    try:
        node = make_node(blind, lazy=True)
        rgb = photo("chelsea", (64, 64))

        def received_three() -> bool:
            blind.pub_image.publish(image_msg(rgb, "rgb8", node.stats.input.count))
            blind.executor_.spin_once(timeout_sec=0.1)
            return node.stats.input.count >= 3

        blind.spin_until(received_three, 15, "frames reaching the lazy node")
        assert node.stats.output.count == 0 and node.stats.idle
        watcher = Probe("watcher_probe")
        blind.executor_.add_node(watcher)
        try:
            blind.spin_until(lambda: node._has_subscribers(), 10, "the watcher's subscription")
            for sec in range(100, 130):
                blind.pub_image.publish(image_msg(rgb, "rgb8", sec))
                blind.executor_.spin_once(timeout_sec=0.1)
                if watcher.received["image"]:
                    break
            assert watcher.received["image"] and not node.stats.idle
        finally:
            blind.executor_.remove_node(watcher)
            watcher.destroy_node()
    finally:
        blind.close()


def test_a_slow_network_drops_stale_frames_and_processes_the_newest(probe, make_node):
    node = make_node(probe)
    rgb = photo("astronaut", (512, 512))         # the dark channel prior takes far longer than a publish
    probe.send_until_output(lambda s: image_msg(rgb, "rgb8", s), probe.pub_image, 10, timeout=60)
    sent = list(range(500, 520))
    for sec in sent:
        probe.pub_image.publish(image_msg(rgb, "rgb8", sec))
        probe.executor_.spin_once(timeout_sec=0.0)
    probe.spin_until(lambda: probe.first("image", sent[-1]), 60, "the newest frame's output")
    got = [m.header.stamp.sec for m in probe.received["image"] if m.header.stamp.sec >= 500]
    assert got == sorted(got) and got[-1] == sent[-1]
    assert len(got) < len(sent) and node.stats.dropped_stale >= 1
    assert node.stats.dropped_stale + len(got) <= len(sent)


class FailingOnce:
    """The real dcp Dehazer, except that its first call raises (an injected inference fault)."""

    def __init__(self, params):
        self.inner = Dehazer.from_checkpoint(None, backend="dcp", device="cpu")
        self.device = self.inner.device
        self.calls = 0

    def __call__(self, rgb):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("injected failure")
        return self.inner(rgb)


def test_an_inference_error_is_counted_and_the_node_goes_on(probe, make_node):
    node = make_node(probe, FailingOnce)
    rgb = photo("coffee", (64, 96))
    probe.send_until_output(lambda s: image_msg(rgb, "rgb8", s), probe.pub_image, 700)
    assert node.dehazer.calls >= 2
    values = probe.latest_diagnostics("/dehaze_node", lambda v: v.get("failed: RuntimeError") == "1")
    assert values["frames failed"] == "1"


def test_qos_in_capitals_and_the_image_transport_alias(probe):
    node = DehazeNode(parameter_overrides=[Parameter("backend", value="dcp"), Parameter("device", value="cpu"),
                                           Parameter("input_qos", value="SENSOR_DATA"),
                                           Parameter("image_transport", value="compressed")], cli_args=REMAP)
    probe.executor_.add_node(node)
    try:
        probe.wait_for_node("/test_cam/image_raw/compressed")
        assert node.params.input_qos == "sensor_data" and node.params.input_transport == "compressed"
        rgb = photo("coffee", (64, 96))
        _, out = probe.send_until_output(lambda s: jpeg_msg(rgb, s), probe.pub_compressed, 1300)
        assert out["image"].header.stamp.sec >= 1300
    finally:
        probe.executor_.remove_node(node)
        node.destroy_node()


def test_diagnostics_report_frame_age_and_missing_camera_info(probe, make_node):
    make_node(probe, use_camera_info=True)
    rgb = photo("chelsea", (64, 96))
    probe.send_until_output(lambda s: image_msg(rgb, "rgb8", s), probe.pub_image, 1500)
    values = probe.latest_diagnostics("/dehaze_node", lambda v: v.get("frame age max (ms)", "n/a") != "n/a")
    assert float(values["frame age mean (ms)"]) > 0.0       # stamps are from 1970 + 1500 s: a huge, positive age
    assert values["camera_info"] == "none received"


def test_haze_level_is_published_with_the_frame_header_and_clear_frames_pass_through(probe, make_node):
    node = make_node(probe)
    clear = photo("coffee", (96, 128))          # a clear indoor photo: haze level far below bypass_below
    _, out = probe.send_until_output(lambda s: image_msg(clear, "rgb8", s), probe.pub_image, 800,
                                     kinds=("image", "depth", "haze_level"))
    level = out["haze_level"]
    assert level.header.frame_id == out["image"].header.frame_id == "test_camera_optical"
    assert 0.0 <= level.relative_humidity < node.params.bypass_below and level.variance == 0.0
    assert np.array_equal(image_array(out["image"]), clear), "pass-through publishes the input unchanged"
    assert image_array(out["depth"]).shape == clear.shape[:2], "depth is still published in pass-through"
    values = probe.latest_diagnostics("/dehaze_node", lambda v: v.get("mode (last frame)") == "passthrough")
    assert int(values["frames passed through"]) >= 1 and float(values["haze level (smoothed)"]) < 0.53


def test_hazy_frames_are_dehazed_and_visibility_warns(probe, make_node):
    from dcmpnet_core.data.haze import apply_haze

    make_node(probe, haze_warn_level=0.5)
    clear = photo("coffee", (96, 128)).astype(np.float32) / 255.0
    depth_m = np.broadcast_to(np.linspace(20.0, 2.0, 96, dtype=np.float32)[:, None], (96, 128))
    hazy = np.round(apply_haze(clear, depth_m, 0.2, (0.85, 0.85, 0.85)) * 255).astype(np.uint8)
    _, out = probe.send_until_output(lambda s: image_msg(hazy, "rgb8", s), probe.pub_image, 900,
                                     kinds=("image", "haze_level"))
    assert out["haze_level"].relative_humidity > 0.6
    expected = Dehazer.from_checkpoint(None, backend="dcp", device="cpu")(hazy).dehazed
    assert np.array_equal(image_array(out["image"]), expected), "above the band: the network's output as before"
    values = probe.latest_diagnostics("/dehaze_node", lambda v: v.get("mode (last frame)") == "dehaze")
    assert float(values["haze level (smoothed)"]) > 0.5
    probe.spin_until(lambda: any(d.status[0].level == b"\x01" and "visibility reduced" in d.status[0].message
                                 for d in probe.received["diagnostics"]), 15, "WARN 'visibility reduced'")
