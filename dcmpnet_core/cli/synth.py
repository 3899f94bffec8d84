"""``dcmpnet synth``: generate a synthetic hazy/clear/depth training set (the loaders' ``synthetic`` layout)."""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import CommandError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render synthetic hazy/clear/depth triples for training",
                       description="Render procedural 3-D scenes textured with real photos, haze them with "
                                   "I = J*t + A*(1-t), t = exp(-beta*d), and write "
                                   "OUT/{train,test}/{hazy,GT,depth,meta} plus OUT/synth.json and OUT/preview.png, "
                                   "atomically.")
    p.add_argument("out", type=Path, help="output folder (must not exist unless --overwrite)")
    p.add_argument("--count", type=int, required=True, help="number of samples (train + test)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(256, 256),
                   help="image height and width in pixels (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="sample i is determined by (seed, i) (default: %(default)s)")
    p.add_argument("--split-test", type=int, default=0, metavar="K",
                   help="put the last K samples in test/ (default: %(default)s)")
    p.add_argument("--beta-range", type=float, nargs=2, metavar=("A", "B"), default=None,
                   help="scattering coefficient range per metre; default: chosen per image from the density "
                        "distribution (--haze-free, --optical-depth)")
    p.add_argument("--haze-free", type=float, default=None, metavar="F",
                   help="fraction of haze-free samples, hazy == clear (default: 0.1)")
    p.add_argument("--optical-depth", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="range of -ln(transmission) at the median scene depth, drawn uniformly for the hazy "
                        "samples (default: 0.02 2.4, i.e. transmission 0.98 to 0.09)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT if it exists (only once the new set is complete)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # here, not at the top: `dcmpnet --help` must not import torch
    from ..data.synth import HazeDistribution, SynthError, write_dataset

    try:
        default = HazeDistribution()
        haze = HazeDistribution(default.free_fraction if args.haze_free is None else args.haze_free,
                                tuple(args.optical_depth) if args.optical_depth else default.optical_depth)
        manifest = write_dataset(args.out, args.count, tuple(args.size), seed=args.seed, split_test=args.split_test,
                                 beta_range=tuple(args.beta_range) if args.beta_range else None,
                                 workers=args.workers, overwrite=args.overwrite, progress=not args.no_progress,
                                 haze=haze)
    except SynthError as exc:
        raise CommandError(str(exc)) from None
    c = manifest["count"]
    print(f"wrote {args.out}: {c['train']} train + {c['test']} test samples of {args.size[0]}x{args.size[1]} "
          f"in {manifest['seconds']:.1f} s (preview: {args.out / 'preview.png'})")
    return 0
