"""``dcmpnet eval``: PSNR/SSIM of a checkpoint on a dehazing dataset, per image and on average."""
from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from ..utils.fileio import atomic_write_text
from .common import CommandError, add_engine_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM of a checkpoint on a paired dehazing dataset",
                       description="Dehaze every image of a dataset split with a checkpoint and score it against "
                                   "the clear image: PSNR on the full image, SSIM as DehazeFormer evaluates it "
                                   "(average-pooled by max(1, round(min(H,W)/256)), gaussian window 11, sigma 1.5), "
                                   "RGB in [0, 1]. The hazy input's scores are reported as a baseline.")
    p.add_argument("--weights", required=True, type=Path, help="project checkpoint (dcmpnet train / dcmpnet convert)")
    p.add_argument("--data", required=True, type=Path, help="dataset root")
    p.add_argument("--split", default="test", help="split folder (default: %(default)s)")
    p.add_argument("--layout", default="auto", help="dataset layout (default: %(default)s, detected)")
    p.add_argument("--out", type=Path, help="write metrics.csv (per image) and summary.json here")
    p.add_argument("--save-images", action="store_true", help="also write the dehazed images to OUT/images")
    p.add_argument("--full-res-ssim", action="store_true", help="SSIM on the full-resolution images (no pooling)")
    p.add_argument("--max-images", type=int, help="evaluate only the first N images")
    add_engine_arguments(p, ["device"])
    p.add_argument("--engine", choices=["auto", "network"], default="auto",
                   help="auto: the inference engine that dcmpnet infer and the ROS node run (full resolution); "
                        "network: the plain network forward (default: %(default)s)")
    add_engine_arguments(p, ["precision"], helps={"precision": "engine precision (the network path is always fp32)"})
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.weights.is_file():
        raise CommandError(f"--weights {args.weights} does not exist")
    if not args.data.is_dir():
        raise CommandError(f"--data {args.data} is not a directory")
    if args.max_images is not None and args.max_images < 1:
        raise CommandError(f"--max-images must be >= 1, got {args.max_images}")

    # here, not at the top: `dcmpnet --help` must not import torch
    from ..checkpoints.builder import load_model
    from ..checkpoints.upstream import CheckpointError
    from ..data import build_dataset
    from ..inference.device import resolve_device

    try:
        dev = resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        raise CommandError(f"--device: {exc}") from None
    try:
        loaded = load_model(args.weights, map_location=dev)
    except (CheckpointError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    try:
        dataset = build_dataset(args.data, split=args.split, layout=args.layout, crop=None, augment=False,
                                depth="none")
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None

    records = _evaluate(loaded.model.to(dev), dataset, dev, args, loaded.refine)
    # here, not at the top: `dcmpnet --help` must not import torch
    from ..evaluation.metrics import MetricMeter

    meter = MetricMeter()
    for r in records:
        meter.update(**{k: v for k, v in r.items() if k != "name"})
    means = meter.means()
    print(f"{len(records)} images of {args.data} ({args.split}) with {args.weights.name}:")
    print(f"  dehazed  PSNR {means.get('psnr', float('nan')):.3f} dB  SSIM {means.get('ssim', float('nan')):.4f}")
    print(f"  hazy     PSNR {means.get('hazy_psnr', float('nan')):.3f} dB  "
          f"SSIM {means.get('hazy_ssim', float('nan')):.4f}  (input, for reference)")
    if args.out is not None:
        _write_outputs(args, records, means)
        print(f"per-image metrics: {args.out / 'metrics.csv'}")
    return 0


def _evaluate(model, dataset, dev, args: argparse.Namespace, refine: str) -> list[dict]:
    # here, not at the top: `dcmpnet --help` must not import torch
    from ..evaluation.metrics import evaluate_dataset

    save = None
    if args.save_images:
        if args.out is None:
            raise CommandError("--save-images needs --out DIR")
        # here, not at the top: `dcmpnet --help` must not import torch
        from ..utils.fileio import atomic_write_png
        from ..utils.visualize import to_uint8_rgb

        names: set[str] = set()

        def save_one(i, item, out):
            stem = Path(str(item.get("name", i))).stem
            name = stem if stem not in names else f"{stem}_{i}"
            names.add(name)
            atomic_write_png(args.out / "images" / f"{name}.png", to_uint8_rgb(out[0]))

        save = save_one

    n = len(dataset) if args.max_images is None else min(len(dataset), args.max_images)
    return evaluate_dataset(_dehaze_fn(model, dev, args, refine), dataset, range(n), dev,
                            full_res_ssim=args.full_res_ssim, progress=True, callback=save)


def _dehaze_fn(model, dev, args: argparse.Namespace, refine: str):
    """(1,3,H,W) in [-1, 1] -> dehazed (1,3,H,W): through the inference engine, or the plain network.

    ``refine`` is the engine's output refinement, as the checkpoint's metadata asks.
    """
    # here, not at the top: `dcmpnet --help` must not import torch
    import torch

    if args.engine == "network":
        if args.precision != "fp32":
            raise CommandError(f"--precision {args.precision} needs the inference engine (--engine auto)")
        return lambda x: model.dehaze_net(x).dehazed

    # the engine imports torch and OpenCV; the plain-network path needs neither
    from ..inference.engine import Dehazer

    engine = Dehazer(model, device=dev, precision=args.precision, bypass_below=0.0, refine=refine)

    def run(x):
        rgb = ((x[0].float().clamp(-1, 1) + 1.0) * 0.5).permute(1, 2, 0).cpu().numpy()
        out = engine(rgb).dehazed                       # float32 (H,W,3) in [0, 1], full resolution
        return torch.from_numpy(out).permute(2, 0, 1)[None].to(x.device) * 2.0 - 1.0

    return run


def _write_outputs(args: argparse.Namespace, records: list[dict], means: dict) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["name", "psnr", "ssim", "hazy_psnr", "hazy_ssim"])
    for r in records:
        w.writerow([r["name"], f"{r['psnr']:.4f}", f"{r['ssim']:.6f}", f"{r['hazy_psnr']:.4f}",
                    f"{r['hazy_ssim']:.6f}"])
    atomic_write_text(args.out / "metrics.csv", buf.getvalue())
    summary = {"weights": str(args.weights), "data": str(args.data), "split": args.split, "images": len(records),
               "ssim": "full resolution" if args.full_res_ssim else "dehazeformer (pooled by round(min(H,W)/256))",
               **{k: round(v, 6) for k, v in means.items()}}
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=2) + "\n")
