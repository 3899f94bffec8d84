"""The replay pipeline: frames from the reader thread through the engine (calling thread) to the writer thread.

Three threads, so reading and writing overlap with inference: :class:`~.reader.ReaderStage` deserialises and
decodes messages in bag order, the calling thread runs the engine and keeps the counts (:class:`FrameProcessor`),
:class:`~.writer.WriterStage` encodes, serialises and writes. Messages leave in the order they came in.
"""
from __future__ import annotations

import queue
import time
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import numpy as np

from ..conversions import output_encoding_for
from .decoding import FrameItem, InfoItem, MessageDecoder, SkipItem
from .reader import CopyItem, EndItem, ReaderStage, Routes, TopicPlan, conn_key
from .report import ReplaySummary, TopicReport, progress_bar
from .writer import FrameWriter, OutputConnections, WriterStage, write_copy

if TYPE_CHECKING:
    from dcmpnet_core.inference.engine import DehazeResult


class FrameEvent(NamedTuple):
    """One processed frame, handed to the ``on_frame`` hook of :func:`~dcmpnet_ros.replay.replay_bag`.

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


class FrameProcessor:
    """One frame on the calling thread: the engine, the counts, the write job, the ``on_frame`` hook.

    ``dehazer``: a Dehazer (each image topic its own pass-through stream) or any callable (H,W,3) uint8 RGB ->
    DehazeResult; an engine error on a frame is counted as a skip (``inference_error``), as in the node.
    """

    def __init__(self, dehazer: Any, frame_writer: FrameWriter, summary: ReplaySummary, write_depth: bool = True,
                 on_frame: FrameHook | None = None) -> None:
        from dcmpnet_core.inference.engine import Dehazer  # here: importing the replay must not load torch

        self.dehazer = dehazer
        self._streams = isinstance(dehazer, Dehazer)
        self.frame_writer, self.summary = frame_writer, summary
        self.write_depth, self.on_frame = write_depth, on_frame

    def process(self, frame: FrameItem, report: TopicReport, outputs: dict[str, Any], info: Any,
                wstage: WriterStage) -> None:
        """Run the engine on ``frame`` and queue its messages (``outputs``: its output connections) for writing."""
        result = self._dehaze(frame, report)
        if result is None:
            return
        if getattr(result, "output_faulty", False):
            report.faulty_output += 1
            report.faulty_example = report.faulty_example or result.warnings[-1]
        encoding = output_encoding_for(frame.decoded.source_encoding)
        depth = result.depth if self.write_depth else None
        wstage.put(partial(self.frame_writer.write_frame, frame, result.dehazed, depth,
                           getattr(result, "haze_level", None), encoding, info, outputs))
        index = report.frames_out
        report.frames_out += 1
        report.passed_through += getattr(result, "weight", 1.0) == 0.0
        report.camera_info_out += info is not None
        if self.on_frame is not None:
            self._call_hook(frame, report.topic, index, result)

    def _dehaze(self, frame: FrameItem, report: TopicReport) -> Any:
        """The engine's result, or None after counting its failure on this frame."""
        rgb, start = frame.decoded.rgb, time.perf_counter()
        try:
            return self.dehazer(rgb, stream=report.topic) if self._streams else self.dehazer(rgb)
        except Exception as exc:   # noqa: BLE001 - an engine failure on one frame is counted, like in the node
            report.skip("inference_error", f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self.summary.inference_s += time.perf_counter() - start

    def _call_hook(self, frame: FrameItem, topic: str, index: int, result: Any) -> None:
        start, stamp = time.perf_counter(), frame.header.stamp
        self.on_frame(FrameEvent(topic, index, frame.log_time, (int(stamp.sec), int(stamp.nanosec)),
                                 frame.header.frame_id, frame.decoded.rgb, result))
        self.summary.hook_s += time.perf_counter() - start


class ReplayPipeline:
    """Runs one replay's three threads over an opened input; see the module docstring.

    ``interrupted``: polled between frames; once true, :meth:`run` raises KeyboardInterrupt (the bag is aborted).
    """

    QUEUE_FRAMES = 8      # decoded frames buffered between reader and engine (bounds memory)
    QUEUE_WRITES = 16     # write jobs buffered between engine and writer

    def __init__(self, reader: Any, decoder: MessageDecoder, plan: dict[str, TopicPlan], processor: FrameProcessor,
                 interrupted: Callable[[], bool], progress: bool = True) -> None:
        self.reader, self.decoder, self.plan, self.processor = reader, decoder, plan, processor
        self.summary = processor.summary
        self.interrupted, self.progress = interrupted, progress
        self.frames: queue.Queue = queue.Queue(maxsize=self.QUEUE_FRAMES)
        self.camera_info: dict[str, Any] = {}
        self.bar: Any = None

    def run(self, writer: Any, setup: Callable[[Any], OutputConnections]) -> None:
        """Replay into the unopened rosbags ``writer``; ``setup(writer)`` adds its connections (writer thread)."""
        topics = self.reader.topics
        ci_topics = sorted({p.camera_info for p in self.plan.values() if p.camera_info})
        # Frames recorded before the first camera_info get the first one (intrinsics do not change in a recording).
        self.camera_info = {ci: self.decoder.first_camera_info(topics[ci].connections) for ci in ci_topics}
        routes = Routes({conn_key(c): name for name, p in self.plan.items() for c in p.conns},
                        {conn_key(c): ci for ci in ci_topics for c in topics[ci].connections})
        wstage = WriterStage(writer, setup, self.QUEUE_WRITES, self.summary.output_path)
        rstage: ReaderStage | None = None
        ok = False
        wstage.start()
        try:
            conns = wstage.wait_ready()
            routes.copies, self.summary.not_copied = conns.copies, conns.not_copied
            rstage = ReaderStage(self.reader, self.decoder, routes, self.frames, self.summary.storage_errors,
                                 self.summary.input_path)
            self.bar = progress_bar(sum(self._declared().values()), self.progress)
            rstage.start()
            self._consume(wstage, conns)
            ok = True
        finally:
            if rstage is not None:
                rstage.shut_down()
                self.summary.read_decode_s = rstage.busy_s
            if self.bar is not None:
                self.bar.close()
            wstage.finish(ok)
            self.summary.encode_write_s = wstage.busy_s

    def _declared(self) -> dict[str, int]:
        """Image messages per source topic, as the input's index declares them."""
        return {name: sum(c.msgcount for c in p.conns) for name, p in self.plan.items()}

    def _consume(self, wstage: WriterStage, conns: OutputConnections) -> None:
        """The main loop: items in bag order until the reader's EndItem (whose error, if any, is raised here)."""
        while True:
            try:
                item = self.frames.get(timeout=0.1)
            except queue.Empty:
                item = None
            if self.interrupted():
                # Raised here, between frames, rather than by the signal wherever the main thread happens
                # to be: a KeyboardInterrupt inside a queue's lock would leave it held and hang the clean-up.
                raise KeyboardInterrupt
            if isinstance(item, EndItem):
                if item.error is not None:
                    raise item.error
                self.summary.count_unreadable(self._declared())
                return
            if item is not None:
                self._dispatch(item, wstage, conns)

    def _dispatch(self, item: Any, wstage: WriterStage, conns: OutputConnections) -> None:
        if isinstance(item, CopyItem):
            wstage.put(partial(write_copy, item))
            self.summary.count_copied(item.conn.topic)
        elif isinstance(item, InfoItem):
            if item.msg is None:
                self.summary.camera_info_skipped.add(item.reason)
            else:
                self.camera_info[item.topic] = item.msg
        else:
            self._frame(item, wstage, conns.frames[item.topic])

    def _frame(self, item: FrameItem | SkipItem, wstage: WriterStage, outputs: dict[str, Any]) -> None:
        report = self.plan[item.topic].report
        report.frames_in += 1
        if isinstance(item, SkipItem):
            report.skip(item.reason, item.detail)
        else:
            info = self.camera_info.get(report.camera_info_topic) if report.camera_info_topic else None
            self.processor.process(item, report, outputs, info, wstage)
        self.bar.update(1)
        if report.skipped.total:
            self.bar.set_postfix_str(f"skipped {self.summary.skipped}", refresh=False)
