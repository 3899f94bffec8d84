"""Safe image decoding shared by every reader: the pixel budget and corrupt-JPEG detection.

* **Pixel budget.** Every decoder (image files, video files, ROS Image and CompressedImage messages) reads the
  picture's size from its header and refuses it before decoding when ``width * height`` is above the budget
  (:data:`DEFAULT_MAX_INPUT_PIXELS`, 40 MP: an 8K UHD frame or a 24 MP photo pass, a 7000 x 7000 decompression
  bomb does not).  ``dcmpnet infer`` / ``dcmpnet bag`` take ``--max-input-pixels``, the node ``max_input_pixels``.
* **Corrupt JPEG data.** libjpeg decodes a JPEG whose entropy-coded data is cut short or damaged into a partly
  grey picture and only *prints* "Corrupt JPEG data: premature end of data segment" to stderr; neither OpenCV nor
  Pillow reports it to the caller.  :func:`decode_checked` captures the process's stderr (file descriptor 2)
  while libjpeg runs, under a lock, and raises :class:`DecodeError` (reason ``corrupt_data``) when libjpeg
  reported data loss; anything else written meanwhile is passed on to stderr unchanged.  Benign warnings (e.g.
  "extraneous bytes before marker", which some cameras produce on good frames) pass through and do not reject.
"""
from __future__ import annotations

import os
import re
import struct
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_INPUT_PIXELS = 40_000_000
MIN_MAX_INPUT_PIXELS = 16 * 16
JPEG_MAGIC = b"\xff\xd8\xff"
# libjpeg(-turbo) warnings that mean pixels were lost (jerror.h: JWRN_HIT_MARKER, JWRN_HUFF_BAD_CODE,
# JWRN_MUST_RESYNC, JWRN_ARITH_BAD_CODE, JWRN_JPEG_EOF).
_DATA_LOSS = ("premature end of data segment", "bad huffman code", "instead of rst", "bad arithmetic code",
              "premature end of jpeg file")
_LOCK = threading.Lock()
_capture: list = []          # one reusable temporary file for the captured stderr


class DecodeError(ValueError):
    """An input that cannot be decoded safely; ``reason``: too_large, corrupt_data or unreadable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_budget(width: int, height: int, max_pixels: int, what: str = "image") -> None:
    """DecodeError ``too_large`` naming the numbers when ``width * height > max_pixels``."""
    if width * height > max_pixels:
        raise DecodeError("too_large", f"{what} declares {width} x {height} = {width * height} pixels, above the "
                                       f"pixel budget of {max_pixels} (raise it with --max-input-pixels / the "
                                       "max_input_pixels parameter if this is intended)")


def check_max_pixels(value: object, name: str = "max_input_pixels") -> int:
    """``value`` as a validated pixel budget; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_MAX_INPUT_PIXELS:
        raise ValueError(f"{name}: expected an integer >= {MIN_MAX_INPUT_PIXELS} (16 x 16), got {value!r}")
    return value


def header_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file from its header alone; DecodeError if unreadable.

    Pillow's lazy open reads only the header; for TIFFs Pillow cannot open (64-bit float samples, ...) the size
    tags of the first image directory are read directly.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                return int(im.size[0]), int(im.size[1])
        except Image.DecompressionBombError as exc:
            # Pillow refuses sizes above twice its own limit before it returns the size; its message has the count.
            count = re.search(r"\((\d+) pixels\)", str(exc))
            raise DecodeError("too_large", f"its header declares {count.group(1) if count else 'too many'} pixels, "
                                           "above the pixel budget") from None
        except UnidentifiedImageError as exc:
            tiff = _tiff_size(path)
            if tiff is not None:
                return tiff
            raise DecodeError("unreadable", f"not a readable image ({exc})") from None
        except (OSError, ValueError, SyntaxError, struct.error) as exc:
            raise DecodeError("unreadable", f"not a readable image ({type(exc).__name__}: {exc})") from None


