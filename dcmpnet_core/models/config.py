"""Model configuration: frozen dataclasses, loaded from plain dicts that reject unknown keys.

The ``paper`` variant reproduces the published DCMPNet network (the upstream "Indoor" and
"Outdoor" releases share these shapes); the other variants are built from the same code by
configuration alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Type, TypeVar

from ..utils.config import ConfigError, build
from ..utils.config import to_dict as to_dict  # re-exported: the config helpers' public home was here

T = TypeVar("T")


# Upper bounds on every size in a model config, checked before any layer (or tensor) is built, so a hostile or
# mistyped checkpoint config fails in microseconds instead of allocating terabytes.  Each is several times the
# largest value any variant uses (the paper's: 96 channels, 8 blocks, guide width 64).
LIMITS = {"width": 2048, "blocks": 64, "heads": 64, "mlp_ratio": 16.0, "window_size": 64}


def _at_most(where: str, values: Any, limit: float) -> None:
    values = tuple(values) if isinstance(values, tuple) else (values,)
    if any(v > limit for v in values):
        raise ConfigError(f"{where}: values above {limit:g} are outside the sane range, got "
                          f"{values if len(values) > 1 else values[0]}")


def _tuple(value: Any, kind: type, where: str) -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"{where}: expected a list of {kind.__name__}, got {value!r}")
    out = []
    for v in value:
        if kind is int and (isinstance(v, bool) or not float(v).is_integer()):
            raise ConfigError(f"{where}: expected integers, got {value!r}")
        out.append(kind(v))
    return tuple(out)


@dataclass(frozen=True)
class DepthNetConfig:
    """The DE network (upstream ``DepthNet.DN``): a DRDB encoder-decoder without skips.

    ``widths`` are the channels after each of the four stride-2 convs; the decoder mirrors them
    and ends at 3 channels, then a 1x1 conv to the 1-channel depth map.
    """

    widths: tuple[int, ...] = (24, 48, 96, 128)
    growth: int = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", _tuple(self.widths, int, "depth.widths"))
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise ConfigError(f"depth.widths: expected 4 positive integers, got {self.widths}")
        if int(self.growth) < 1:
            raise ConfigError(f"depth.growth: expected a positive integer, got {self.growth}")
        _at_most("depth.widths", self.widths, LIMITS["width"])
        _at_most("depth.growth", self.growth, LIMITS["width"])

    @property
    def downsampling(self) -> int:
        return 16


@dataclass(frozen=True)
class DehazeNetConfig:
    """The dehazing network (upstream ``DIACMPN``).

    Five LEGM stages (three encoder, two decoder) with ``embed_dims``, ``depths``,
    ``num_heads``, ``mlp_ratios`` and ``attn_ratios`` each; a U-Net guide whose first level has
    ``guide_width`` channels (64, 128, 256, 512, 512 in the paper); a hazy-image depth prior
    built from a DE network with ``prior`` shapes.
    """

    embed_dims: tuple[int, ...] = (24, 48, 96, 48, 24)
    depths: tuple[int, ...] = (8, 8, 8, 4, 4)
    num_heads: tuple[int, ...] = (2, 4, 6, 1, 1)
    mlp_ratios: tuple[float, ...] = (2.0, 4.0, 4.0, 2.0, 2.0)
    attn_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 0.0, 0.0)
    window_size: int = 8
    guide_width: int = 64
    msaam_hidden: int = 128
    prior: DepthNetConfig = field(default_factory=DepthNetConfig)

    def __post_init__(self) -> None:
        for name, kind in (("embed_dims", int), ("depths", int), ("num_heads", int),
                           ("mlp_ratios", float), ("attn_ratios", float)):
            value = _tuple(getattr(self, name), kind, f"dehaze.{name}")
            if len(value) != 5:
                raise ConfigError(f"dehaze.{name}: expected 5 values (one per stage), got {value}")
            object.__setattr__(self, name, value)
        if isinstance(self.prior, Mapping):
            object.__setattr__(self, "prior", from_dict(DepthNetConfig, self.prior, "dehaze.prior"))
        e = self.embed_dims
        if e[1] != e[3] or e[0] != e[4]:
            raise ConfigError(
                f"dehaze.embed_dims: decoder stages must mirror the encoder (dims[3] == dims[1] and "
                f"dims[4] == dims[0]) for the skip fusions, got {e}"
            )
        for i, (dim, heads) in enumerate(zip(e, self.num_heads)):
            if heads < 1 or dim % heads:
                raise ConfigError(f"dehaze.num_heads[{i}]={heads} must divide embed_dims[{i}]={dim}")
        if any(d < 1 for d in self.depths):
            raise ConfigError(f"dehaze.depths: every stage needs at least one block, got {self.depths}")
        if any(not 0.0 <= r <= 1.0 for r in self.attn_ratios):
            raise ConfigError(f"dehaze.attn_ratios: values must lie in [0, 1], got {self.attn_ratios}")
        if any(r <= 0 for r in self.mlp_ratios):
            raise ConfigError(f"dehaze.mlp_ratios: values must be positive, got {self.mlp_ratios}")
        if self.window_size < 2 or self.window_size % 2:
            raise ConfigError(f"dehaze.window_size: expected an even integer >= 2, got {self.window_size}")
        if self.guide_width < 1 or self.msaam_hidden < 1:
            raise ConfigError("dehaze.guide_width and dehaze.msaam_hidden must be positive")
        for name, limit in (("embed_dims", "width"), ("depths", "blocks"), ("num_heads", "heads"),
                            ("mlp_ratios", "mlp_ratio"), ("window_size", "window_size"),
                            ("guide_width", "width"), ("msaam_hidden", "width")):
            _at_most(f"dehaze.{name}", getattr(self, name), LIMITS[limit])


@dataclass(frozen=True)
class ModelConfig:
    """Both networks of DCMPNet."""

    dehaze: DehazeNetConfig = field(default_factory=DehazeNetConfig)
    depth: DepthNetConfig = field(default_factory=DepthNetConfig)

    def __post_init__(self) -> None:
        if isinstance(self.dehaze, Mapping):
            object.__setattr__(self, "dehaze", from_dict(DehazeNetConfig, self.dehaze, "dehaze"))
        if isinstance(self.depth, Mapping):
            object.__setattr__(self, "depth", from_dict(DepthNetConfig, self.depth, "depth"))

    def to_dict(self) -> dict:
        return to_dict(self)


def from_dict(cls: Type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build a config dataclass from a mapping with :func:`dcmpnet_core.utils.config.build`.

    Unknown keys and values of the wrong type are refused by their dotted name, e.g.
    ``model.dehaze.depths[2]: expected int, got str 'x'``.
    """
    return build(cls, data, where, lenient=True)


