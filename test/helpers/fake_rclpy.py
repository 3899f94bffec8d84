"""A minimal stand-in for rclpy and the message packages the nodes import, for machines without ROS 2.

It only records what the node asks of rclpy (typed parameter declarations with their descriptors, publishers,
subscriptions, timers, log lines) and mimics the few rclpy rules the node relies on: a statically typed
parameter refuses an override of another type, and a value outside the descriptor's range is refused. It checks
our wiring, not rclpy: the live tests (test_node_ros.py, test_lifecycle_ros.py) do that where ROS 2 exists.
Use :func:`installed` as a context manager; it removes every fake module (and the node modules that imported
them) afterwards.
"""
from __future__ import annotations

import contextlib
import enum
import sys
import time
import types
from typing import Any, Iterator

import rclpy_style_msgs as msgs

PARAMETER_TYPES = {bool: 1, int: 2, float: 3, str: 4}


class InvalidParameterTypeException(Exception):
    pass


class InvalidParameterValueException(Exception):
    pass


class ExternalShutdownException(Exception):
    pass


class _Plain:
    def __init__(self, **kwargs: Any):
        self.__dict__.update(kwargs)


class ParameterDescriptor(_Plain):
    def __init__(self, **kwargs: Any):
        super().__init__(integer_range=[], floating_point_range=[], **kwargs)


class Logger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str):
        return lambda text: self.lines.append((level, str(text)))


class Publisher:
    def __init__(self, msg_type: type, topic: str, qos: Any, lifecycle: bool = False):
        self.msg_type, self.topic, self.qos, self.lifecycle = msg_type, topic, qos, lifecycle
        self.active = not lifecycle
        self.sent: list = []
        self.subscribers = 1
        self.destroyed = False

    def publish(self, msg: Any) -> None:
        assert isinstance(msg, self.msg_type), f"{self.topic}: {type(msg).__name__} for {self.msg_type.__name__}"
        if self.active:
            self.sent.append(msg)

    def get_subscription_count(self) -> int:
        return self.subscribers


