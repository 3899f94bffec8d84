"""Training configuration: frozen dataclasses loaded from YAML, with ``key=value`` overrides.

A training YAML has the sections ``model`` (a variant name or a dict, see
:func:`~dcmpnet_core.models.config.model_config_from`), ``data``, ``loss``, ``optim``, ``train``, ``val``
and an optional top-level ``init_from``.  Unknown keys are rejected with the key named; strings
such as ``1e-4`` (which YAML 1.1 reads as text) are accepted where a number is expected.
Overrides use dotted paths: ``optim.lr_dehaze=2e-4 data.crop=128 model=tiny``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

import yaml

from ..models.config import ModelConfig, model_config_from, to_dict
from ..utils.config import Check, ConfigError, build, check, check_fields

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
    temperature: float = field(default=4.0, metadata=check(low=0, low_open=True))
    power: float = field(default=2.0, metadata=check(low=0))

    def __post_init__(self) -> None:
        # the forms live with the losses, which import torch: checked here (at run time), not in the field's metadata
        from .losses import PERCEIVER_FORMS

        Check(choices=PERCEIVER_FORMS).apply(self.form, "loss.perceiver.form")
        check_fields(self, "loss.perceiver")


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

    dehaze_l1: float = field(default=1.0, metadata=check(low=0))
    dehaze_weighted: float = field(default=1.0, metadata=check(low=0))
    depth_to_dehaze: float = field(default=0.1, metadata=check(low=0))
    contrastive: float = field(default=1.0, metadata=check(low=0))
    vgg19_weights: Union[str, None] = None
    guidance: float = field(default=0.0, metadata=check(low=0))
    depth_l1: float = field(default=1.0, metadata=check(low=0))
    depth_weighted: float = field(default=1.0, metadata=check(low=0))
    depth_clear: float = field(default=0.0, metadata=check(low=0))
    dehaze_ssim: float = field(default=0.0, metadata=check(low=0))
    perceiver: PerceiverConfig = field(default_factory=PerceiverConfig)

    def __post_init__(self) -> None:
        check_fields(self, "loss")

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
    crop: Union[int, None] = field(default=256, metadata=check(low=16))
    augment: bool = True
    hflip_only: bool = False
    depth: str = "auto"
    depth_model: Union[str, None] = None
    depth_model_output: str = "disparity"
    workers: int = field(default=4, metadata=check(low=0))

    def __post_init__(self) -> None:
        check_fields(self, "data")


@dataclass(frozen=True)
class OptimConfig:
    """Two optimizers (dehazing, DE) with a cosine decay from ``lr_*`` to ``lr_min`` after a linear warm-up."""

    name: str = field(default="adam", metadata=check(choices=OPTIMIZERS))
    lr_dehaze: float = field(default=1e-4, metadata=check(low=0, low_open=True))
    lr_depth: float = field(default=1e-4, metadata=check(low=0, low_open=True))
    lr_min: float = field(default=1e-6, metadata=check(low=0))
    betas: tuple[float, ...] = (0.9, 0.999)
    eps: float = field(default=1e-8, metadata=check(low=0, low_open=True))
    weight_decay: float = field(default=0.0, metadata=check(low=0))
    warmup_steps: int = field(default=0, metadata=check(low=0))
    clip_grad_norm: float = field(default=0.0, metadata=check(low=0))

    def __post_init__(self) -> None:
        check_fields(self, "optim")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                 f"optim.betas: expected two values in [0, 1), got {self.betas}")


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

    batch_size: int = field(default=8, metadata=check(low=1))
    epochs: Union[int, None] = field(default=None, metadata=check(low=1))
    max_steps: Union[int, None] = field(default=None, metadata=check(low=1))
    seed: int = 0
    device: str = "auto"
    amp: str = field(default="auto", metadata=check(choices=AMP_MODES))
    bn: str = field(default="auto", metadata=check(choices=BN_MODES))
    ema_decay: float = 0.0
    log_every: int = field(default=20, metadata=check(low=1))
    checkpoint_every: int = field(default=1000, metadata=check(low=1))
    threads: int = field(default=0, metadata=check(low=0))
    channels_last: bool = False

    def __post_init__(self) -> None:
        check_fields(self, "train")
        _require(self.epochs is not None or self.max_steps is not None,
                 "train: set train.epochs or train.max_steps (the length of training)")
        _require(0 <= self.ema_decay < 1,
                 f"train.ema_decay: expected 0 (off) or a value in (0, 1), got {self.ema_decay}")


@dataclass(frozen=True)
class ValConfig:
    """Periodic validation (PSNR/SSIM on full images of the val split, batch 1, output clamped).

    Every ``every_epochs`` epochs, or every ``every_steps`` steps when that is > 0; always at
    the end.  ``max_images`` limits the images used (the first N); ``preview`` writes a PNG of
    the first image (hazy | dehazed | clear | depth) at each validation.
    """

    every_epochs: int = field(default=1, metadata=check(low=1))
    every_steps: int = field(default=0, metadata=check(low=0))
    max_images: Union[int, None] = field(default=None, metadata=check(low=1))
    full_res_ssim: bool = False
    preview: bool = True

    def __post_init__(self) -> None:
        check_fields(self, "val")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run.

    ``init_from`` optionally starts from a project checkpoint's weights; ``default`` names the
    bundled default weights (each round of the default-weights campaign starts there).
    """

    # a variant name or a mapping (``{variant: tiny, depth: {growth: 2}}``), not only a ModelConfig's fields
    model: ModelConfig = field(default_factory=lambda: model_config_from("paper"),
                               metadata={"convert": model_config_from})
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(epochs=1))
    val: ValConfig = field(default_factory=ValConfig)
    init_from: Union[str, None] = None

    def to_dict(self) -> dict:
        return to_dict(self)


# ------------------------------------------------------------------------------------- building
def _parse_override(item: str) -> tuple[list[str], Any]:
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
    return build(TrainConfig, apply_overrides(raw or {}, overrides), "config", lenient=True)


def load_train_config(path: str | os.PathLike | None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a training YAML (or start from defaults when ``path`` is None) and apply overrides."""
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
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
