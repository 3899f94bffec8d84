"""The live node against its own engine: output rate and frame age with a 30 Hz camera on a real ROS 2 graph.

Needs a sourced ROS 2 (rclpy). In one run, on one machine:

1. the engine alone, in this process, with the parameters file's settings: frames per second and latency;
2. ``dehaze_node`` (or ``dehaze_lifecycle_node``, configured and activated through its change_state service) as a
   separate process with the same file;
   this process publishes 640x480 rgb8 frames at ``--rate`` Hz on ``image`` (stamped with the ROS clock) and
   subscribes ``dehazed/image``: output rate, and frame age (publish of the output minus the input's stamp).

    python -m dcmpnet_ros.node_bench --params-file config/dehaze_cpu_live.yaml --rate 30 --seconds 20

Both run the network on every frame (``bypass_below: 0``): the synthetic camera frames would read as clear and
be passed through undehazed, which measures the pass-through, not the node under fog.

The last two columns are the node's own diagnostics (``/diagnostics``): its inference latency, and the frame age
when it publishes; the rest of the measured age is the way back to the subscriber. The ratio columns are the
issue's targets: node rate / min(engine rate, camera rate) and frame age / engine
latency. The camera and the measuring subscriber run in this process, with one executor thread, as a camera
driver and a detector would in theirs.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Sequence

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from dcmpnet_ros.conversions import encode_image
from dcmpnet_ros.diagnostics import LatencyStats
from dcmpnet_ros.params import NodeParams, load_params_yaml
from dcmpnet_ros.pipeline import apply_torch_threads, load_engine
from dcmpnet_ros.pipeline_bench import camera_frames, engine_fps


class CameraAndProbe(Node):
    """Publishes frames on ``image`` at a fixed rate and records the age of every ``dehazed/image``."""

    def __init__(self, frames: list[np.ndarray], rate_hz: float):
        super().__init__("dcmpnet_node_bench")
        self._frames = frames
        self._pub = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.create_subscription(Image, "dehazed/image", self._on_output, qos_profile_sensor_data)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.node_view: dict[str, str] = {}            # the node's own last diagnostics (key -> value)
        self.create_timer(1.0 / rate_hz, self._tick)
        self.sent = 0
        self.ages_ms: list[float] = []

    def _tick(self) -> None:
        header = Header(frame_id="camera", stamp=self.get_clock().now().to_msg())
        self._pub.publish(encode_image(Image, header, self._frames[self.sent % len(self._frames)], "rgb8"))
        self.sent += 1

    def _on_output(self, msg: Image) -> None:
        now = self.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.ages_ms.append((now - stamp) / 1e6)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if "dehaze_node" in status.name:
                self.node_view = {kv.key: kv.value for kv in status.values}


def _number(text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _start_node(params_file: Path, lifecycle: bool, log: IO[str]) -> subprocess.Popen:
    """The node as its own process, as ``ros2 run`` starts it.

    Its log goes to ``log``, not to a pipe that nobody reads while the measurement runs (a full pipe would stall
    the node).
    """
    module = "dcmpnet_ros.lifecycle_node" if lifecycle else "dcmpnet_ros.node"
    cmd = [sys.executable, "-m", module, "--ros-args", "--params-file", str(params_file), "-p", "lazy:=false",
           "-p", "bypass_below:=0.0"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)


def _activate_lifecycle(probe: Node, executor: SingleThreadedExecutor, timeout: float) -> None:
    """configure, then activate /dehaze_node through its change_state service (as a lifecycle manager does)."""
    client = probe.create_client(ChangeState, "/dehaze_node/change_state")
    try:
        deadline = time.monotonic() + timeout
        while not client.service_is_ready():                   # the node process is still importing
            if time.monotonic() > deadline:
                raise RuntimeError("the lifecycle node's change_state service did not appear")
            executor.spin_once(timeout_sec=0.1)
        for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            request = ChangeState.Request()
            request.transition.id = transition
            future = client.call_async(request)
            while not future.done():                          # configure loads the model and warms it up
                if time.monotonic() > deadline:
                    raise RuntimeError(f"lifecycle transition {transition} did not finish")
                executor.spin_once(timeout_sec=0.1)
            if not future.result().success:
                raise RuntimeError(f"lifecycle transition {transition} failed (see the node's log)")
    finally:
        probe.destroy_client(client)


def measure_node(params_file: Path, frames: list[np.ndarray], rate_hz: float, seconds: float,
                 lifecycle: bool = False, startup_timeout: float = 300.0) -> dict:
    """Run the node process against a camera at ``rate_hz``; output rate and frame ages over ``seconds``."""
    log = tempfile.TemporaryFile("w+")
    node = _start_node(params_file, lifecycle, log)
    probe = CameraAndProbe(frames, rate_hz)
    executor = SingleThreadedExecutor()
    executor.add_node(probe)
    try:
        if lifecycle:
            _activate_lifecycle(probe, executor, startup_timeout)
        deadline = time.monotonic() + startup_timeout
        while not probe.ages_ms:                               # model load + warm-up, then the first output
            if node.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"the node produced no output (exit {node.poll()}): {log.read()[-2000:]}")
            executor.spin_once(timeout_sec=0.05)
        end = time.monotonic() + 2.0
        while time.monotonic() < end:                          # settle
            executor.spin_once(timeout_sec=0.05)
        probe.ages_ms.clear()
        sent0, start = probe.sent, time.monotonic()
        while time.monotonic() - start < seconds:
            executor.spin_once(timeout_sec=0.05)
        elapsed = time.monotonic() - start
        ages = LatencyStats(maxlen=max(1, len(probe.ages_ms)))     # the node's own p95 definition
        for age in probe.ages_ms:
            ages.add(max(0.0, age))
        view = probe.node_view
        return {"input_hz": (probe.sent - sent0) / elapsed, "output_hz": len(probe.ages_ms) / elapsed,
                "node_age_mean_ms": _number(view.get("frame age mean (ms)")),
                "node_latency_mean_ms": _number(view.get("inference latency mean (ms)")),
                "age_median_ms": statistics.median(probe.ages_ms), "age_p95_ms": ages.p95, "age_max_ms": ages.max}
    finally:
        executor.remove_node(probe)
        probe.destroy_node()
        node.terminate()
        try:
            node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
        log.close()


def engine_alone(params: NodeParams, frames: list[np.ndarray], seconds: float,
                 default_threads: int | None = None) -> tuple[float, float]:
    """The engine's frames per second and median latency (ms) with the node's parameters, in this process.

    ``default_threads``: torch's own thread count, restored first so that ``torch_threads: 0`` means the default
    here as it does in a fresh node process (an earlier parameters file may have changed it).
    """
    if default_threads:
        apply_torch_threads(default_threads)
    threads = apply_torch_threads(params.torch_threads)
    engine = load_engine(params)
    fps = engine_fps(engine, frames, seconds)
    latencies = []
    for frame in frames * 3:
        start = time.perf_counter()
        engine(frame)
        latencies.append((time.perf_counter() - start) * 1e3)
    del engine, threads
    return fps, statistics.median(latencies)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dcmpnet_ros.node_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--params-file", type=Path, action="append", required=True,
                        help="node parameters file (repeat to compare several)")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz (default: %(default)s)")
    parser.add_argument("--size", default="480x640", help="HxW of the camera frames (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement (default: %(default)s)")
    parser.add_argument("--lifecycle", action="store_true", help="run dehaze_lifecycle_node instead")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(100, 200)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if os.environ.get("ROS_DISTRO") == "humble":                # Humble has no discovery range
        os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
    frames = camera_frames(height, width)
    default_threads = apply_torch_threads(0)           # torch's default, before any parameters file changes it
    rclpy.init()
    try:
        print(f"camera {width}x{height} rgb8 at {args.rate:g} Hz; {args.seconds:g} s per measurement; "
              f"{'lifecycle' if args.lifecycle else 'plain'} node; {os.cpu_count()} CPUs")
        print("| parameters | engine alone (fps) | engine latency (ms) | node out (Hz) | node / min(engine, camera) | "
              "frame age median (ms) | p95 | max | age median / engine latency | node's own view: inference "
              "latency mean (ms) | frame age at publish, mean (ms) |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for path in args.params_file:
            params = load_params_yaml(path).replace(bypass_below=0.0)    # as the node is started: see the docstring
            fps, latency = engine_alone(params, frames, args.seconds, default_threads)
            run = measure_node(path, frames, args.rate, args.seconds, args.lifecycle)
            print(f"| {path.name} | {fps:.2f} | {latency:.1f} | {run['output_hz']:.2f} | "
                  f"{run['output_hz'] / min(fps, args.rate):.2f} | {run['age_median_ms']:.1f} | "
                  f"{run['age_p95_ms']:.1f} | {run['age_max_ms']:.1f} | {run['age_median_ms'] / latency:.2f} | "
                  f"{run['node_latency_mean_ms']:.1f} | {run['node_age_mean_ms']:.1f} |",
                  flush=True)
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
