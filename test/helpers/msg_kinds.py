"""Message-class kits for tests: the same messages built from rosbags classes or from rclpy-style classes.

``kit("rosbags")`` uses the real rosbags typestore (every field required, uint8[] as a NumPy array);
``kit("rclpy")`` uses :mod:`rclpy_style_msgs` (keyword defaults, uint8[] as ``array.array('B')``).
Also real photos from scikit-image and a tiny independent PNG writer (zlib + struct, no OpenCV).
"""
from __future__ import annotations

import array
import struct
import zlib
from types import SimpleNamespace

import numpy as np

KINDS = ("rosbags", "rclpy")


def kit(kind: str) -> SimpleNamespace:
    if kind == "rosbags":
        from rosbags.typesys import Stores, get_typestore

        store = get_typestore(Stores.ROS2_HUMBLE)
        t = store.types
        ns = SimpleNamespace(
            kind=kind, store=store, Time=t["builtin_interfaces/msg/Time"], Header=t["std_msgs/msg/Header"],
            Image=t["sensor_msgs/msg/Image"], CompressedImage=t["sensor_msgs/msg/CompressedImage"],
            CameraInfo=t["sensor_msgs/msg/CameraInfo"], RegionOfInterest=t["sensor_msgs/msg/RegionOfInterest"],
            DiagnosticArray=t["diagnostic_msgs/msg/DiagnosticArray"],
            DiagnosticStatus=t["diagnostic_msgs/msg/DiagnosticStatus"], KeyValue=t["diagnostic_msgs/msg/KeyValue"])
        ns.buffer = lambda raw: np.frombuffer(bytes(raw), dtype=np.uint8).copy()
    else:
        import rclpy_style_msgs as m

        ns = SimpleNamespace(kind=kind, store=None, Time=m.Time, Header=m.Header, Image=m.Image,
                             CompressedImage=m.CompressedImage, CameraInfo=m.CameraInfo,
                             RegionOfInterest=m.RegionOfInterest, DiagnosticArray=m.DiagnosticArray,
                             DiagnosticStatus=m.DiagnosticStatus, KeyValue=m.KeyValue)
        ns.buffer = lambda raw: array.array("B", bytes(raw))

    def header(sec: int = 1700000000, nanosec: int = 123456789, frame_id: str = "camera_optical"):
        return ns.Header(stamp=ns.Time(sec=sec, nanosec=nanosec), frame_id=frame_id)

    def image(raw: bytes, height: int, width: int, encoding: str, step: int, bigendian: int = 0, hdr=None):
        return ns.Image(header=hdr or header(), height=height, width=width, encoding=encoding,
                        is_bigendian=bigendian, step=step, data=ns.buffer(raw))

    def compressed(raw: bytes, fmt: str, hdr=None):
        return ns.CompressedImage(header=hdr or header(), format=fmt, data=ns.buffer(raw))

    ns.header, ns.image, ns.compressed = header, image, compressed
    return ns


def padded_rows(pixels: np.ndarray, pad: int, dtype: str) -> tuple[bytes, int]:
    """Row-major bytes of (H,W[,C]) ``pixels`` as ``dtype`` with ``pad`` garbage bytes after each row; (raw, step)."""
    h = pixels.shape[0]
    rows = np.ascontiguousarray(pixels.astype(dtype)).reshape(h, -1).view(np.uint8)
    garbage = np.full((h, pad), 0xA5, np.uint8)
    out = np.concatenate([rows, garbage], axis=1)
    return out.tobytes(), out.shape[1]


def photo(name: str = "astronaut") -> np.ndarray:
    """A crop of a real scikit-image photo: (96,128,3) uint8 RGB, or (96,128) for 'camera'."""
    from skimage import data

    if name == "camera":
        return np.ascontiguousarray(data.camera()[100:196, 200:328])
    img = {"astronaut": lambda: data.astronaut()[30:126, 170:298], "coffee": lambda: data.coffee()[150:246, 200:328],
           "chelsea": lambda: data.chelsea()[60:156, 150:278]}[name]()
    return np.ascontiguousarray(img)


def psnr(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def png_bytes(pixels: np.ndarray, bitdepth: int = 8, size: tuple[int, int] | None = None) -> bytes:
    """A PNG of (H,W) grey, (H,W,2) grey+alpha, (H,W,3) RGB or (H,W,4) RGBA; written without OpenCV.

    ``size`` overrides the (width, height) written to IHDR (to make lying headers).
    """
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = np.ascontiguousarray(pixels.astype(">u2" if bitdepth == 16 else "u1")).reshape(h, -1).view(np.uint8)
    scanlines = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()   # filter type 0 per row

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    width, height = size or (w, h)
    ihdr = struct.pack(">IIBBBBB", width, height, bitdepth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(scanlines)) + chunk(b"IEND", b"")
