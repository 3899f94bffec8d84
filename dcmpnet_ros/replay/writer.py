"""The output side of a replay: output safety, the temporary bag and its atomic swap, writing messages.

The output bag is built in a hidden temporary directory beside OUTPUT (:func:`temp_output`) and moved into place
by :func:`publish` only when complete. A rosbags Writer lives on :class:`WriterStage`, a thread that runs queued
write jobs in order; any failure to write (a full disk, a read-only or removed folder) becomes a
:class:`~.errors.BagWriteError` whose message is one line naming the output and the cause.
"""
from __future__ import annotations

import contextlib
import io
import queue
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from rosbags.convert.converter import create_connections_converters
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

from dcmpnet_core.utils.fileio import replace_dir

from ..conversions import HAZE_LEVEL_TYPE, copy_camera_info, encode_depth, encode_haze_level, encode_image
from .decoding import FrameItem
from .errors import BagError, BagWriteError
from .reader import CopyItem, TopicPlan, conn_key, qos_profiles
from .topics import CAMERA_INFO_TYPE, IMAGE_TYPE

# rosbag2 metadata version written; 8 keeps offered_qos_profiles as a YAML string, which Humble's reader expects.
BAG_VERSION = 8


# ------------------------------------------------------------------------------------------- safety
def _is_within(inner: Path, outer: Path) -> bool:
    try:
        inner.relative_to(outer)
        return True
    except ValueError:
        return False


def check_output(input_path: Path, output: Path, overwrite: bool) -> None:
    """BagError unless ``output`` may be (re)placed: not .bag, apart from the input, replaceable if it exists."""
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