def _tiff_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """ImageWidth / ImageLength (tags 256, 257) of a classic TIFF's first IFD; None if it is not one."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            order = {b"II": "<", b"MM": ">"}.get(head[:2])
            if order is None or struct.unpack(order + "H", head[2:4])[0] != 42:
                return None
            f.seek(struct.unpack(order + "I", head[4:8])[0])
            (count,) = struct.unpack(order + "H", f.read(2))
            tags = {}
            for _ in range(min(count, 4096)):
                tag, kind, _, value = struct.unpack(order + "HHI4s", f.read(12))
                if tag in (256, 257):
                    tags[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[:2 if kind == 3 else 4])[0]
            return (int(tags[256]), int(tags[257])) if len(tags) == 2 else None
    except (OSError, struct.error):
        return None


def decode_checked(buf: np.ndarray, flags: int) -> np.ndarray | None:
    """``cv2.imdecode(buf, flags)``; for JPEG data, DecodeError ``corrupt_data`` when libjpeg reports data loss."""
    # OpenCV only to decode compressed frames: the node's torch-free helpers import this module
    import cv2

    if not bytes(buf[:3]) == JPEG_MAGIC:
        return cv2.imdecode(buf, flags)
    with _LOCK:
        text, img = _with_stderr_captured(lambda: cv2.imdecode(buf, flags))
    lost = [line for line in text.splitlines() if any(k in line.lower() for k in _DATA_LOSS)]
    if lost:
        raise DecodeError("corrupt_data", f"corrupt JPEG data, libjpeg: {lost[0].strip()}")
    return img


def _with_stderr_captured(call):
    """(text libjpeg and others wrote to fd 2, result of ``call()``); other text is passed on to stderr."""
    try:
        saved = os.dup(2)
    except OSError:                       # no stderr at all: nothing to capture, nothing to lose
        return "", call()
    if not _capture:
        _capture.append(tempfile.TemporaryFile())
    tmp = _capture[0]
    tmp.seek(0)
    tmp.truncate()
    _flush_stderr()                       # Python's buffered text goes where it was meant to
    os.dup2(tmp.fileno(), 2)
    try:
        result = call()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    tmp.seek(0)
    text = tmp.read().decode("utf-8", "replace")
    other = "".join(line for line in text.splitlines(keepends=True) if not any(k in line.lower() for k in _DATA_LOSS))
    if other:
        os.write(2, other.encode("utf-8", "replace"))
    return text, result


def _flush_stderr() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass


def file_bytes(path: Path) -> np.ndarray:
    """The file's bytes as a uint8 array; DecodeError ``unreadable`` naming the OS error."""
    try:
        return np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise DecodeError("unreadable", f"cannot read the file ({exc.strerror or exc})") from None


_SAMPLE_TYPES = "8- or 16-bit unsigned integers, or float"


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> np.ndarray:
    """An image file as RGB (H,W,3): uint8, or float32 in [0, 1] for 16-bit and float files; DecodeError otherwise.

    The size comes from the header and is checked against ``max_pixels`` before anything is decoded; corrupt JPEG
    data is refused (:func:`decode_checked`).  This is the reader for files from users (``dcmpnet infer``);
    training data goes through :func:`dcmpnet_core.data.datasets.read_rgb`, which wants float32 in [0, 1] always
    and knows its files.
    """
    import cv2  # here: the ROS parameter module imports this one for its constants, without OpenCV

    width, height = header_size(path)
    check_budget(width, height, max_pixels, "its header")
    data = file_bytes(Path(path))
    img = decode_checked(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None or img.size == 0:
        raise DecodeError("unreadable", "not a readable image (OpenCV could not decode it)")
    return to_rgb(img)


def to_rgb(img: np.ndarray) -> np.ndarray:
    """An OpenCV-decoded array (BGR order, 1, 3 or 4 channels) -> RGB as the engine takes it.

    uint8 stays uint8; uint16 becomes float32 in [0, 1]; float stays float32 (values outside [0, 1] are for the
    engine to name); other sample types and channel counts raise DecodeError ``unsupported``.
    """
    import cv2  # here: see read_image

    if img.dtype == np.uint16:
        img = img.astype(np.float32) / 65535.0
    elif img.dtype.kind == "f":
        img = img.astype(np.float32)
    elif img.dtype != np.uint8:
        raise DecodeError("unsupported", f"{img.dtype} samples are not supported (expected {_SAMPLE_TYPES})")
    channels = 1 if img.ndim == 2 else img.shape[2]
    code = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}.get(channels)
    if code is None:
        raise DecodeError("unsupported", f"{channels} channels are not supported (expected 1, 3 or 4)")
    return cv2.cvtColor(np.ascontiguousarray(img.reshape(img.shape[0], img.shape[1], channels)
                                             if channels == 1 else img), code)
