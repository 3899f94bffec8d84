"""What a replay did: per-topic counts, skip reasons with a first example, times, and the printed report."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from tqdm import tqdm

from ..diagnostics import DropCounter
from .decoding import MIN_SIDE
from .topics import OutputTopics, camera_info_topic_for

#: Skip reasons a replay adds to those of :data:`dcmpnet_ros.conversions.REJECT_REASONS`.
SKIP_REASONS = {
    "deserialization_error": "the message bytes could not be deserialised as the connection's message type",
    "decoder_error": "the image decoder failed in an unexpected way",
    "too_small": f"the image is smaller than {MIN_SIDE} px on a side (the network's minimum)",
    "inference_error": "the dehazing engine raised an error on this frame",
    "unreadable": "the bag's storage could not be read there (a corrupt chunk or page); its messages are lost",
}


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

    def skip(self, reason: str, detail: str, count: int = 1) -> None:
        """Count ``count`` skipped frames for ``reason``; ``detail`` is kept if it is the reason's first."""
        self.skipped.add(reason, count)
        self.examples.setdefault(reason, detail)

    def lines(self) -> list[str]:
        """This topic's lines of :meth:`ReplaySummary.format`."""
        skipped = ", ".join(f"{r} {n}" for r, n in self.skipped.counts().items())
        lines = [f"  {self.topic} [{self.msgtype.rsplit('/', 1)[-1]}]: {self.frames_in} in, {self.frames_out} out, "
                 f"{self.skipped.total} skipped" + (f" ({skipped})" if skipped else "")
                 + f"; {self.passed_through} passed through undehazed (haze level below the threshold)"]
        outs = [self.outputs.image, self.outputs.depth, self.outputs.haze_level] if self.frames_out else []
        outs = outs or [self.outputs.image + " (nothing written)"]
        if self.camera_info_topic:
            outs.append(f"{self.outputs.camera_info} ({self.camera_info_out} from {self.camera_info_topic})")
        else:
            outs.append(f"no camera_info ({camera_info_topic_for(self.topic)} not in the bag)")
        lines.append("      -> " + ", ".join(outs))
        for reason, text in self.examples.items():
            lines.append(f"      first {reason}: {text[:200]}")
        if self.faulty_output:
            lines.append(f"      WARNING: {self.faulty_output} frame(s) with faulty network output: "
                         f"{self.faulty_example}")
        return lines


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

    def count_copied(self, topic: str) -> None:
        """One more message of ``topic`` copied unchanged."""
        self.copied[topic] = self.copied.get(topic, 0) + 1

    def count_unreadable(self, declared: Mapping[str, int]) -> None:
        """After storage errors: image messages the index declares (``declared``: topic -> count) but nobody read.

        They are counted as frames in, skipped as ``unreadable``.
        """
        if not self.storage_errors:
            return
        for report in self.topics:
            lost = declared.get(report.topic, 0) - report.frames_in
            if lost > 0:
                report.frames_in += lost
                report.skip("unreadable", self.storage_errors[0], lost)

    def format(self) -> str:
        """A multi-line, human-readable report."""
        lines = [f"{self.input_path} ({self.input_format}) -> {self.output_path} (rosbag2 {self.output_storage})",
                 f"engine: {self.engine}"]
        for t in self.topics:
            lines += t.lines()
        if self.camera_info_skipped.total:
            lines.append("  camera_info messages skipped: " + ", ".join(
                f"{r} {n}" for r, n in self.camera_info_skipped.counts().items()))
        if self.copied:
            lines.append(f"  copied unchanged: {len(self.copied)} topics, {sum(self.copied.values())} messages")
        for topic, why in self.not_copied.items():
            lines.append(f"  NOT copied: {topic} ({why[:200]})")
        for err in self.storage_errors:
            lines.append(f"  input storage error, skipped: {err[:300]}")
        lines += self._total_lines()
        return "\n".join(lines)

    def _total_lines(self) -> list[str]:
        fps = self.frames_out / self.wall_s if self.wall_s > 0 else 0.0
        infer_pct = 100.0 * self.inference_s / self.wall_s if self.wall_s > 0 else 0.0
        return [f"frames: {self.frames_in} in, {self.frames_out} out, {self.skipped} skipped",
                f"time: wall {self.wall_s:.2f} s ({fps:.2f} frames/s): inference {self.inference_s:.2f} s "
                f"({infer_pct:.1f} %), overhead {self.overhead_s:.2f} s ({100 * self.overhead_fraction:.1f} %; "
                f"read+decode {self.read_decode_s:.2f} s, encode+write {self.encode_write_s:.2f} s)"
                + (f"; on_frame hook {self.hook_s:.2f} s" if self.hook_s else "")]


def progress_bar(total: int, enabled: bool) -> Any:
    """A tqdm bar over ``total`` frames on stderr (a silent one unless ``enabled``)."""
    return tqdm(total=total, unit="frame", desc="dehazing", disable=not enabled, dynamic_ncols=True,
                smoothing=0.1)
