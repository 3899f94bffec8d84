"""The input side of a replay: format detection, opening, topic selection with camera_info pairing, reading.

Messages are read in bag order by :class:`ReaderStage`, a thread that hands :class:`CopyItem`,
:class:`~.decoding.InfoItem`, :class:`~.decoding.FrameItem` / :class:`~.decoding.SkipItem` and finally one
:class:`EndItem` to the pipeline. A storage error (a corrupt chunk) is recorded and reading resumes after it.
"""
from __future__ import annotations

import contextlib
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import yaml
from rosbags.convert.converter import LATCH
from rosbags.highlevel import AnyReader
from rosbags.interfaces import ConnectionExtRosbag2

from .decoding import MessageDecoder
from .errors import BagError
from .report import TopicReport
from .stage import Stage
from .topics import CAMERA_INFO_TYPE, IMAGE_TYPES, STORAGES, camera_info_topic_for, output_topics_for


# ------------------------------------------------------------------------------------------ opening
def input_format(path: Path) -> tuple[str, str | None]:
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

    try:
        info = yaml.safe_load(meta.read_text(encoding="utf-8"))["rosbag2_bagfile_information"]
        storage = str(info.get("storage_identifier", ""))
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise BagError(f"INPUT: cannot read {meta}: {type(exc).__name__}: {exc}") from exc
    if storage not in STORAGES:
        raise BagError(f"INPUT: storage {storage!r} in {meta} is not readable here; expected one of {STORAGES}")
    return "rosbag2", storage


@contextlib.contextmanager
def open_input(path: Path, typestore: Any) -> Iterator[Any]:
    """The opened rosbags AnyReader; BagError naming the input and the cause when its storage cannot be read."""
    reader = AnyReader([path], default_typestore=typestore)
    try:
        reader.open()
    except Exception as exc:   # noqa: BLE001 - AnyReaderError, sqlite3 / OS errors: all "cannot read INPUT"
        raise BagError(f"INPUT: cannot read {path}: {exc}") from None
    try:
        yield reader
    finally:
        with contextlib.suppress(Exception):
            reader.close()


def conn_key(conn: Any) -> tuple[int, int]:
    """A connection's identity across the readers of an AnyReader (ids are per file)."""
    return conn.id, id(conn.owner)


def qos_profiles(conns: Iterable[Any]) -> list:
    """The offered QoS profiles of the first of ``conns`` (ROS 1: latching mapped to transient local)."""
    for conn in conns:
        if isinstance(conn.ext, ConnectionExtRosbag2):
            return list(conn.ext.offered_qos_profiles)
        return list(LATCH) if getattr(conn.ext, "latching", 0) else []
    return []


# --------------------------------------------------------------------------------------------- plan
@dataclass
class TopicPlan:
    """One source image topic of a replay: its report (with the output topics), its connections, its camera_info."""

    report: TopicReport
    conns: list = field(default_factory=list)
    camera_info: str | None = None          # the paired camera_info topic, when the bag has it


def plan_topics(reader: Any, input_path: Path, image_topics: Sequence[str] | None,
                copy_all_topics: bool) -> dict[str, TopicPlan]:
    """The image topics to replay, each paired with its camera_info topic; BagError naming a bad choice."""
    topics = reader.topics
    images = {name: info for name, info in topics.items() if info.msgtype in IMAGE_TYPES}
    selected = _select_image_topics(topics, images, input_path, image_topics)
    several = len(selected) > 1
    plan: dict[str, TopicPlan] = {}
    for name in selected:
        outs = output_topics_for(name, several)
        ci = camera_info_topic_for(name)
        ci = ci if ci in topics and topics[ci].msgtype == CAMERA_INFO_TYPE else None
        plan[name] = TopicPlan(TopicReport(name, images[name].msgtype, outs, ci), images[name].connections, ci)
        for out in outs:
            if copy_all_topics and out in topics:
                raise BagError(f"output topic {out} already exists in {input_path} and --copy-all-topics "
                               "would copy it too; replay without --copy-all-topics")
    return plan


