"""The ``dcmpnet`` command line: one module per command, each with ``register(subparsers)``.

Commands are thin wrappers over the library; heavy imports happen inside the command, so
``dcmpnet --help`` is fast.  ``dcmpnet_ros.cli`` adds the ROS-message commands (``bag``, ``demo``).
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from . import bench, convert, export, infer, promote, quality, synth, train, variants
from . import eval as evaluate

CORE_COMMANDS = [convert, infer, export, variants, bench, synth, train, evaluate, quality, promote]


def build_parser(extra: Sequence = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcmpnet",
        description="DCMPNet single-image dehazing and depth estimation (CVPR 2024), for ROS 2 and plain Python.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (*CORE_COMMANDS, *extra):
        module.register(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return f"dcmpnet {__version__}"


def run(argv: Sequence[str] | None = None, extra: Sequence = ()) -> int:
    parser = build_parser(extra)
    args, unknown = parser.parse_known_args(argv)
    # argparse cannot collect positionals given after options (``train CONFIG --out D k=v``); a
    # command that wants them names the list they go to with set_defaults(extra_positionals=DEST).
    dest = getattr(args, "extra_positionals", None)
    if unknown:
        if dest is None or any(u.startswith("-") for u in unknown):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        setattr(args, dest, list(getattr(args, dest) or []) + unknown)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except CommandError as exc:
        print(f"dcmpnet {args.command}: error: {exc}", file=sys.stderr)
        return 2


class CommandError(Exception):
    """An error to print as one line, without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv)
