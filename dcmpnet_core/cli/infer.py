"""``dcmpnet infer``: dehaze images, folders and videos into dehazed PNGs and relative depth maps.

Inputs: image files, video files, and folders, which are searched **recursively** for image
and video files (by extension; hidden files and anything inside OUTDIR are skipped).  Outputs go
to OUTDIR, named after the input's stem; a folder's sub-folders are mirrored under OUTDIR.
Per image: ``<stem>_dehazed.png`` (8-bit, or 16-bit for 16-bit input), ``<stem>_depth.npy``
(float32 H x W relative depth, larger = farther, max 1) and ``<stem>_depth.png`` (INFERNO
colour map, near = bright, far = dark).  Per video frame: the same with
``<stem>_<frame:06d>_`` names; with ``--video-out`` instead one ``<stem>_dehazed.mp4`` and one
colour-mapped ``<stem>_depth.mp4`` (MJPG ``.avi`` where the mp4v encoder is missing).

Output names are planned for the whole run before anything is written: no output overwrites an
input (inputs may lie in OUTDIR) or another output of the run (``clip.mp4``'s frame outputs and
``clip_000003.png``'s, say); a job whose names would collide gets ``<stem>_2_...``, and the summary
maps it back to its input.  Every file is written to a temporary name and renamed, so an
interrupted run leaves no half-written output.

Every input is checked against the pixel budget (``--max-input-pixels``, 40 MP by default) from
its header before it is decoded.  Inputs that cannot be read (unreadable, over the budget, corrupt
JPEG data, unsupported sample types, truncated videos) or whose network output is not finite are
reported by name after the others are done, and the exit status is then 1.  Exit status 2: bad
arguments, no weights, or an output folder that cannot be written.

Haze-aware: an image (or video frame; a video is one sequence) whose haze level is below ``--bypass-below``
is written unchanged, without running the dehazing network (its depth still comes from the depth network);
``--bypass-below 0`` dehazes everything.  ``haze_levels.csv`` in OUTDIR lists each input's haze level, weight
of the network's output (0 = passed through) and mode.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (
    CommandError,
    add_bypass_arguments,
    add_engine_arguments,
    add_input_budget_argument,
    check_bypass_arguments,
    check_input_budget,
    engine_kwargs,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="dehaze images / folders / videos and estimate relative depth",
                       description=(__doc__ or "").partition("\n\n")[2],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files, video files or folders")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder")
    p.add_argument("--weights", type=Path, default=None,
                   help="DCMPNet checkpoint (default: the bundled weights, if installed)")
    add_engine_arguments(p, ["device", "precision", "backend", "mode", "refine", "max_pixels", "inference_scale"])
    add_input_budget_argument(p, "refuse any image or video whose header declares more than N pixels, before "
                                 "decoding it")
    p.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="frames per forward pass; same-size frames are batched (default: %(default)s)")
    p.add_argument("--video-out", action="store_true",
                   help="for videos, write one dehazed video and one depth video instead of per-frame files")
    add_bypass_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_bypass_arguments(args)
    check_input_budget(args)
    if args.weights is not None and args.backend == "dcp":
        raise CommandError("--weights has no effect with --backend dcp (the dark channel prior uses no weights)")

    # here, not at the top: `dcmpnet --help` must not import torch
    from ..checkpoints.format import CheckpointError
    from ..inference.batch import BatchError, run_batch
    from ..inference.engine import Dehazer

    try:
        engine = Dehazer.from_checkpoint(args.weights, bypass_below=args.bypass_below, bypass_band=args.bypass_band,
                                         **engine_kwargs(args))
    except (FileNotFoundError, CheckpointError, ValueError, RuntimeError) as exc:   # no weights, no GPU, bad file
        raise CommandError(str(exc)) from None
    try:
        report = run_batch(engine, list(args.inputs), args.output, args.batch_size, args.video_out,
                           args.max_input_pixels)
    except BatchError as exc:
        raise CommandError(f"-o/--output: {exc}") from None
    print(f"dcmpnet infer: {report.images} image(s) and {report.frames} video frame(s) -> {args.output} "
          f"({engine.backend} on {engine.device}; {report.passed} passed through undehazed, haze level below "
          f"{args.bypass_below:g})")
    for job in (j for j in report.jobs if j.renamed):
        print(f"  {job.path} -> {job.prefix}_* (renamed: {job.renamed})")
    if report.problems:
        print(f"dcmpnet infer: {len(report.problems)} input(s) could not be processed:", file=sys.stderr)
        for problem in report.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0