def _select_image_topics(topics: dict, images: dict, input_path: Path,
                         image_topics: Sequence[str] | None) -> list[str]:
    if image_topics is None:
        if not images:
            found = ", ".join(f"{n} [{i.msgtype}]" for n, i in sorted(topics.items())) or "no topics"
            raise BagError(f"INPUT: no sensor_msgs/Image or sensor_msgs/CompressedImage topic in "
                           f"{input_path}; it holds {found}")
        return sorted(images)
    for name in image_topics:
        if name not in topics:
            raise BagError(f"image topic {name!r} is not in {input_path}; image topics there: "
                           f"{', '.join(sorted(images)) or 'none'}")
        if name not in images:
            raise BagError(f"image topic {name!r} has type {topics[name].msgtype}; expected "
                           f"{' or '.join(IMAGE_TYPES)}")
    return list(image_topics)


# ------------------------------------------------------------------------------------------ reading
def readable_messages(reader: Any, needed: list, errors: list[str], where: Path) -> Iterator[tuple[Any, int, Any]]:
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
            errors.append(f"{where}: {type(exc).__name__}: {exc} (after log time {last})")
            messages = _resume(reader, needed, last + 1)
            continue
        last = max(last, log_time)
        yield conn, log_time, raw


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


class CopyItem(NamedTuple):
    """An input message to copy unchanged: output connection, log time, CDR bytes."""

    conn: Any
    log_time: int
    data: Any


class EndItem(NamedTuple):
    """The reader is done; ``error`` is what stopped it early, if anything."""

    error: BaseException | None


@dataclass
class Routes:
    """Where each input connection's messages go, by :func:`conn_key`."""

    images: dict[tuple[int, int], str]                  # -> source image topic
    camera_info: dict[tuple[int, int], str]             # -> camera_info topic
    copies: dict[tuple[int, int], tuple[Any, Callable]] = field(default_factory=dict)   # -> (out conn, to CDR)

    def needed(self, connections: Iterable[Any]) -> list:
        """The connections of ``connections`` that have somewhere to go."""
        return [c for c in connections if any(conn_key(c) in m for m in (self.images, self.camera_info, self.copies))]


class ReaderStage(Stage):
    """Reader thread: input messages in bag order -> items on ``out``, then one :class:`EndItem`.

    Storage errors are appended to ``storage_errors`` (see :func:`readable_messages`).
    """

    def __init__(self, reader: Any, decoder: MessageDecoder, routes: Routes, out: queue.Queue,
                 storage_errors: list[str], where: Path) -> None:
        super().__init__("dcmpnet-bag-reader")
        self.reader, self.decoder, self.routes, self.out = reader, decoder, routes, out
        self.storage_errors, self.where = storage_errors, where

    def run(self) -> None:
        error: BaseException | None = None
        try:
            needed = self.routes.needed(self.reader.connections)
            for conn, log_time, raw in readable_messages(self.reader, needed, self.storage_errors, self.where):
                if self.stop.is_set():
                    return
                start = time.perf_counter()
                items = self.items(conn, log_time, raw)
                self.busy_s += time.perf_counter() - start
                for item in items:
                    if not self._put(item):
                        return
        except BaseException as exc:   # noqa: BLE001 - handed to the main thread
            error = exc
        self._put(EndItem(error))

    def items(self, conn: Any, log_time: int, raw: Any) -> list:
        """What one input message becomes: a copy, a camera_info, a frame (or a skip); possibly several."""
        key, items = conn_key(conn), []
        if key in self.routes.copies:
            out_conn, conv = self.routes.copies[key]
            items.append(CopyItem(out_conn, log_time, conv(raw)))
        if key in self.routes.camera_info:
            items.append(self.decoder.camera_info(conn, raw, self.routes.camera_info[key]))
        if key in self.routes.images:
            items.append(self.decoder.frame(conn, log_time, raw, self.routes.images[key]))
        return items

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def shut_down(self) -> None:
        """Stop the thread and wait for it, unblocking it if it waits on a full queue."""
        self.stop.set()
        while self.is_alive():
            with contextlib.suppress(queue.Empty):
                self.out.get(timeout=0.05)
