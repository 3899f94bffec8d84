"""``dcmpnet quality``: dehazing and depth quality on held-out real photographs, hazed and clear."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import CommandError, add_engine_arguments, engine_kwargs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quality", help="score weights on held-out real photos (hazed at light/medium/dense, and clear) vs DCP",
        description="Hazes held-out real photos with measured depth (scikit-image's Middlebury motorcycle; "
                    "Middlebury aloe from OpenCV's samples, package opencv-doc) at three densities and three "
                    "airlights, adds clear real photos (OpenCV's samples) scored output-vs-input, and prints "
                    "PSNR/SSIM of the input, the dark channel prior and DCMPNet, plus the depth Spearman "
                    "correlation, per density and per photo. None of these photos is ever used for training.")
    p.add_argument("--weights", default=None, help="checkpoint (default: the bundled default weights)")
    add_engine_arguments(p, ["device", "precision", "mode", "refine", "max_pixels", "inference_scale"],
                         defaults={"mode": "fast"})
    p.add_argument("--photos", default=None,
                   help="comma-separated subset of the held-out photos (default: all; motorcycle, aloe, leuvenA, "
                        "building, licenseplate_motion, home, stuff, squirrel_cls)")
    p.add_argument("--out", type=Path, default=None, help="write quality.csv and quality_preview.png here")
    p.add_argument("--check", action="store_true", help="exit 1 while a quality target is not met")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # here, not at the top: `dcmpnet --help` must not import torch
    from ..checkpoints.bundled import WeightsNotFoundError
    from ..evaluation.quality import preview_grid, run_quality
    from ..inference.engine import Dehazer
    from ..utils.fileio import atomic_write_png

    try:
        # "dcmpnet": the engine as the node and `dcmpnet infer` run it by default (haze-aware: clear frames
        # pass through); "network": the network on every frame (bypass_below=0), what the weights alone do.
        kw = engine_kwargs(args)
        net = Dehazer.from_checkpoint(args.weights, **kw)
        always = Dehazer.from_checkpoint(args.weights, bypass_below=0.0, **kw)
    except (WeightsNotFoundError, FileNotFoundError, ValueError, RuntimeError) as exc:
        raise CommandError(str(exc)) from None
    dcp = Dehazer(backend="dcp", bypass_below=0.0)
    photos = [p.strip() for p in args.photos.split(",") if p.strip()] if args.photos else None

    def run_engine(engine):
        def fn(hazy):
            r = engine(hazy, stream=None)          # benchmark images are independent, not a video
            return r.dehazed, r.depth
        return fn

    methods = {"dcp": run_engine(dcp), "network": run_engine(always), "dcmpnet": run_engine(net)}
    try:
        report, outputs = run_quality(methods, photos=photos,
                                      progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    except ValueError as exc:
        raise CommandError(f"--photos: {exc}") from None
    for name in report.missing:
        print(f"note: not installed, left out: {name}", file=sys.stderr)
    print(report.table())
    print()
    print(report.photo_table())
    print()
    ok_all = True
    for target, (ok, text) in report.check_targets("dcmpnet").items():
        ok_all &= ok
        print(f"  [{'met' if ok else 'NOT met'}] {target}: {text}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        report.write_csv(args.out / "quality.csv")
        names = [n for n in outputs if n.endswith(("_a0", "_none"))]
        grid = preview_grid(outputs, ["dcp", "network", "dcmpnet"], names)
        atomic_write_png(args.out / "quality_preview.png", grid)
        print(f"wrote {args.out / 'quality.csv'} and {args.out / 'quality_preview.png'} (rows: each photo clear, "
              "then light/medium/dense; columns: input | DCP | network | DCMPNet haze-aware | clear | their "
              "depths | measured depth)")
    return 0 if ok_all or not args.check else 1
