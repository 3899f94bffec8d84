"""`ros2 launch dcmpnet_ros dehaze.launch.py` on a live ROS 2 graph, driven by real photos.

Needs ROS 2 (rclpy, ros2cli, launch_ros) and this package built into the sourced workspace (colcon build);
skipped otherwise, e.g. in CI. The node runs the dark-channel-prior backend (``backend:=dcp``), which needs no
weights, so every output can be compared with the library's own result for the same photo.
"""
from __future__ import annotations

import contextlib
import shutil

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy): source /opt/ros/<distro>/setup.bash")
pytestmark = pytest.mark.ros

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from ros_graph import (  # noqa: E402
    DIAG_PREFIX,
    LaunchedProcess,
    Probe,
    camera_info_msg,
    diagnostics_values,
    hazy_photo,
    image_array,
    image_msg,
    init_rclpy,
    jpeg_msg,
    photo,
)
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

try:
    get_package_share_directory("dcmpnet_ros")
except PackageNotFoundError:
    pytest.skip("dcmpnet_ros is not in the sourced ROS workspace: colcon build it and source install/setup.bash",
                allow_module_level=True)
if shutil.which("ros2") is None:
    pytest.skip("the ros2 command (ros2cli) is not on PATH", allow_module_level=True)

LAUNCH = ["ros2", "launch", "dcmpnet_ros", "dehaze.launch.py"]


@pytest.fixture(scope="module")
def ros():
    init_rclpy()
    yield
    rclpy.try_shutdown()


@contextlib.contextmanager
def launched(args: list[str], probe_name: str, **probe_kw):
    """``ros2 launch`` with ``args`` and a Probe beside it; afterwards the launch must end cleanly on Ctrl-C."""
    proc = LaunchedProcess(LAUNCH + args)
    probe = Probe(probe_name, **probe_kw)
    try:
        yield probe, proc
    finally:
        probe.close()
        code = proc.stop()
        output = proc.output
        proc.cleanup()
    assert code == 0, f"ros2 launch did not end cleanly on Ctrl-C (exit {code}):\n{output}"


@pytest.fixture(scope="module")
def default_launch(ros):
    """The launch file with its defaults, except the backend (dcp needs no weights) and the camera topic."""
    with launched(["backend:=dcp", "image_topic:=/test_cam/image_raw"], "launch_probe") as (probe, proc):
        probe.wait_for_node("/test_cam/image_raw")
        yield probe, proc


def _dcp(rgb: np.ndarray):
    from dcmpnet_core.inference.engine import Dehazer

    return Dehazer.from_checkpoint(None, backend="dcp", device="cpu")(rgb)


def test_rgb8_outputs_carry_the_input_header_and_equal_the_library_result(default_launch):
    probe, _ = default_launch
    rgb = hazy_photo("chelsea")
    h, w = rgb.shape[:2]

    def make(sec):
        probe.pub_info.publish(camera_info_msg(h, w, sec - 1000, "camera_info_frame"))
        return image_msg(rgb, "rgb8", sec, "test_camera_optical", nanosec=123_456_789)

    sent, out = probe.send_until_output(make, probe.pub_image, 1000, kinds=("image", "depth", "camera_info"))
    expected = _dcp(rgb)
    image, depth, info = out["image"], out["depth"], out["camera_info"]
    for msg in (image, depth, info):
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (sent.header.stamp.sec, 123_456_789)
        assert msg.header.frame_id == "test_camera_optical"
    assert (image.encoding, image.height, image.width, image.step) == ("rgb8", h, w, 3 * w)
    np.testing.assert_array_equal(image_array(image), expected.dehazed)
    assert np.abs(image_array(image).astype(int) - rgb).mean() > 2, "the output must differ from the hazy input"
    assert (depth.encoding, depth.height, depth.width, depth.step) == ("32FC1", h, w, 4 * w)
    d = image_array(depth)
    assert np.isfinite(d).all() and d.min() > 0 and d.max() == pytest.approx(1.0)
    np.testing.assert_allclose(d, expected.depth, rtol=1e-6)
    # camera_info: the input's calibration, re-stamped with the image's header.
    assert (info.height, info.width, info.distortion_model) == (h, w, "plumb_bob")
    assert list(info.k) == pytest.approx([0.8 * w, 0, w / 2, 0, 0.8 * w, h / 2, 0, 0, 1])
    assert list(info.d) == pytest.approx([0.1, -0.05, 0.001, 0.002, 0.0])


def test_bgr8_stays_bgr8_and_mono8_becomes_rgb8(default_launch):
    probe, _ = default_launch
    rgb = hazy_photo("coffee", (96, 128))
    expected = _dcp(rgb).dehazed
    _, out = probe.send_until_output(lambda sec: image_msg(rgb[..., ::-1], "bgr8", sec), probe.pub_image, 2000)
    assert out["image"].encoding == "bgr8"
    np.testing.assert_array_equal(image_array(out["image"])[..., ::-1], expected)

    gray = hazy_photo("camera", (96, 128))      # a grey photo: (H,W) uint8
    _, out = probe.send_until_output(lambda sec: image_msg(gray, "mono8", sec), probe.pub_image, 3000)
    assert (out["image"].encoding, out["image"].height, out["image"].width) == ("rgb8", 96, 128)
    np.testing.assert_array_equal(image_array(out["image"]), _dcp(np.repeat(gray[..., None], 3, axis=2)).dehazed)


