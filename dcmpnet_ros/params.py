"""The dehazing node's parameters: names, types, defaults, descriptions and validation, without ROS.

The node declares every entry of :data:`PARAMETERS` (with its description and constraints), reads the values back
and builds a :class:`NodeParams` with :meth:`NodeParams.from_mapping`, which refuses unknown names, wrong types and
out-of-range values with a :class:`ParameterError` that starts with the parameter's name. :func:`load_params_yaml`
checks a ROS 2 parameter file (``dehaze_node: ros__parameters: ...``) the same way, without ROS.

The node declares each parameter typed (bool, integer, double, string) with a range for numbers
(:meth:`ParamSpec.descriptor_fields`, turned into an rcl_interfaces ParameterDescriptor by the node), so
``ros2 param describe`` shows the type and rqt_reconfigure draws sliders.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import yaml

from dcmpnet_core.inference.options import DEFAULT_BYPASS_BAND, DEFAULT_BYPASS_BELOW, ENGINE_OPTIONS
from dcmpnet_core.utils.config import Check, ConfigError, build, check_type
from dcmpnet_core.utils.decoding import DEFAULT_MAX_INPUT_PIXELS, MIN_MAX_INPUT_PIXELS

QOS_NAMES = ("sensor_data", "default", "system_default", "reliable", "best_effort")
NODE_NAME = "dehaze_node"
# The node's max_pixels floor is above the engine's (256): below 64 x 64 the network's output is useless for a camera.
MIN_MAX_PIXELS = 64 * 64
MAX_PIXELS_LIMIT = 1_000_000_000
#: ROS 2 parameter type names (rcl_interfaces/ParameterType) of the Python types.
ROS_TYPE_NAMES = {bool: "bool", int: "integer", float: "double", str: "string"}
# Parameters every rclpy node has (or that QoS overrides create); from_mapping skips them instead of refusing.
ROS_BUILTIN_PARAMETERS = ("use_sim_time", "start_type_description_service")
ROS_BUILTIN_PREFIXES = ("qos_overrides.",)


class ParameterError(ConfigError):
    """A bad parameter value; the message starts with the parameter name, ``name`` holds it."""

    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}", name, message)
        self.name = name


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One node parameter.

    ``type`` is bool, int, float or str; ``check`` holds the allowed values (choices, or a range with values
    allowed besides it, or a pattern; see :class:`dcmpnet_core.utils.config.Check`). ``dynamic`` parameters may
    change while the node runs.
    """

    name: str
    default: Any
    type: type
    description: str
    check: Check = Check()
    dynamic: bool = False

    @property
    def choices(self) -> tuple:
        return self.check.choices

    @property
    def low_open(self) -> bool:
        return self.check.low_open

    @property
    def constraints(self) -> str:
        """Human-readable allowed values (for ParameterDescriptor.additional_constraints)."""
        return self.check.describe()

    def validate(self, value: Any) -> Any:
        """``value`` checked and converted to ``type`` (int -> float allowed); ParameterError otherwise."""
        value = check_type(value, self.type, self.name, error=ParameterError)
        return self.check.apply(value, self.name, ParameterError)

    @property
    def ros_type(self) -> str:
        """The ROS 2 parameter type name: bool, integer, double or string."""
        return ROS_TYPE_NAMES[self.type]

    def descriptor_fields(self) -> dict[str, Any]:
        """rcl_interfaces/ParameterDescriptor fields as plain data (the node builds the message from them).

        Numbers get ``range`` = (from, to), inclusive as ROS defines it, over the allowed values (an open bound such
        as ``> 0``, or the gap between 0 and max_pixels' floor, is still refused by :meth:`validate`, which the node
        applies to every change).
        """
        fields = {"name": self.name, "type": self.ros_type, "description": self.description,
                  "additional_constraints": self.constraints, "read_only": not self.dynamic}
        if self.type in (int, float):
            low = min([self.check.low, *(a for a in self.check.also if isinstance(a, (int, float)))])
            fields["range"] = (self.type(low), self.type(self.check.high))
        return fields


