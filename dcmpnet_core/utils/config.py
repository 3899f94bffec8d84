"""Frozen dataclasses from plain mappings (YAML files, checkpoint metadata, ROS parameters), with one error format.

:func:`build` makes a dataclass from a mapping: unknown keys are refused by name, every value is checked against
its field's type (``bool``, ``int``, ``float``, ``str``, ``Optional[...]``, ``tuple[T, ...]`` and nested
dataclasses, built recursively) and against a :class:`Check` (choices, range, pattern) taken from the field's
metadata (``field(default=..., metadata=check(low=0))``) or passed by the caller.  Cross-field rules stay in the
dataclass's ``__post_init__``.

Every error names the dotted key first, then what was expected and what was given::

    config.loss.depth_l1: expected >= 0, got -1.0
    config.data.crop: expected int, got float 12.5
    config.optim.lr: unknown key; known: name, lr_dehaze, ...

Imports neither torch nor NumPy (the ROS parameter table and ``dcmpnet --help`` use it).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from typing import Any, Callable, Mapping, Type, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message starts with the key (also in ``key``).

    ``detail`` is the message without the key (``expected ..., got ...``), for callers that name the value their
    own way (a command-line flag instead of a keyword).
    """

    def __init__(self, message: str, key: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.detail = detail or message


def config_error(key: str, detail: str) -> ConfigError:
    """``key: detail`` as a :class:`ConfigError` (just ``detail`` when ``key`` is empty)."""
    return ConfigError(f"{key}: {detail}" if key else detail, key, detail)


ErrorFactory = Callable[[str, str], Exception]


def _given(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


@dataclasses.dataclass(frozen=True)
class Check:
    """Allowed values beyond the type.

    ``choices``, or a range ``low``..``high`` (``low_open``: ``> low``) with ``also`` values allowed outside it
    (e.g. 0 for "off"), or a full-match ``pattern`` for strings (``pattern_text`` describes it); ``casefold``
    strings are lower-cased first.
    """

    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    also: tuple = ()
    pattern: str = ""
    pattern_text: str = ""
    casefold: bool = False

    def describe(self) -> str:
        """The allowed values in words (``one of: a, b``, ``> 0 and <= 1``, ``0 or >= 4096 and <= 10``)."""
        if self.choices:
            return "one of: " + ", ".join(str(c) if c != "" else '""' for c in self.choices)
        if self.pattern:
            return self.pattern_text or f"a string matching {self.pattern}"
        def num(v: float) -> str:
            return str(v) if isinstance(v, int) else f"{v:g}"

        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {num(self.low)}")
        if self.high is not None:
            parts.append(f"<= {num(self.high)}")
        text = " and ".join(parts)
        return " or ".join([*(str(a) for a in self.also), text]) if self.also and text else text

    def apply(self, value: Any, key: str = "", error: ErrorFactory = config_error) -> Any:
        """``value`` if allowed (lower-cased for ``casefold``); ``error(key, "expected ..., got ...")`` otherwise."""
        if self.casefold and isinstance(value, str):
            value = value.lower()
        if value in self.also and not isinstance(value, bool):
            return value
        bad = (self.choices and value not in self.choices) or \
            (self.pattern and not (isinstance(value, str) and re.fullmatch(self.pattern, value)))
        if not bad and isinstance(value, (int, float)) and not isinstance(value, bool):
            bad = (self.low is not None and (value <= self.low if self.low_open else value < self.low)) or \
                (self.high is not None and value > self.high)
        if bad:
            raise error(key, f"expected {self.describe()}, got {value!r}")
        return value


def check(**kwargs: Any) -> dict:
    """Field metadata holding a :class:`Check`: ``field(default=0, metadata=check(low=0))``."""
    return {"check": Check(**kwargs)}


def check_fields(obj: Any, where: str) -> None:
    """Apply the :class:`Check` in each field's metadata to ``obj``'s value.

    For ``__post_init__``, so that a dataclass made directly (not by :func:`build`) is checked too.  ``where``:
    the dotted name of ``obj``.
    """
    for f in dataclasses.fields(obj):
        rule = f.metadata.get("check")
        if rule is not None:
            rule.apply(getattr(obj, f.name), _join(where, f.name))


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) is Union or (hasattr(types, "UnionType") and isinstance(tp, types.UnionType))


def check_type(value: Any, tp: Any, key: str = "", *, lenient: bool = False,
               error: ErrorFactory = config_error) -> Any:
    """``value`` converted to type ``tp`` (int -> float allowed, lists -> tuples, mappings -> dataclasses).

    ``lenient`` (YAML files): numbers written as strings (YAML 1.1 reads ``1e-4`` as text) and integral floats
    are accepted, and a YAML boolean for a string field is the word (``amp: off``).
    """
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            inner = next(a for a in args if a is not type(None))
            raise error(key, f"expected {getattr(inner, '__name__', inner)}, got None")
        return check_type(value, next(a for a in args if a is not type(None)), key, lenient=lenient, error=error)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return value if isinstance(value, tp) else build(tp, value, key, lenient=lenient, error=error)
    if typing.get_origin(tp) is tuple:
        inner = typing.get_args(tp)[0]
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
            raise error(key, f"expected a list, got {_given(value)}")
        return tuple(check_type(v, inner, f"{key}[{i}]", lenient=lenient, error=error) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise error(key, f"expected bool, got {_given(value)}")
        return value
    if tp in (int, float):
        num = value
        if lenient and isinstance(value, str):
            try:
                num = float(value.strip())
            except ValueError:
                pass
        ok = isinstance(num, (int, float)) and not isinstance(num, bool)
        if ok and tp is int and not isinstance(num, int):
            ok = lenient and math.isfinite(num) and float(num).is_integer()
        if not ok:
            raise error(key, f"expected {tp.__name__}, got {_given(value)}")
        if tp is float and not math.isfinite(num):
            raise error(key, f"expected a finite number, got {num!r}")
        return tp(num)
    if tp is str:
        if lenient and isinstance(value, bool):
            return "on" if value else "off"
        if lenient and isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise error(key, f"expected str, got {_given(value)}")
        return value
    return value


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def build(cls: Type[T], data: Mapping[str, Any] | None, where: str = "config", *, lenient: bool = False,
          checks: Mapping[str, Check] | None = None, error: ErrorFactory = config_error,
          noun: str = "key") -> T:
    """Dataclass ``cls`` from the mapping ``data`` (None: all defaults); see the module docstring.

    ``where``: the dotted name of ``data`` in messages ("" for top-level names); ``checks``: a :class:`Check` per
    field, besides those in the fields' metadata; ``error(key, detail)`` makes the exception raised;
    ``noun``: what unknown names are called (``unknown parameter``).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise error(where, f"expected a mapping, got {_given(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        also = f" (also unknown: {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
        raise error(_join(where, unknown[0]), f"unknown {noun}{also}; known: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        key = _join(where, name)
        meta = fields[name].metadata
        if "convert" in meta:                  # e.g. a model variant name or mapping -> ModelConfig
            try:
                kwargs[name] = meta["convert"](value)
            except ConfigError as exc:
                raise error(key, str(exc)) from None
            continue
        value = check_type(value, hints[name], key, lenient=lenient, error=error)
        rule = (checks or {}).get(name) or meta.get("check")
        kwargs[name] = value if rule is None else rule.apply(value, key, error)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise error(where, str(exc)) from exc


def to_dict(cfg: Any) -> Any:
    """Plain nested dict/list/scalars (YAML- and ``weights_only``-safe)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, tuple):
        return [to_dict(v) for v in cfg]
    return cfg