def test_malformed_frames_are_counted_and_the_node_keeps_working(default_launch):
    probe, proc = default_launch
    rgb = photo("astronaut", (64, 64))

    def truncated(sec):
        msg = image_msg(rgb, "rgb8", sec)
        msg.data = msg.data[: len(msg.data) // 2]
        return msg

    def unknown(sec):
        msg = image_msg(rgb, "rgb8", sec)
        msg.encoding = "weird16"
        return msg

    # The input keeps only the newest frame (sensor-data QoS), so each bad frame is repeated until it is counted.
    for make, reason, first_sec in ((truncated, "truncated_data", 4000), (unknown, "unsupported_encoding", 4500)):
        sent = iter(range(first_sec, first_sec + 400))

        def counted(make=make, reason=reason, sent=sent):
            probe.pub_image.publish(make(next(sent)))
            for array in probe.received["diagnostics"][-3:]:
                values = diagnostics_values(array, "/dehaze_node")
                if values and int(values.get(DIAG_PREFIX + reason, 0)) >= 1:
                    return values
            probe.executor_.spin_once(timeout_sec=0.2)
            return None

        probe.spin_until(counted, 20, f"/diagnostics counting {reason}")
    assert not [m for m in probe.received["image"] if 4000 <= m.header.stamp.sec < 4900], "bad frames give no output"
    # A good frame after the bad ones is still processed, and the rejections stay counted.
    _, out = probe.send_until_output(lambda sec: image_msg(rgb, "rgb8", sec), probe.pub_image, 4900)
    assert out["image"].width == 64
    values = probe.latest_diagnostics("/dehaze_node", lambda v: int(v["frames published"]) >= 1
                                      and int(v["frames rejected"]) >= 2)
    assert int(values[DIAG_PREFIX + "truncated_data"]) >= 1 and int(values[DIAG_PREFIX + "unsupported_encoding"]) >= 1
    assert values["device"] == "cpu"
    assert proc.proc.poll() is None, "the node must still run"
    probe.spin_until(lambda: "truncated_data" in proc.output and "weird16" in proc.output, 10,
                     "warnings naming the problems in the node's log")


def test_namespace_params_file_compressed_input_and_sim_time(ros, tmp_path):
    params = tmp_path / "dehaze.yaml"
    # The same section name as config/dehaze.yaml; it must apply although the node runs in a namespace.
    params.write_text("/**/dehaze_node:\n  ros__parameters:\n    input_transport: compressed\n"
                      "    use_camera_info: false\n    output_qos: reliable\n", encoding="utf-8")
    args = ["backend:=dcp", "namespace:=robot1", "image_topic:=/test_cam/image_raw", f"params_file:={params}",
            "use_sim_time:=true"]
    with launched(args, "launch_probe_ns", output_ns="/robot1") as (probe, _):
        clock = probe.create_publisher(Clock, "/clock", 10)
        probe.wait_for_node("/test_cam/image_raw/compressed")
        raw_readers = [i.node_namespace for i in probe.get_subscriptions_info_by_topic("/test_cam/image_raw")]
        assert "/robot1" not in raw_readers, "input_transport: compressed from the file"
        rgb = hazy_photo("rocket", (120, 80))

        def tick(sim_sec):
            msg = Clock()
            msg.clock.sec = sim_sec
            clock.publish(msg)

        def make(sec):
            tick(77_000)
            return jpeg_msg(rgb, sec)

        _, out = probe.send_until_output(make, probe.pub_compressed, 5000)
        image = out["image"]
        # "rgb8; jpeg compressed bgr8": the camera's own encoding (before ';') is kept for the output.
        assert (image.encoding, image.height, image.width) == ("rgb8", 120, 80)
        jpeg = np.frombuffer(bytes(jpeg_msg(rgb, 0).data), np.uint8)
        np.testing.assert_array_equal(image_array(image), _dcp(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1]).dehazed)
        assert image.header.frame_id == "test_camera_optical"
        probe.spin_until(lambda: probe.first("depth", image.header.stamp.sec), 5, "the depth of the same frame")
        assert probe.count_publishers("/robot1/dehazed/camera_info") == 0, "use_camera_info: false from the file"
        info = probe.get_publishers_info_by_topic("/robot1/dehazed/image")
        assert [i.qos_profile.reliability.name for i in info] == ["RELIABLE"]

        # use_sim_time:=true: the node's clock, which stamps /diagnostics, follows /clock (77000 s + a few),
        # not the wall clock.
        def sim_stamped():
            tick(78_000)
            return [a.header.stamp.sec for a in probe.received["diagnostics"]
                    if any(s.name.startswith("/robot1/dehaze_node") for s in a.status)]

        stamps = probe.spin_until(lambda: [s for s in sim_stamped() if s >= 77_000], 15, "sim-time diagnostics")
        assert all(77_000 <= s <= 78_000 for s in stamps), stamps