def _param(name: str, default: Any, type_: type, description: str, dynamic: bool = False, **check: Any) -> ParamSpec:
    return ParamSpec(name, default, type_, description, Check(**check), dynamic)


def _engine_param(name: str, default: Any = None, prefix: str = "", dynamic: bool = False,
                  check: Check | None = None) -> ParamSpec:
    """The node parameter of engine option ``name``: allowed values and description from the option's spec."""
    opt = ENGINE_OPTIONS[name]
    text = prefix + opt.help
    return ParamSpec(name, opt.default if default is None else default, opt.type, text[0].upper() + text[1:] + ".",
                     check or opt.check, dynamic)


def _specs() -> dict[str, ParamSpec]:
    qos = "QoS preset: sensor_data (best effort), default / reliable (reliable), best_effort, system_default"
    table = [
        _param("weights", "", str, "Checkpoint file; empty uses the bundled default weights."),
        _engine_param("backend"),
        _engine_param("device"),
        _engine_param("precision"),
        _engine_param("mode"),
        _param("warmup_width", 0, int, "Width of the frames to expect: with warmup_height > 0 too, one "
               "frame of that size runs through the engine at start-up (lifecycle: configure), so the first "
               "camera frame does not pay for lazy initialisation; 0: no warm-up.", low=0, high=16384),
        _param("warmup_height", 0, int, "Height of the frames to expect (see warmup_width); 0: no warm-up.",
               low=0, high=16384),
        _param("torch_threads", 0, int, "Threads of torch's CPU operators in this process; 0 leaves torch's "
               "default (one per core), which competes with the executor thread on small CPUs.", low=0,
               high=256),
        _engine_param("max_pixels", 0, "0 runs the network at full resolution; otherwise: ", dynamic=True,
                   check=Check(low=MIN_MAX_PIXELS, high=MAX_PIXELS_LIMIT, also=(0,))),
        _param("max_input_pixels", DEFAULT_MAX_INPUT_PIXELS, int, "Pixel budget: frames whose header "
               "declares more pixels (width * height) are dropped before decoding (reason too_large).",
               low=MIN_MAX_INPUT_PIXELS, high=MAX_PIXELS_LIMIT, dynamic=True),
        _engine_param("inference_scale", dynamic=True),
        _param("publish_depth", True, bool, "Also publish the estimated depth (32FC1).",
               dynamic=True),
        _param("depth_scale", 0.0, float, "0 publishes RELATIVE depth in (0, 1] (unitless, normalised per frame, "
               "larger = farther; NOT metres, although 32FC1 depth is read as metres by REP 118); > 0 publishes "
               "relative depth * depth_scale, metres only with a scale calibrated for the camera and scene.",
               low=0.0, high=10000.0, dynamic=True),
        _param("bypass_below", DEFAULT_BYPASS_BELOW, float, "Haze level (0 clear .. 1 dense) below which frames "
               "are published unchanged and the dehazing network does not run; 0 dehazes every frame.", low=0.0,
               high=0.99, dynamic=True),
        _param("bypass_band", DEFAULT_BYPASS_BAND, float, "Width of the haze-level band above bypass_below in "
               "which the output fades from the input to the dehazed frame.", low=0.0, high=1.0, dynamic=True),
        _param("haze_warn_level", 0.6, float, "Smoothed haze level above which /diagnostics reports WARN "
               "(visibility reduced).", low=0.0, high=1.0, dynamic=True),
        _param("input_transport", "raw", str, "Subscribe to raw sensor_msgs/Image or to "
               "sensor_msgs/CompressedImage on image/compressed.", choices=("raw", "compressed")),
        _param("image_transport", "", str, "image_proc's name for input_transport (raw or compressed); empty "
               "leaves input_transport in charge.", choices=("", "raw", "compressed")),
        _param("use_camera_info", True, bool, "Republish the input camera_info with the output stamps."),
        _param("input_qos", "sensor_data", str, "Input " + qos + " (any case).", choices=QOS_NAMES,
               casefold=True),
        _param("input_qos_depth", 1, int, "Input queue depth (1 keeps only the newest frame).", low=1, high=1000),
        _param("output_qos", "default", str, "Output " + qos + " (any case).", choices=QOS_NAMES,
               casefold=True),
        _param("output_qos_depth", 10, int, "Output queue depth (messages kept for slow subscribers).", low=1,
               high=1000),
        _param("lazy", False, bool, "Run no inference while nothing subscribes to the outputs."),
        _param("diagnostics_period", 1.0, float, "Seconds between /diagnostics messages.", low=0.0,
               high=3600.0, low_open=True),
        _param("log_throttle_s", 5.0, float, "Minimum seconds between repeated warnings (0: no throttling).",
               low=0.0, high=3600.0, dynamic=True),
    ]
    return {spec.name: spec for spec in table}


