"""The dehazing node's work, without ROS: both nodes (plain and lifecycle) and the tests drive this.

:class:`FramePipeline` takes decoded-or-rejected camera messages on the caller's (executor) thread, keeps only the
newest frame in a one-slot queue and runs the engine on a worker thread, handing each result to a ``publish``
callback; it keeps the :class:`~dcmpnet_ros.diagnostics.NodeStats` and throttles repeated warnings. The
executor thread only decodes and swaps the slot, so it holds the GIL briefly while the engine runs.

:func:`load_engine`, :func:`warm_up` and :func:`release_accelerator_memory` are the steps of the lifecycle node's
``configure`` / ``deactivate`` / ``cleanup``, and the plain node's start-up.
"""
from __future__ import annotations

import gc
import threading
import time
from typing import Any, Callable

import numpy as np

from dcmpnet_ros.conversions import MessageRejected
from dcmpnet_ros.diagnostics import NodeStats, frame_age_ms
from dcmpnet_ros.frame_queue import LatestFrameSlot
from dcmpnet_ros.params import NodeParams

# publish(header, result, decoded): called on the worker thread with the engine's result for one frame.
PublishFn = Callable[[Any, Any, Any], None]


class StartupError(RuntimeError):
    """The node cannot start (no weights, no GPU, ...); the message says what to do."""


def load_engine(params: NodeParams) -> Any:
    """The inference engine the parameters ask for; StartupError says what the user can do instead."""
    # the engine imports torch: the node's ROS-free core loads without it until the engine is built
    from dcmpnet_core.inference.engine import Dehazer

    try:
        return Dehazer.from_checkpoint(params.weights or None, device=params.device, precision=params.precision,
                                       backend=params.backend, max_pixels=params.max_pixels or None,
                                       inference_scale=params.inference_scale, mode=params.mode,
                                       bypass_below=params.bypass_below, bypass_band=params.bypass_band,
                                       passthrough_depth=params.publish_depth)
    except FileNotFoundError as exc:
        raise StartupError(f"{exc}\nFor ROS: set the 'weights' parameter to a checkpoint (ros2 launch dcmpnet_ros "
                           "dehaze.launch.py weights:=/path/to/model.pt), or run the classical dark-channel prior, "
                           "which needs no weights: backend:=dcp") from exc
    except (ValueError, RuntimeError, OSError) as exc:
        raise StartupError(f"cannot start the dehazer ({type(exc).__name__}): {exc}") from exc


def apply_torch_threads(threads: int) -> int | None:
    """Set torch's intra-op thread count when ``threads`` > 0; returns the count now in force (None: no torch)."""
    try:
        # not at the top: importing the node's ROS-free core loads no torch; without torch there is nothing to set
        import torch
    except ImportError:
        return None
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def warm_up(engine: Any, shape: tuple[int, int] | None) -> float | None:
    """Run one grey frame of ``shape`` = (height, width) through ``engine``; returns its milliseconds (None: skipped).

    The first call of an engine pays for lazy initialisation (kernel selection, allocator growth, compilation in
    ``mode: compile``); doing it here keeps that off the first camera frame.
    """
    if shape is None:
        return None
    start = time.perf_counter()
    engine(np.full((shape[0], shape[1], 3), 128, np.uint8))
    elapsed = (time.perf_counter() - start) * 1e3
    reset = getattr(engine, "reset_stream", None)
    if reset is not None:
        reset()             # the grey frame must not start the camera's pass-through state (it reads as fog)
    return elapsed


def release_accelerator_memory(device: Any) -> bool:
    """Return the CUDA caching allocator's unused blocks to the driver; True when there was CUDA to release."""
    gc.collect()
    if not str(device).startswith("cuda"):
        return False
    # torch only when there is CUDA memory to release
    import torch

    if not torch.cuda.is_available():
        return False
    torch.cuda.empty_cache()
    return True


def depth_units(params: NodeParams) -> str:
    """Short form of :func:`depth_mode_line` for the diagnostics key "depth units"."""
    if not params.publish_depth:
        return "off"
    if params.relative_depth:
        return "relative, not metres (depth_scale 0)"
    return f"relative x depth_scale {params.depth_scale:g} (metres if calibrated)"


def depth_mode_line(params: NodeParams) -> str:
    """The start-up log line that says what ``dehazed/depth`` holds."""
    if not params.publish_depth:
        return "dehazed/depth is off (publish_depth: false)"
    if params.relative_depth:
        return ("dehazed/depth is RELATIVE depth in (0, 1], normalised per frame, NOT metres (depth_scale: 0); "
                "do not feed it to depth_image_proc or anything that reads 32FC1 as metres")
    return (f"dehazed/depth is relative depth x depth_scale {params.depth_scale:g}: metres only if that scale was "
            "calibrated for this camera and scene")


