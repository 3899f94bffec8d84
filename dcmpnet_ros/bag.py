"""Replay recorded camera bags through the dehazer without ROS: rosbag in, rosbag out.

Reads rosbag2 (sqlite3 or MCAP storage, zstd file or message compression) and ROS 1 ``.bag`` files with the
pure-Python ``rosbags`` library, dehazes every frame of the chosen image topics and writes a rosbag2 holding what
the ROS node would have published for that recording (same conversion code, :mod:`dcmpnet_ros.conversions`):

* ``/dehazed/image``: sensor_msgs/Image, the input's encoding for rgb8/bgr8 input, else rgb8 (CompressedImage
  input is published as a raw Image, like the node);
* ``/dehazed/depth``: sensor_msgs/Image 32FC1, relative depth (larger = farther, max 1 per image);
* ``/dehazed/haze_level``: sensor_msgs/RelativeHumidity, the frame's haze level in [0, 1] (as the node publishes
  it); frames below the dehazer's ``bypass_below`` are written unchanged (pass-through), each image topic being
  one stream for the pass-through state;
* ``/dehazed/camera_info``: the camera's sensor_msgs/CameraInfo re-stamped with each image's header, when the
  bag holds the image topic's sibling ``camera_info`` topic (``/cam/image_raw`` and ``/cam/image_raw/compressed``
  -> ``/cam/camera_info``). Frames recorded before the first camera_info get the first one, since the intrinsics
  of a recording do not change.

With several image topics, each one's outputs go under ``/dehazed/<source topic without leading slash>/``, e.g.
``/dehazed/cam/image_raw/image``. Every output carries the input message's header (stamp, frame_id) and is
written at the input's log time; QoS metadata is copied from the input topics. ROS 1 input is converted to ROS 2
message types (``rosbags.convert``). ``copy_all_topics`` also copies every input topic unchanged (the source image
topics included), so the output is the input plus the dehazed topics.

Malformed messages (undeserialisable bytes, MessageRejected by the decoder, images smaller than the network's
minimum side, a frame the engine fails on) are skipped and counted by reason; they never stop a replay.

The input is opened read-only. The output is built in a hidden temporary directory beside ``output`` and renamed
into place only when complete, so an interrupted or failed replay leaves neither a partial bag nor the temporary
directory behind.
"""
from __future__ import annotations

import contextlib
import io
import os
import queue
import shutil
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from dcmpnet_core.utils.fileio import replace_dir

from .conversions import (
    DEFAULT_MAX_PIXELS,
    HAZE_LEVEL_TYPE,
    MessageRejected,
    copy_camera_info,
    decode_message,
    encode_depth,
    encode_haze_level,
    encode_image,
    output_encoding_for,
)
from .diagnostics import DropCounter

if TYPE_CHECKING:
    from dcmpnet_core.inference.engine import DehazeResult

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
STORAGES = ("sqlite3", "mcap")
COMPRESSIONS = ("none", "file", "message")
OUTPUT_NAMESPACE = "/dehazed"
# rosbag2 metadata version written; 8 keeps offered_qos_profiles as a YAML string, which Humble's reader expects.
BAG_VERSION = 8
# The dehazing engine rejects smaller images (the network downsamples by 16); counted as a skip reason here.
MIN_SIDE = 16

#: Skip reasons this module adds to those of :data:`dcmpnet_ros.conversions.REJECT_REASONS`.
SKIP_REASONS = {
    "deserialization_error": "the message bytes could not be deserialised as the connection's message type",
    "decoder_error": "the image decoder failed in an unexpected way",
    "too_small": f"the image is smaller than {MIN_SIDE} px on a side (the network's minimum)",
    "inference_error": "the dehazing engine raised an error on this frame",
    "unreadable": "the bag's storage could not be read there (a corrupt chunk or page); its messages are lost",
}


class BagError(ValueError):
    """A replay that cannot start: bad paths, an existing output, unknown topics; the message says what to do."""


class BagWriteError(RuntimeError):
    """Writing the output failed (disk full, read-only, removed folder); the partial output has been removed."""


class OutputTopics(NamedTuple):
    """Output topic names for one source image topic."""

    image: str
    depth: str
    camera_info: str
    haze_level: str


class FrameEvent(NamedTuple):
    """One processed frame, handed to the ``on_frame`` hook of :func:`replay_bag`.

    ``rgb``: (H,W,3) uint8 decoded input; ``result``: the engine's DehazeResult (``dehazed`` (H,W,3) uint8 RGB,
    ``depth`` (H,W) float32 relative depth in (0, 1]); ``index``: 0-based count of frames output for ``topic``;
    ``log_time_ns``: the bag's receive timestamp; ``stamp``: (sec, nanosec) of the header; ``frame_id``.
    The arrays are shared with the writer thread: read them, copy them, but do not modify them in place.
    """

    topic: str
    index: int
    log_time_ns: int
    stamp: tuple[int, int]
    frame_id: str
    rgb: np.ndarray
    result: DehazeResult


FrameHook = Callable[[FrameEvent], None]


# ------------------------------------------------------------------------------------------- naming
def camera_info_topic_for(image_topic: str) -> str:
    """The camera_info topic beside an image topic (image_transport's convention).

    ``/cam/image_raw`` -> ``/cam/camera_info``; ``/cam/image_raw/compressed`` -> ``/cam/camera_info``;
    ``/image`` -> ``/camera_info``.
    """
    parts = image_topic.rstrip("/").split("/")
    if len(parts) > 2 and parts[-1] == "compressed":
        parts = parts[:-1]
    return "/".join(parts[:-1] + ["camera_info"]) if len(parts) > 1 else "camera_info"


