"""One replay from start to end, and :func:`replay_bag`, its one-call form.

:class:`BagReplay` checks its arguments, opens the input, runs the pipeline into a temporary bag and publishes it.
"""
from __future__ import annotations

import os
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from rosbags.typesys import Stores, get_typestore

from ..conversions import DEFAULT_MAX_PIXELS
from .decoding import MessageDecoder
from .errors import BagError
from .pipeline import FrameHook, FrameProcessor, ReplayPipeline
from .reader import input_format, open_input, plan_topics
from .report import ReplaySummary, TopicReport
from .topics import COMPRESSIONS, STORAGES
from .writer import FrameWriter, add_connections, check_output, open_writer, publish, temp_output


def _normalise_topics(image_topics: Sequence[str] | str | None) -> list[str] | None:
    """Topic names with one leading slash, duplicates dropped; BagError for empty names."""
    if image_topics is None:
        return None
    if isinstance(image_topics, str):
        image_topics = [image_topics]
    bad = [t for t in image_topics if not isinstance(t, str) or not t.strip("/")]
    if bad:
        raise BagError(f"image_topics: expected non-empty topic names, got {bad!r}")
    return list(dict.fromkeys("/" + t.lstrip("/") for t in image_topics))


class BagReplay:
    """One replay of ``input_path`` into ``output_path``; see :mod:`dcmpnet_ros.replay` and :func:`replay_bag`.

    The constructor checks the options and paths (BagError); :meth:`check` opens the input and checks the topics;
    :meth:`run` does the replay (:class:`~.pipeline.ReplayPipeline`) and returns its summary.
    """

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
        self.image_topics = _normalise_topics(image_topics)
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
        self.kind, self.input_storage = input_format(self.input_path)
        check_output(self.input_path, self.output_path, self.overwrite)

    def check(self) -> list[TopicReport]:
        """Open the input and resolve the image topics without writing anything (BagError when impossible).

        Lets a caller fail fast, before loading a model; returns the (empty) per-topic reports of the plan.
        """
        with open_input(self.input_path, get_typestore(Stores.ROS2_HUMBLE)) as reader:
            plan = plan_topics(reader, self.input_path, self.image_topics, self.copy_all_topics)
            return [p.report for p in plan.values()]

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

        Raises:
            BagError: the replay cannot start. BagWriteError: writing the output failed (nothing was written).
        """
        if self.dehazer is None and load_dehazer is None:
            raise ValueError("dehazer: pass a Dehazer to BagReplay or a load_dehazer to run() (both were None)")
        self._load_dehazer = load_dehazer
        self._load_s = 0.0
        out_storage = self.storage or self.input_storage or "sqlite3"
        start = time.perf_counter()
        with temp_output(self.output_path) as built:
            summary = self._run(built, out_storage)
            check_output(self.input_path, self.output_path, self.overwrite)   # still true after a long run?
            publish(built, self.output_path)
            summary.wall_s = time.perf_counter() - start - self._load_s
        return summary

    def _run(self, built: Path, out_storage: str) -> ReplaySummary:
        out_ts = get_typestore(Stores.ROS2_HUMBLE)
        writer = open_writer(built, out_storage, self.compression)
        with open_input(self.input_path, out_ts) as reader:
            plan = plan_topics(reader, self.input_path, self.image_topics, self.copy_all_topics)
            self._ensure_dehazer()
            fmt = f"rosbag2 {self.input_storage}" if self.kind == "rosbag2" else "ROS 1 bag"
            summary = ReplaySummary(self.input_path, self.output_path, fmt, out_storage, repr(self.dehazer),
                                    [p.report for p in plan.values()])
            processor = FrameProcessor(self.dehazer, FrameWriter(out_ts), summary, self.write_depth, self.on_frame)
            pipeline = ReplayPipeline(reader, MessageDecoder(reader, out_ts, self.max_decode_pixels), plan,
                                      processor, lambda: self.interrupt_requested, self.progress)
            pipeline.run(writer, partial(add_connections, reader=reader, plan=plan, out_ts=out_ts,
                                         write_depth=self.write_depth, copy_all_topics=self.copy_all_topics))
        return summary

    def _ensure_dehazer(self) -> None:
        if self.dehazer is None:
            t_load = time.perf_counter()
            self.dehazer = self._load_dehazer()
            self._load_s = time.perf_counter() - t_load


def replay_bag(input_path: str | os.PathLike, output_path: str | os.PathLike, dehazer: Any, *,
               image_topics: Sequence[str] | None = None, storage: str | None = None, copy_all_topics: bool = False,
               overwrite: bool = False, write_depth: bool = True, compression: str = "none",
               progress: bool = True, on_frame: FrameHook | None = None) -> ReplaySummary:
    """Dehaze every frame of a recorded bag into a new rosbag2; see :mod:`dcmpnet_ros.replay` for topics and safety.

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
        on_frame: called on the calling thread with a :class:`~.pipeline.FrameEvent` after each frame's inference.

    Raises:
        BagError: the replay cannot start (the message names the path, topic or option).
        BagWriteError: writing the output failed (e.g. a full disk); the message names the output and the cause.
    """
    return BagReplay(input_path, output_path, dehazer, image_topics=image_topics, storage=storage,
                     copy_all_topics=copy_all_topics, overwrite=overwrite, write_depth=write_depth,
                     compression=compression, progress=progress, on_frame=on_frame).run()
