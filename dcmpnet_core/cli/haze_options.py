"""The pass-through options shared by ``dcmpnet infer`` and ``dcmpnet bag`` (``--bypass-below``, ``--bypass-band``).

The defaults repeat :data:`dcmpnet_core.inference.haze_level.DEFAULT_BYPASS_BELOW` / ``DEFAULT_BYPASS_BAND``
(a test checks they agree) so that ``--help`` does not import NumPy and OpenCV.
"""
from __future__ import annotations

import argparse

DEFAULT_BYPASS_BELOW = 0.53
DEFAULT_BYPASS_BAND = 0.05


def add_bypass_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--bypass-below`` and ``--bypass-band`` to a command's parser."""
    parser.add_argument("--bypass-below", type=float, default=DEFAULT_BYPASS_BELOW, metavar="L",
                        help="haze level (0 clear .. 1 dense) below which a frame is written unchanged and the "
                             "dehazing network is not run; 0 dehazes every frame (default: %(default)s)")
    parser.add_argument("--bypass-band", type=float, default=DEFAULT_BYPASS_BAND, metavar="B",
                        help="width of the haze-level band above --bypass-below in which the output fades from the "
                             "input to the dehazed frame (default: %(default)s)")


def check_bypass_arguments(args: argparse.Namespace) -> None:
    """CommandError naming the option when ``--bypass-below`` / ``--bypass-band`` is out of range."""
    from . import CommandError

    if not 0.0 <= args.bypass_below < 1.0:
        raise CommandError(f"--bypass-below: expected a haze level in [0, 1), got {args.bypass_below}")
    if not 0.0 <= args.bypass_band <= 1.0:
        raise CommandError(f"--bypass-band: expected a number in [0, 1], got {args.bypass_band}")
