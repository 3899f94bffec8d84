"""Training configuration: frozen dataclasses loaded from YAML, with ``key=value`` overrides.

A training YAML has the sections ``model`` (a variant name or a dict, see
:func:`~dcmpnet_core.models.config.model_config_from`), ``data``, ``loss``, ``optim``, ``train``, ``val``
and an optional top-level ``init_from``.  Unknown keys are rejected with the key named; strings
such as ``1e-4`` (which YAML 1.1 reads as text) are accepted where a number is expected.
Overrides use dotted paths: ``optim.lr_dehaze=2e-4 data.crop=128 model=tiny``.
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

from ..models.config import ConfigError, ModelConfig, model_config_from, to_dict

AMP_MODES = ("auto", "off", "bf16", "fp16")
BN_MODES = ("auto", "batch", "sync", "frozen")
OPTIMIZERS = ("adam", "adamw")


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class PerceiverConfig:
    """The difference perceiver (see :mod:`dcmpnet_core.train.losses`): form, softmax temperature, power."""

    form: str = "softmax"
    temperature: float = 4.0
    power: float = 2.0

    def __post_init__(self) -> None:
        from .losses import PERCEIVER_FORMS

        _require(self.form in PERCEIVER_FORMS, f"loss.perceiver.form: expected one of {PERCEIVER_FORMS}, "
                                               f"got {self.form!r}")
        _require(self.temperature > 0, f"loss.perceiver.temperature: must be > 0, got {self.temperature}")
        _require(self.power >= 0, f"loss.perceiver.power: must be >= 0, got {self.power}")


@dataclass(frozen=True)
class LossConfig:
    """Weights and switches of the two losses.

    Dehazing network: ``dehaze_l1 * L1(u*, u) + dehaze_weighted * L1_A(e,r)(u*, u)
    + depth_to_dehaze * L1(M(u*), M(u)) + contrastive * CR + guidance * guide consistency
    + dehaze_ssim * (1 - SSIM(u*, u))``.
    DE network: ``depth_l1 * L1(M(u*), M(u)) + depth_weighted * L1_A(d,r)(M(u*), M(u))
    + depth_clear * L1(DE(u), M(u))``.
    The contrastive term is on only when ``vgg19_weights`` names a torchvision VGG19 state-dict
    file; ``guidance`` > 0 adds L1 between the U-Net guide maps of the hazy and the clear image.
    ``depth_clear`` (0 in the paper recipe) also fits the DE network on the clear image itself: the
    original training took M(u) from a depth network pre-trained on clear images (RA-Depth), which
    this project does not have; without it the DE network only ever sees dehazed outputs and learns
    their residual-haze cues, which do not carry over to clean frames.  ``dehaze_ssim`` (0 in the
    paper recipes) adds a structural term, SSIM as :func:`dcmpnet_core.evaluation.metrics.ssim` computes it at
    full resolution: L1 alone lets a small network trade local contrast for mean colour.
    """

    dehaze_l1: float = 1.0
    dehaze_weighted: float = 1.0
    depth_to_dehaze: float = 0.1
    contrastive: float = 1.0
    vgg19_weights: Union[str, None] = None
    guidance: float = 0.0
    depth_l1: float = 1.0
    depth_weighted: float = 1.0
    depth_clear: float = 0.0
    dehaze_ssim: float = 0.0
    perceiver: PerceiverConfig = field(default_factory=PerceiverConfig)

    def __post_init__(self) -> None:
        for name in ("dehaze_l1", "dehaze_weighted", "depth_to_dehaze", "contrastive", "guidance", "depth_l1",
                     "depth_weighted", "depth_clear", "dehaze_ssim"):
            _require(getattr(self, name) >= 0, f"loss.{name}: weights must be >= 0, got {getattr(self, name)}")

    @property
    def contrastive_enabled(self) -> bool:
        return self.vgg19_weights is not None and self.contrastive > 0


@dataclass(frozen=True)
class DataConfig:
    """Datasets, as :func:`dcmpnet_core.data.build_dataset` takes them.

    ``depth``: where depth targets come from (``auto``, ``stored``, ``transmission``,
    ``synthetic``, ``model`` with ``depth_model`` a TorchScript/ONNX file whose output is
    ``depth_model_output`` (``depth`` or ``disparity``), or ``none``).  ``crop`` is the square
    training crop (null = full images); ``workers`` the DataLoader processes.
    """

    root: Union[str, None] = None
    layout: str = "auto"
    train_split: str = "train"
    val_split: str = "test"
    crop: Union[int, None] = 256
    augment: bool = True
    hflip_only: bool = False
    depth: str = "auto"
    depth_model: Union[str, None] = None
    depth_model_output: str = "disparity"
    workers: int = 4

    def __post_init__(self) -> None:
        _require(self.crop is None or self.crop >= 16, f"data.crop: expected null or >= 16, got {self.crop}")
        _require(self.workers >= 0, f"data.workers: expected >= 0, got {self.workers}")


@dataclass(frozen=True)
class OptimConfig:
    """Two optimizers (dehazing, DE) with a cosine decay from ``lr_*`` to ``lr_min`` after a linear warm-up."""

    name: str = "adam"
    lr_dehaze: float = 1e-4
    lr_depth: float = 1e-4
    lr_min: float = 1e-6
    betas: tuple[float, ...] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 0
    clip_grad_norm: float = 0.0

    def __post_init__(self) -> None:
        _require(self.name in OPTIMIZERS, f"optim.name: expected one of {OPTIMIZERS}, got {self.name!r}")
        _require(self.lr_dehaze > 0 and self.lr_depth > 0, "optim.lr_dehaze and optim.lr_depth must be > 0")
        _require(0 <= self.lr_min, f"optim.lr_min: must be >= 0, got {self.lr_min}")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                 f"optim.betas: expected two values in [0, 1), got {self.betas}")
        _require(self.eps > 0 and self.weight_decay >= 0 and self.warmup_steps >= 0 and self.clip_grad_norm >= 0,
                 "optim.eps must be > 0; optim.weight_decay, warmup_steps and clip_grad_norm must be >= 0")


@dataclass(frozen=True)
class ScheduleConfig:
    """The ``train:`` section: batch, length, device and numerics.

    ``batch_size`` is the global batch (split evenly over DDP processes).  Give ``epochs`` or
    ``max_steps`` (``max_steps`` wins if both are set).  ``amp``: ``auto`` = bf16 on a CUDA device
    that supports it (else fp16 with a gradient scaler), off on CPU.  ``bn`` (the U-Net guide's
    BatchNorm): ``auto`` = SyncBatchNorm under multi-GPU DDP, per-process batch statistics
    otherwise; ``frozen`` keeps BN in eval mode (running statistics, not updated).
    ``ema_decay`` > 0 keeps an exponential moving average of the weights, used for validation
    and the saved checkpoints.  ``threads`` > 0 sets PyTorch's CPU threads per process (0 keeps
    its default).  ``amp: bf16`` also works on CPU (autocast; fast on CPUs with AMX or
    AVX512-BF16).  ``channels_last`` trains in NHWC memory layout (about 1.5x faster on CPU with
    oneDNN at 128-256 px crops; the same function).
    """

    batch_size: int = 8
    epochs: Union[int, None] = None
    max_steps: Union[int, None] = None
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    bn: str = "auto"
    ema_decay: float = 0.0
    log_every: int = 20
    checkpoint_every: int = 1000
    threads: int = 0
    channels_last: bool = False

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, f"train.batch_size: expected >= 1, got {self.batch_size}")
        _require(self.epochs is not None or self.max_steps is not None,
                 "train: set train.epochs or train.max_steps (the length of training)")
        _require(self.epochs is None or self.epochs >= 1, f"train.epochs: expected >= 1, got {self.epochs}")
        _require(self.max_steps is None or self.max_steps >= 1, f"train.max_steps: expected >= 1, got {self.max_steps}")
        _require(self.amp in AMP_MODES, f"train.amp: expected one of {AMP_MODES}, got {self.amp!r}")
        _require(self.bn in BN_MODES, f"train.bn: expected one of {BN_MODES}, got {self.bn!r}")
        _require(0 <= self.ema_decay < 1,
                 f"train.ema_decay: expected 0 (off) or a value in (0, 1), got {self.ema_decay}")
        _require(self.threads >= 0, f"train.threads: expected >= 0 (0 = PyTorch's default), got {self.threads}")
        _require(self.log_every >= 1 and self.checkpoint_every >= 1,
                 "train.log_every and train.checkpoint_every must be >= 1")


@dataclass(frozen=True)
class ValConfig:
    """Periodic validation (PSNR/SSIM on full images of the val split, batch 1, output clamped).

    Every ``every_epochs`` epochs, or every ``every_steps`` steps when that is > 0; always at
    the end.  ``max_images`` limits the images used (the first N); ``preview`` writes a PNG of
    the first image (hazy | dehazed | clear | depth) at each validation.
    """

    every_epochs: int = 1
    every_steps: int = 0
    max_images: Union[int, None] = None
    full_res_ssim: bool = False
    preview: bool = True

    def __post_init__(self) -> None:
        _require(self.every_epochs >= 1 and self.every_steps >= 0,
                 "val.every_epochs must be >= 1 and val.every_steps >= 0")
        _require(self.max_images is None or self.max_images >= 1, "val.max_images: expected null or >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run.

    ``init_from`` optionally starts from a project checkpoint's weights; ``default`` names the
    bundled default weights (each round of the default-weights campaign starts there).
    """

    model: ModelConfig = field(default_factory=lambda: model_config_from("paper"))
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(epochs=1))
    val: ValConfig = field(default_factory=ValConfig)
    init_from: Union[str, None] = None

    def to_dict(self) -> dict:
        return to_dict(self)


