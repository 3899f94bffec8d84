"""The node's work without ROS against the engine alone: how much of the engine's rate survives a live camera.

A "camera" thread publishes rgb8 frames at ``rate_hz`` into :class:`~dcmpnet_ros.pipeline.FramePipeline` (the
decode on that thread, as the executor does in the node), the worker runs the engine and "publishes" by encoding
the outputs into messages; the engine alone is timed first on the same frames. It measures the node's own
threads (decode, slot, worker, encoding, torch's thread pool competing with the camera thread), not rclpy's
executor or the middleware: on a ROS 2 machine, compare with ``ros2 topic hz /dehazed/image``.

    python -m dcmpnet_ros.pipeline_bench --precision bf16 --max-pixels 76800 --rate 30 --torch-threads 0 1
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from typing import Any, Sequence

import cv2
import numpy as np

from dcmpnet_core.cli.common import CommandError, add_engine_arguments, parse_size
from dcmpnet_ros.conversions import decode_image, encode_depth, encode_image
from dcmpnet_ros.params import NodeParams
from dcmpnet_ros.pipeline import FramePipeline, apply_torch_threads, load_engine


class _Msg:
    """The fields of sensor_msgs/Image that decode_image reads, with a header."""

    def __init__(self, rgb: np.ndarray, stamp_ns: int):
        self.height, self.width = rgb.shape[:2]
        self.encoding, self.is_bigendian, self.step = "rgb8", 0, 3 * self.width
        self.data = rgb.tobytes()
        self.header = _Header(stamp_ns)


class _Header:
    def __init__(self, stamp_ns: int):
        self.stamp = _Stamp(stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
        self.frame_id = "camera"


class _Stamp:
    def __init__(self, sec: int, nanosec: int):
        self.sec, self.nanosec = sec, nanosec


class _Image:
    """A plain output message (what encode_image / encode_depth fill)."""

    def __init__(self, **fields: Any):
        self.__dict__.update(fields)


def engine_fps(engine: Any, frames: Sequence[np.ndarray], seconds: float) -> float:
    """Frames per second of the engine alone on ``frames`` (after one warm-up call)."""
    engine(frames[0])
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        engine(frames[count % len(frames)])
        count += 1
    return count / (time.perf_counter() - start)


def pipeline_run(engine: Any, frames: Sequence[np.ndarray], rate_hz: float, seconds: float) -> dict:
    """Feed ``frames`` at ``rate_hz`` for ``seconds`` through a FramePipeline; output rate and frame ages (ms)."""
    ages: list[float] = []

    def publish(header: Any, result: Any, decoded: Any) -> None:
        encode_image(_Image, header, result.dehazed, "rgb8")
        if result.depth is not None:             # None: a frame passed through with publish_depth false
            encode_depth(_Image, header, result.depth)
        stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        ages.append((time.monotonic_ns() - stamp) / 1e6)

    pipe = FramePipeline(engine, NodeParams(log_throttle_s=3600.0), publish, lambda text: None,
                         now_ns=time.monotonic_ns)
    pipe.start()
    stop = threading.Event()

    def camera() -> None:
        period, n, start = 1.0 / rate_hz, 0, time.monotonic()
        while not stop.is_set():
            pipe.accept(_Msg(frames[n % len(frames)], time.monotonic_ns()), decode_image)
            n += 1
            stop.wait(max(0.0, start + n * period - time.monotonic()))

    thread = threading.Thread(target=camera, daemon=True)
    engine(frames[0])                            # warm, as the node's warm-up does
    start = time.monotonic()
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join()
    elapsed = time.monotonic() - start
    pipe.stop()
    ordered = sorted(ages)
    return {"output_hz": len(ages) / elapsed, "input_hz": pipe.stats.input.count / elapsed,
            "age_median_ms": statistics.median(ordered) if ordered else None,
            "age_p95_ms": ordered[max(0, int(0.95 * len(ordered)) - 1)] if ordered else None,
            "dropped_stale": pipe.stats.dropped_stale}


def camera_frames(height: int, width: int, count: int = 4) -> list[np.ndarray]:
    """``count`` smooth random (H,W,3) uint8 frames, each shifted from the last, as a moving camera's."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), np.uint8)

    smooth = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    return [np.ascontiguousarray(np.roll(smooth, 7 * i, axis=1)) for i in range(count)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dcmpnet_ros.pipeline_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="", help="checkpoint (default: the bundled weights)")
    add_engine_arguments(parser, ["backend", "precision", "device", "max_pixels"], defaults={"device": "cpu"})
    parser.add_argument("--size", default="480x640", help="HxW of the camera frames (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement (default: %(default)s)")
    parser.add_argument("--torch-threads", type=int, nargs="+", default=[0],
                        help="torch thread counts to compare (0: torch's default)")
    args = parser.parse_args(argv)
    try:
        height, width = parse_size(args.size)
    except CommandError as exc:
        parser.error(str(exc))
    # bypass_below 0: the network runs on every frame (the synthetic frames would read as clear and pass through)
    params = NodeParams(weights=args.weights, backend=args.backend, precision=args.precision, device=args.device,
                        bypass_below=0.0, max_pixels=args.max_pixels or 0)
    engine = load_engine(params)
    frames = camera_frames(height, width)
    print("| torch threads | engine alone (fps) | pipeline out (Hz) | out / min(engine, camera) | "
          "frame age median (ms) | age p95 (ms) | engine latency (ms) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for threads in args.torch_threads:
        used = apply_torch_threads(threads)
        fps = engine_fps(engine, frames, args.seconds)
        run = pipeline_run(engine, frames, args.rate, args.seconds)
        print(f"| {used} | {fps:.2f} | {run['output_hz']:.2f} | {run['output_hz'] / min(fps, args.rate):.2f} | "
              f"{run['age_median_ms']:.0f} | {run['age_p95_ms']:.0f} | {1000 / fps:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