def test_invalid_parameter_stops_the_node_with_a_message_naming_it(ros):
    proc = LaunchedProcess(LAUNCH + ["backend:=dehazeformer"])
    try:
        code = proc.wait(timeout=90)
        output = proc.output
    finally:
        proc.cleanup()
    assert "invalid parameter backend: expected one of: dcmpnet, dcp, got 'dehazeformer'" in output, output
    assert "process has died" in output and "exit code 2" in output, output
    assert code == 0, "ros2 launch itself ends normally once its only process has exited"


def test_missing_weights_says_what_to_do(ros, tmp_path):
    proc = LaunchedProcess(LAUNCH, env={"DCMPNET_DEFAULT_WEIGHTS": str(tmp_path / "none.pt")})
    try:
        proc.wait(timeout=90)
        output = proc.output
    finally:
        proc.cleanup()
    assert "no DCMPNet weights given" in output and "weights:=" in output and "backend:=dcp" in output, output
    assert "process has died" in output and "exit code 1" in output, output


def test_default_weights_with_the_installed_cpu_live_profile(ros):
    """No weights argument: the bundled DCMPNet weights, run as config/dehaze_cpu_live.yaml says (bf16, 320x240)."""
    params = f"{get_package_share_directory('dcmpnet_ros')}/config/dehaze_cpu_live.yaml"
    # Its own camera and namespace: the module's default launch (DCP) may still be running on /test_cam.
    args = ["image_topic:=/live_cam/image_raw", "namespace:=live", f"params_file:={params}"]
    with launched(args, "launch_probe_live", camera="/live_cam", output_ns="/live") as (probe, _):
        probe.wait_for_node("/live_cam/image_raw")
        rgb = hazy_photo("astronaut", (480, 640))
        sent, out = probe.send_until_output(lambda sec: image_msg(rgb, "rgb8", sec, "cam_optical"), probe.pub_image,
                                            6000, timeout=60, kinds=("image", "depth"))
        image, depth = out["image"], out["depth"]
        assert (image.header.stamp.sec, image.header.frame_id) == (sent.header.stamp.sec, "cam_optical")
        assert (image.height, image.width, depth.height, depth.width) == (480, 640, 480, 640)
        from dcmpnet_core.inference.engine import Dehazer

        expected = Dehazer.from_checkpoint(None, device="cpu", precision="bf16", max_pixels=76800)(rgb)
        got = image_array(image).astype(np.float64)
        assert np.abs(got - expected.dehazed).mean() < 1.0, "the node's result is the library's, same settings"
        assert np.abs(got - rgb).mean() > 2, "the output must differ from the input"


def test_lifecycle_launch_with_weights_device_log_level_and_output_topics(ros, tmp_path):
    """lifecycle:=true (autostart) with every override argument: weights, device, log_level, output topics."""
    import torch

    from dcmpnet_core.checkpoints.builder import save_model
    from dcmpnet_core.inference.engine import Dehazer
    from dcmpnet_core.models.dcmpnet import DCMPNet

    torch.manual_seed(3)
    weights = tmp_path / "my_model.pt"                  # not the bundled weights: the output shows which were used
    save_model(DCMPNet("tiny"), weights)
    args = ["lifecycle:=true", f"weights:={weights}", "device:=cpu", "log_level:=debug", "namespace:=lc",
            "image_topic:=/lc_cam/image_raw", "dehazed_image_topic:=/perception/image",
            "dehazed_depth_topic:=/perception/depth"]
    with launched(args, "launch_probe_lc", camera="/lc_cam", subscribe_outputs=False) as (probe, proc):
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
        probe.create_subscription(Image, "/perception/image", probe.received["image"].append, qos)
        probe.create_subscription(Image, "/perception/depth", probe.received["depth"].append, qos)
        probe.wait_for_node("/lc_cam/image_raw", timeout=120)            # configured and activated by the launch
        rgb = hazy_photo("coffee", (96, 128))
        sent, out = probe.send_until_output(lambda sec: image_msg(rgb, "rgb8", sec), probe.pub_image, 9000,
                                            timeout=60, kinds=("image", "depth"))
        assert out["image"].header.stamp.sec == sent.header.stamp.sec
        got = image_array(out["image"]).astype(np.float64)
        expected = Dehazer.from_checkpoint(weights, device="cpu")(rgb).dehazed
        bundled = Dehazer.from_checkpoint(None, device="cpu")(rgb).dehazed
        assert np.abs(got - expected).mean() < 1.0 < np.abs(got - bundled).mean(), "weights:= is the model used"
        assert probe.count_publishers("/lc/dehazed/image") == 0, "the output was remapped away from dehazed/image"
        assert "active: subscribed to /lc_cam/image_raw" in proc.output, proc.output
        assert "[DEBUG]" in proc.output, "log_level:=debug reaches the node"
        assert "device='cpu'" in proc.output, proc.output