def output_topics_for(image_topic: str, several: bool) -> OutputTopics:
    """Output topics for ``image_topic``: ``/dehazed/{image,depth,camera_info,haze_level}``.

    With ``several`` image topics in one replay: ``/dehazed/<image_topic without leading slash>/{...}``.
    """
    base = OUTPUT_NAMESPACE + ("/" + image_topic.strip("/") if several else "")
    return OutputTopics(f"{base}/image", f"{base}/depth", f"{base}/camera_info", f"{base}/haze_level")


# ------------------------------------------------------------------------------------------ summary
@dataclass
class TopicReport:
    """What happened to one source image topic."""

    topic: str
    msgtype: str
    outputs: OutputTopics
    camera_info_topic: str | None
    frames_in: int = 0
    frames_out: int = 0
    passed_through: int = 0           # frames written unchanged (haze level below the threshold)
    camera_info_out: int = 0
    skipped: DropCounter = field(default_factory=DropCounter)
    examples: dict[str, str] = field(default_factory=dict)   # first message per skip reason
    faulty_output: int = 0           # frames written whose network output was NaN/Inf (zeroed) or constant
    faulty_example: str = ""

    def skip(self, reason: str, detail: str) -> None:
        self.skipped.add(reason)
        self.examples.setdefault(reason, detail)


@dataclass
class ReplaySummary:
    """Counts and times of one replay; :meth:`format` renders the report the CLI prints."""

    input_path: Path
    output_path: Path
    input_format: str                 # "rosbag2 sqlite3", "rosbag2 mcap", "ROS 1 bag"
    output_storage: str
    engine: str
    topics: list[TopicReport]
    copied: dict[str, int] = field(default_factory=dict)        # topic -> messages copied unchanged
    not_copied: dict[str, str] = field(default_factory=dict)    # topic -> why --copy-all-topics could not copy it
    camera_info_skipped: DropCounter = field(default_factory=DropCounter)
    wall_s: float = 0.0
    inference_s: float = 0.0
    read_decode_s: float = 0.0
    encode_write_s: float = 0.0
    hook_s: float = 0.0               # time in the caller's on_frame hook (previews etc.), not replay overhead
    storage_errors: list[str] = field(default_factory=list)   # unreadable stretches of the input, skipped

    @property
    def frames_in(self) -> int:
        return sum(t.frames_in for t in self.topics)

    @property
    def frames_out(self) -> int:
        return sum(t.frames_out for t in self.topics)

    @property
    def skipped(self) -> int:
        return sum(t.skipped.total for t in self.topics)

    @property
    def overhead_s(self) -> float:
        """Wall time not spent in the engine (nor the on_frame hook): reading, decoding, encoding, writing."""
        return max(0.0, self.wall_s - self.inference_s - self.hook_s)

    @property
    def overhead_fraction(self) -> float:
        """``overhead_s / wall_s`` (0 for an empty replay)."""
        return self.overhead_s / self.wall_s if self.wall_s > 0 else 0.0

    def format(self) -> str:
        """A multi-line, human-readable report."""
        lines = [f"{self.input_path} ({self.input_format}) -> {self.output_path} (rosbag2 {self.output_storage})",
                 f"engine: {self.engine}"]
        for t in self.topics:
            skipped = ", ".join(f"{r} {n}" for r, n in t.skipped.counts().items())
            lines.append(f"  {t.topic} [{t.msgtype.rsplit('/', 1)[-1]}]: {t.frames_in} in, {t.frames_out} out, "
                         f"{t.skipped.total} skipped" + (f" ({skipped})" if skipped else "")
                         + f"; {t.passed_through} passed through undehazed (haze level below the threshold)")
            outs = [t.outputs.image, t.outputs.depth, t.outputs.haze_level] if t.frames_out else []
            outs = outs or [t.outputs.image + " (nothing written)"]
            if t.camera_info_topic:
                outs.append(f"{t.outputs.camera_info} ({t.camera_info_out} from {t.camera_info_topic})")
            else:
                outs.append(f"no camera_info ({camera_info_topic_for(t.topic)} not in the bag)")
            lines.append("      -> " + ", ".join(outs))
            for reason, text in t.examples.items():
                lines.append(f"      first {reason}: {text[:200]}")
            if t.faulty_output:
                lines.append(f"      WARNING: {t.faulty_output} frame(s) with faulty network output: "
                             f"{t.faulty_example}")
        if self.camera_info_skipped.total:
            lines.append("  camera_info messages skipped: " + ", ".join(
                f"{r} {n}" for r, n in self.camera_info_skipped.counts().items()))
        if self.copied:
            lines.append(f"  copied unchanged: {len(self.copied)} topics, {sum(self.copied.values())} messages")
        for topic, why in self.not_copied.items():
            lines.append(f"  NOT copied: {topic} ({why[:200]})")
        for err in self.storage_errors:
            lines.append(f"  input storage error, skipped: {err[:300]}")
        fps = self.frames_out / self.wall_s if self.wall_s > 0 else 0.0
        infer_pct = 100.0 * self.inference_s / self.wall_s if self.wall_s > 0 else 0.0
        lines.append(f"frames: {self.frames_in} in, {self.frames_out} out, {self.skipped} skipped")
        lines.append(f"time: wall {self.wall_s:.2f} s ({fps:.2f} frames/s): inference {self.inference_s:.2f} s "
                     f"({infer_pct:.1f} %), overhead {self.overhead_s:.2f} s ({100 * self.overhead_fraction:.1f} %; "
                     f"read+decode {self.read_decode_s:.2f} s, encode+write {self.encode_write_s:.2f} s)"
                     + (f"; on_frame hook {self.hook_s:.2f} s" if self.hook_s else ""))
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------- paths
def _input_format(path: Path) -> tuple[str, str | None]:
    """('rosbag2', storage) or ('rosbag1', None); BagError naming the problem otherwise."""
    if not path.exists():
        raise BagError(f"INPUT: no such file or directory: {path}")
    if path.is_file():
        if path.suffix == ".bag":
            return "rosbag1", None
        hint = ""
        if path.suffix in (".db3", ".mcap") and (path.parent / "metadata.yaml").is_file():
            hint = f" (this file is part of a rosbag2; pass its directory {path.parent})"
        raise BagError(f"INPUT: expected a rosbag2 directory (with metadata.yaml) or a ROS 1 .bag file, "
                       f"got the file {path}{hint}")
    meta = path / "metadata.yaml"
    if not meta.is_file():
        raise BagError(f"INPUT: expected a rosbag2 directory with a metadata.yaml, but {meta} does not exist")
    import yaml

    try:
        info = yaml.safe_load(meta.read_text(encoding="utf-8"))["rosbag2_bagfile_information"]
        storage = str(info.get("storage_identifier", ""))
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise BagError(f"INPUT: cannot read {meta}: {type(exc).__name__}: {exc}") from exc
    if storage not in STORAGES:
        raise BagError(f"INPUT: storage {storage!r} in {meta} is not readable here; expected one of {STORAGES}")
    return "rosbag2", storage


