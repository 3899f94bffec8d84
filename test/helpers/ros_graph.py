"""Helpers for the tests that need a live ROS 2 graph (test_node_ros.py, test_launch_ros.py).

Import this only after ``pytest.importorskip("rclpy")``. Every test process gets its own ROS domain and
localhost-only discovery, so the tests neither see nor disturb a robot on the same network.
"""
from __future__ import annotations

import array
import os
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RelativeHumidity
from skimage import data as skdata

DIAG_PREFIX = "rejected: "


def isolate_ros_environment() -> None:
    """Use a random ROS domain and localhost-only discovery for this process and the processes it starts."""
    os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(101, 199))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"       # Iron and later
    if os.environ.get("ROS_DISTRO") == "humble":
        os.environ["ROS_LOCALHOST_ONLY"] = "1"                      # Humble's spelling of the same


def photo(name: str = "chelsea", size: tuple[int, int] = (120, 160)) -> np.ndarray:
    """A real photo from scikit-image ((H,W,3) RGB or (H,W) grey, uint8) resized to ``size`` = (height, width)."""
    rgb = getattr(skdata, name)()
    return cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def hazy_photo(name: str = "chelsea", size: tuple[int, int] = (120, 160), beta: float = 0.2) -> np.ndarray:
    """:func:`photo` under dense synthetic haze (scattering model, depth 2-20 m top to bottom, grey airlight).

    Its haze level is far above the node's default pass-through band, so the node dehazes it: tests that compare
    the node's output with the library's use these (a clear photo is published unchanged).
    """
    from dcmpnet_core.data.haze import apply_haze

    img = photo(name, size)
    rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
    depth_m = np.broadcast_to(np.linspace(20.0, 2.0, size[0], dtype=np.float32)[:, None], size)
    hazy = np.round(apply_haze(rgb.astype(np.float32) / 255.0, depth_m, beta, (0.85, 0.85, 0.85)) * 255)
    hazy = hazy.astype(np.uint8)
    return hazy[..., 0] if img.ndim == 2 else hazy


def stamp_header(msg: Any, sec: int, nanosec: int, frame_id: str) -> Any:
    msg.header.stamp.sec = sec
    msg.header.stamp.nanosec = nanosec
    msg.header.frame_id = frame_id
    return msg


def image_msg(pixels: np.ndarray, encoding: str, sec: int, frame_id: str = "test_camera_optical",
              nanosec: int = 250_000_000) -> Image:
    """A sensor_msgs/Image holding ``pixels`` as given (rows packed, ``step`` = bytes per row)."""
    pixels = np.ascontiguousarray(pixels)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=0,
                step=pixels.shape[1] * (pixels.shape[2] if pixels.ndim == 3 else 1) * pixels.itemsize)
    msg.data = _byte_array(pixels.tobytes())
    return stamp_header(msg, sec, nanosec, frame_id)


def _byte_array(payload: bytes) -> array.array:
    # rclpy stores an array.array('B') as is; any other sequence is checked byte by byte.
    out = array.array("B")
    out.frombytes(payload)
    return out


def jpeg_msg(rgb: np.ndarray, sec: int, frame_id: str = "test_camera_optical") -> CompressedImage:
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    msg = CompressedImage(format="rgb8; jpeg compressed bgr8")
    msg.data = _byte_array(buf.tobytes())
    return stamp_header(msg, sec, 0, frame_id)


def camera_info_msg(height: int, width: int, sec: int, frame_id: str = "test_camera_optical") -> CameraInfo:
    fx = fy = 0.8 * width
    msg = CameraInfo(height=height, width=width, distortion_model="plumb_bob")
    msg.d = [0.1, -0.05, 0.001, 0.002, 0.0]
    msg.k = [fx, 0.0, width / 2, 0.0, fy, height / 2, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, width / 2, 0.0, 0.0, fy, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return stamp_header(msg, sec, 0, frame_id)


def image_array(msg: Image) -> np.ndarray:
    """The pixels of a received rgb8/bgr8 (H,W,3 uint8) or 32FC1 (H,W float32) image, honouring ``step``."""
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)
    if msg.encoding == "32FC1":
        return raw[:, : msg.width * 4].copy().view("<f4").reshape(msg.height, msg.width)
    assert msg.encoding in ("rgb8", "bgr8"), msg.encoding
    return raw[:, : msg.width * 3].reshape(msg.height, msg.width, 3).copy()


def diagnostics_values(array: DiagnosticArray, name_part: str) -> dict[str, str] | None:
    """Key/values of the status whose name contains ``name_part``, or None."""
    for status in array.status:
        if name_part in status.name:
            return {kv.key: kv.value for kv in status.values}
    return None


