"""Real rosbag2 / ROS 1 bags for the replay tests, built with rosbags' own writers from scikit-image photos.

Image encodings are produced here with plain NumPy/OpenCV, independently of dcmpnet_ros.conversions, so a bug in
the code under test cannot hide behind a matching bug in the fixture.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from rosbags.typesys import Stores, get_typestore

TS2 = get_typestore(Stores.ROS2_HUMBLE)
TS1 = get_typestore(Stores.ROS1_NOETIC)
T0 = 1_700_000_000 * 10**9                     # first log time (ns)
H, W = 64, 80


def photos(h: int = H, w: int = W) -> list[np.ndarray]:
    """Four real photographs (H,W,3) uint8 RGB, resized."""
    from skimage import data

    return [cv2.resize(f(), (w, h), interpolation=cv2.INTER_AREA) for f in
            (data.astronaut, data.coffee, data.chelsea, data.rocket)]


def header(ts: Any, i: int, frame_id: str = "cam_optical") -> Any:
    Time = ts.types["builtin_interfaces/msg/Time"]
    Header = ts.types["std_msgs/msg/Header"]
    stamp = Time(sec=1_600_000_000 + i, nanosec=123_000 + i)
    if "seq" in ts.fielddefs["std_msgs/msg/Header"][1][0]:
        return Header(seq=i, stamp=stamp, frame_id=frame_id)
    return Header(stamp=stamp, frame_id=frame_id)


def image(ts: Any, hdr: Any, rgb: np.ndarray, encoding: str) -> Any:
    """A sensor_msgs/Image holding ``rgb`` in ``encoding`` (rgb8, bgr8, mono8, rgba8, bayer_rggb8, 16UC1, mono16)."""
    if encoding == "rgb8":
        px = rgb
    elif encoding == "bgr8":
        px = rgb[..., ::-1]
    elif encoding == "rgba8":
        px = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    elif encoding == "mono8":
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif encoding in ("16UC1", "mono16"):
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype("<u2") * 257
    elif encoding == "bayer_rggb8":
        px = np.empty(rgb.shape[:2], np.uint8)
        px[0::2, 0::2] = rgb[0::2, 0::2, 0]
        px[0::2, 1::2] = rgb[0::2, 1::2, 1]
        px[1::2, 0::2] = rgb[1::2, 0::2, 1]
        px[1::2, 1::2] = rgb[1::2, 1::2, 2]
    else:
        raise ValueError(encoding)
    px = np.ascontiguousarray(px)
    h, w = rgb.shape[:2]
    data = px.reshape(-1).view(np.uint8)
    return ts.types["sensor_msgs/msg/Image"](header=hdr, height=h, width=w, encoding=encoding, is_bigendian=0,
                                             step=data.size // h, data=data.copy())


def compressed(ts: Any, hdr: Any, rgb: np.ndarray, codec: str = "jpeg") -> Any:
    ok, buf = cv2.imencode(".jpg" if codec == "jpeg" else ".png", np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return ts.types["sensor_msgs/msg/CompressedImage"](header=hdr, format=f"bgr8; {codec} compressed bgr8",
                                                       data=buf.reshape(-1).copy())


def camera_info(ts: Any, hdr: Any, h: int = H, w: int = W, fx: float = 70.0) -> Any:
    k = np.array([fx, 0, w / 2, 0, fx, h / 2, 0, 0, 1], np.float64)
    r = np.eye(3).reshape(-1)
    p = np.array([fx, 0, w / 2, 0, 0, fx, h / 2, 0, 0, 0, 1, 0], np.float64)
    d = np.array([-0.1, 0.01, 0.0, 0.0, 0.0])
    roi_cls = ts.types["sensor_msgs/msg/RegionOfInterest"]
    roi = roi_cls(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    fields = [n for n, _ in ts.fielddefs["sensor_msgs/msg/CameraInfo"][1]]
    names = dict(zip(["d", "k", "r", "p"], ["D", "K", "R", "P"])) if "K" in fields else {x: x for x in "dkrp"}
    return ts.types["sensor_msgs/msg/CameraInfo"](
        header=hdr, height=h, width=w, distortion_model="plumb_bob", binning_x=0, binning_y=0, roi=roi,
        **{names["d"]: d, names["k"]: k, names["r"]: r, names["p"]: p})


def imu(ts: Any, hdr: Any, i: int) -> Any:
    V3 = ts.types["geometry_msgs/msg/Vector3"]
    Q = ts.types["geometry_msgs/msg/Quaternion"]
    cov = np.zeros(9)
    return ts.types["sensor_msgs/msg/Imu"](header=hdr, orientation=Q(x=0.0, y=0.0, z=0.0, w=1.0),
                                           orientation_covariance=cov, angular_velocity=V3(x=0.1 * i, y=0.0, z=0.0),
                                           angular_velocity_covariance=cov,
                                           linear_acceleration=V3(x=0.0, y=0.0, z=9.81),
                                           linear_acceleration_covariance=cov)


class Entry(NamedTuple):
    topic: str
    msgtype: str
    log_time: int
    msg: Any            # a message object, or bytes written raw (malformed on purpose)


def write_bag2(path: Path, entries: list[Entry], storage: str = "sqlite3", compression: str = "none",
               qos: dict[str, list] | None = None) -> Path:
    """Write a rosbag2 with rosbags.rosbag2.Writer; ``qos`` maps topic -> offered QoS profiles."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP if storage == "mcap" else
                    StoragePlugin.SQLITE3)
    if compression != "none":
        writer.set_compression(CompressionMode[compression.upper()], CompressionFormat.ZSTD)
    with writer:
        conns: dict[str, Any] = {}
        for e in entries:
            if e.topic not in conns:
                conns[e.topic] = writer.add_connection(e.topic, e.msgtype, typestore=TS2,
                                                       offered_qos_profiles=(qos or {}).get(e.topic, []))
            raw = e.msg if isinstance(e.msg, (bytes, bytearray)) else TS2.serialize_cdr(e.msg, e.msgtype)
            writer.write(conns[e.topic], e.log_time, raw)
    return path


