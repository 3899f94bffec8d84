"""``dcmpnet convert``: the original release's two .pth files -> one project checkpoint."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert original DCMPNet weights (dehaze + depth .pth) to a project checkpoint",
                       description="Convert the original release's DIACMPN-dehaze-*.pth and DIACMPN-depth-*.pth "
                                   "into one dcmpnet checkpoint (loaded with weights_only=True).")
    p.add_argument("--dehaze", required=True, type=Path, help="DIACMPN-dehaze-<Set>.pth (holds 'dehaze_net')")
    p.add_argument("--depth", required=True, type=Path, help="DIACMPN-depth-<Set>.pth (holds 'depth_net')")
    p.add_argument("-o", "--output", required=True, type=Path, help="output checkpoint (.pt)")
    p.add_argument("--depth-kind", default="relative_disparity", choices=["relative_disparity", "relative_depth"],
                   help="what the DE network predicts; networks trained by the original code predict "
                        "disparity-like values (default: %(default)s)")
    p.add_argument("--half", action="store_true", help="store weights as float16 (half the size)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # here, not at the top: `dcmpnet --help` must not import torch
    from ..checkpoints.builder import convert_upstream, save_model
    from ..checkpoints.upstream import CheckpointError

    if args.output.exists() and not args.overwrite:
        raise CommandError(f"{args.output} exists; pass --overwrite to replace it")
    try:
        model = convert_upstream(args.dehaze, args.depth, depth_kind=args.depth_kind)
    except (CheckpointError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    save_model(model, args.output, meta={"source": "upstream", "dehaze_file": args.dehaze.name,
                                         "depth_file": args.depth.name}, half=args.half)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.output} ({n / 1e6:.2f} M parameters, config 'paper', depth_kind {args.depth_kind})")
    return 0
