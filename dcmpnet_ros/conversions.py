"""Convert sensor_msgs images to and from NumPy without cv_bridge or rclpy.

Encoding names and pixel semantics follow ``sensor_msgs/image_encodings`` and cv_bridge: 16-bit data is scaled to
8 bits by 255/65535, ``8UC3`` is read as ``bgr8``, Bayer mosaics are demosaiced bilinearly by OpenCV and YUV 4:2:2
uses OpenCV's BT.601 video-range conversion. Every function works with two kinds of message classes:

* rclpy's generated classes (keyword constructors with defaults, ``uint8[]`` stored as ``array.array('B')``);
* the ``rosbags`` library's classes (dataclasses, every field required, ``uint8[]`` stored as a NumPy array).

The kind is told by the class: ``dataclasses.is_dataclass(cls)`` is True only for rosbags.

Malformed input never raises anything but :class:`MessageRejected`, whose ``reason`` is a short stable code used to
count drops (see :data:`REJECT_REASONS`).
"""
from __future__ import annotations

import array
import dataclasses
import operator
import re
import sys
from typing import Any, NamedTuple

import cv2
import numpy as np

from dcmpnet_core.utils.decoding import DEFAULT_MAX_INPUT_PIXELS, DecodeError, decode_checked

#: The pixel budget: frames declaring more pixels are refused (reason ``too_large``) before they are decoded.
DEFAULT_MAX_PIXELS = DEFAULT_MAX_INPUT_PIXELS

#: Every ``MessageRejected.reason`` this module raises, with what it means.
REJECT_REASONS = {
    "malformed": "a field has the wrong type or an impossible value",
    "unsupported_encoding": "Image.encoding is not one this decoder knows",
    "zero_size": "width or height is 0",
    "too_large": "width * height is above max_pixels",
    "step_too_small": "Image.step is smaller than width * bytes per pixel",
    "truncated_data": "Image.data is shorter than step * height",
    "bad_bayer_size": "a Bayer mosaic with an odd width or height",
    "bad_yuv_size": "a YUV 4:2:2 image with an odd width",
    "non_finite": "float image holds NaN or Inf",
    "empty_compressed": "CompressedImage.data is empty",
    "corrupt_compressed": "CompressedImage.data is neither a readable JPEG nor a readable PNG",
    "corrupt_data": "libjpeg reported lost data (entropy-coded data cut short or damaged): the picture is partly grey",
    "truncated_compressed": "a JPEG without end-of-image marker or a PNG without IEND chunk",
    "unsupported_format": "CompressedImage.format names a codec other than JPEG/PNG (or compressedDepth)",
    "wrong_channel_count": "decoded channels disagree with the format string, or are not 1, 3 or 4",
    "wrong_bit_depth": "decoded bit depth disagrees with the format string",
}


