"""Statistics behind the node's /diagnostics status, without ROS.

:class:`NodeStats` collects what the node sees (frames in, frames out with their inference latency and their age
at publication, frames dropped because a newer one replaced them, messages rejected by reason, processing
failures, the camera_info size against the image size) and turns it into a level, a one-line message and
key/value pairs; :func:`build_diagnostic_array` wraps those in a
diagnostic_msgs/DiagnosticArray of either message kind (rclpy or rosbags).

All times are seconds from an injectable monotonic clock, so tests can drive them.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections import deque
from typing import Any, Callable

Clock = Callable[[], float]

OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or math.isinf(value):
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


class RateMeter:
    """Events per second over a sliding window of ``window_s`` seconds.

    Until the meter is ``window_s`` old the rate is taken over its age, so it is right from the first seconds.
    """

    def __init__(self, window_s: float = 5.0, clock: Clock = time.monotonic):
        self.window_s = _positive("window_s", window_s)
        self._clock = clock
        self._start = clock()
        self._times: deque[float] = deque()
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None

    def tick(self, n: int = 1, now: float | None = None) -> None:
        """Record ``n`` events at ``now`` (default: the clock)."""
        now = self._clock() if now is None else now
        for _ in range(n):
            self._times.append(now)
        self.count += n
        if n:
            self.first = now if self.first is None else self.first
            self.last = now
        self._prune(now)

    def _prune(self, now: float) -> None:
        limit = now - self.window_s
        while self._times and self._times[0] <= limit:
            self._times.popleft()

    def in_window(self, now: float | None = None) -> int:
        """Events in the last ``window_s`` seconds."""
        now = self._clock() if now is None else now
        self._prune(now)
        return len(self._times)

    def rate(self, now: float | None = None) -> float:
        """Events per second over the window (0.0 before any time has passed)."""
        now = self._clock() if now is None else now
        span = min(self.window_s, now - self._start)
        return self.in_window(now) / span if span > 0 else 0.0


class LatencyStats:
    """Mean, 95th percentile and maximum of the last ``maxlen`` latencies, in milliseconds."""

    def __init__(self, maxlen: int = 100):
        if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
            raise ValueError(f"maxlen: expected an int >= 1, got {maxlen!r}")
        self._values: deque[float] = deque(maxlen=maxlen)
        self.count = 0

    def add(self, ms: float) -> None:
        if not math.isfinite(ms) or ms < 0:
            raise ValueError(f"ms: expected a finite latency >= 0, got {ms!r}")
        self._values.append(float(ms))
        self.count += 1

    def __len__(self) -> int:
        return len(self._values)

    @property
    def mean(self) -> float | None:
        return sum(self._values) / len(self._values) if self._values else None

    @property
    def p95(self) -> float | None:
        """Nearest-rank 95th percentile (the value 95 % of recent latencies do not exceed)."""
        if not self._values:
            return None
        ordered = sorted(self._values)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    @property
    def max(self) -> float | None:
        return max(self._values) if self._values else None


class DropCounter:
    """Counts by reason (e.g. MessageRejected.reason)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def add(self, reason: str, n: int = 1) -> None:
        self._counts[reason] = self._counts.get(reason, 0) + n

    def __getitem__(self, reason: str) -> int:
        return self._counts.get(reason, 0)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def counts(self) -> dict[str, int]:
        """Counts by reason, most frequent first."""
        return dict(sorted(self._counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


class NodeStats:
    """Everything the node's diagnostics report, with the rules that grade it.

    Levels (``level()``):

    * ERROR: input arrived in the last ``no_output_error_s`` seconds but nothing was published for that long
      (counted from the last output, or from when input started / the node stopped being idle);
    * WARN: more than ``warn_fraction`` of the frames received in the last ``window_s`` seconds were dropped as
      stale, rejected or failed; or no input for ``no_output_error_s`` seconds (none yet, or the stream stopped);
      or camera_info is expected (``expect_camera_info``) but none arrived within ``no_output_error_s`` seconds
      of the first frame, or its size differs from the newest image's;
      or the smoothed haze level of the last frame is above ``haze_warn_level`` ("visibility reduced");
    * OK otherwise, and always while ``idle`` (lazy node without subscribers).
    """

    MODES = ("passthrough", "blend", "dehaze")

    def __init__(self, device: str = "", window_s: float = 5.0, no_output_error_s: float = 5.0,
                 warn_fraction: float = 0.5, latency_window: int = 100, clock: Clock = time.monotonic,
                 expect_camera_info: bool = False, haze_warn_level: float = 0.6):
        self.device = str(device)
        self.window_s = _positive("window_s", window_s)
        self.no_output_error_s = _positive("no_output_error_s", no_output_error_s)
        if not 0 <= warn_fraction <= 1:
            raise ValueError(f"warn_fraction: expected a number in [0, 1], got {warn_fraction!r}")
        self.warn_fraction = float(warn_fraction)
        self._clock = clock
        self.started = clock()
        self.input = RateMeter(window_s, clock)
        self.output = RateMeter(window_s, clock)
        self.latency = LatencyStats(latency_window)
        self.frame_age = LatencyStats(latency_window)    # header stamp -> publication, ms
        self.future_stamps = 0                          # frames stamped after their publication (clock skew)
        self.expect_camera_info = bool(expect_camera_info)
        self.camera_info_size: tuple[int, int] | None = None    # (width, height) of the newest camera_info
        self.image_size: tuple[int, int] | None = None          # (width, height) of the newest image
        self.depth_units = ""                           # what dehazed/depth holds, for the key/values
        self.rejected = DropCounter()
        self.failed = DropCounter()
        self.dropped_stale = 0
        self.output_faults = 0                       # published frames whose network output was NaN/Inf or constant
        self._bad = RateMeter(window_s, clock)       # stale + rejected + failed, for the recent fraction
        self._idle = False
        self._active_since = self.started
        self.haze_warn_level = float(haze_warn_level)
        self.haze_level: float | None = None        # last frame's level
        self.haze_smoothed: float | None = None     # the engine's smoothed level after the last frame
        self.mode: str | None = None
        self.mode_counts = {mode: 0 for mode in self.MODES}

    # ------------------------------------------------------------------ events
    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def on_input(self, now: float | None = None) -> None:
        """A message arrived on the input topic."""
        now = self._now(now)
        if self.input.last is not None and now - self.input.last > self.no_output_error_s:
            self._active_since = now         # the stream resumed: give the first frame time to come through
        self.input.tick(1, now)

    def on_output(self, latency_ms: float, now: float | None = None, age_ms: float | None = None) -> None:
        """A result was published; ``latency_ms`` is the inference time of that frame.

        ``age_ms``: the frame's age at publication (publication time minus the header stamp, same clock); a
        negative age (the stamp lies ahead: clocks out of step) is counted in ``future_stamps`` instead.
        """
        self.latency.add(latency_ms)
        if age_ms is not None:
            if age_ms >= 0:
                self.frame_age.add(age_ms)
            else:
                self.future_stamps += 1
        self.output.tick(1, self._now(now))

    def on_image_size(self, width: int, height: int) -> None:
        """The size of the newest decoded image (to compare with camera_info)."""
        self.image_size = (int(width), int(height))

    def on_camera_info(self, width: int, height: int) -> None:
        """A camera_info message arrived with this image size."""
        self.camera_info_size = (int(width), int(height))

    def on_haze(self, level: float, smoothed: float, mode: str) -> None:
        """A frame's haze level, the stream's smoothed level and the frame's mode (one of :attr:`MODES`)."""
        if mode not in self.mode_counts:
            raise ValueError(f"mode: expected one of {self.MODES}, got {mode!r}")
        self.haze_level, self.haze_smoothed, self.mode = float(level), float(smoothed), mode
        self.mode_counts[mode] += 1

    def on_dropped_stale(self, n: int = 1, now: float | None = None) -> None:
        """``n`` frames were replaced by newer ones before inference (LatestFrameSlot.put returned one)."""
        self.dropped_stale += n
        self._bad.tick(n, self._now(now))

    def on_rejected(self, reason: str, now: float | None = None) -> None:
        """A message could not be decoded (``MessageRejected.reason``)."""
        self.rejected.add(reason)
        self._bad.tick(1, self._now(now))

    def on_output_fault(self) -> None:
        """The engine's output for a frame was non-finite or constant (``DehazeResult.output_faulty``)."""
        self.output_faults += 1

    def on_failed(self, kind: str, now: float | None = None) -> None:
        """Processing a decoded frame failed (e.g. ``kind`` = exception class name)."""
        self.failed.add(kind)
        self._bad.tick(1, self._now(now))

    @property
    def idle(self) -> bool:
        return self._idle

    def set_idle(self, idle: bool, now: float | None = None) -> None:
        """Mark the node idle (lazy and nobody subscribes) or active again; no output is expected while idle."""
        if self._idle and not idle:
            self._active_since = self._now(now)
        self._idle = bool(idle)

    # ------------------------------------------------------------------ grading
    def _evaluate(self, now: float) -> tuple[int, str]:
        rate_in, rate_out = self.input.rate(now), self.output.rate(now)
        if self._idle:
            return OK, f"idle: no subscribers (lazy); input {rate_in:.1f} Hz"
        last_in = self.input.last
        if last_in is None or now - last_in > self.no_output_error_s:
            since = now - (last_in if last_in is not None else self.started)
            if last_in is None and since <= self.no_output_error_s:
                return OK, "waiting for input"
            what = "no input yet" if last_in is None else "no input"
            return WARN, f"{what} for {since:.1f} s"
        reference = max(v for v in (self.output.last, self.input.first, self._active_since) if v is not None)
        silent = now - reference
        if silent > self.no_output_error_s:
            cause = self._drop_summary()
            return ERROR, (f"no output for {silent:.1f} s while input arrives at {rate_in:.1f} Hz"
                           + (f" ({cause})" if cause else ""))
        received = self.input.in_window(now)
        bad = self._bad.in_window(now)
        summary = f"{rate_in:.1f} Hz in, {rate_out:.1f} Hz out, inference {_fmt(self.latency.mean, 0)} ms"
        if self.haze_smoothed is not None:
            summary += f", haze level {self.haze_smoothed:.2f} ({self.mode})"
        if len(self.frame_age):
            summary += f", frame age {_fmt(self.frame_age.mean, 0)} ms"
        problems = []
        if received and bad / received > self.warn_fraction:
            problems.append(f"{min(bad, received) * 100 // received}% of the {received} frames of the last "
                            f"{self.window_s:g} s were not processed ({self._drop_summary()})")
        camera_info = self._camera_info_problem(now)
        if camera_info:
            problems.append(camera_info)
        if problems:
            return WARN, "; ".join(problems + [summary])
        if self.haze_smoothed is not None and self.haze_smoothed > self.haze_warn_level:
            return WARN, f"visibility reduced: haze level above {self.haze_warn_level:.2f}; {summary}"
        return OK, summary

    def _camera_info_problem(self, now: float) -> str:
        if not self.expect_camera_info or self.input.first is None:
            return ""
        if self.camera_info_size is None:
            waited = now - max(self.input.first, self._active_since)
            if waited > self.no_output_error_s:
                return f"no camera_info for {waited:.1f} s although use_camera_info is true"
            return ""
        if self.image_size is not None and self.image_size != self.camera_info_size:
            return ("camera_info is {}x{} but the images are {}x{}: it belongs to another stream or resolution"
                    .format(*self.camera_info_size, *self.image_size))
        return ""

    def _drop_summary(self) -> str:
        parts = []
        if self.dropped_stale:
            parts.append(f"stale {self.dropped_stale}")
        parts += [f"{reason} {n}" for reason, n in self.rejected.counts().items()]
        parts += [f"failed {kind} {n}" for kind, n in self.failed.counts().items()]
        return ", ".join(parts)

    def _camera_info_text(self) -> str:
        if not self.expect_camera_info:
            return "not used"
        if self.camera_info_size is None:
            return "none received"
        return f"{_size_text(self.camera_info_size)} (images {_size_text(self.image_size)})"

    def level(self, now: float | None = None) -> int:
        """0 OK, 1 WARN or 2 ERROR (see the class docstring)."""
        return self._evaluate(self._now(now))[0]

    def message(self, now: float | None = None) -> str:
        """One line for DiagnosticStatus.message."""
        return self._evaluate(self._now(now))[1]

    def to_key_values(self, now: float | None = None) -> list[tuple[str, str]]:
        """(key, value) string pairs for DiagnosticStatus.values, in a fixed order (rejections by reason last)."""
        now = self._now(now)
        last_out = self.output.last
        pairs = [
            ("device", self.device or "n/a"),
            ("input rate (Hz)", _fmt(self.input.rate(now))),
            ("output rate (Hz)", _fmt(self.output.rate(now))),
            ("inference latency mean (ms)", _fmt(self.latency.mean, 1)),
            ("inference latency p95 (ms)", _fmt(self.latency.p95, 1)),
            ("inference latency max (ms)", _fmt(self.latency.max, 1)),
            ("frame age mean (ms)", _fmt(self.frame_age.mean, 1)),
            ("frame age p95 (ms)", _fmt(self.frame_age.p95, 1)),
            ("frame age max (ms)", _fmt(self.frame_age.max, 1)),
            ("frames received", str(self.input.count)),
            ("frames published", str(self.output.count)),
            ("frames dropped (stale)", str(self.dropped_stale)),
            ("frames rejected", str(self.rejected.total)),
            ("frames failed", str(self.failed.total)),
            ("frames with faulty output (NaN/Inf or constant)", str(self.output_faults)),
            ("seconds since last output", "never" if last_out is None else _fmt(now - last_out)),
            ("idle (lazy, no subscribers)", "true" if self._idle else "false"),
            ("camera_info", self._camera_info_text()),
            ("haze level (last frame)", _fmt(self.haze_level, 3)),
            ("haze level (smoothed)", _fmt(self.haze_smoothed, 3)),
            ("haze warn level", _fmt(self.haze_warn_level, 3)),
            ("mode (last frame)", self.mode or "n/a"),
            ("frames passed through", str(self.mode_counts["passthrough"])),
            ("frames blended", str(self.mode_counts["blend"])),
            ("frames dehazed", str(self.mode_counts["dehaze"])),
        ]
        if self.depth_units:
            pairs.append(("depth units", self.depth_units))
        if self.future_stamps:
            pairs.append(("frames stamped in the future", str(self.future_stamps)))
        pairs += [(f"rejected: {reason}", str(n)) for reason, n in self.rejected.counts().items()]
        pairs += [(f"failed: {kind}", str(n)) for kind, n in self.failed.counts().items()]
        return pairs


def frame_age_ms(stamp: Any, now_ns: int) -> float:
    """Milliseconds from a builtin_interfaces/Time ``stamp`` (either message kind) to ``now_ns`` (same clock)."""
    return (int(now_ns) - (int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec))) / 1e6


def _size_text(size: tuple[int, int] | None) -> str:
    return "none" if size is None else f"{size[0]}x{size[1]}"


def _header_class(array_cls: type) -> type:
    """The std_msgs/Header class that goes with a rosbags DiagnosticArray class."""
    annotation = {f.name: f.type for f in dataclasses.fields(array_cls)}["header"]
    if not isinstance(annotation, str):
        return annotation
    found = getattr(sys.modules.get(array_cls.__module__), annotation, None)
    if found is None:
        raise TypeError(f"array_cls: cannot find the Header class {annotation!r}; pass header_cls")
    return found


def build_diagnostic_array(array_cls: type, status_cls: type, kv_cls: type, header_stamp: Any, name: str,
                           hardware_id: str, stats: NodeStats, now: float | None = None,
                           header_cls: type | None = None) -> Any:
    """A diagnostic_msgs/DiagnosticArray holding one DiagnosticStatus built from ``stats``.

    Works for rclpy classes (``level`` is a one-byte ``bytes``) and rosbags classes (``level`` is an int; the
    Header class is found beside ``array_cls`` unless ``header_cls`` is given). ``header_stamp`` is a
    builtin_interfaces/Time of the same kind.
    """
    now = stats._now(now)
    level, message = stats._evaluate(now)
    values = [kv_cls(key=key, value=value) for key, value in stats.to_key_values(now)]
    rosbags = dataclasses.is_dataclass(status_cls)
    status = status_cls(level=level if rosbags else bytes([level]), name=name, message=message,
                        hardware_id=hardware_id, values=values)
    if rosbags:
        header = (header_cls or _header_class(array_cls))(stamp=header_stamp, frame_id="")
        return array_cls(header=header, status=[status])
    msg = array_cls(status=[status])
    msg.header.stamp = header_stamp
    return msg
