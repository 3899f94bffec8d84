"""``dcmpnet variants``: the named model configurations with their size and cost."""
from __future__ import annotations

import argparse

from .common import parse_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("variants", help="list model variants with parameters and MACs per frame")
    p.add_argument("--size", default="480x640", help="frame size HxW for the MAC count (default: %(default)s)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # here, not at the top: `dcmpnet --help` must not import torch
    from ..evaluation.complexity import count_macs
    from ..models.config import VARIANTS

    h, w = parse_size(args.size)
    print(f"{'variant':<8} {'dehaze params':>14} {'DE params':>10} {'dehaze GMACs':>13} {'DE GMACs':>9}  (at {h}x{w})")
    for name, cfg in VARIANTS.items():
        c = count_macs(cfg, h, w)
        print(f"{name:<8} {c['dehaze_params'] / 1e6:>13.2f}M {c['depth_params'] / 1e6:>9.3f}M "
              f"{c['dehaze_macs'] / 1e9:>13.2f} {c['depth_macs'] / 1e9:>9.2f}")
    return 0