# ------------------------------------------------------------------------------------- building
def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Union or (hasattr(types, "UnionType") and isinstance(tp, types.UnionType)):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: a value is required, got null")
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if tp is ModelConfig:
        try:
            return model_config_from(value)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return build(tp, value, where)
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        num = value
        if isinstance(value, str):
            try:
                num = float(value.strip())
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not isinstance(num, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if tp is int:
            if not float(num).is_integer():
                raise ConfigError(f"{where}: expected an integer, got {value!r}")
            return int(num)
        return float(num)
    if tp is str:
        if isinstance(value, bool):
            # YAML 1.1 reads a bare off/on/no/yes as a boolean: ``amp: off`` means the word.
            return "on" if value else "off"
        if isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def build(cls: type, data: Mapping[str, Any] | None, where: str) -> Any:
    """Build config dataclass ``cls`` from a mapping: unknown keys rejected, values coerced to the field types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(map(str, data)) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(repr(f'{where}.{k}') for k in unknown)}; "
                          f"valid keys are {', '.join(names)}")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _parse_override(item: str) -> tuple[list[str], Any]:
    import yaml

    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE with a dotted key, e.g. optim.lr_dehaze=2e-4")
    key, _, raw = item.partition("=")
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError(f"override {item!r}: bad key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None
    return path, value


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str]) -> dict:
    """Apply ``a.b.c=value`` overrides to a plain config dict (values parsed as YAML)."""
    out = _deep_copy(raw)
    for item in overrides:
        path, value = _parse_override(item)
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if part == "model" and i == 0 and isinstance(child, str):
                child = {"variant": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(path[:i + 1])} is {child!r}, not a section")
            node[part] = child
            node = child
        node[path[-1]] = value
    return out


def _deep_copy(d: Any) -> Any:
    if isinstance(d, Mapping):
        return {str(k): _deep_copy(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_deep_copy(v) for v in d]
    return d


def train_config_from_dict(raw: Mapping[str, Any], overrides: Iterable[str] = ()) -> TrainConfig:
    """A :class:`TrainConfig` from a plain dict plus dotted overrides."""
    return build(TrainConfig, apply_overrides(raw or {}, overrides), "config")


def load_train_config(path: str | os.PathLike | None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a training YAML (or start from defaults when ``path`` is None) and apply overrides."""
    import yaml

    raw: Any = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"training config {str(p)!r} does not exist")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{str(p)!r} is not valid YAML: {exc}") from None
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{str(p)!r}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return train_config_from_dict(raw, overrides)
    except ConfigError as exc:
        where = f"{p}: " if path is not None else ""
        raise ConfigError(f"{where}{exc}") from None


def dump_train_config(cfg: TrainConfig) -> str:
    """The fully resolved config as YAML text (loads back to an equal config)."""
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