class Probe(Node):
    """The test's side of the graph: publishes camera topics and records what the node publishes."""

    def __init__(self, name: str, camera: str = "/test_cam", output_ns: str = "",
                 output_qos: QoSProfile | None = None, subscribe_outputs: bool = True):
        super().__init__(name)
        reliable = QoSProfile(depth=10)
        self.camera = camera
        self.pub_image = self.create_publisher(Image, f"{camera}/image_raw", reliable)
        self.pub_compressed = self.create_publisher(CompressedImage, f"{camera}/image_raw/compressed", reliable)
        self.pub_info = self.create_publisher(CameraInfo, f"{camera}/camera_info", reliable)
        self.received: dict[str, list] = {"image": [], "depth": [], "camera_info": [], "haze_level": [],
                                          "diagnostics": []}
        out_qos = output_qos or QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)
        prefix = f"{output_ns.rstrip('/')}/dehazed"
        if subscribe_outputs:
            self.create_subscription(Image, f"{prefix}/image", self.received["image"].append, out_qos)
            self.create_subscription(Image, f"{prefix}/depth", self.received["depth"].append, out_qos)
            self.create_subscription(RelativeHumidity, f"{prefix}/haze_level", self.received["haze_level"].append,
                                     out_qos)
            self.create_subscription(CameraInfo, f"{prefix}/camera_info", self.received["camera_info"].append,
                                     out_qos)
        self.create_subscription(DiagnosticArray, "/diagnostics", self.received["diagnostics"].append, 50)
        self.executor_ = SingleThreadedExecutor()
        self.executor_.add_node(self)

    def spin_until(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """Spin this node (and any other added to its executor) until ``condition()`` is truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = condition()
            if result:
                return result
            self.executor_.spin_once(timeout_sec=0.05)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def wait_for_node(self, input_topic: str, timeout: float = 60.0) -> None:
        """Wait until the dehazing node subscribes ``input_topic`` (it has loaded its model by then)."""
        self.spin_until(lambda: self.count_subscribers(input_topic) > 0, timeout, f"a subscriber on {input_topic}")

    def first(self, kind: str, stamp_sec: int) -> Any:
        return next((m for m in self.received[kind] if m.header.stamp.sec == stamp_sec), None)

    def send_until_output(self, make: Callable[[int], Any], publisher: Any, first_sec: int, timeout: float = 30.0,
                          kinds: tuple[str, ...] = ("image",), resend_s: float = 2.0) -> tuple[Any, dict]:
        """Publish ``make(sec)`` (a new stamp each time) until outputs of ``kinds`` with that stamp arrive.

        A subscription is matched a moment after discovery, so the first message may be missed; resending with
        a fresh stamp keeps every output attributable to exactly one input. Returns (sent message, outputs).
        """
        deadline = time.monotonic() + timeout
        sec = first_sec
        while time.monotonic() < deadline:
            msg = make(sec)
            publisher.publish(msg)
            until = min(deadline, time.monotonic() + resend_s)
            while time.monotonic() < until:
                found = {k: self.first(k, sec) for k in kinds}
                if all(v is not None for v in found.values()):
                    return msg, found
                self.executor_.spin_once(timeout_sec=0.05)
            sec += 1
        raise AssertionError(f"no {kinds} output for any frame stamped {first_sec}..{sec - 1} within {timeout:.0f} s")

    def latest_diagnostics(self, name_part: str, condition: Callable[[dict], bool], timeout: float = 15.0) -> dict:
        def check() -> dict | None:
            for diag in reversed(self.received["diagnostics"]):
                values = diagnostics_values(diag, name_part)
                if values is not None and condition(values):
                    return values
            return None
        return self.spin_until(check, timeout, f"a /diagnostics status of {name_part!r} that fits")

    def close(self) -> None:
        self.executor_.remove_node(self)
        self.executor_.shutdown()
        self.destroy_node()


class LaunchedProcess:
    """A ``ros2 launch``/``ros2 run`` command in its own process group, output captured to a file."""

    def __init__(self, args: list[str], env: dict | None = None):
        self._log = tempfile.NamedTemporaryFile(prefix="dcmpnet_ros_test_", suffix=".log", delete=False)
        self.args = args
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})}, start_new_session=True)

    @property
    def output(self) -> str:
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout: float) -> int:
        """Wait for the process to end by itself; its exit status."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{' '.join(self.args)} still ran after {timeout:.0f} s:\n{self.output}") from None

    def stop(self, timeout: float = 20.0) -> int:
        """Ctrl-C (SIGINT) to the process group, as a user would; SIGKILL if it does not end."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)
        self._log.close()
        return self.proc.returncode

    def cleanup(self) -> None:
        self.stop()
        Path(self._log.name).unlink(missing_ok=True)


def init_rclpy() -> None:
    isolate_ros_environment()
    rclpy.init()