class _Time:
    def __init__(self, ns: int):
        self.nanoseconds = ns

    def to_msg(self) -> Any:
        return msgs.Time(sec=self.nanoseconds // 10**9, nanosec=self.nanoseconds % 10**9)


class Node:
    def __init__(self, name: str, parameter_overrides: list | None = None, cli_args: list | None = None, **_: Any):
        self.name = name
        self.overrides = {p.name: p.value for p in parameter_overrides or []}
        self.parameters: dict[str, Any] = {}
        self.descriptors: dict[str, ParameterDescriptor] = {}
        self.set_callbacks: list = []
        self.publishers: list[Publisher] = []
        self.subscriptions: dict[str, Any] = {}
        self.timers: list = []
        self.logger = Logger()
        self.destroyed = False

    def declare_parameter(self, name: str, value: Any, descriptor: ParameterDescriptor) -> Any:
        value = self.overrides.get(name, value)
        if not descriptor.dynamic_typing and PARAMETER_TYPES[type(value)] != descriptor.type:
            raise InvalidParameterTypeException(f"Trying to set parameter '{name}' to '{value}' of type "
                                                f"{type(value).__name__}, expecting type {descriptor.type}")
        for r in descriptor.integer_range + descriptor.floating_point_range:
            if not r.from_value <= value <= r.to_value:
                raise InvalidParameterValueException(f"{name}: {value} is out of range")
        self.parameters[name] = value
        self.descriptors[name] = descriptor
        return _Plain(value=value)

    def get_parameter(self, name: str) -> Any:
        return _Plain(value=self.parameters[name])

    def add_on_set_parameters_callback(self, callback: Any) -> None:
        self.set_callbacks.append(callback)

    def set(self, **values: Any) -> Any:
        """What `ros2 param set` reaches: the node's callback decides."""
        return self.set_callbacks[0]([_Plain(name=k, value=v) for k, v in values.items()])

    def create_publisher(self, msg_type: type, topic: str, qos: Any) -> Publisher:
        pub = Publisher(msg_type, topic, qos)
        self.publishers.append(pub)
        return pub

    def destroy_publisher(self, pub: Publisher) -> None:
        pub.destroyed = True
        self.publishers.remove(pub)

    def create_subscription(self, msg_type: type, topic: str, callback: Any, qos: Any) -> Any:
        sub = _Plain(msg_type=msg_type, topic=topic, callback=callback, qos=qos)
        self.subscriptions[topic] = sub
        return sub

    def destroy_subscription(self, sub: Any) -> None:
        del self.subscriptions[sub.topic]

    def create_timer(self, period: float, callback: Any) -> Any:
        timer = _Plain(period=period, callback=callback)
        self.timers.append(timer)
        return timer

    def destroy_timer(self, timer: Any) -> None:
        self.timers.remove(timer)

    def get_logger(self) -> Logger:
        return self.logger

    def get_clock(self) -> Any:
        return _Plain(now=lambda: _Time(time.time_ns()))

    def resolve_topic_name(self, topic: str, *, only_expand: bool = False) -> str:
        return "/" + topic          # no remapping here: expanded and resolved names are the same

    def get_fully_qualified_name(self) -> str:
        return "/" + self.name

    def destroy_node(self) -> None:
        self.destroyed = True

    def publisher(self, topic: str) -> Publisher:
        return next(p for p in self.publishers if p.topic == topic)


class TransitionCallbackReturn(enum.Enum):
    SUCCESS = 97
    FAILURE = 98
    ERROR = 99


class LifecycleNode(Node):
    def create_lifecycle_publisher(self, msg_type: type, topic: str, qos: Any) -> Publisher:
        pub = Publisher(msg_type, topic, qos, lifecycle=True)
        self.publishers.append(pub)
        return pub

    def on_activate(self, state: Any) -> TransitionCallbackReturn:
        for pub in self.publishers:
            pub.active = True
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: Any) -> TransitionCallbackReturn:
        for pub in self.publishers:
            pub.active = not pub.lifecycle
        return TransitionCallbackReturn.SUCCESS


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def _modules() -> dict[str, types.ModuleType]:
    policy = enum.Enum("Policy", "BEST_EFFORT RELIABLE SYSTEM_DEFAULT KEEP_LAST KEEP_ALL VOLATILE TRANSIENT_LOCAL")
    exceptions = _module("rclpy.exceptions", InvalidParameterTypeException=InvalidParameterTypeException,
                         InvalidParameterValueException=InvalidParameterValueException)
    lifecycle = _module("rclpy.lifecycle", LifecycleNode=LifecycleNode, LifecycleState=_Plain,
                        TransitionCallbackReturn=TransitionCallbackReturn)
    rclpy = _module("rclpy", init=lambda args=None: None, spin=lambda node: None, try_shutdown=lambda: None,
                    exceptions=exceptions, lifecycle=lifecycle)
    parameter_type = _Plain(PARAMETER_BOOL=1, PARAMETER_INTEGER=2, PARAMETER_DOUBLE=3, PARAMETER_STRING=4)
    return {
        "rclpy": rclpy, "rclpy.exceptions": exceptions, "rclpy.lifecycle": lifecycle,
        "rclpy.node": _module("rclpy.node", Node=Node),
        "rclpy.executors": _module("rclpy.executors", ExternalShutdownException=ExternalShutdownException),
        "rclpy.logging": _module("rclpy.logging", get_logger=lambda name: Logger()),
        "rclpy.qos": _module("rclpy.qos", QoSProfile=_Plain, ReliabilityPolicy=policy, HistoryPolicy=policy,
                             DurabilityPolicy=policy),
        "rcl_interfaces": _module("rcl_interfaces"),
        "rcl_interfaces.msg": _module("rcl_interfaces.msg", ParameterDescriptor=ParameterDescriptor,
                                      IntegerRange=_Plain, FloatingPointRange=_Plain, ParameterType=parameter_type,
                                      SetParametersResult=_Plain),
        "sensor_msgs": _module("sensor_msgs"),
        "sensor_msgs.msg": _module("sensor_msgs.msg", Image=msgs.Image, CompressedImage=msgs.CompressedImage,
                                   CameraInfo=msgs.CameraInfo, RelativeHumidity=msgs.RelativeHumidity),
        "diagnostic_msgs": _module("diagnostic_msgs"),
        "diagnostic_msgs.msg": _module("diagnostic_msgs.msg", DiagnosticArray=msgs.DiagnosticArray,
                                       DiagnosticStatus=msgs.DiagnosticStatus, KeyValue=msgs.KeyValue),
    }


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """The fake modules in sys.modules for the duration; the node modules are imported fresh and dropped after."""
    fakes = _modules()
    clash = sorted(name for name in fakes if name in sys.modules)
    if clash:
        raise RuntimeError(f"a real {clash[0]} is loaded; the fake must not shadow it")
    ours = ("dcmpnet_ros.node", "dcmpnet_ros.lifecycle_node")
    sys.modules.update(fakes)
    try:
        yield
    finally:
        for name in (*fakes, *ours):
            sys.modules.pop(name, None)