def write_bag1(path: Path, entries: list[Entry], latching: frozenset = frozenset()) -> Path:
    from rosbags.rosbag1 import Writer

    with Writer(path) as writer:
        conns: dict[str, Any] = {}
        for e in entries:
            if e.topic not in conns:
                conns[e.topic] = writer.add_connection(e.topic, e.msgtype, typestore=TS1,
                                                       latching=int(e.topic in latching))
            raw = e.msg if isinstance(e.msg, (bytes, bytearray)) else TS1.serialize_ros1(e.msg, e.msgtype)
            writer.write(conns[e.topic], e.log_time, raw)
    return path


def snapshot(path: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime_ns of every file under ``path`` (or of ``path`` itself), to prove nothing changed."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), os.stat(p).st_mtime_ns) for p in files}


def read_bag(path: Path) -> dict[str, list[tuple[int, Any, str]]]:
    """Topic -> [(log_time, message or raw bytes when undeserialisable, msgtype)] read with rosbags' AnyReader."""
    from rosbags.highlevel import AnyReader, AnyReaderError

    out: dict[str, list] = {}
    with AnyReader([path]) as reader:
        for conn, t, raw in reader.messages():
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except AnyReaderError:
                msg = bytes(raw)
            out.setdefault(conn.topic, []).append((t, msg, conn.msgtype))
    return out


def image_pixels(msg: Any) -> np.ndarray:
    """(H,W,3) uint8 RGB of an rgb8/bgr8 Image, or (H,W) float32 of a 32FC1 one (independent of the package)."""
    h, w = msg.height, msg.width
    buf = np.asarray(msg.data, np.uint8)
    if msg.encoding == "32FC1":
        return buf.view("<f4").reshape(h, msg.step // 4)[:, :w]
    px = buf.reshape(h, msg.step)[:, : w * 3].reshape(h, w, 3)
    return px[..., ::-1] if msg.encoding == "bgr8" else px
