"""``dcmpnet promote``: replace the bundled default weights with a candidate only if the benchmark improves."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "promote", help="make a trained checkpoint the bundled default weights, if it beats them on held-out photos",
        description="Scores the candidate and the current bundled weights on the held-out real photos (dcmpnet "
                    "quality, network on every frame) and writes the candidate over the bundled file only if its "
                    "PSNR is higher at every haze density and its clear-frame PSNR is not lower. Exit 0: promoted "
                    "(or would be, with --dry-run); 1: not better; 2: bad input.")
    p.add_argument("candidate", help="checkpoint of a campaign round (e.g. runs/r2/best.pt)")
    p.add_argument("--target", type=Path, default=None,
                   help="the file to replace (default: the bundled dcmpnet_core/checkpoints/weights/default.pt)")
    p.add_argument("--photos", default=None, help="comma-separated subset of the held-out photos (default: all)")
    p.add_argument("--dry-run", action="store_true", help="compare only; write nothing")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # here, not at the top: `dcmpnet --help` must not import torch
    from ..checkpoints.bundled import DEFAULT_WEIGHTS
    from ..train.campaign import promote

    target = args.target or DEFAULT_WEIGHTS
    photos = [p.strip() for p in args.photos.split(",") if p.strip()] if args.photos else None
    for what, path in (("candidate", Path(args.candidate)), ("--target", Path(target))):
        if not path.is_file():
            raise CommandError(f"{what} {path}: no such file")
    try:
        verdict, cand, cur = promote(args.candidate, target, photos, args.dry_run,
                                     progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    except (ValueError, RuntimeError, OSError) as exc:
        raise CommandError(str(exc)) from None
    print("candidate:\n" + cand.table() + "\n\ncurrent:\n" + cur.table() + "\n")
    for line in verdict.lines:
        print("  " + line)
    if not verdict.better:
        print(f"kept {target}: the candidate is not better everywhere")
        return 1
    print(f"{'would replace' if args.dry_run else 'replaced'} {target} with {args.candidate}")
    return 0