class FramePipeline:
    """Newest-frame-only inference on a worker thread, with statistics and throttled warnings.

    ``engine(rgb)`` returns an object with ``latency_ms``; ``publish(header, result, decoded)`` sends it on.
    ``warn(text)`` logs; ``now_ns()`` is the clock the headers' stamps use (for the frame age), or None.
    """

    def __init__(self, engine: Any, params: NodeParams, publish: PublishFn, warn: Callable[[str], None],
                 now_ns: Callable[[], int] | None = None, clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.params = params
        self._publish = publish
        self._log_warning = warn
        self._now_ns = now_ns
        self._clock = clock
        self.stats = NodeStats(device=str(getattr(engine, "device", "")), expect_camera_info=params.use_camera_info,
                               haze_warn_level=params.haze_warn_level, clock=clock)
        self.stats.depth_units = depth_units(params)
        self._lock = threading.Lock()          # the worker and the executor thread both update the statistics
        self._slot: LatestFrameSlot = LatestFrameSlot()
        self._worker: threading.Thread | None = None
        self._last_warning: dict[str, float] = {}

    def update_params(self, params: NodeParams) -> None:
        """Run-time parameter change (max_pixels, inference_scale, depth_scale, ...)."""
        self.params = params
        self.engine.set_resolution(params.max_pixels or None, params.inference_scale)
        if hasattr(self.engine, "bypass_below"):
            self.engine.bypass_below, self.engine.bypass_band = params.bypass_below, params.bypass_band
            self.engine.passthrough_depth = params.publish_depth
        with self._lock:
            self.stats.depth_units = depth_units(params)
            self.stats.haze_warn_level = params.haze_warn_level

    # ----------------------------------------------------------------------------- lifetime
    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def start(self) -> None:
        """Start the worker thread (again after :meth:`stop`)."""
        if self.running:
            return
        self._slot = LatestFrameSlot()
        self._worker = threading.Thread(target=self._work, name="dehaze_worker", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Drop the waiting frame and stop the worker after the frame in progress."""
        self._slot.close()
        if self._worker is not None and self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout=timeout)
        self._worker = None

    # ----------------------------------------------------------------------- executor side
    def accept(self, msg: Any, decode: Callable[[Any, int], Any], idle: bool = False, source: str = "input") -> None:
        """Decode ``msg`` (a camera message) and make it the next frame; rejected messages are counted and logged.

        ``decode(msg, max_pixels)`` applies the pixel budget (parameter ``max_input_pixels``) from the header.

        Decoding here, not in the worker, keeps a malformed frame from evicting a good one from the slot.
        """
        with self._lock:
            self.stats.on_input()
            self.stats.set_idle(idle)
        if idle:
            return
        try:
            decoded = decode(msg, self.params.max_input_pixels)
        except MessageRejected as exc:
            self.count(self.stats.on_rejected, exc.reason)
            self.warn(exc.reason, f"dropped a message from {source}: {exc}")
            return
        except Exception as exc:   # noqa: BLE001 - nothing may escape into the executor
            self.count(self.stats.on_rejected, "decoder_error")
            self.warn("decoder_error", f"dropped a message, the decoder failed ({type(exc).__name__}): {exc}")
            return
        height, width = decoded.rgb.shape[:2]
        with self._lock:
            self.stats.on_image_size(width, height)
        if self.running and self._slot.put((msg.header, decoded)) is not None:
            self.count(self.stats.on_dropped_stale)

    def on_camera_info(self, width: int, height: int) -> None:
        with self._lock:
            self.stats.on_camera_info(width, height)

    # ------------------------------------------------------------------------------ worker
    def _work(self) -> None:
        slot = self._slot
        while not slot.closed:
            item = slot.get(timeout=0.5)
            if item is None:
                continue
            try:
                self.process(*item)
            except Exception as exc:   # noqa: BLE001 - one failing frame must not stop the node
                self.count(self.stats.on_failed, type(exc).__name__)
                self.warn("failed:" + type(exc).__name__,
                          f"frame {getattr(item[0], 'frame_id', '')!r} failed ({type(exc).__name__}): {exc}")

    def process(self, header: Any, decoded: Any) -> None:
        """Run the engine on one decoded frame and publish the result (the worker's step; tests call it too)."""
        result = self.engine(decoded.rgb)
        if getattr(result, "output_faulty", False):      # NaN/Inf (zeroed) or constant output: counted, warned
            self.count(self.stats.on_output_fault)
            self.warn("faulty_output", f"frame {getattr(header, 'frame_id', '')!r}: {result.warnings[-1]}")
        self._publish(header, result, decoded)
        age = frame_age_ms(header.stamp, self._now_ns()) if self._now_ns is not None else None
        self.count(self.stats.on_output, float(result.latency_ms), None, age)
        if getattr(result, "haze_level", None) is not None:
            self.count(self.stats.on_haze, result.haze_level, result.haze_smoothed, result.mode)

    # ---------------------------------------------------------------------------- reporting
    def count(self, event: Callable, *args: Any) -> None:
        """Call a NodeStats event under the statistics lock."""
        with self._lock:
            event(*args)

    def warn(self, key: str, text: str) -> None:
        """Log ``text`` unless a warning with the same ``key`` was logged less than ``log_throttle_s`` ago."""
        now = self._clock()
        if now - self._last_warning.get(key, -float("inf")) >= self.params.log_throttle_s:
            self._last_warning[key] = now
            self._log_warning(text)

    def locked(self) -> threading.Lock:
        """The statistics lock (hold it while reading :attr:`stats` from another thread)."""
        return self._lock