#: Every node parameter, in declaration order.
PARAMETERS: dict[str, ParamSpec] = _specs()


@dataclasses.dataclass(frozen=True)
class NodeParams:
    """Validated node parameters; build with :meth:`from_mapping` (the constructor also validates)."""

    weights: str = ""
    backend: str = "dcmpnet"
    device: str = "auto"
    precision: str = "fp32"
    mode: str = "auto"
    warmup_width: int = 0
    warmup_height: int = 0
    torch_threads: int = 0
    max_pixels: int = 0
    max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS
    inference_scale: float = 1.0
    publish_depth: bool = True
    depth_scale: float = 0.0
    bypass_below: float = DEFAULT_BYPASS_BELOW
    bypass_band: float = DEFAULT_BYPASS_BAND
    haze_warn_level: float = 0.6
    input_transport: str = "raw"
    image_transport: str = ""
    use_camera_info: bool = True
    input_qos: str = "sensor_data"
    input_qos_depth: int = 1
    output_qos: str = "default"
    output_qos_depth: int = 10
    lazy: bool = False
    diagnostics_period: float = 1.0
    log_throttle_s: float = 5.0

    def __post_init__(self) -> None:
        for spec in PARAMETERS.values():
            object.__setattr__(self, spec.name, spec.validate(getattr(self, spec.name)))
        if self.image_transport:
            # image_transport (image_proc's name) is an alias: it sets input_transport unless that says otherwise.
            if self.input_transport != PARAMETERS["input_transport"].default and \
                    self.input_transport != self.image_transport:
                raise ParameterError("image_transport", f"{self.image_transport!r} contradicts input_transport "
                                     f"{self.input_transport!r}; set only one of them")
            object.__setattr__(self, "input_transport", self.image_transport)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> NodeParams:
        """Parameters from ``values`` (missing names take their defaults); ParameterError on anything wrong.

        ROS's own parameters (``use_sim_time``, ``qos_overrides.*``, ...) are skipped, so the node may pass all
        of its parameters and a parameter file may set them.
        """
        if not isinstance(values, Mapping):
            raise TypeError(f"values: expected a mapping of parameter names, got {type(values).__name__}")
        values = {k: v for k, v in values.items()
                  if k not in ROS_BUILTIN_PARAMETERS and not str(k).startswith(ROS_BUILTIN_PREFIXES)}
        # build refuses unknown names and converts types; __post_init__ applies each parameter's allowed values
        return build(cls, values, "", error=ParameterError, noun="parameter")

    def replace(self, **changes: Any) -> NodeParams:
        """A copy with ``changes`` applied and validated (for parameter updates at run time)."""
        return NodeParams.from_mapping({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def warmup_shape(self) -> tuple[int, int] | None:
        """(height, width) of the warm-up frame, or None when either size is 0."""
        return (self.warmup_height, self.warmup_width) if self.warmup_width and self.warmup_height else None

    @property
    def relative_depth(self) -> bool:
        """True when depth is published unitless in (0, 1] (``depth_scale`` == 0)."""
        return self.depth_scale == 0.0


def qos_profile_spec(name: str, depth: int, param: str = "qos") -> dict[str, Any]:
    """Plain description of a QoS preset: reliability, history, durability (strings) and depth (int).

    ``sensor_data`` is best effort like rclpy's qos_profile_sensor_data (with the given depth); ``default`` and
    ``reliable`` are reliable; ``system_default`` leaves every policy to the middleware. ``param`` names the
    parameter in errors.
    """
    name = name.lower() if isinstance(name, str) else name
    if name not in QOS_NAMES:
        raise ParameterError(param, f"expected one of: {', '.join(QOS_NAMES)}, got {name!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ParameterError(param + "_depth", f"expected an int >= 1, got {depth!r}")
    if name == "system_default":
        return {"reliability": "system_default", "history": "system_default", "durability": "system_default",
                "depth": depth}
    reliability = "best_effort" if name in ("sensor_data", "best_effort") else "reliable"
    return {"reliability": reliability, "history": "keep_last", "durability": "volatile", "depth": depth}


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    # ROS parameter files nest dotted names ("a: {b: 1}" is parameter "a.b").
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        out[prefix] = value


def params_from_yaml_text(text: str, node_name: str = NODE_NAME, source: str = "<yaml>") -> NodeParams:
    """Validate the ``<node>: ros__parameters:`` sections of a ROS 2 parameter file's text.

    Sections for ``/**``, ``<node>``, ``/<node>`` and ``/<namespace>/<node>`` are merged in that order (later
    wins), as the ROS 2 launch system does for one node. ValueError if none is there.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{source}: expected a mapping of node names at the top, got {type(doc).__name__}")
    merged: dict[str, Any] = {}
    found = False
    keys = [k for k in doc if k in ("/**", "**")] + [k for k in doc if str(k).lstrip("/") == node_name] + [
        k for k in doc if str(k).endswith("/" + node_name) and str(k).lstrip("/") != node_name]
    for key in keys:
        section = doc[key]
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ValueError(f"{source}: '{key}' needs a 'ros__parameters:' mapping")
        params = section["ros__parameters"]
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ValueError(f"{source}: '{key}: ros__parameters' must be a mapping, got {type(params).__name__}")
        _flatten("", params, merged)
        found = True
    if not found:
        raise ValueError(f"{source}: no '{node_name}: ros__parameters:' section (top-level keys: {list(doc)})")
    for name, value in merged.items():
        # The node declares doubles typed; rclpy refuses a YAML integer for them at start-up.
        spec = PARAMETERS.get(name)
        if spec is not None and spec.type is float and isinstance(value, int) and not isinstance(value, bool):
            raise ParameterError(name, f"expected a double, got the integer {value} (write {value}.0: the node "
                                 "declares it as a double and ROS 2 refuses an integer for it)")
    return NodeParams.from_mapping(merged)


def load_params_yaml(path: str | Path, node_name: str = NODE_NAME) -> NodeParams:
    """Validate a ROS 2 parameter file (e.g. config/dehaze.yaml) through :class:`NodeParams`."""
    path = Path(path)
    return params_from_yaml_text(path.read_text(encoding="utf-8"), node_name, str(path))


def _markdown_default(spec: ParamSpec) -> str:
    if spec.type is str:
        return f'"{spec.default}"'
    return str(spec.default).lower() if spec.type is bool else str(spec.default)


def parameters_markdown() -> str:
    """The README's parameter table (name, ROS type, default, allowed values, description), from the code.

    Regenerate the README's table with ``python -m dcmpnet_ros.params``; test_ros_params.py checks they agree.
    """
    rows = ["| name | type | default | allowed | description |", "| --- | --- | --- | --- | --- |"]
    for spec in PARAMETERS.values():
        allowed = spec.constraints or ("true, false" if spec.type is bool else "any")
        run_time = "*run time*. " if spec.dynamic else ""
        rows.append(f"| `{spec.name}` | {spec.ros_type} | `{_markdown_default(spec)}` | {allowed} | "
                    f"{run_time}{spec.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(parameters_markdown())
