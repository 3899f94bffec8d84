"""The ROS 2 node: camera image in, dehazed image and relative depth out.

Subscribes ``image`` (sensor_msgs/Image) or, with ``input_transport: compressed``, ``image/compressed``
(sensor_msgs/CompressedImage), and ``camera_info`` when ``use_camera_info`` is true. Publishes
``dehazed/image``, ``dehazed/depth`` (32FC1), ``dehazed/camera_info`` and ``/diagnostics``. Every output
carries the input message's header (stamp and frame_id). Callbacks only decode and hand the frame to a one-slot
queue; a worker thread runs the network on the newest frame, so a slow network drops stale frames instead of
queueing them.

This is the only module of the package that imports rclpy; it uses no rclpy API newer than Humble.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from dcmpnet_ros.conversions import (
    MessageRejected,
    copy_camera_info,
    decode_compressed,
    decode_image,
    encode_depth,
    encode_image,
    output_encoding_for,
)
from dcmpnet_ros.diagnostics import NodeStats, build_diagnostic_array
from dcmpnet_ros.frame_queue import LatestFrameSlot
from dcmpnet_ros.params import NODE_NAME, PARAMETERS, NodeParams, ParameterError, qos_profile_spec

EXIT_STARTUP_FAILED = 1
EXIT_BAD_PARAMETER = 2
_RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE,
                "system_default": ReliabilityPolicy.SYSTEM_DEFAULT}
_HISTORY = {"keep_last": HistoryPolicy.KEEP_LAST, "keep_all": HistoryPolicy.KEEP_ALL,
            "system_default": HistoryPolicy.SYSTEM_DEFAULT}
_DURABILITY = {"volatile": DurabilityPolicy.VOLATILE, "transient_local": DurabilityPolicy.TRANSIENT_LOCAL,
               "system_default": DurabilityPolicy.SYSTEM_DEFAULT}


class StartupError(RuntimeError):
    """The node cannot start (no weights, no GPU, ...); the message says what to do."""


def make_qos(spec: dict) -> QoSProfile:
    """A QoSProfile from :func:`dcmpnet_ros.params.qos_profile_spec`'s plain dict."""
    return QoSProfile(depth=spec["depth"], history=_HISTORY[spec["history"]],
                      reliability=_RELIABILITY[spec["reliability"]], durability=_DURABILITY[spec["durability"]])


def load_dehazer(params: NodeParams) -> Any:
    """The inference engine the parameters ask for; StartupError says what the user can do instead."""
    from dcmpnet_core.inference import Dehazer

    try:
        return Dehazer.from_checkpoint(params.weights or None, device=params.device, precision=params.precision,
                                       backend=params.backend, max_pixels=params.max_pixels or None,
                                       inference_scale=params.inference_scale, mode=params.mode)
    except FileNotFoundError as exc:
        raise StartupError(f"{exc}\nFor ROS: set the 'weights' parameter to a checkpoint (ros2 launch dcmpnet_ros "
                           "dehaze.launch.py weights:=/path/to/model.pt), or run the classical dark-channel prior, "
                           "which needs no weights: backend:=dcp") from exc
    except (ValueError, RuntimeError, OSError) as exc:
        raise StartupError(f"cannot start the dehazer ({type(exc).__name__}): {exc}") from exc


