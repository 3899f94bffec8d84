"""``dcmpnet synth``: generate a synthetic hazy/clear/depth training set (the loaders' ``synthetic`` layout)."""
from __future__ import annotations

import argparse
from pathlib import Path


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
                   help="scattering coefficient range per metre; default: chosen per image so the transmission "
                        "at the median depth is light (0.55-0.9), medium (0.25-0.55) or dense (0.08-0.25)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT if it exists (only once the new set is complete)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..data.synth import SynthError, write_dataset
    from . import CommandError

    try:
        manifest = write_dataset(args.out, args.count, tuple(args.size), seed=args.seed, split_test=args.split_test,
                                 beta_range=tuple(args.beta_range) if args.beta_range else None,
                                 workers=args.workers, overwrite=args.overwrite, progress=not args.no_progress)
    except SynthError as exc:
        raise CommandError(str(exc)) from None
    c = manifest["count"]
    print(f"wrote {args.out}: {c['train']} train + {c['test']} test samples of {args.size[0]}x{args.size[1]} "
          f"in {manifest['seconds']:.1f} s (preview: {args.out / 'preview.png'})")
    return 0
