"""The one config builder (dcmpnet_core.utils.config): nested dataclasses, types, ranges, one error format."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from dcmpnet_core.utils.config import Check, ConfigError, build, check, check_fields


@dataclass(frozen=True)
class Inner:
    weight: float = field(default=1.0, metadata=check(low=0))
    kind: str = field(default="a", metadata=check(choices=("a", "b")))

    def __post_init__(self) -> None:
        check_fields(self, "inner")


@dataclass(frozen=True)
class Outer:
    size: int | None = field(default=None, metadata=check(low=16))
    sizes: tuple[int, ...] = (1, 2)
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


def test_builds_nested_dataclasses_and_converts():
    cfg = build(Outer, {"size": 32, "sizes": [3, 4], "inner": {"weight": 2, "kind": "b"}})
    assert cfg == Outer(32, (3, 4), False, Inner(2.0, "b")) and isinstance(cfg.inner.weight, float)
    assert build(Outer, None) == Outer() and build(Outer, {"inner": None}).inner == Inner()
    assert build(Outer, {"size": "64", "inner": {"weight": "1e-3"}}, lenient=True) == Outer(64, inner=Inner(1e-3))


@pytest.mark.parametrize("data,lenient,message", [
    ({"inner": {"weight": "x"}}, True, "config.inner.weight: expected float, got str 'x'"),
    ({"inner": {"weight": -1}}, False, "config.inner.weight: expected >= 0, got -1.0"),
    ({"inner": {"kind": "c"}}, False, "config.inner.kind: expected one of: a, b, got 'c'"),
    ({"inner": {"wings": 2}}, False, "config.inner.wings: unknown key; known: weight, kind"),
    ({"zz": 1, "aa": 2}, False, "config.aa: unknown key (also unknown: zz); known: size, sizes, flag, inner"),
    ({"size": 8}, False, "config.size: expected >= 16, got 8"),
    ({"size": 12.5}, True, "config.size: expected int, got float 12.5"),
    ({"size": 32.0}, False, "config.size: expected int, got float 32.0"),
    ({"sizes": "12"}, False, "config.sizes: expected a list, got str '12'"),
    ({"sizes": [1, "b"]}, False, "config.sizes[1]: expected int, got str 'b'"),
    ({"flag": 1}, False, "config.flag: expected bool, got int 1"),
    ({"inner": 3}, False, "config.inner: expected a mapping, got int 3"),
    ({"inner": {"weight": float("nan")}}, False, "config.inner.weight: expected a finite number, got nan"),
])
def test_errors_name_key_expected_and_given(data, lenient, message):
    with pytest.raises(ConfigError) as info:
        build(Outer, data, lenient=lenient)
    assert str(info.value) == message
    assert info.value.key == message.split(":")[0] and str(info.value) == f"{info.value.key}: {info.value.detail}"


def test_direct_construction_is_checked_by_the_same_rules():
    with pytest.raises(ConfigError, match=r"^inner\.weight: expected >= 0, got -2"):
        Inner(weight=-2)


def test_check_describes_what_it_allows():
    assert Check(low=0.0, high=1.0, low_open=True).describe() == "> 0 and <= 1"
    assert Check(low=4096, high=10**9, also=(0,)).describe() == "0 or >= 4096 and <= 1000000000"
    assert Check(choices=("", "raw")).describe() == 'one of: "", raw'
    assert Check(low=4096, also=(0,)).apply(0) == 0 and Check(casefold=True, choices=("x",)).apply("X") == "x"