class DehazeNode(Node):
    """Dehazes camera frames on a worker thread; see the module docstring for the topics."""

    def __init__(self, dehazer_factory: Callable[[NodeParams], Any] = load_dehazer, **node_kwargs: Any):
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            self._setup(dehazer_factory)
        except BaseException:
            Node.destroy_node(self)
            raise

    def _setup(self, dehazer_factory: Callable[[NodeParams], Any]) -> None:
        self.params = self._declare_parameters()       # ParameterError names the bad parameter
        self.dehazer = dehazer_factory(self.params)
        self.stats = NodeStats(device=str(self.dehazer.device))
        # The worker and the executor thread both update the statistics; its deques are not thread-safe.
        self._stats_lock = threading.Lock()
        self._slot: LatestFrameSlot = LatestFrameSlot()
        self._camera_info: CameraInfo | None = None
        self._last_warning: dict[str, float] = {}
        self.add_on_set_parameters_callback(self._on_set_parameters)

        p = self.params
        out_qos = make_qos(qos_profile_spec(p.output_qos, p.output_qos_depth, "output_qos"))
        self._pub_image = self.create_publisher(Image, "dehazed/image", out_qos)
        self._pub_depth = self.create_publisher(Image, "dehazed/depth", out_qos)
        self._pub_info = self.create_publisher(CameraInfo, "dehazed/camera_info", out_qos) \
            if p.use_camera_info else None
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        in_qos = make_qos(qos_profile_spec(p.input_qos, p.input_qos_depth, "input_qos"))
        self._input_topic = "image/compressed" if p.input_transport == "compressed" else "image"
        if p.input_transport == "compressed":
            self.create_subscription(CompressedImage, self._input_topic, self._on_compressed, in_qos)
        else:
            self.create_subscription(Image, self._input_topic, self._on_image, in_qos)
        if p.use_camera_info:
            # camera_info is small and often published reliably; best effort matches either publisher.
            self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, in_qos)
        self.create_timer(p.diagnostics_period, self._publish_diagnostics)

        self._worker = threading.Thread(target=self._work, name="dehaze_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"{self.dehazer!r}: {self.resolve_topic_name(self._input_topic)} ({p.input_transport}) -> "
            f"{self.resolve_topic_name('dehazed/image')}, {self.resolve_topic_name('dehazed/depth')}")

    # ------------------------------------------------------------------------------ parameters
    def _declare_parameters(self) -> NodeParams:
        for name, spec in PARAMETERS.items():
            # dynamic_typing: NodeParams checks the type and names the parameter (and accepts 1 for 1.0), where
            # rclpy would refuse a YAML integer for a float parameter with a less helpful message.
            descriptor = ParameterDescriptor(name=name, description=spec.description,
                                             additional_constraints=spec.constraints, read_only=not spec.dynamic,
                                             dynamic_typing=True)
            self.declare_parameter(name, spec.default, descriptor)
        return NodeParams.from_mapping({name: self.get_parameter(name).value for name in PARAMETERS})

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        ours = {p.name: p.value for p in parameters if p.name in PARAMETERS}
        fixed = sorted(name for name in ours if not PARAMETERS[name].dynamic)
        if fixed:
            return SetParametersResult(successful=False, reason=f"{fixed[0]}: read-only while the node runs; "
                                                                "restart the node to change it")
        try:
            new = self.params.replace(**ours)
        except ParameterError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.params = new
        self.dehazer.max_pixels = new.max_pixels or None
        self.dehazer.inference_scale = new.inference_scale
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------------------- callbacks
    def _on_image(self, msg: Image) -> None:
        self._accept(msg, decode_image)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._accept(msg, decode_compressed)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _accept(self, msg: Any, decode: Callable) -> None:
        # Decoding here, not in the worker, keeps a malformed frame from evicting a good one from the slot.
        idle = self.params.lazy and not self._has_subscribers()
        with self._stats_lock:
            self.stats.on_input()
            self.stats.set_idle(idle)
        if idle:
            return
        try:
            decoded = decode(msg, self.params.max_input_pixels)
        except MessageRejected as exc:
            self._count(self.stats.on_rejected, exc.reason)
            self._warn(exc.reason, f"dropped a message from {self.resolve_topic_name(self._input_topic)}: {exc}")
            return
        except Exception as exc:   # noqa: BLE001 - nothing may escape into the executor
            self._count(self.stats.on_rejected, "decoder_error")
            self._warn("decoder_error", f"dropped a message, the decoder failed ({type(exc).__name__}): {exc}")
            return
        if self._slot.put((msg.header, decoded)) is not None:
            self._count(self.stats.on_dropped_stale)

    def _has_subscribers(self) -> bool:
        pubs = [self._pub_image, self._pub_info] + ([self._pub_depth] if self.params.publish_depth else [])
        return any(pub is not None and pub.get_subscription_count() > 0 for pub in pubs)

    # ---------------------------------------------------------------------------------- worker
    def _work(self) -> None:
        while not self._slot.closed:
            item = self._slot.get(timeout=0.5)
            if item is None:
                continue
            try:
                self._process(*item)
            except Exception as exc:   # noqa: BLE001 - one failing frame must not stop the node
                self._count(self.stats.on_failed, type(exc).__name__)
                self._warn("failed:" + type(exc).__name__,
                           f"frame {item[0].frame_id!r} failed ({type(exc).__name__}): {exc}")

    def _process(self, header: Any, decoded: Any) -> None:
        p = self.params
        result = self.dehazer(decoded.rgb)
        if getattr(result, "output_faulty", False):      # NaN/Inf (zeroed) or constant output: counted, warned
            self._count(self.stats.on_output_fault)
            self._warn("faulty_output", f"frame {header.frame_id!r}: {result.warnings[-1]}")
        self._pub_image.publish(encode_image(Image, header, result.dehazed,
                                             output_encoding_for(decoded.source_encoding)))
        if p.publish_depth:
            depth = result.depth * p.depth_scale if p.depth_scale > 0 else result.depth
            self._pub_depth.publish(encode_depth(Image, header, depth))
        info = self._camera_info
        if self._pub_info is not None and info is not None:
            self._pub_info.publish(copy_camera_info(CameraInfo, info, header))
        self._count(self.stats.on_output, float(result.latency_ms))

    # ------------------------------------------------------------------------------ reporting
    def _count(self, event: Callable, *args: Any) -> None:
        with self._stats_lock:
            event(*args)

    def _warn(self, key: str, text: str) -> None:
        now = time.monotonic()
        if now - self._last_warning.get(key, -float("inf")) >= self.params.log_throttle_s:
            self._last_warning[key] = now
            self.get_logger().warning(text)

    def _publish_diagnostics(self) -> None:
        with self._stats_lock:
            array = build_diagnostic_array(DiagnosticArray, DiagnosticStatus, KeyValue,
                                           self.get_clock().now().to_msg(),
                                           f"{self.get_fully_qualified_name()}: dehazing", self.stats.device,
                                           self.stats)
        self._pub_diag.publish(array)

    def destroy_node(self) -> None:
        self._slot.close()
        if self._worker.is_alive():
            self._worker.join(timeout=10.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C or shutdown; returns 0, or non-zero when it could not start."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = DehazeNode()
        rclpy.spin(node)
    except ParameterError as exc:
        get_logger(NODE_NAME).fatal(f"invalid parameter {exc}")
        code = EXIT_BAD_PARAMETER
    except StartupError as exc:
        get_logger(NODE_NAME).fatal(str(exc))
        code = EXIT_STARTUP_FAILED
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
