"""What the ``dcmpnet`` commands share: the one-line error, frame sizes, the engine and pass-through options.

Light on purpose (no torch or OpenCV; NumPy only through the pixel-budget constants of utils.decoding): every
command module imports it at the top, and ``dcmpnet --help`` imports every command module.
"""
from __future__ import annotations

import argparse
from typing import Any, Sequence

from ..inference.options import DEFAULT_BYPASS_BAND, DEFAULT_BYPASS_BELOW, ENGINE_OPTIONS
from ..utils.decoding import DEFAULT_MAX_INPUT_PIXELS, MIN_MAX_INPUT_PIXELS


class CommandError(Exception):
    """An error to print as one line, without a traceback."""


def parse_size(text: str, flag: str = "--size") -> tuple[int, int]:
    """``HxW`` (e.g. ``480x640``, both sides >= 16) -> (H, W); CommandError naming ``flag`` otherwise."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CommandError(f"{flag} must look like 480x640 (HxW), got {text!r}") from None
    if h < 16 or w < 16:
        raise CommandError(f"{flag} must be at least 16x16, got {text!r}")
    return h, w


def add_engine_arguments(parser: argparse.ArgumentParser, names: Sequence[str], *,
                         defaults: dict[str, Any] | None = None, helps: dict[str, str] | None = None,
                         nargs: dict[str, str] | None = None, choices: dict[str, Sequence[str]] | None = None) -> None:
    """Add the flags of the engine options ``names`` (:mod:`dcmpnet_core.inference.options`) to ``parser``.

    Every command spells them the same (``--inference-scale``, ``--max-pixels``, ...) and checks values the
    engine's way while parsing.  ``defaults``, ``helps``, ``nargs``, ``choices``: per-option departures of a
    command (``dcmpnet bench`` times several precisions; ``dcmpnet demo`` adds ``--backend auto``).  An option's
    ``aliases`` (older spellings) are accepted but not listed.
    """
    defaults, helps, nargs, choices = defaults or {}, helps or {}, nargs or {}, choices or {}
    for name in names:
        opt = ENGINE_OPTIONS[name]
        kw: dict[str, Any] = {"dest": name, "default": defaults.get(name, opt.default)}
        if name in nargs:
            kw["nargs"] = nargs[name]
        allowed = choices.get(name, opt.check.choices)
        if allowed:
            kw["choices"] = list(allowed)
        else:
            kw["type"] = opt.parse
            kw["metavar"] = opt.metavar or opt.name.upper()
        text = helps.get(name, opt.help)
        if opt.constraints and not allowed:
            text += f"; {opt.constraints}"
        parser.add_argument(opt.flag, help=f"{text} (default: %(default)s)", **kw)
        for alias in opt.aliases:
            parser.add_argument(alias, help=argparse.SUPPRESS, **{k: v for k, v in kw.items() if k != "default"},
                                default=argparse.SUPPRESS)


def add_bypass_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--bypass-below`` and ``--bypass-band`` (the haze-aware pass-through) to a command's parser."""
    parser.add_argument("--bypass-below", type=float, default=DEFAULT_BYPASS_BELOW, metavar="L",
                        help="haze level (0 clear .. 1 dense) below which a frame is written unchanged and the "
                             "dehazing network is not run; 0 dehazes every frame (default: %(default)s)")
    parser.add_argument("--bypass-band", type=float, default=DEFAULT_BYPASS_BAND, metavar="B",
                        help="width of the haze-level band above --bypass-below in which the output fades from the "
                             "input to the dehazed frame (default: %(default)s)")


def check_bypass_arguments(args: argparse.Namespace) -> None:
    """CommandError naming the option when ``--bypass-below`` / ``--bypass-band`` is out of range."""
    if not 0.0 <= args.bypass_below < 1.0:
        raise CommandError(f"--bypass-below: expected a haze level in [0, 1), got {args.bypass_below}")
    if not 0.0 <= args.bypass_band <= 1.0:
        raise CommandError(f"--bypass-band: expected a number in [0, 1], got {args.bypass_band}")


def add_input_budget_argument(parser: argparse.ArgumentParser, refused: str) -> None:
    """Add ``--max-input-pixels``, the pixel budget checked from headers before decoding.

    ``refused``: what happens to an input over the budget, in the command's words.
    """
    parser.add_argument("--max-input-pixels", type=int, default=DEFAULT_MAX_INPUT_PIXELS, metavar="N",
                        help=f"pixel budget: {refused} (default: %(default)s)")


def check_input_budget(args: argparse.Namespace) -> None:
    """CommandError when ``--max-input-pixels`` is below the smallest frame the engine takes."""
    if args.max_input_pixels < MIN_MAX_INPUT_PIXELS:
        raise CommandError(f"--max-input-pixels: expected an integer >= {MIN_MAX_INPUT_PIXELS} (16x16), got "
                           f"{args.max_input_pixels}")


def engine_kwargs(args: argparse.Namespace, names: Sequence[str] = tuple(ENGINE_OPTIONS)) -> dict[str, Any]:
    """The Dehazer keyword arguments of the engine options among ``names`` that ``args`` holds."""
    return {name: getattr(args, name) for name in names if hasattr(args, name)}