def _is_within(inner: Path, outer: Path) -> bool:
    try:
        inner.relative_to(outer)
        return True
    except ValueError:
        return False


def _check_output(input_path: Path, output: Path, overwrite: bool) -> None:
    src, dst = input_path.resolve(), output.resolve()
    if output.suffix == ".bag":
        raise BagError(f"OUTPUT: {output} ends in .bag, but the output is always a rosbag2 directory; "
                       "choose a name without .bag")
    if _is_within(dst, src) or _is_within(src, dst):
        raise BagError(f"OUTPUT: {output} is, contains or lies inside INPUT {input_path}; choose another path")
    if output.exists() or output.is_symlink():
        if not overwrite:
            raise BagError(f"OUTPUT: {output} already exists; pass --overwrite (overwrite=True) to replace it")
        if output.is_symlink() or not output.is_dir():
            raise BagError(f"OUTPUT: {output} exists and is not a directory; refusing to replace it even with "
                           "--overwrite")
        if not (output / "metadata.yaml").is_file() and any(output.iterdir()):
            raise BagError(f"OUTPUT: {output} exists and is not a rosbag2 directory (no metadata.yaml); refusing "
                           "to delete it even with --overwrite")


def _publish_atomically(built: Path, output: Path) -> None:
    """Move the finished bag ``built`` to ``output``, replacing an existing output only once ``built`` is done."""
    replace_dir(built, output)


# ---------------------------------------------------------------------------------------- replay
class _Source(NamedTuple):
    """How to turn one input connection's raw bytes into a ROS 2 message."""

    to_cdr: Callable[[Any], Any]
    typestore: Any


# Items the reader thread hands to the main thread, in bag order.
class _Copy(NamedTuple):
    conn: Any            # output connection
    log_time: int
    data: Any            # CDR bytes


class _Info(NamedTuple):
    topic: str
    msg: Any             # deserialised, checked CameraInfo; None when unusable
    reason: str          # skip reason when msg is None


class _Frame(NamedTuple):
    topic: str
    log_time: int
    header: Any          # output-typestore std_msgs/Header
    decoded: Any         # DecodedImage


class _Skip(NamedTuple):
    topic: str
    reason: str
    detail: str


class _End(NamedTuple):
    error: BaseException | None


class _Stage(threading.Thread):
    """A pipeline thread that records its exception and its busy time; ``stop`` asks it to finish early."""

    def __init__(self, name: str, target: Callable[[], None] | None = None) -> None:
        super().__init__(name=name, target=target, daemon=True)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.busy_s = 0.0


class _WriterStage(_Stage):
    """Owns the rosbags Writer (sqlite3 connections may only be used by the thread that opened them).

    Opens the writer, runs ``setup(writer)`` (adds the connections), then executes queued jobs ``job(writer)`` in
    order until :data:`_CLOSE` (close the bag) or :data:`_ABORT` / ``stop`` (abort it, jobs left undone).
    """

    def __init__(self, writer: Any, setup: Callable[[Any], Any], maxsize: int, where: str = "the output") -> None:
        super().__init__("dcmpnet-bag-writer")
        self.writer = writer
        self.where = where
        self.setup = setup
        self.setup_result: Any = None
        self.ready = threading.Event()
        self.jobs: queue.Queue = queue.Queue(maxsize=maxsize)
        self.closed = False

    def run(self) -> None:
        try:
            self.writer.open()
            self.setup_result = self.setup(self.writer)
            self.ready.set()
            while True:
                job = self.jobs.get()
                if job is _CLOSE and not self.stop.is_set():
                    self.writer.close()
                    self.closed = True
                    return
                if job is _CLOSE or job is _ABORT or self.stop.is_set():
                    break
                start = time.perf_counter()
                job(self.writer)
                self.busy_s += time.perf_counter() - start
        except BaseException as exc:   # noqa: BLE001 - handed to the main thread, which raises it
            self.error = exc
        finally:
            self.ready.set()
            if not self.closed:
                with contextlib.suppress(Exception):
                    self.writer.abort()

    def put(self, job: Any) -> None:
        """Queue a job; raises the stage's error if it died (so the main thread never blocks on a dead writer)."""
        while True:
            try:
                self.jobs.put(job, timeout=0.1)
                return
            except queue.Full:
                if not self.is_alive():
                    raise self._failure() from self.error

    def _failure(self) -> BagWriteError:
        err = self.error
        cause = f"{type(err).__name__}: {err}" if err is not None else "the writer stopped"
        if isinstance(err, OSError) and err.strerror:
            cause = f"{err.strerror}" + (f" ({err.filename})" if err.filename else "")
        return BagWriteError(f"cannot write {self.where}: {cause}")

    def finish(self, ok: bool) -> None:
        """Close (``ok``) or abort the bag and wait for the thread; raises the writer's error when closing."""
        if not ok:
            self.stop.set()
        if self.is_alive():
            with contextlib.suppress(RuntimeError):
                self.put(_CLOSE if ok else _ABORT)
            self.join()
        if ok and (self.error is not None or not self.closed):
            raise self._failure() from self.error


