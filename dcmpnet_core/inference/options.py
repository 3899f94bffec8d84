"""The inference engine's options, declared once: name, type, allowed values, default and help.

:class:`~dcmpnet_core.inference.engine.Dehazer` validates its arguments with these; every command that builds an
engine (``dcmpnet infer``, ``bench``, ``quality``, ``bag``, ``demo``) adds its flags with
:func:`dcmpnet_core.cli.common.add_engine_arguments` (``--device``, ``--precision``, ``--mode``, ``--backend``,
``--refine``, ``--max-pixels``, ``--inference-scale``: the option's name with dashes); the ROS node's parameters
of the same names take their allowed values and descriptions from here (:mod:`dcmpnet_ros.params`).

Imports neither torch nor NumPy, so ``--help`` and the ROS parameter table stay light.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..utils.config import Check, ConfigError, ErrorFactory, check_type, config_error

#: Mode suffixes that force the memory layout (``fast+nhwc``), for benchmarks; see inference.fastpath.
MODE_SUFFIXES = ("nhwc", "nchw")
#: The smallest side the engine takes, in pixels (the network downsamples by 16; smaller images are not upscaled).
MIN_SIDE = 16
MIN_MAX_PIXELS = MIN_SIDE * MIN_SIDE
#: Default haze level below which frames are passed through (calibrated on real photos; see the README), and the
#: width of the blend band above it, where the output fades from the input to the network's output
#: (:mod:`dcmpnet_core.inference.haze_level`).  Here, torch- and NumPy-free, for --help and the ROS parameters.
DEFAULT_BYPASS_BELOW = 0.53
DEFAULT_BYPASS_BAND = 0.05


@dataclasses.dataclass(frozen=True)
class EngineOption:
    """One engine option.

    ``name``: the Dehazer keyword; ``type`` of the value (``optional``: None allowed too); ``default``; the
    allowed values (``check``); one-line ``help``; ``aliases``: older flag spellings that the commands still
    accept without listing them (``--scale``).
    """

    name: str
    type: type
    default: Any
    help: str
    check: Check = Check()
    optional: bool = False
    metavar: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        """The command-line flag: ``--`` and the name with dashes."""
        return "--" + self.name.replace("_", "-")

    @property
    def constraints(self) -> str:
        """The allowed values in words (``one of: fp32, tf32, fp16, bf16``, ``> 0 and <= 1``)."""
        return self.check.describe()

    def validate(self, value: Any, key: str | None = None, error: ErrorFactory = config_error) -> Any:
        """``value`` checked and converted; ``error(key or name, "expected ..., got ...")`` otherwise."""
        key = self.name if key is None else key
        if value is None and self.optional:
            return None
        if self.name == "mode" and isinstance(value, str) and "+" in value:
            base, _, suffix = value.partition("+")
            if suffix not in MODE_SUFFIXES:
                raise error(key, f"expected a mode suffix {' or '.join('+' + s for s in MODE_SUFFIXES)}, "
                                 f"got {value!r}")
            self.check.apply(base, key, error)
            return value
        return self.check.apply(check_type(value, self.type, key, error=error), key, error)

    def parse(self, text: str) -> Any:
        """A command-line string -> the value, or argparse.ArgumentTypeError with the expected/got text."""
        try:
            value = self.type(text) if self.type is not str else text
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.type.__name__}, got {text!r}") from None
        try:
            return self.validate(value)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(exc.detail) from None


#: The network's execution modes (``auto`` picks among them): eager, every exact fast path, torch.compile, CUDA graphs.
NETWORK_MODES: tuple[str, ...] = ("eager", "fast", "compile", "cuda_graphs")

_SPECS = (
    EngineOption("device", str, "auto", "torch device: auto (CUDA when available), cpu, cuda or cuda:N",
                 Check(pattern=r"auto|cpu|cuda(:\d+)?", pattern_text="auto, cpu, cuda or cuda:N")),
    EngineOption("backend", str, "dcmpnet", "dehazing method: the DCMPNet network (needs weights) or dcp, the "
                 "classical dark channel prior (no weights)", Check(choices=("dcmpnet", "dcp"))),
    EngineOption("precision", str, "fp32", "inference precision: fp32 (exact), tf32 (TF32 tensor cores, CUDA), "
                 "fp16 or bf16 (half memory, faster GPUs)", Check(choices=("fp32", "tf32", "fp16", "bf16"))),
    EngineOption("mode", str, "auto", "inference fast paths: auto (every exact one: folded BatchNorm, "
                 "channels_last, fused attention), eager (none), fast (= auto), compile (adds torch.compile: slow "
                 "start), cuda_graphs (GPU, fixed frame size)",
                 Check(choices=("auto", *NETWORK_MODES))),
    EngineOption("refine", str, "auto", "post-processing of a full-resolution restoration: guided (re-expressed "
                 "as a local affine map of the input), none, or auto (what the checkpoint's metadata says)",
                 Check(choices=("auto", "none", "guided"))),
    EngineOption("max_pixels", int, None, "run the network on at most this many pixels per frame; the "
                 "restoration is carried back to full resolution with a local affine (guided) upsampling",
                 Check(low=MIN_MAX_PIXELS, also=(None,)), optional=True, metavar="N"),
    EngineOption("inference_scale", float, 1.0, "run the network at this factor of the input resolution; the "
                 "result is upsampled to the input size", Check(low=0.0, high=1.0, low_open=True), metavar="S",
                 aliases=("--scale",)),
)

#: Every engine option by name.
ENGINE_OPTIONS: dict[str, EngineOption] = {spec.name: spec for spec in _SPECS}
DEVICE, BACKEND, PRECISION, MODE, REFINE, MAX_PIXELS, INFERENCE_SCALE = _SPECS
PRECISIONS: tuple[str, ...] = PRECISION.check.choices
BACKENDS: tuple[str, ...] = BACKEND.check.choices
REFINES: tuple[str, ...] = REFINE.check.choices
