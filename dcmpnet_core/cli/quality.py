"""``dcmpnet quality``: dehazing and depth quality on held-out real photographs hazed with known depth."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quality", help="score weights on a held-out real photo hazed at light/medium/dense haze vs DCP",
        description="Hazes scikit-image's Middlebury motorcycle photo (measured depth; never used for training) "
                    "at three densities and three airlights, and prints PSNR/SSIM of the hazy input, the dark "
                    "channel prior and DCMPNet against the clear photo, plus the depth Spearman correlation.")
    p.add_argument("--weights", default=None, help="checkpoint (default: the bundled default weights)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default: %(default)s)")
    p.add_argument("--max-pixels", type=int, default=None, help="run the network on at most this many pixels")
    p.add_argument("--out", type=Path, default=None, help="write quality.csv and quality_preview.png here")
    p.add_argument("--check", action="store_true", help="exit 1 if a quality target is not met")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..fileio import atomic_write_png
    from ..inference import Dehazer
    from ..quality import preview_grid, run_quality
    from ..weights import WeightsNotFoundError
    from . import CommandError

    try:
        net = Dehazer.from_checkpoint(args.weights, device=args.device, max_pixels=args.max_pixels, mode="fast",
                                      bypass_below=0.0)
    except (WeightsNotFoundError, FileNotFoundError, ValueError, RuntimeError) as exc:
        raise CommandError(str(exc)) from None
    dcp = Dehazer(backend="dcp", bypass_below=0.0)

    def run_engine(engine):
        def fn(hazy):
            r = engine(hazy)
            return r.dehazed, r.depth
        return fn

    report, outputs = run_quality({"dcp": run_engine(dcp), "dcmpnet": run_engine(net)},
                                  progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    print(report.table())
    ok_all = True
    for target, (ok, text) in report.check_targets("dcmpnet").items():
        ok_all &= ok
        print(f"  [{'met' if ok else 'NOT met'}] {target}: {text}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        report.write_csv(args.out / "quality.csv")
        names = [n for n in outputs if n.endswith("_a0")]
        grid = preview_grid(outputs, ["dcp", "dcmpnet"], names)
        atomic_write_png(args.out / "quality_preview.png", grid)
        print(f"wrote {args.out / 'quality.csv'} and {args.out / 'quality_preview.png'} "
              "(rows light/medium/dense: hazy | DCP | DCMPNet | clear | DCP depth | DCMPNet depth | measured depth)")
    return 0 if ok_all or not args.check else 1