class MessageRejected(ValueError):
    """A message that cannot be turned into an image; ``reason`` is a stable snake_case code.

    ``field``, ``expected`` and ``actual`` say what was wrong where known; ``str(exc)`` names all three.
    """

    def __init__(self, reason: str, message: str, field: str = "", expected: Any = None, actual: Any = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.detail = message
        self.field = field
        self.expected = expected
        self.actual = actual

    def __reduce__(self):
        # keeps the attributes when the exception crosses a process boundary (multiprocessing, pickle)
        return MessageRejected, (self.reason, self.detail, self.field, self.expected, self.actual)


def _reject(reason: str, field: str, expected: Any, actual: Any, extra: str = "") -> MessageRejected:
    text = f"{field}: expected {expected}, got {actual}"
    return MessageRejected(reason, text + (f" ({extra})" if extra else ""), field, expected, actual)


class DecodedImage(NamedTuple):
    """A decoded camera image: ``rgb`` is (H,W,3) uint8 RGB, C-contiguous and owned by the caller."""

    rgb: np.ndarray
    source_encoding: str


class _Enc(NamedTuple):
    name: str          # canonical spelling
    channels: int      # samples per pixel in the message buffer (2 for YUV 4:2:2: one Y + one chroma)
    dtype: str         # NumPy kind and size of one sample: u1, u2, f4, f8
    layout: str        # rgb, bgr, rgba, bgra, mono, float, bayer, yuv
    cv_code: int = -1  # OpenCV conversion to RGB for bayer / yuv


# OpenCV names a Bayer pattern after the second row's second and third pixels, so each ROS pattern maps to the
# OpenCV code of its "opposite": rggb -> BG, bggr -> RG, gbrg -> GR, grbg -> GB (the test checks this on photos).
_BAYER = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB,
          "gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB}


def _encodings() -> dict[str, _Enc]:
    table = [
        _Enc("rgb8", 3, "u1", "rgb"), _Enc("bgr8", 3, "u1", "bgr"), _Enc("8UC3", 3, "u1", "bgr"),
        _Enc("rgba8", 4, "u1", "rgba"), _Enc("bgra8", 4, "u1", "bgra"), _Enc("8UC4", 4, "u1", "bgra"),
        _Enc("mono8", 1, "u1", "mono"), _Enc("8UC1", 1, "u1", "mono"),
        _Enc("mono16", 1, "u2", "mono"), _Enc("16UC1", 1, "u2", "mono"),
        _Enc("rgb16", 3, "u2", "rgb"), _Enc("bgr16", 3, "u2", "bgr"), _Enc("16UC3", 3, "u2", "bgr"),
        _Enc("rgba16", 4, "u2", "rgba"), _Enc("bgra16", 4, "u2", "bgra"), _Enc("16UC4", 4, "u2", "bgra"),
        _Enc("32FC1", 1, "f4", "float"), _Enc("64FC1", 1, "f8", "float"),
        # "yuv422" is UYVY and "yuv422_yuy2" is YUYV; newer image_encodings also spell them "uyvy" / "yuyv".
        _Enc("yuv422", 2, "u1", "yuv", cv2.COLOR_YUV2RGB_UYVY), _Enc("uyvy", 2, "u1", "yuv", cv2.COLOR_YUV2RGB_UYVY),
        _Enc("yuv422_yuy2", 2, "u1", "yuv", cv2.COLOR_YUV2RGB_YUY2),
        _Enc("yuyv", 2, "u1", "yuv", cv2.COLOR_YUV2RGB_YUY2),
    ]
    for pattern, code in _BAYER.items():
        table.append(_Enc(f"bayer_{pattern}8", 1, "u1", "bayer", code))
        table.append(_Enc(f"bayer_{pattern}16", 1, "u2", "bayer", code))
    return {e.name.lower(): e for e in table}


ENCODINGS: dict[str, _Enc] = _encodings()
#: Encodings :func:`decode_image` accepts (canonical spelling; matching ignores case).
SUPPORTED_ENCODINGS = tuple(e.name for e in ENCODINGS.values())


def is_rosbags_class(cls: type) -> bool:
    """True for rosbags message classes (dataclasses), False for rclpy's generated classes."""
    return dataclasses.is_dataclass(cls)


def header_key(header: Any) -> tuple[int, int, str]:
    """(sec, nanosec, frame_id) of a std_msgs/Header, for matching messages in tests and logs."""
    return int(header.stamp.sec), int(header.stamp.nanosec), str(header.frame_id)


# --------------------------------------------------------------------------------------------------- raw Image
def _as_int(msg: Any, field: str, allow_bool: bool = False) -> int:
    value = getattr(msg, field)
    if isinstance(value, bool) and not allow_bool:
        raise _reject("malformed", f"Image.{field}", "an integer", repr(value))
    try:
        return operator.index(value)
    except TypeError:
        raise _reject("malformed", f"Image.{field}", "an integer", f"{type(value).__name__} {value!r:.40}") from None


def _byte_view(data: Any, field: str) -> np.ndarray:
    """A flat uint8 view (no copy where possible) of a uint8[] field: array.array, numpy, bytes or a list."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise _reject("malformed", field, "uint8 elements", f"dtype {data.dtype}")
        return np.ascontiguousarray(data).reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview)) or (isinstance(data, array.array) and data.typecode == "B"):
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(data, (list, tuple)):
        try:
            arr = np.asarray(data, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise _reject("malformed", field, "a sequence of integers in [0, 255]", "non-integer elements") from None
        if arr.ndim != 1 or (arr.size and (arr.min() < 0 or arr.max() > 255)):
            raise _reject("malformed", field, "a sequence of integers in [0, 255]", "values outside it")
        return arr.astype(np.uint8)
    raise _reject("malformed", field, "a byte buffer", type(data).__name__)


def _u16_to_u8(img: np.ndarray) -> np.ndarray:
    """16-bit samples (any byte order, any strides) -> uint8 by 255/65535, rounded to nearest, like cv_bridge."""
    native = np.ascontiguousarray(img, dtype=np.uint16)
    # x * 255/65535 == x/257 never lands on .5, so OpenCV's rounding is exact here (the tests check it).
    return cv2.convertScaleAbs(native, alpha=1.0 / 257.0).reshape(native.shape)


def _to_rgb(pixels: np.ndarray, layout: str) -> np.ndarray:
    """(H,W,C) uint8 contiguous in the given channel layout -> new (H,W,3) uint8 RGB."""
    if layout == "rgb":
        return np.array(pixels, dtype=np.uint8, order="C", copy=True)
    code = {"bgr": cv2.COLOR_BGR2RGB, "rgba": cv2.COLOR_RGBA2RGB, "bgra": cv2.COLOR_BGRA2RGB,
            "mono": cv2.COLOR_GRAY2RGB}[layout]
    src = pixels[..., 0] if layout == "mono" else pixels
    return cv2.cvtColor(np.ascontiguousarray(src), code)


def decode_image(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode a sensor_msgs/Image into an (H,W,3) uint8 RGB array.

    Row padding (``step`` > width * pixel bytes) and ``is_bigendian`` are honoured. 16-bit data becomes 8-bit by
    255/65535 (rounded), float grey (32FC1/64FC1) is taken as [0, 1] and saturates outside it, Bayer mosaics are
    demosaiced, alpha is dropped and grey is replicated to three channels.

    Raises:
        MessageRejected: with a ``reason`` from :data:`REJECT_REASONS`; nothing else, whatever the message holds.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ValueError(f"max_pixels: expected a positive int, got {max_pixels!r}")
    try:
        return _decode_image(msg, max_pixels)
    except MessageRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - a message must never crash the caller
        raise MessageRejected("malformed", f"Image could not be read: {type(exc).__name__}: {exc}") from exc


def _check_dims(width: int, height: int, max_pixels: int, prefix: str) -> None:
    for name, value in (("width", width), ("height", height)):
        if value < 0:
            raise _reject("malformed", f"{prefix}.{name}", "a non-negative integer", value)
    if width == 0 or height == 0:
        raise _reject("zero_size", f"{prefix}.width x height", "both > 0", f"{width} x {height}")
    if width * height > max_pixels:
        raise _reject("too_large", f"{prefix}.width x height", f"at most {max_pixels} pixels",
                      f"{width} x {height} = {width * height}")


def _decode_image(msg: Any, max_pixels: int) -> DecodedImage:
    encoding = msg.encoding
    if not isinstance(encoding, str):
        raise _reject("malformed", "Image.encoding", "a string", type(encoding).__name__)
    enc = ENCODINGS.get(encoding.strip().lower())
    if enc is None:
        raise _reject("unsupported_encoding", "Image.encoding", "one of " + ", ".join(SUPPORTED_ENCODINGS),
                      repr(encoding))
    height, width = _as_int(msg, "height"), _as_int(msg, "width")
    step, bigendian = _as_int(msg, "step"), _as_int(msg, "is_bigendian", allow_bool=True)
    _check_dims(width, height, max_pixels, "Image")
    if enc.layout == "bayer" and (width % 2 or height % 2):
        raise _reject("bad_bayer_size", "Image.width x height", f"even sizes for {enc.name}", f"{width} x {height}")
    if enc.layout == "yuv" and width % 2:
        raise _reject("bad_yuv_size", "Image.width", f"an even width for {enc.name}", width)
    itemsize = np.dtype(enc.dtype).itemsize
    row_bytes = width * enc.channels * itemsize
    if step < row_bytes:
        raise _reject("step_too_small", "Image.step", f">= width * {enc.channels * itemsize} = {row_bytes}", step)
    buf = _byte_view(msg.data, "Image.data")
    if buf.size < step * height:
        raise _reject("truncated_data", "Image.data", f"step * height = {step} * {height} = {step * height} bytes",
                      f"{buf.size} bytes")
    dtype = np.dtype(enc.dtype).newbyteorder(">" if bigendian else "<")
    # A strided view over the message buffer: rows `step` bytes apart, padding skipped, no alignment needed.
    pixels = np.ndarray((height, width, enc.channels), dtype=dtype, buffer=buf, offset=0,
                        strides=(step, enc.channels * itemsize, itemsize))
    if enc.layout == "float":
        grey = np.array(pixels[..., 0], dtype=np.dtype(enc.dtype), order="C")
        bad = ~np.isfinite(grey)
        if bad.any():
            raise _reject("non_finite", "Image.data", f"finite {enc.name} values in [0, 1]",
                          f"{int(bad.sum())} NaN/Inf pixels of {grey.size}")
        np.clip(grey, 0.0, 1.0, out=grey)
        grey *= 255.0
        rgb = cv2.cvtColor(np.rint(grey).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    elif enc.layout == "bayer":
        mosaic = np.ascontiguousarray(pixels[..., 0], dtype=np.dtype(enc.dtype))
        rgb = cv2.cvtColor(mosaic, enc.cv_code)
        rgb = _u16_to_u8(rgb) if enc.dtype == "u2" else rgb
    elif enc.layout == "yuv":
        rgb = cv2.cvtColor(np.ascontiguousarray(pixels), enc.cv_code)
    else:
        if enc.dtype == "u2":
            rgb = _to_rgb(_u16_to_u8(pixels), enc.layout)
        else:
            rgb = _to_rgb(pixels if enc.layout == "rgb" else np.ascontiguousarray(pixels), enc.layout)
    return DecodedImage(np.ascontiguousarray(rgb), enc.name)


# --------------------------------------------------------------------------------------------- CompressedImage
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_OTHER_MAGIC = {b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"GIF8": "GIF", b"RIFF": "RIFF/WebP"}
_OTHER_CODECS = ("compresseddepth", "webp", "tiff", "bmp", "gif", "h264", "h265", "hevc", "theora", "av1", "avif",
                 "qoi", "zstd", "ffmpeg", "jxl")
# SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_DECLARED = re.compile(r"compressed\s+([a-z0-9_]+)")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first SOF segment; MessageRejected if the marker structure is broken."""
    pos, n = 2, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise _reject("corrupt_compressed", "CompressedImage.data", "a JPEG marker (0xFF)",
                          f"byte 0x{data[pos]:02X} at offset {pos}")
        while pos < n and data[pos] == 0xFF:   # fill bytes
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:      # markers without a length
            continue
        if marker in (0xD9, 0xDA):
            raise _reject("corrupt_compressed", "CompressedImage.data", "a JPEG frame header (SOF) before the scan",
                          f"marker 0xFF{marker:02X} at offset {pos - 2}")
        if pos + 2 > n:
            break
        length = (data[pos] << 8) | data[pos + 1]
        if length < 2:
            raise _reject("corrupt_compressed", "CompressedImage.data", "a JPEG segment length >= 2", length)
        if marker in _JPEG_SOF:
            if pos + 7 > n:
                break
            height = (data[pos + 3] << 8) | data[pos + 4]
            width = (data[pos + 5] << 8) | data[pos + 6]
            return width, height
        pos += length
    raise _reject("truncated_compressed", "CompressedImage.data", "a complete JPEG header",
                  f"{n} bytes ending before the frame header")


def _parse_format(fmt: str) -> tuple[str, str, str]:
    """(original encoding or '', codec 'jpeg'/'png'/'', declared compressed pixel format or '')."""
    low = fmt.strip().lower()
    original = low.split(";", 1)[0].strip() if ";" in low else ""
    declared = _DECLARED.search(low)
    codec = "jpeg" if re.search(r"\bjpe?g\b", low) else "png" if re.search(r"\bpng\b", low) else ""
    return original, codec, declared.group(1) if declared else ""


def decode_compressed(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode a sensor_msgs/CompressedImage (JPEG or PNG) into an (H,W,3) uint8 RGB array.

    ``format`` may be a bare codec ("jpeg", "png") or what image_transport writes ("rgb8; jpeg compressed bgr8").
    The size is read from the JPEG/PNG header and checked against ``max_pixels`` before anything is decoded. Grey,
    grey+alpha and BGRA pictures become RGB (alpha dropped); 16-bit PNGs are scaled by 255/65535. When the format
    string declares the compressed pixel format (``... compressed bgr8``) the decoded channels and depth must agree.
    ``source_encoding`` is the original encoding named before ';' when it is one :func:`decode_image` knows, else
    the encoding image_transport's decoder would produce (bgr8, mono8, bgr16 or mono16).

    Raises:
        MessageRejected: with a ``reason`` from :data:`REJECT_REASONS`; nothing else, whatever the message holds.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ValueError(f"max_pixels: expected a positive int, got {max_pixels!r}")
    try:
        return _decode_compressed(msg, max_pixels)
    except MessageRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - a message must never crash the caller
        raise MessageRejected("malformed", f"CompressedImage could not be read: {type(exc).__name__}: {exc}") from exc


def _decode_compressed(msg: Any, max_pixels: int) -> DecodedImage:
    fmt = msg.format
    if not isinstance(fmt, str):
        raise _reject("malformed", "CompressedImage.format", "a string", type(fmt).__name__)
    original, codec, declared = _parse_format(fmt)
    low = fmt.lower()
    other = [c for c in _OTHER_CODECS if c in low]
    if (other and not codec) or "compresseddepth" in low:
        raise _reject("unsupported_format", "CompressedImage.format", "a JPEG or PNG format", repr(fmt))
    buf = _byte_view(msg.data, "CompressedImage.data")
    if buf.size == 0:
        raise _reject("empty_compressed", "CompressedImage.data", "a JPEG or PNG stream", "0 bytes")
    data = buf.tobytes()
    if data.startswith(_JPEG_MAGIC):
        width, height = _jpeg_size(data)
        # 0xFF never occurs inside entropy-coded data unstuffed, so a complete stream has EOI after its last SOS.
        if data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
            raise _reject("truncated_compressed", "CompressedImage.data", "a JPEG ending in an EOI marker",
                          f"{len(data)} bytes without EOI after the last scan")
    elif data.startswith(_PNG_MAGIC):
        if len(data) < 33 or data[12:16] != b"IHDR":
            raise _reject("corrupt_compressed", "CompressedImage.data", "a PNG IHDR chunk after the signature",
                          repr(data[12:16]))
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if data.rfind(b"IEND") < 0:
            raise _reject("truncated_compressed", "CompressedImage.data", "a PNG ending in an IEND chunk",
                          f"{len(data)} bytes without IEND")
    else:
        kind = next((name for magic, name in _OTHER_MAGIC.items() if data.startswith(magic)), None)
        if kind:
            raise _reject("unsupported_format", "CompressedImage.data", "a JPEG or PNG stream", f"a {kind} stream")
        raise _reject("corrupt_compressed", "CompressedImage.data", "a JPEG (FF D8 FF) or PNG signature",
                      f"first bytes {data[:8].hex(' ')}")
    _check_dims(width, height, max_pixels, "CompressedImage.data header")
    try:
        img = decode_checked(buf, cv2.IMREAD_UNCHANGED)
    except DecodeError as exc:
        raise _reject("corrupt_data", "CompressedImage.data", f"an intact {width} x {height} JPEG", str(exc)) from None
    if img is None or img.size == 0:
        raise _reject("corrupt_compressed", "CompressedImage.data", f"a decodable {width} x {height} image",
                      "OpenCV could not decode it")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if declared in ENCODINGS:
        want = ENCODINGS[declared]
        if want.channels != channels:
            raise _reject("wrong_channel_count", "CompressedImage.data", f"{want.channels} channel(s) as the format "
                          f"'{fmt}' declares", f"{channels} channel(s)")
        if np.dtype(want.dtype) != img.dtype:
            raise _reject("wrong_bit_depth", "CompressedImage.data", f"{np.dtype(want.dtype).name} samples as the "
                          f"format '{fmt}' declares", f"{img.dtype.name} samples")
    if img.dtype == np.uint16:
        img8 = _u16_to_u8(img)
    elif img.dtype == np.uint8:
        img8 = img
    else:
        raise _reject("wrong_bit_depth", "CompressedImage.data", "8- or 16-bit samples", f"{img.dtype.name} samples")
    layout = {1: "mono", 3: "bgr", 4: "bgra"}.get(channels)
    if layout is None:
        raise _reject("wrong_channel_count", "CompressedImage.data", "1, 3 or 4 channels", f"{channels} channels")
    rgb = _to_rgb(img8.reshape(img8.shape[0], img8.shape[1], channels), layout)
    if original in ENCODINGS:
        source = ENCODINGS[original].name
    else:
        source = ("mono" if channels == 1 else "bgr") + ("16" if img.dtype == np.uint16 else "8")
    return DecodedImage(rgb, source)


def decode_message(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """:func:`decode_compressed` for a CompressedImage (has ``format``), else :func:`decode_image`."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return decode_compressed(msg, max_pixels)
    return decode_image(msg, max_pixels)


# ------------------------------------------------------------------------------------------------------ encode
def output_encoding_for(source_encoding: str) -> str:
    """Encoding of the published image: the source's for rgb8/bgr8 (so consumers see no change), else rgb8."""
    return source_encoding if source_encoding in ("rgb8", "bgr8") else "rgb8"


def _fill_image(cls: type, header: Any, height: int, width: int, encoding: str, step: int, payload: np.ndarray,
                source: np.ndarray):
    """Build a sensor_msgs/Image of either message kind; ``payload`` is C-contiguous little-endian data."""
    if is_rosbags_class(cls):
        data = payload.reshape(-1).view(np.uint8)
        data = data.copy() if np.may_share_memory(data, source) else data   # never alias the caller's array
        return cls(header=header, height=height, width=width, encoding=encoding, is_bigendian=0, step=step,
                   data=data)
    msg = cls(header=header, height=height, width=width, encoding=encoding, is_bigendian=0, step=step)
    # rclpy's setter stores an array.array('B') as is; any other sequence is checked element by element (slow).
    data = array.array("B")
    data.frombytes(payload.reshape(-1).view(np.uint8))
    msg.data = data
    return msg


def encode_image(cls: type, header: Any, image: np.ndarray, encoding: str) -> Any:
    """Build a sensor_msgs/Image of class ``cls`` (rclpy or rosbags) from an array.

    ``image``: (H,W,3) uint8 RGB for ``rgb8``/``bgr8``, (H,W) uint8 for ``mono8``, (H,W) float32 for ``32FC1``
    (float64 is narrowed; NaN/Inf pass through, as REP 118 allows for depth). The result is little-endian
    (``is_bigendian=0``) with ``step = width * bytes per pixel``; ``header`` is used as given.

    Raises:
        TypeError, ValueError: ``image`` or ``encoding`` do not fit together (named in the message).
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image: expected a numpy.ndarray, got {type(image).__name__}")
    if encoding in ("rgb8", "bgr8"):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: expected (H,W,3) uint8 RGB for {encoding}, got {image.shape} {image.dtype}")
        image = np.ascontiguousarray(image)
        payload = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if encoding == "bgr8" else image
        bpp = 3
    elif encoding == "mono8":
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[..., 0]
        if image.ndim != 2 or image.dtype != np.uint8:
            raise ValueError(f"image: expected (H,W) uint8 for mono8, got {image.shape} {image.dtype}")
        payload, bpp = image, 1
    elif encoding == "32FC1":
        if image.ndim != 2 or image.dtype.kind != "f":
            raise ValueError(f"image: expected (H,W) float32 for 32FC1, got {image.shape} {image.dtype}")
        payload, bpp = image.astype("<f4", copy=False), 4
    else:
        raise ValueError(f"encoding: expected one of rgb8, bgr8, mono8, 32FC1, got {encoding!r}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"image: expected a non-empty image, got shape {image.shape}")
    return _fill_image(cls, header, int(height), int(width), encoding, int(width) * bpp,
                       np.ascontiguousarray(payload), image)


def encode_depth(cls: type, header: Any, depth: np.ndarray) -> Any:
    """Build a 32FC1 sensor_msgs/Image from an (H,W) float depth map (values as given: relative or metres)."""
    return encode_image(cls, header, depth, "32FC1")


#: Message type of ``dehazed/haze_level``: the sensor_msgs single-reading layout (header, value in [0, 1],
#: variance) with a unitless fraction; see the README ("Published topics") for why this type.
HAZE_LEVEL_TYPE = "sensor_msgs/msg/RelativeHumidity"


def encode_haze_level(cls: type, header: Any, level: float) -> Any:
    """A sensor_msgs/RelativeHumidity message carrying a haze level in [0, 1] (variance 0: unknown)."""
    value = float(level)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"level: expected a haze level in [0, 1], got {level!r}")
    return cls(header=header, relative_humidity=value, variance=0.0)


def _nested_class(cls: type, field: str, sample: Any) -> type:
    """The class of a nested message field of ``cls`` (same kind as ``cls``)."""
    if sample is not None and is_rosbags_class(type(sample)) == is_rosbags_class(cls):
        return type(sample)
    if not is_rosbags_class(cls):
        return type(getattr(cls(), field))
    name = {f.name: f.type for f in dataclasses.fields(cls)}[field]
    found = getattr(sys.modules.get(cls.__module__), name, None) if isinstance(name, str) else name
    if found is None:
        raise TypeError(f"{cls.__name__}.{field}: cannot resolve its message class {name!r}")
    return found


def copy_camera_info(cls: type, info: Any, header: Any) -> Any:
    """A copy of sensor_msgs/CameraInfo ``info`` as class ``cls`` with ``header`` replaced.

    Arrays (d, k, r, p) and the RegionOfInterest are copied, so changing the copy never changes ``info``.
    """
    roi_cls = _nested_class(cls, "roi", info.roi)
    roi = roi_cls(x_offset=int(info.roi.x_offset), y_offset=int(info.roi.y_offset), height=int(info.roi.height),
                  width=int(info.roi.width), do_rectify=bool(info.roi.do_rectify))
    d = np.array(info.d, dtype=np.float64).reshape(-1)
    k, r, p = (np.array(getattr(info, f), dtype=np.float64).reshape(-1) for f in ("k", "r", "p"))
    if (k.size, r.size, p.size) != (9, 9, 12):
        raise ValueError(f"info: expected k, r, p of 9, 9, 12 values, got {k.size}, {r.size}, {p.size}")
    if not is_rosbags_class(cls):
        d = array.array("d", d.tobytes()) if d.size else array.array("d")
    return cls(header=header, height=int(info.height), width=int(info.width),
               distortion_model=str(info.distortion_model), d=d, k=k, r=r, p=p,
               binning_x=int(info.binning_x), binning_y=int(info.binning_y), roi=roi)
