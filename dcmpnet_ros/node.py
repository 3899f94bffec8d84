"""The ROS 2 node: camera image in, dehazed image and relative depth out.

Subscribes ``image`` (sensor_msgs/Image) or, with ``input_transport: compressed``, ``image/compressed``
(sensor_msgs/CompressedImage), and ``camera_info`` when ``use_camera_info`` is true. Publishes
``dehazed/image``, ``dehazed/depth`` (32FC1), ``dehazed/camera_info``, ``dehazed/haze_level``
(sensor_msgs/RelativeHumidity: the frame's haze level in [0, 1]) and ``/diagnostics``; frames whose haze level stays
below ``bypass_below`` are published unchanged without running the dehazing network. Every output
carries the input message's header (stamp and frame_id). Callbacks only decode and hand the frame to a one-slot
queue; a worker thread runs the network on the newest frame, so a slow network drops stale frames instead of
queueing them.

The ROS-free work (decode, newest-frame slot, worker, statistics) is :class:`dcmpnet_ros.pipeline.FramePipeline`;
:class:`DehazeRos` holds the ROS side both nodes share (typed parameters, topics, diagnostics), and
``dcmpnet_ros.lifecycle_node`` runs the same as a managed node. This module and that one are the only modules of
the package that import rclpy; they use no rclpy API newer than Humble.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
from rclpy import exceptions as rclpy_exceptions
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RelativeHumidity

from dcmpnet_ros.conversions import (
    copy_camera_info,
    decode_compressed,
    decode_image,
    encode_depth,
    encode_haze_level,
    encode_image,
    output_encoding_for,
)
from dcmpnet_ros.diagnostics import build_diagnostic_array
from dcmpnet_ros.params import NODE_NAME, PARAMETERS, NodeParams, ParameterError, ParamSpec, qos_profile_spec
from dcmpnet_ros.pipeline import (
    FramePipeline,
    StartupError,
    apply_torch_threads,
    depth_mode_line,
    load_engine,
    warm_up,
)

EXIT_STARTUP_FAILED = 1
EXIT_BAD_PARAMETER = 2
_RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE,
                "system_default": ReliabilityPolicy.SYSTEM_DEFAULT}
_HISTORY = {"keep_last": HistoryPolicy.KEEP_LAST, "keep_all": HistoryPolicy.KEEP_ALL,
            "system_default": HistoryPolicy.SYSTEM_DEFAULT}
# What rclpy raises when a parameter override has the wrong type or is out of the descriptor's range.
_TYPE_ERRORS = tuple(getattr(rclpy_exceptions, n) for n in ("InvalidParameterTypeException",)
                     if hasattr(rclpy_exceptions, n))
_VALUE_ERRORS = tuple(getattr(rclpy_exceptions, n) for n in ("InvalidParameterValueException",
                                                              "ParameterOutOfRangeException")
                      if hasattr(rclpy_exceptions, n))
_PARAMETER_TYPES = {"bool": ParameterType.PARAMETER_BOOL, "integer": ParameterType.PARAMETER_INTEGER,
                    "double": ParameterType.PARAMETER_DOUBLE, "string": ParameterType.PARAMETER_STRING}
_DURABILITY = {"volatile": DurabilityPolicy.VOLATILE, "transient_local": DurabilityPolicy.TRANSIENT_LOCAL,
               "system_default": DurabilityPolicy.SYSTEM_DEFAULT}


load_dehazer = load_engine        # the name earlier releases exported
__all__ = ["DehazeNode", "DehazeRos", "StartupError", "load_dehazer", "main", "make_descriptor", "make_qos"]


def make_qos(spec: dict) -> QoSProfile:
    """A QoSProfile from :func:`dcmpnet_ros.params.qos_profile_spec`'s plain dict."""
    return QoSProfile(depth=spec["depth"], history=_HISTORY[spec["history"]],
                      reliability=_RELIABILITY[spec["reliability"]], durability=_DURABILITY[spec["durability"]])