# Named variants: a plain dict, no registry machinery.
VARIANTS: dict[str, ModelConfig] = {
    # The published network (upstream DIACMPN_dehaze_Indoor / Outdoor and DepthNet.DN).
    "paper": ModelConfig(),
    # Narrower U-Net guide, narrower and shallower stages, slim DE networks.
    "small": ModelConfig(
        dehaze=DehazeNetConfig(
            embed_dims=(16, 32, 48, 32, 16),
            depths=(2, 2, 4, 2, 2),
            num_heads=(1, 2, 3, 1, 1),
            mlp_ratios=(2.0, 2.0, 2.0, 2.0, 2.0),
            attn_ratios=(0.0, 0.5, 0.5, 0.0, 0.0),
            guide_width=16,
            msaam_hidden=32,
            prior=DepthNetConfig(widths=(8, 16, 24, 32), growth=8),
        ),
        depth=DepthNetConfig(widths=(8, 16, 24, 32), growth=8),
    ),
    # Smallest variant, for tests, CI and CPU-bound live cameras.
    "tiny": ModelConfig(
        dehaze=DehazeNetConfig(
            embed_dims=(8, 16, 24, 16, 8),
            depths=(1, 1, 2, 1, 1),
            num_heads=(1, 1, 2, 1, 1),
            mlp_ratios=(2.0, 2.0, 2.0, 2.0, 2.0),
            attn_ratios=(0.0, 0.0, 0.5, 0.0, 0.0),
            guide_width=8,
            msaam_hidden=16,
            prior=DepthNetConfig(widths=(4, 8, 12, 16), growth=4),
        ),
        depth=DepthNetConfig(widths=(4, 8, 12, 16), growth=4),
    ),
}


def get_variant(name: str) -> ModelConfig:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ConfigError(f"unknown model variant {name!r}; known: {', '.join(VARIANTS)}") from None


def model_config_from(value: str | Mapping[str, Any] | ModelConfig) -> ModelConfig:
    """A ModelConfig from a variant name, a dict (``{"variant": name, ...overrides}`` allowed) or itself."""
    if isinstance(value, ModelConfig):
        return value
    if isinstance(value, str):
        return get_variant(value)
    if isinstance(value, Mapping):
        data = dict(value)
        base = data.pop("variant", None)
        if base is None:
            return from_dict(ModelConfig, data, "model")
        merged = _deep_merge(to_dict(get_variant(base)), data)
        return from_dict(ModelConfig, merged, "model")
    raise ConfigError(f"model: expected a variant name or a mapping, got {type(value).__name__}")


def _deep_merge(base: dict, over: Mapping) -> dict:
    out = dict(base)
    for k, v in over.items():
        if k in out and isinstance(out[k], dict) and isinstance(v, Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out