_CLOSE = object()
_ABORT = object()


class BagReplay:
    """One replay of ``input_path`` into ``output_path``; see the module docstring and :func:`replay_bag`.

    Three threads form a pipeline, so reading and writing overlap with inference: a reader thread deserialises
    and decodes messages in bag order, the calling thread runs the engine and keeps the counts, a writer thread
    encodes, serialises and writes. Messages leave in the order they came in.
    """

    QUEUE_FRAMES = 8      # decoded frames buffered between reader and engine (bounds memory)
    QUEUE_WRITES = 16     # write jobs buffered between engine and writer

    def __init__(self, input_path: str | os.PathLike, output_path: str | os.PathLike, dehazer: Any = None, *,
                 image_topics: Sequence[str] | None = None, storage: str | None = None,
                 copy_all_topics: bool = False, overwrite: bool = False, write_depth: bool = True,
                 compression: str = "none", progress: bool = True, on_frame: FrameHook | None = None,
                 max_decode_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.input_path = Path(input_path)
        self.output_path = Path(os.path.abspath(output_path))     # "." or "out/" still name a directory
        if dehazer is not None and not callable(dehazer):
            raise TypeError(f"dehazer: expected a callable (a dcmpnet_core.inference.engine.Dehazer), "
                            f"got {type(dehazer).__name__}")
        self.dehazer = dehazer
        self._interrupt = threading.Event()
        if image_topics is not None:
            if isinstance(image_topics, str):
                image_topics = [image_topics]
            bad = [t for t in image_topics if not isinstance(t, str) or not t.strip("/")]
            if bad:
                raise BagError(f"image_topics: expected non-empty topic names, got {bad!r}")
            image_topics = list(dict.fromkeys("/" + t.lstrip("/") for t in image_topics))
        self.image_topics = image_topics
        if storage is not None and storage not in STORAGES:
            raise BagError(f"storage: expected one of {', '.join(STORAGES)}, got {storage!r}")
        if compression not in COMPRESSIONS:
            raise BagError(f"compression: expected one of {', '.join(COMPRESSIONS)}, got {compression!r}")
        self.storage = storage
        self.compression = compression
        self.copy_all_topics = bool(copy_all_topics)
        self.overwrite = bool(overwrite)
        self.write_depth = bool(write_depth)
        self.progress = bool(progress)
        self.on_frame = on_frame
        self.max_decode_pixels = max_decode_pixels
        self.kind, self.input_storage = _input_format(self.input_path)
        _check_output(self.input_path, self.output_path, self.overwrite)

    # ------------------------------------------------------------------------------------- run
    def check(self) -> list[TopicReport]:
        """Open the input and resolve the image topics without writing anything (BagError when impossible).

        Lets a caller fail fast, before loading a model; returns the (empty) per-topic reports of the plan.
        """
        from rosbags.typesys import Stores, get_typestore

        with self._open_input(get_typestore(Stores.ROS2_HUMBLE)) as reader:
            return [p["report"] for p in self._plan(reader).values()]

    @contextlib.contextmanager
    def _open_input(self, typestore: Any) -> Iterator[Any]:
        """The opened AnyReader; BagError naming the input and the cause when its storage cannot be read."""
        from rosbags.highlevel import AnyReader

        reader = AnyReader([self.input_path], default_typestore=typestore)
        try:
            reader.open()
        except Exception as exc:   # noqa: BLE001 - AnyReaderError, sqlite3 / OS errors: all "cannot read INPUT"
            raise BagError(f"INPUT: cannot read {self.input_path}: {exc}") from None
        try:
            yield reader
        finally:
            with contextlib.suppress(Exception):
                reader.close()

    def interrupt(self) -> None:
        """Ask a running replay to stop (thread- and signal-safe).

        :meth:`run` then raises ``KeyboardInterrupt`` from its main loop before the next frame, and removes its
        temporary output; OUTPUT is left as it was. ``dcmpnet bag`` calls this from its SIGINT/SIGTERM handler.
        """
        self._interrupt.set()

    @property
    def interrupt_requested(self) -> bool:
        """True once :meth:`interrupt` has been called."""
        return self._interrupt.is_set()

    def run(self, load_dehazer: Callable[[], Any] | None = None) -> ReplaySummary:
        """Replay the whole bag; returns the summary. The output appears only if this returns.

        ``load_dehazer``: called once the input is open and its topics are checked, when the replay was made
        without a dehazer; so a bad topic fails before a slow model load, and the input is opened only once.
        Its time is not counted in the summary's wall time.
        """
        if self.dehazer is None and load_dehazer is None:
            raise ValueError("dehazer: pass a Dehazer to BagReplay or a load_dehazer to run() (both were None)")
        self._load_dehazer = load_dehazer
        self._load_s = 0.0
        out_storage = self.storage or self.input_storage or "sqlite3"
        start = time.perf_counter()
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        work = self.output_path.parent / f".{self.output_path.name}.dcmpnet-tmp-{uuid.uuid4().hex[:8]}"
        work.mkdir()
        try:
            built = work / self.output_path.name
            summary = self._run(built, out_storage)
            _check_output(self.input_path, self.output_path, self.overwrite)   # still true after a long run?
            _publish_atomically(built, self.output_path)
            summary.wall_s = time.perf_counter() - start - self._load_s
            return summary
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _run(self, built: Path, out_storage: str) -> ReplaySummary:
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore

        self.out_ts = get_typestore(Stores.ROS2_HUMBLE)
        self._Header = self.out_ts.types["std_msgs/msg/Header"]
        self._Time = self.out_ts.types["builtin_interfaces/msg/Time"]
        self._Image = self.out_ts.types[IMAGE_TYPE]
        self._CameraInfo = self.out_ts.types[CAMERA_INFO_TYPE]
        self._HazeLevel = self.out_ts.types[HAZE_LEVEL_TYPE]
        self._cache: dict[str, object] = {}
        self._sources: dict[tuple[int, int], _Source] = {}
        plugin = StoragePlugin.MCAP if out_storage == "mcap" else StoragePlugin.SQLITE3
        writer = Writer(built, version=BAG_VERSION, storage_plugin=plugin)
        if self.compression != "none":
            writer.set_compression(CompressionMode[self.compression.upper()], CompressionFormat.ZSTD)
        with self._open_input(self.out_ts) as reader:
            self.reader = reader
            plan = self._plan(reader)
            if self.dehazer is None:
                t_load = time.perf_counter()
                self.dehazer = self._load_dehazer()
                self._load_s = time.perf_counter() - t_load
            fmt = f"rosbag2 {self.input_storage}" if self.kind == "rosbag2" else "ROS 1 bag"
            summary = ReplaySummary(self.input_path, self.output_path, fmt, out_storage, repr(self.dehazer),
                                    [p["report"] for p in plan.values()])
            self._replay(reader, writer, plan, summary)
        return summary

    # ------------------------------------------------------------------------------------ plan
    def _plan(self, reader: Any) -> dict[str, dict[str, Any]]:
        topics = reader.topics
        images = {name: info for name, info in topics.items() if info.msgtype in IMAGE_TYPES}
        if self.image_topics is None:
            if not images:
                found = ", ".join(f"{n} [{i.msgtype}]" for n, i in sorted(topics.items())) or "no topics"
                raise BagError(f"INPUT: no sensor_msgs/Image or sensor_msgs/CompressedImage topic in "
                               f"{self.input_path}; it holds {found}")
            selected = sorted(images)
        else:
            for name in self.image_topics:
                if name not in topics:
                    raise BagError(f"image topic {name!r} is not in {self.input_path}; image topics there: "
                                   f"{', '.join(sorted(images)) or 'none'}")
                if name not in images:
                    raise BagError(f"image topic {name!r} has type {topics[name].msgtype}; expected "
                                   f"{' or '.join(IMAGE_TYPES)}")
            selected = list(self.image_topics)
        several = len(selected) > 1
        plan: dict[str, dict[str, Any]] = {}
        for name in selected:
            outs = output_topics_for(name, several)
            ci = camera_info_topic_for(name)
            ci = ci if ci in topics and topics[ci].msgtype == CAMERA_INFO_TYPE else None
            plan[name] = {"report": TopicReport(name, images[name].msgtype, outs, ci),
                          "conns": images[name].connections, "camera_info": ci}
            for out in outs:
                if self.copy_all_topics and out in topics:
                    raise BagError(f"output topic {out} already exists in {self.input_path} and --copy-all-topics "
                                   "would copy it too; replay without --copy-all-topics")
        return plan

    def _source(self, conn: Any) -> _Source:
        """Converter from a connection's raw bytes to CDR, and the typestore that deserialises the result."""
        if self.reader.is2:
            return _Source(lambda raw: raw, self.reader.typestore)
        from rosbags.convert.converter import generate_message_converter

        with contextlib.redirect_stdout(io.StringIO()):      # rosbags reports migrations by printing
            conv = generate_message_converter(self.reader.typestore, self.out_ts, conn.msgtype, conn.msgtype,
                                              self._cache, src_is2=False, dst_is2=True)
        return _Source(conv, self.out_ts)

    def _deserialize(self, conn: Any, raw: Any) -> Any:
        key = (conn.id, id(conn.owner))
        src = self._sources.get(key)
        if src is None:
            src = self._sources[key] = self._source(conn)
        return src.typestore.deserialize_cdr(src.to_cdr(raw), conn.msgtype)

    @staticmethod
    def _qos(conns: Iterable[Any]) -> list:
        from rosbags.convert.converter import LATCH
        from rosbags.interfaces import ConnectionExtRosbag2

        for conn in conns:
            if isinstance(conn.ext, ConnectionExtRosbag2):
                return list(conn.ext.offered_qos_profiles)
            return list(LATCH) if getattr(conn.ext, "latching", 0) else []
        return []

    def _header(self, msg: Any) -> Any:
        h = msg.header
        return self._Header(stamp=self._Time(sec=int(h.stamp.sec), nanosec=int(h.stamp.nanosec)),
                            frame_id=str(h.frame_id))

    # ---------------------------------------------------------------------------------- replay
    def _setup_writer(self, writer: Any, reader: Any, plan: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Add the output connections (runs on the writer thread); returns them and the copy converters."""
        topics = reader.topics
        outs_by_topic: dict[str, dict[str, Any]] = {}
        for name, p in plan.items():
            qos = self._qos(p["conns"])
            outs = p["report"].outputs
            entry = {"image": writer.add_connection(outs.image, IMAGE_TYPE, typestore=self.out_ts,
                                                    offered_qos_profiles=qos)}
            if self.write_depth:
                entry["depth"] = writer.add_connection(outs.depth, IMAGE_TYPE, typestore=self.out_ts,
                                                       offered_qos_profiles=qos)
            entry["haze_level"] = writer.add_connection(outs.haze_level, HAZE_LEVEL_TYPE, typestore=self.out_ts,
                                                        offered_qos_profiles=qos)
            if p["camera_info"]:
                entry["camera_info"] = writer.add_connection(
                    outs.camera_info, CAMERA_INFO_TYPE, typestore=self.out_ts,
                    offered_qos_profiles=self._qos(topics[p["camera_info"]].connections))
            outs_by_topic[name] = entry
        copies: dict[tuple[int, int], tuple[Any, Callable]] = {}
        not_copied: dict[str, str] = {}
        if self.copy_all_topics:
            from rosbags.convert.converter import create_connections_converters

            for conn in reader.connections:
                try:
                    with contextlib.redirect_stdout(io.StringIO()):   # rosbags reports type migrations by printing
                        connmap, convmap = create_connections_converters(
                            [conn], None if reader.is2 else self.out_ts, reader, writer)
                except Exception as exc:   # noqa: BLE001 - e.g. a custom type whose definition the bag lacks
                    not_copied[conn.topic] = f"{conn.msgtype}: {type(exc).__name__}: {exc}"
                    continue
                copies[(conn.id, id(conn.owner))] = (connmap[(conn.id, conn.owner)], convmap[conn.msgtype])
        return {"outputs": outs_by_topic, "copies": copies, "not_copied": not_copied}

    def _replay(self, reader: Any, writer: Any, plan: dict[str, dict[str, Any]], summary: ReplaySummary) -> None:
        topics = reader.topics
        ci_topics = sorted({p["camera_info"] for p in plan.values() if p["camera_info"]})
        # Frames recorded before the first camera_info get the first one (intrinsics do not change in a recording).
        camera_info = {ci: self._first_camera_info(reader, topics[ci].connections) for ci in ci_topics}
        wstage = _WriterStage(writer, lambda w: self._setup_writer(w, reader, plan), self.QUEUE_WRITES,
                              f"the output bag {self.output_path}")
        image_conn = {(c.id, id(c.owner)): name for name, p in plan.items() for c in p["conns"]}
        info_conn = {(c.id, id(c.owner)): ci for ci in ci_topics for c in topics[ci].connections}
        frames: queue.Queue = queue.Queue(maxsize=self.QUEUE_FRAMES)
        reports = {name: p["report"] for name, p in plan.items()}
        rstage: _Stage | None = None
        bar = None
        ok = False
        self._storage_errors = summary.storage_errors
        wstage.start()
        try:
            wstage.ready.wait()
            if wstage.error is not None:
                raise wstage._failure() from wstage.error
            outputs, copies = wstage.setup_result["outputs"], wstage.setup_result["copies"]
            summary.not_copied = wstage.setup_result["not_copied"]
            needed = [c for c in reader.connections if (c.id, id(c.owner)) in copies
                      or (c.id, id(c.owner)) in image_conn or (c.id, id(c.owner)) in info_conn]
            rstage = _Stage("dcmpnet-bag-reader",
                            lambda: self._read(rstage, frames, reader, needed, image_conn, info_conn, copies))
            bar = _progress(sum(c.msgcount for c in reader.connections if (c.id, id(c.owner)) in image_conn),
                            self.progress)
            rstage.start()
            while True:
                try:
                    item = frames.get(timeout=0.1)
                except queue.Empty:
                    item = None
                if self.interrupt_requested:
                    # Raised here, between frames, rather than by the signal wherever the main thread happens
                    # to be: a KeyboardInterrupt inside a queue's lock would leave it held and hang the clean-up.
                    raise KeyboardInterrupt
                if item is None:
                    continue
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    self._count_unreadable(plan, summary)
                    break
                if isinstance(item, _Copy):
                    wstage.put(partial(_write_raw, item))
                    summary.copied[item.conn.topic] = summary.copied.get(item.conn.topic, 0) + 1
                elif isinstance(item, _Info):
                    if item.msg is None:
                        summary.camera_info_skipped.add(item.reason)
                    else:
                        camera_info[item.topic] = item.msg
                else:
                    report = reports[item.topic]
                    report.frames_in += 1
                    if isinstance(item, _Skip):
                        report.skip(item.reason, item.detail)
                    else:
                        info = camera_info.get(report.camera_info_topic) if report.camera_info_topic else None
                        self._process_frame(item, report, outputs[item.topic], info, wstage, summary)
                    bar.update(1)
                    if report.skipped.total:
                        bar.set_postfix_str(f"skipped {summary.skipped}", refresh=False)
            ok = True
        finally:
            if rstage is not None:
                rstage.stop.set()
                while rstage.is_alive():            # unblock a reader waiting on a full queue
                    with contextlib.suppress(queue.Empty):
                        frames.get(timeout=0.05)
                summary.read_decode_s = rstage.busy_s
            if bar is not None:
                bar.close()
            wstage.finish(ok)
            summary.encode_write_s = wstage.busy_s

    @staticmethod
    def _count_unreadable(plan: dict[str, dict[str, Any]], summary: ReplaySummary) -> None:
        """After storage errors: the image messages the index declares but nobody could read, as skips."""
        if not summary.storage_errors:
            return
        for p in plan.values():
            report = p["report"]
            lost = sum(c.msgcount for c in p["conns"]) - report.frames_in
            if lost > 0:
                report.frames_in += lost
                report.skipped.add("unreadable", lost)
                report.examples.setdefault("unreadable", summary.storage_errors[0])

    def _camera_info(self, conn: Any, raw: Any, topic: str) -> _Info:
        """Deserialise a CameraInfo and check that it can be copied (K, R, P sizes)."""
        try:
            msg = self._deserialize(conn, raw)
        except Exception:   # noqa: BLE001 - a bad camera_info must not stop the replay
            return _Info(topic, None, "deserialization_error")
        try:
            copy_camera_info(self._CameraInfo, msg, self._header(msg))
        except Exception:   # noqa: BLE001
            return _Info(topic, None, "malformed")
        return _Info(topic, msg, "")

    def _first_camera_info(self, reader: Any, conns: list) -> Any:
        with contextlib.suppress(Exception):      # unreadable storage: the replay reports it where it reads
            for conn, _, raw in reader.messages(connections=conns):
                info = self._camera_info(conn, raw, "")
                if info.msg is not None:
                    return info.msg
        return None

    def _readable(self, reader: Any, needed: list, errors: list[str]) -> Iterator[tuple[Any, int, Any]]:
        """``reader.messages`` that skips what the storage cannot deliver and goes on after it.

        On a storage error (a corrupt MCAP chunk, a damaged sqlite3 page) the error is recorded in ``errors`` and
        reading resumes at the earliest later log time from which messages can be read again, found by bisection
        (the readers skip whole chunks by their time range); every readable message is still delivered.
        """
        last = reader.start_time - 1
        messages = reader.messages(connections=needed)
        while messages is not None:
            try:
                conn, log_time, raw = next(messages)
            except StopIteration:
                return
            except Exception as exc:   # noqa: BLE001 - whatever the storage layer raises
                errors.append(f"{self.input_path}: {type(exc).__name__}: {exc} (after log time {last})")
                messages = self._resume(reader, needed, last + 1)
                continue
            last = max(last, log_time)
            yield conn, log_time, raw

    @staticmethod
    def _resume(reader: Any, needed: list, low: int) -> Iterator | None:
        """Messages from the earliest start >= ``low`` at which reading works again; None if it never does."""
        high, found = reader.end_time, None
        while low <= high:
            mid = (low + high) // 2
            try:
                next(reader.messages(connections=needed, start=mid))
                ok = True
            except StopIteration:
                ok = True
            except Exception:   # noqa: BLE001
                ok = False
            if ok:
                found, high = mid, mid - 1
            else:
                low = mid + 1
        return None if found is None else reader.messages(connections=needed, start=found)

    def _read(self, stage: _Stage, out: queue.Queue, reader: Any, needed: list, image_conn: dict, info_conn: dict,
              copies: dict) -> None:
        """Reader thread: messages in bag order -> _Copy / _Info / _Frame / _Skip items, then _End."""
        def put(item: Any) -> bool:
            while not stage.stop.is_set():
                try:
                    out.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        error: BaseException | None = None
        try:
            for conn, log_time, raw in self._readable(reader, needed, self._storage_errors):
                if stage.stop.is_set():
                    return
                start = time.perf_counter()
                key = (conn.id, id(conn.owner))
                items = []
                if key in copies:
                    out_conn, conv = copies[key]
                    items.append(_Copy(out_conn, log_time, conv(raw)))
                if key in info_conn:
                    items.append(self._camera_info(conn, raw, info_conn[key]))
                if key in image_conn:
                    items.append(self._decode(conn, log_time, raw, image_conn[key]))
                stage.busy_s += time.perf_counter() - start
                for item in items:
                    if not put(item):
                        return
        except BaseException as exc:   # noqa: BLE001 - handed to the main thread
            error = exc
        put(_End(error))

    def _decode(self, conn: Any, log_time: int, raw: Any, topic: str) -> _Frame | _Skip:
        try:
            msg = self._deserialize(conn, raw)
            header = self._header(msg)
        except Exception as exc:   # noqa: BLE001 - one bad message must not stop the replay
            return _Skip(topic, "deserialization_error", f"{type(exc).__name__}: {exc}")
        try:
            decoded = decode_message(msg, self.max_decode_pixels)
        except MessageRejected as exc:
            return _Skip(topic, exc.reason, str(exc))
        except Exception as exc:   # noqa: BLE001
            return _Skip(topic, "decoder_error", f"{type(exc).__name__}: {exc}")
        h, w = decoded.rgb.shape[:2]
        if h < MIN_SIDE or w < MIN_SIDE:
            return _Skip(topic, "too_small", f"{w} x {h} image; the network needs at least {MIN_SIDE} px per side")
        return _Frame(topic, int(log_time), header, decoded)

    def _process_frame(self, frame: _Frame, report: TopicReport, outputs: dict[str, Any], info: Any,
                       wstage: _WriterStage, summary: ReplaySummary) -> None:
        """Run the engine on one frame (calling thread) and queue its messages for the writer."""
        t_infer = time.perf_counter()
        try:
            result = self._dehaze(frame.decoded.rgb, report.topic)
        except Exception as exc:   # noqa: BLE001 - an engine failure on one frame is counted, like in the node
            summary.inference_s += time.perf_counter() - t_infer
            report.skip("inference_error", f"{type(exc).__name__}: {exc}")
            return
        summary.inference_s += time.perf_counter() - t_infer
        if getattr(result, "output_faulty", False):
            report.faulty_output += 1
            report.faulty_example = report.faulty_example or result.warnings[-1]
        encoding = output_encoding_for(frame.decoded.source_encoding)
        depth = result.depth if self.write_depth else None
        wstage.put(partial(self._write_frame, frame, result.dehazed, depth, getattr(result, "haze_level", None),
                           encoding, info, outputs))
        index = report.frames_out
        report.frames_out += 1
        report.passed_through += getattr(result, "weight", 1.0) == 0.0
        report.camera_info_out += info is not None
        if self.on_frame is not None:
            t_hook = time.perf_counter()
            stamp = frame.header.stamp
            self.on_frame(FrameEvent(report.topic, index, frame.log_time, (int(stamp.sec), int(stamp.nanosec)),
                                     frame.header.frame_id, frame.decoded.rgb, result))
            summary.hook_s += time.perf_counter() - t_hook

    def _dehaze(self, rgb: np.ndarray, topic: str) -> Any:
        """The engine on one frame, each image topic its own pass-through stream (plain callables: no stream)."""
        from dcmpnet_core.inference.engine import Dehazer

        return self.dehazer(rgb, stream=topic) if isinstance(self.dehazer, Dehazer) else self.dehazer(rgb)

    def _write_frame(self, frame: _Frame, dehazed: np.ndarray, depth: np.ndarray | None, haze_level: float | None,
                     encoding: str, info: Any, outputs: dict[str, Any], writer: Any) -> None:
        """Writer thread: encode, serialise and write one frame's image, depth, haze level and camera_info."""
        ts, header, t = self.out_ts, frame.header, frame.log_time
        image_msg = encode_image(self._Image, header, dehazed, encoding)
        writer.write(outputs["image"], t, ts.serialize_cdr(image_msg, IMAGE_TYPE))
        if depth is not None:
            writer.write(outputs["depth"], t, ts.serialize_cdr(encode_depth(self._Image, header, depth), IMAGE_TYPE))
        if haze_level is not None:
            msg = encode_haze_level(self._HazeLevel, header, haze_level)
            writer.write(outputs["haze_level"], t, ts.serialize_cdr(msg, HAZE_LEVEL_TYPE))
        if info is not None:
            msg = copy_camera_info(self._CameraInfo, info, header)
            writer.write(outputs["camera_info"], t, ts.serialize_cdr(msg, CAMERA_INFO_TYPE))


def _write_raw(item: _Copy, writer: Any) -> None:
    writer.write(item.conn, item.log_time, item.data)


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", desc="dehazing", disable=not enabled, dynamic_ncols=True,
                smoothing=0.1)


@contextlib.contextmanager
def stop_on_signals(replay: BagReplay) -> Iterator[None]:
    """Make SIGINT (Ctrl-C) and SIGTERM (``kill``) stop ``replay`` cleanly while in this block.

    A signal calls ``replay.interrupt()``: the replay stops before its next frame and removes its temporary
    output. A second signal interrupts at once. Outside the main thread (where Python allows no signal handlers)
    this does nothing.
    """
    def handler(signum: int, frame: object) -> None:
        if replay.interrupt_requested:
            raise KeyboardInterrupt
        replay.interrupt()

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:          # not the main thread
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def replay_bag(input_path: str | os.PathLike, output_path: str | os.PathLike, dehazer: Any, *,
               image_topics: Sequence[str] | None = None, storage: str | None = None, copy_all_topics: bool = False,
               overwrite: bool = False, write_depth: bool = True, compression: str = "none",
               progress: bool = True, on_frame: FrameHook | None = None) -> ReplaySummary:
    """Dehaze every frame of a recorded bag into a new rosbag2; see the module docstring for topics and safety.

    Args:
        input_path: rosbag2 directory (sqlite3 or MCAP, compressed or not) or ROS 1 ``.bag`` file; read only.
        output_path: rosbag2 directory to create (must not exist unless ``overwrite``).
        dehazer: a :class:`dcmpnet_core.inference.engine.Dehazer` (any callable mapping (H,W,3) uint8 RGB to a
            DehazeResult works).
        image_topics: topics to dehaze (sensor_msgs/Image or CompressedImage); None: every image topic.
        storage: "sqlite3" or "mcap"; None: the input's (sqlite3 for ROS 1 input).
        copy_all_topics: also copy every input topic unchanged (same type, bytes converted to CDR for ROS 1).
        overwrite: replace an existing output rosbag2 (only a directory with metadata.yaml, or an empty one).
        write_depth: write the depth topics.
        compression: "none", "file" or "message" (zstd) for the output.
        progress: show a tqdm progress bar on stderr.
        on_frame: called on the calling thread with a :class:`FrameEvent` after each frame's inference.

    Raises:
        BagError: the replay cannot start (the message names the path, topic or option).
    """
    return BagReplay(input_path, output_path, dehazer, image_topics=image_topics, storage=storage,
                     copy_all_topics=copy_all_topics, overwrite=overwrite, write_depth=write_depth,
                     compression=compression, progress=progress, on_frame=on_frame).run()