# ----------------------------------------------------------------------------------- write failures
def _causes(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def write_cause(err: BaseException | None) -> str:
    """Why writing failed, in words: the OS error (and file), or SQLite's, with a full disk named as such."""
    if err is None:
        return "the writer stopped"
    for e in _causes(err):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror + (f" ({e.filename})" if e.filename else "")
        if isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorname", "") == "SQLITE_FULL":
            return f"No space left on device ({e})"
    return f"{type(err).__name__}: {err}"


def write_failure(output: Path, err: BaseException | None) -> BagWriteError:
    """The one-line error of a failed write to the output bag ``output``."""
    return BagWriteError(f"cannot write the output bag {output}: {write_cause(err)}")


# ---------------------------------------------------------------------------------- temporary output
@contextlib.contextmanager
def temp_output(output: Path) -> Iterator[Path]:
    """A path to build the bag at, in a fresh hidden directory beside ``output``; the directory is always removed."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        work = output.parent / f".{output.name}.dcmpnet-tmp-{uuid.uuid4().hex[:8]}"
        work.mkdir()
    except OSError as exc:
        raise write_failure(output, exc) from exc
    try:
        yield work / output.name
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish(built: Path, output: Path) -> None:
    """Move the finished bag ``built`` to ``output``, replacing an existing output only once ``built`` is done."""
    try:
        replace_dir(built, output)
    except OSError as exc:
        raise write_failure(output, exc) from exc


def open_writer(path: Path, storage: str, compression: str) -> Any:
    """An unopened rosbags Writer of a rosbag2 at ``path`` ("sqlite3" or "mcap"; compression none/file/message)."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(path, version=BAG_VERSION, storage_plugin=plugin)
    if compression != "none":
        writer.set_compression(CompressionMode[compression.upper()], CompressionFormat.ZSTD)
    return writer


# ------------------------------------------------------------------------------------------- thread
_CLOSE = object()
_ABORT = object()


class WriterStage(threading.Thread):
    """Owns the rosbags Writer (sqlite3 connections may only be used by the thread that opened them).

    Opens the writer, runs ``setup(writer)`` (adds the connections), then executes queued jobs ``job(writer)`` in
    order until :meth:`finish` closes the bag (or aborts it, jobs left undone). ``output`` names the bag in errors.
    """

    def __init__(self, writer: Any, setup: Callable[[Any], Any], maxsize: int, output: Path) -> None:
        super().__init__(name="dcmpnet-bag-writer", daemon=True)
        self.writer, self.setup, self.output = writer, setup, output
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.busy_s = 0.0
        self.setup_result: Any = None
        self.ready = threading.Event()
        self.jobs: queue.Queue = queue.Queue(maxsize=maxsize)
        self.closed = False

    def run(self) -> None:
        try:
            self.writer.open()
            self.setup_result = self.setup(self.writer)
            self.ready.set()
            self._run_jobs()
        except BaseException as exc:   # noqa: BLE001 - handed to the main thread, which raises it
            self.error = exc
        finally:
            self.ready.set()
            if not self.closed:
                with contextlib.suppress(Exception):
                    self.writer.abort()

    def _run_jobs(self) -> None:
        while True:
            job = self.jobs.get()
            if job is _CLOSE and not self.stop.is_set():
                self.writer.close()
                self.closed = True
                return
            if job is _CLOSE or job is _ABORT or self.stop.is_set():
                return
            start = time.perf_counter()
            job(self.writer)
            self.busy_s += time.perf_counter() - start

    def wait_ready(self) -> Any:
        """Wait until the connections are added; returns ``setup``'s result or raises the writer's failure."""
        self.ready.wait()
        if self.error is not None:
            raise write_failure(self.output, self.error) from self.error
        return self.setup_result

    def put(self, job: Any) -> None:
        """Queue a job; raises the stage's error if it died (so the main thread never blocks on a dead writer)."""
        while True:
            try:
                self.jobs.put(job, timeout=0.1)
                return
            except queue.Full:
                if not self.is_alive():
                    raise write_failure(self.output, self.error) from self.error

    def finish(self, ok: bool) -> None:
        """Close (``ok``) or abort the bag and wait for the thread; raises the writer's error when closing."""
        if not ok:
            self.stop.set()
        if self.is_alive():
            with contextlib.suppress(RuntimeError):
                self.put(_CLOSE if ok else _ABORT)
            self.join()
        if ok and (self.error is not None or not self.closed):
            raise write_failure(self.output, self.error) from self.error


# -------------------------------------------------------------------------------------- connections
@dataclass
class OutputConnections:
    """The output bag's connections: per source image topic (``image``, ``depth``, ...), and the copies."""

    frames: dict[str, dict[str, Any]] = field(default_factory=dict)
    copies: dict[tuple[int, int], tuple[Any, Callable]] = field(default_factory=dict)
    not_copied: dict[str, str] = field(default_factory=dict)      # topic -> why it cannot be copied


def add_connections(writer: Any, reader: Any, plan: dict[str, TopicPlan], out_ts: Any, write_depth: bool,
                    copy_all_topics: bool) -> OutputConnections:
    """Add the output connections (on the writer thread): the dehazed topics, and every input topic if asked."""
    conns = OutputConnections()
    for name, p in plan.items():
        qos, outs = qos_profiles(p.conns), p.report.outputs

        def add(topic: str, msgtype: str, qos: list = qos) -> Any:
            return writer.add_connection(topic, msgtype, typestore=out_ts, offered_qos_profiles=qos)

        entry = {"image": add(outs.image, IMAGE_TYPE)}
        if write_depth:
            entry["depth"] = add(outs.depth, IMAGE_TYPE)
        entry["haze_level"] = add(outs.haze_level, HAZE_LEVEL_TYPE)
        if p.camera_info:
            entry["camera_info"] = add(outs.camera_info, CAMERA_INFO_TYPE,
                                       qos_profiles(reader.topics[p.camera_info].connections))
        conns.frames[name] = entry
    if copy_all_topics:
        _add_copies(writer, reader, out_ts, conns)
    return conns


def _add_copies(writer: Any, reader: Any, out_ts: Any, conns: OutputConnections) -> None:
    for conn in reader.connections:
        try:
            with contextlib.redirect_stdout(io.StringIO()):   # rosbags reports type migrations by printing
                connmap, convmap = create_connections_converters([conn], None if reader.is2 else out_ts,
                                                                 reader, writer)
        except Exception as exc:   # noqa: BLE001 - e.g. a custom type whose definition the bag lacks
            conns.not_copied[conn.topic] = f"{conn.msgtype}: {type(exc).__name__}: {exc}"
            continue
        conns.copies[conn_key(conn)] = (connmap[(conn.id, conn.owner)], convmap[conn.msgtype])


# ------------------------------------------------------------------------------------------ messages
class FrameWriter:
    """Encodes, serialises and writes one frame's outputs (runs on the writer thread); ``out_ts``: its typestore."""

    def __init__(self, out_ts: Any) -> None:
        self.out_ts = out_ts
        self.Image = out_ts.types[IMAGE_TYPE]
        self.CameraInfo = out_ts.types[CAMERA_INFO_TYPE]
        self.HazeLevel = out_ts.types[HAZE_LEVEL_TYPE]

    def write_frame(self, frame: FrameItem, dehazed: np.ndarray, depth: np.ndarray | None, haze_level: float | None,
                    encoding: str, info: Any, outputs: dict[str, Any], writer: Any) -> None:
        """Write the image, depth (unless None), haze level (unless None) and camera_info (unless None)."""
        ts, header, t = self.out_ts, frame.header, frame.log_time
        image_msg = encode_image(self.Image, header, dehazed, encoding)
        writer.write(outputs["image"], t, ts.serialize_cdr(image_msg, IMAGE_TYPE))
        if depth is not None:
            writer.write(outputs["depth"], t, ts.serialize_cdr(encode_depth(self.Image, header, depth), IMAGE_TYPE))
        if haze_level is not None:
            msg = encode_haze_level(self.HazeLevel, header, haze_level)
            writer.write(outputs["haze_level"], t, ts.serialize_cdr(msg, HAZE_LEVEL_TYPE))
        if info is not None:
            msg = copy_camera_info(self.CameraInfo, info, header)
            writer.write(outputs["camera_info"], t, ts.serialize_cdr(msg, CAMERA_INFO_TYPE))


def write_copy(item: CopyItem, writer: Any) -> None:
    """Write a message copied unchanged from the input."""
    writer.write(item.conn, item.log_time, item.data)
