"""The ``dcmpnet`` command line: one module per command, each with ``register(subparsers)``.

Commands are thin wrappers over the library; heavy imports happen inside the command's run function, so
``dcmpnet --help`` is fast.  What the commands share (:class:`~dcmpnet_core.cli.common.CommandError`, the
engine's flags) is in :mod:`dcmpnet_core.cli.common`.  ``dcmpnet_ros.cli`` adds the ROS-message commands
(``bag``, ``demo``).
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .. import __version__
from . import bench, convert, export, infer, promote, quality, synth, train, variants
from . import eval as evaluate
from .common import CommandError

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
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in OPTIONAL_MODULES:
            raise
        print(f"dcmpnet {args.command}: error: {missing_extra_hint(exc.name)}", file=sys.stderr)
        return 2


# Import name -> pip distribution of the dependencies that only extras install (setup.py).
OPTIONAL_MODULES = {"timm": "timm", "torchvision": "torchvision", "skimage": "scikit-image", "scipy": "scipy",
                    "rosbags": "rosbags", "onnx": "onnx", "onnxruntime": "onnxruntime", "onnxscript": "onnxscript",
                    "tensorboard": "tensorboard"}


def missing_extra_hint(module: str) -> str:
    """One line naming the missing distribution and the extras of dcmpnet_ros that install it."""
    # on the error path only: importlib.metadata is slow to import for `dcmpnet --help`
    from importlib import metadata

    dist = OPTIONAL_MODULES.get(module.split(".")[0], module.split(".")[0])
    try:
        requires = metadata.requires("dcmpnet_ros") or []
    except metadata.PackageNotFoundError:
        requires = []
    extras = sorted({req.split("extra ==")[1].strip(" '\"") for req in requires
                     if "extra ==" in req and req.lower().startswith(dist.lower())} - {"dev"})
    how = " or ".join(f"pip install 'dcmpnet_ros[{e}]'" for e in extras) or f"pip install {dist}"
    return f"this command needs {dist}, which is not installed: {how}"


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv)