def make_descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """The typed ParameterDescriptor (with its integer or floating-point range) of one parameter."""
    fields = spec.descriptor_fields()
    descriptor = ParameterDescriptor(name=fields["name"], type=_PARAMETER_TYPES[fields["type"]],
                                     description=fields["description"],
                                     additional_constraints=fields["additional_constraints"],
                                     read_only=fields["read_only"], dynamic_typing=False)
    if "range" in fields:
        low, high = fields["range"]
        if spec.type is int:
            descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=0)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high, step=0.0)]
    return descriptor


class DehazeRos:
    """The ROS side both dehazing nodes share; mixed into an rclpy Node or LifecycleNode.

    ``_declare_parameters`` once in the constructor; ``_open(factory)`` loads the engine, creates the publishers
    and the pipeline; ``_subscribe`` / ``_unsubscribe`` connect the inputs; ``_close`` undoes ``_open``.
    """

    params: NodeParams
    pipeline: FramePipeline | None = None

    # ------------------------------------------------------------------------------ parameters
    def _declare_parameters(self) -> NodeParams:
        for name, spec in PARAMETERS.items():
            try:
                self.declare_parameter(name, spec.default, make_descriptor(spec))
            except _TYPE_ERRORS as exc:
                hint = " (a double needs a decimal point, e.g. 20.0)" if spec.type is float else ""
                raise ParameterError(name, f"expected {spec.ros_type}{hint}: {exc}") from None
            except _VALUE_ERRORS as exc:
                raise ParameterError(name, f"expected {spec.constraints}: {exc}") from None
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
        if self.pipeline is not None:
            self.pipeline.update_params(new)
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------------------- set-up
    @property
    def dehazer(self) -> Any:
        return self.pipeline.engine if self.pipeline is not None else None

    @property
    def stats(self) -> Any:
        return self.pipeline.stats if self.pipeline is not None else None

    def _open(self, factory: Callable[[NodeParams], Any], create_publisher: Callable) -> None:
        p = self.params
        threads = apply_torch_threads(p.torch_threads)
        engine = factory(p)
        warm_ms = warm_up(engine, p.warmup_shape)
        out_qos = make_qos(qos_profile_spec(p.output_qos, p.output_qos_depth, "output_qos"))
        self._pub_image = create_publisher(Image, "dehazed/image", out_qos)
        self._pub_depth = create_publisher(Image, "dehazed/depth", out_qos)
        self._pub_info = create_publisher(CameraInfo, "dehazed/camera_info", out_qos) if p.use_camera_info else None
        self._pub_haze = create_publisher(RelativeHumidity, "dehazed/haze_level", out_qos)
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._camera_info: CameraInfo | None = None
        self._input_topic = self._compressed_topic() if p.input_transport == "compressed" else "image"
        self.pipeline = FramePipeline(engine, p, self._publish_result, self.get_logger().warning,
                                      now_ns=lambda: self.get_clock().now().nanoseconds)
        self._subscriptions_: list = []
        log = self.get_logger()
        log.info(f"{engine!r}: {self.resolve_topic_name(self._input_topic)} ({p.input_transport}) -> "
                 f"{self.resolve_topic_name('dehazed/image')}, {self.resolve_topic_name('dehazed/depth')}"
                 + (f"; torch threads {threads}" if threads is not None else "")
                 + (f"; warm-up {p.warmup_width}x{p.warmup_height} took {warm_ms:.0f} ms" if warm_ms else ""))
        log.info(depth_mode_line(p))

    def _compressed_topic(self) -> str:
        """``image/compressed`` as remapped; if it is not remapped, the remapped ``image`` + ``/compressed``.

        image_transport's rule: ``image:=/cam/image_raw`` alone makes the compressed input /cam/image_raw/compressed.
        """
        remapped = self.resolve_topic_name("image/compressed")
        if remapped != self.resolve_topic_name("image/compressed", only_expand=True):
            return remapped
        return self.resolve_topic_name("image").rstrip("/") + "/compressed"

    def _subscribe(self) -> None:
        p = self.params
        in_qos = make_qos(qos_profile_spec(p.input_qos, p.input_qos_depth, "input_qos"))
        if p.input_transport == "compressed":
            self._subscriptions_.append(self.create_subscription(CompressedImage, self._input_topic,
                                                                 self._on_compressed, in_qos))
        else:
            self._subscriptions_.append(self.create_subscription(Image, self._input_topic, self._on_image, in_qos))
        if p.use_camera_info:
            # camera_info is small and often published reliably; best effort matches either publisher.
            self._subscriptions_.append(self.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                                                 in_qos))
        self._diag_timer = self.create_timer(p.diagnostics_period, self._publish_diagnostics)
        self.pipeline.start()

    def _unsubscribe(self) -> None:
        for sub in self._subscriptions_:
            self.destroy_subscription(sub)
        self._subscriptions_ = []
        if getattr(self, "_diag_timer", None) is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        if self.pipeline is not None:
            self.pipeline.stop()

    def _close(self, destroy_publisher: Callable) -> None:
        self._unsubscribe()
        for pub in (self._pub_image, self._pub_depth, self._pub_info, self._pub_haze):
            if pub is not None:
                destroy_publisher(pub)
        self.destroy_publisher(self._pub_diag)
        self._pub_image = self._pub_depth = self._pub_info = self._pub_haze = self._pub_diag = None
        self.pipeline = None

    # ------------------------------------------------------------------------------- callbacks
    def _on_image(self, msg: Image) -> None:
        self._accept(msg, decode_image)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._accept(msg, decode_compressed)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg
        self.pipeline.on_camera_info(msg.width, msg.height)

    def _accept(self, msg: Any, decode: Callable) -> None:
        idle = self.params.lazy and not self._has_subscribers()
        self.pipeline.accept(msg, decode, idle, self.resolve_topic_name(self._input_topic))

    def _has_subscribers(self) -> bool:
        pubs = [self._pub_image, self._pub_info, self._pub_haze] + ([self._pub_depth] if self.params.publish_depth
                                                                     else [])
        return any(pub is not None and pub.get_subscription_count() > 0 for pub in pubs)

    def _publish_result(self, header: Any, result: Any, decoded: Any) -> None:
        p = self.params
        self._pub_image.publish(encode_image(Image, header, result.dehazed,
                                             output_encoding_for(decoded.source_encoding)))
        haze_level = getattr(result, "haze_level", None)
        if haze_level is not None:
            self._pub_haze.publish(encode_haze_level(RelativeHumidity, header, haze_level))
        if p.publish_depth and result.depth is not None:
            depth = result.depth * p.depth_scale if p.depth_scale > 0 else result.depth
            self._pub_depth.publish(encode_depth(Image, header, depth))
        info = self._camera_info
        if self._pub_info is not None and info is not None:
            self._pub_info.publish(copy_camera_info(CameraInfo, info, header))

    def _publish_diagnostics(self) -> None:
        pipeline = self.pipeline
        if pipeline is None:
            return
        with pipeline.locked():
            array = build_diagnostic_array(DiagnosticArray, DiagnosticStatus, KeyValue,
                                           self.get_clock().now().to_msg(),
                                           f"{self.get_fully_qualified_name()}: dehazing", pipeline.stats.device,
                                           pipeline.stats)
        self._pub_diag.publish(array)


class DehazeNode(DehazeRos, Node):
    """Dehazes camera frames on a worker thread from the start; see the module docstring for the topics."""

    def __init__(self, dehazer_factory: Callable[[NodeParams], Any] = load_engine, **node_kwargs: Any):
        Node.__init__(self, NODE_NAME, **node_kwargs)
        try:
            self.params = self._declare_parameters()       # ParameterError names the bad parameter
            self.add_on_set_parameters_callback(self._on_set_parameters)
            self._open(dehazer_factory, self.create_publisher)
            self._subscribe()
        except BaseException:
            if self.pipeline is not None:
                self.pipeline.stop()
            Node.destroy_node(self)
            raise

    def destroy_node(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()
        super().destroy_node()


def run_node(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """rclpy.init, build the node, spin until Ctrl-C or shutdown; 0, or non-zero when it could not start."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = make_node()
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


def main(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C or shutdown; returns 0, or non-zero when it could not start."""
    return run_node(DehazeNode, args)


if __name__ == "__main__":
    sys.exit(main())
