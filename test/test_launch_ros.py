"""`ros2 launch dcmpnet_ros dehaze.launch.py` on a live ROS 2 graph, driven by real photos.

Needs ROS 2 (rclpy, ros2cli, launch_ros) and this package built into the sourced workspace (colcon build);
skipped otherwise, e.g. in CI. The node runs the dark-channel-prior backend (``backend:=dcp``), which needs no
weights, so every output can be compared with the library's own result for the same photo.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs ROS 2 (rclpy): source /opt/ros/<distro>/setup.bash")
pytestmark = pytest.mark.ros

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory  # noqa: E402
from ros_graph import (  # noqa: E402
    DIAG_PREFIX,
    LaunchedProcess,
    Probe,
    camera_info_msg,
    image_array,
    image_msg,
    init_rclpy,
    jpeg_msg,
    photo,
)
from rosgraph_msgs.msg import Clock  # noqa: E402

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


@pytest.fixture(scope="module")
def default_launch(ros):
    """The launch file with its defaults, except the backend (dcp needs no weights) and the camera topic."""
    proc = LaunchedProcess(LAUNCH + ["backend:=dcp", "image_topic:=/test_cam/image_raw"])
    probe = Probe("launch_probe")
    try:
        probe.wait_for_node("/test_cam/image_raw")
        yield probe, proc
    finally:
        probe.close()
        code = proc.stop()
        output = proc.output
        proc.cleanup()
        assert code == 0, f"ros2 launch did not end cleanly on Ctrl-C (exit {code}):\n{output}"


def _dcp(rgb: np.ndarray):
    from dcmpnet_core.inference import Dehazer

    return Dehazer.from_checkpoint(None, backend="dcp", device="cpu")(rgb)


def test_rgb8_outputs_carry_the_input_header_and_equal_the_library_result(default_launch):
    probe, _ = default_launch
    rgb = photo("chelsea")
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
    rgb = photo("coffee", (96, 128))
    expected = _dcp(rgb).dehazed
    _, out = probe.send_until_output(lambda sec: image_msg(rgb[..., ::-1], "bgr8", sec), probe.pub_image, 2000)
    assert out["image"].encoding == "bgr8"
    np.testing.assert_array_equal(image_array(out["image"])[..., ::-1], expected)

    gray = photo("camera", (96, 128))[..., 0]
    _, out = probe.send_until_output(lambda sec: image_msg(gray, "mono8", sec), probe.pub_image, 3000)
    assert (out["image"].encoding, out["image"].height, out["image"].width) == ("rgb8", 96, 128)
    np.testing.assert_array_equal(image_array(out["image"]), _dcp(np.repeat(gray[..., None], 3, axis=2)).dehazed)


def test_malformed_frames_are_counted_and_the_node_keeps_working(default_launch):
    probe, proc = default_launch
    rgb = photo("astronaut", (64, 64))
    truncated = image_msg(rgb, "rgb8", 4000)
    truncated.data = truncated.data[: len(truncated.data) // 2]
    unknown = image_msg(rgb, "rgb8", 4001)
    unknown.encoding = "weird16"
    for bad in (truncated, unknown):
        probe.pub_image.publish(bad)
    # A good frame after the bad ones is still processed ...
    _, out = probe.send_until_output(lambda sec: image_msg(rgb, "rgb8", sec), probe.pub_image, 4100)
    assert out["image"].width == 64
    assert probe.first("image", 4000) is None and probe.first("image", 4001) is None
    # ... and /diagnostics counts the rejections by reason.
    values = probe.latest_diagnostics(
        "/dehaze_node", lambda v: int(v.get(DIAG_PREFIX + "truncated_data", 0)) >= 1
        and int(v.get(DIAG_PREFIX + "unsupported_encoding", 0)) >= 1)
    assert int(values["frames rejected"]) >= 2 and int(values["frames published"]) >= 1
    assert values["device"] == "cpu"
    assert proc.proc.poll() is None, "the node must still run"
    probe.spin_until(lambda: "truncated_data" in proc.output, 10, "a warning naming the rejection in the log")


def test_namespace_params_file_compressed_input_and_sim_time(ros, tmp_path):
    params = tmp_path / "dehaze.yaml"
    # The same section name as config/dehaze.yaml; it must apply although the node runs in a namespace.
    params.write_text("dehaze_node:\n  ros__parameters:\n    input_transport: compressed\n"
                      "    use_camera_info: false\n    output_qos: reliable\n", encoding="utf-8")
    proc = LaunchedProcess(LAUNCH + ["backend:=dcp", "namespace:=robot1", "image_topic:=/test_cam/image_raw",
                                     f"params_file:={params}", "use_sim_time:=true"])
    probe = Probe("launch_probe_ns", output_ns="/robot1")
    clock = probe.create_publisher(Clock, "/clock", 10)
    try:
        probe.wait_for_node("/test_cam/image_raw/compressed")
        assert probe.count_subscribers("/test_cam/image_raw") == 0, "input_transport: compressed from the file"
        rgb = photo("rocket", (120, 80))

        def make(sec):
            tick = Clock()
            tick.clock.sec = 77_000 + sec
            clock.publish(tick)
            return jpeg_msg(rgb, sec)

        _, out = probe.send_until_output(make, probe.pub_compressed, 5000)
        image = out["image"]
        assert (image.encoding, image.height, image.width) == ("bgr8", 120, 80)
        assert image.header.frame_id == "test_camera_optical"
        assert probe.first("depth", image.header.stamp.sec) is not None or probe.spin_until(
            lambda: probe.first("depth", image.header.stamp.sec), 5, "the depth of the same frame")
        assert probe.count_publishers("/robot1/dehazed/camera_info") == 0, "use_camera_info: false from the file"
        info = probe.get_publishers_info_by_topic("/robot1/dehazed/image")
        assert [i.qos_profile.reliability.name for i in info] == ["RELIABLE"]
        # use_sim_time:=true: the node's clock, stamping /diagnostics, follows /clock.
        probe.latest_diagnostics("/robot1/dehaze_node", lambda v: True)
        stamped = probe.spin_until(lambda: [a for a in probe.received["diagnostics"]
                                            if any("/robot1/dehaze_node" in s.name for s in a.status)
                                            and a.header.stamp.sec >= 77_000], 10, "sim-time diagnostics")
        assert stamped[-1].header.stamp.sec >= 77_000
    finally:
        probe.close()
        code = proc.stop()
        output = proc.output
        proc.cleanup()
    assert code == 0, output


def test_invalid_parameter_stops_the_node_with_a_message_naming_it(ros):
    proc = LaunchedProcess(LAUNCH + ["backend:=dehazeformer"])
    try:
        code = proc.wait(timeout=90)
        output = proc.output
    finally:
        proc.cleanup()
    assert "invalid parameter backend: expected one of: dcmpnet, dcp, got 'dehazeformer'" in output, output
    assert "exit code 2" in output, output
    assert code == 0 or code == 2, output


def test_missing_weights_says_what_to_do(ros, tmp_path):
    proc = LaunchedProcess(LAUNCH, env={"DCMPNET_DEFAULT_WEIGHTS": str(tmp_path / "none.pt")})
    try:
        proc.wait(timeout=90)
        output = proc.output
    finally:
        proc.cleanup()
    assert "weights:=" in output and "backend:=dcp" in output, output
    assert "exit code 1" in output, output
