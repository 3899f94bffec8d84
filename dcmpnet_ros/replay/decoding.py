"""Input messages to what the pipeline works on: ROS 1 / ROS 2 bytes -> checked camera_info and decoded frames."""
from __future__ import annotations

import contextlib
import io
from typing import Any, Callable, NamedTuple

from rosbags.convert.converter import generate_message_converter

from dcmpnet_core.inference.options import MIN_SIDE  # the engine refuses smaller images: a skip reason here

from ..conversions import MessageRejected, copy_camera_info, decode_message
from .topics import CAMERA_INFO_TYPE, IMAGE_TYPE


class InfoItem(NamedTuple):
    """A camera_info message of ``topic``, checked: ``msg`` None when unusable (``reason`` says why)."""

    topic: str
    msg: Any
    reason: str


class FrameItem(NamedTuple):
    """A decoded image of source topic ``topic``: ``header`` (output-typestore std_msgs/Header), DecodedImage."""

    topic: str
    log_time: int
    header: Any
    decoded: Any


class SkipItem(NamedTuple):
    """An image message of ``topic`` that cannot be processed: the skip reason and the first error's text."""

    topic: str
    reason: str
    detail: str


class _Source(NamedTuple):
    """How to turn one input connection's raw bytes into a ROS 2 message."""

    to_cdr: Callable[[Any], Any]
    typestore: Any


class MessageDecoder:
    """Deserialises input messages (ROS 1 ones converted to ROS 2 types) and decodes images.

    ``reader``: the opened rosbags AnyReader; ``out_ts``: the output typestore (ROS 2 Humble), whose message
    classes every result uses; ``max_decode_pixels``: frames declaring more pixels are skipped (too_large).
    """

    def __init__(self, reader: Any, out_ts: Any, max_decode_pixels: int) -> None:
        self.reader = reader
        self.out_ts = out_ts
        self.max_decode_pixels = max_decode_pixels
        self.Header = out_ts.types["std_msgs/msg/Header"]
        self.Time = out_ts.types["builtin_interfaces/msg/Time"]
        self.Image = out_ts.types[IMAGE_TYPE]
        self.CameraInfo = out_ts.types[CAMERA_INFO_TYPE]
        self._cache: dict[str, object] = {}
        self._sources: dict[tuple[int, int], _Source] = {}

    def deserialize(self, conn: Any, raw: Any) -> Any:
        """The message of ``conn`` in ``raw`` bytes, as a ROS 2 message."""
        key = (conn.id, id(conn.owner))
        src = self._sources.get(key)
        if src is None:
            src = self._sources[key] = self._source(conn)
        return src.typestore.deserialize_cdr(src.to_cdr(raw), conn.msgtype)

    def _source(self, conn: Any) -> _Source:
        """Converter from a connection's raw bytes to CDR, and the typestore that deserialises the result."""
        if self.reader.is2:
            return _Source(lambda raw: raw, self.reader.typestore)

        with contextlib.redirect_stdout(io.StringIO()):      # rosbags reports migrations by printing
            conv = generate_message_converter(self.reader.typestore, self.out_ts, conn.msgtype, conn.msgtype,
                                              self._cache, src_is2=False, dst_is2=True)
        return _Source(conv, self.out_ts)

    def header(self, msg: Any) -> Any:
        """``msg.header`` as an output-typestore std_msgs/Header."""
        h = msg.header
        return self.Header(stamp=self.Time(sec=int(h.stamp.sec), nanosec=int(h.stamp.nanosec)),
                           frame_id=str(h.frame_id))

    def camera_info(self, conn: Any, raw: Any, topic: str) -> InfoItem:
        """Deserialise a CameraInfo and check that it can be copied (K, R, P sizes)."""
        try:
            msg = self.deserialize(conn, raw)
        except Exception:   # noqa: BLE001 - a bad camera_info must not stop the replay
            return InfoItem(topic, None, "deserialization_error")
        try:
            copy_camera_info(self.CameraInfo, msg, self.header(msg))
        except Exception:   # noqa: BLE001
            return InfoItem(topic, None, "malformed")
        return InfoItem(topic, msg, "")

    def first_camera_info(self, conns: list) -> Any:
        """The first usable CameraInfo on ``conns``, or None."""
        with contextlib.suppress(Exception):      # unreadable storage: the replay reports it where it reads
            for conn, _, raw in self.reader.messages(connections=conns):
                info = self.camera_info(conn, raw, "")
                if info.msg is not None:
                    return info.msg
        return None

    def frame(self, conn: Any, log_time: int, raw: Any, topic: str) -> FrameItem | SkipItem:
        """Deserialise and decode one image message; a SkipItem naming the reason when it cannot be used."""
        try:
            msg = self.deserialize(conn, raw)
            header = self.header(msg)
        except Exception as exc:   # noqa: BLE001 - one bad message must not stop the replay
            return SkipItem(topic, "deserialization_error", f"{type(exc).__name__}: {exc}")
        try:
            decoded = decode_message(msg, self.max_decode_pixels)
        except MessageRejected as exc:
            return SkipItem(topic, exc.reason, str(exc))
        except Exception as exc:   # noqa: BLE001
            return SkipItem(topic, "decoder_error", f"{type(exc).__name__}: {exc}")
        h, w = decoded.rgb.shape[:2]
        if h < MIN_SIDE or w < MIN_SIDE:
            return SkipItem(topic, "too_small", f"{w} x {h} image; the network needs at least {MIN_SIDE} px per side")
        return FrameItem(topic, int(log_time), header, decoded)
