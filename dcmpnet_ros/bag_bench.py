"""Benchmark of ``dcmpnet bag``: how much of a replay's wall time is spent outside the engine.

Builds a rosbag2 from real photographs (scikit-image), replays it with :func:`dcmpnet_ros.replay.replay_bag` once per
engine and prints one table: frames, wall time, inference time, overhead (everything else: reading, decoding,
encoding, serialising, writing, the progress bar) and the overhead as a share of wall time, against the target of
at most 10 %. Engines: ``dcp`` (dark channel prior, no weights) and ``tiny`` (the tiny DCMPNet variant with random
weights, saved as a checkpoint and loaded the way ``dcmpnet bag --weights`` does); ``--weights CKPT`` adds a
real checkpoint. Run::

    python -m dcmpnet_ros.bag_bench --size 480x640 --frames 30 --engines dcp tiny
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from dcmpnet_core.checkpoints.builder import save_model
from dcmpnet_core.cli.common import parse_size
from dcmpnet_core.inference.engine import Dehazer
from dcmpnet_core.models.dcmpnet import DCMPNet

from .demo import SCENES, camera_info_msg, load_scene, write_camera_bag
from .replay import replay_bag

TARGET_OVERHEAD = 0.10


def build_bench_bag(path: Path, frames: int, height: int, width: int, storage: str = "sqlite3",
                    encoding: str = "bgr8") -> Path:
    """A rosbag2 with ``frames`` camera frames (real photos, ``encoding`` rgb8/bgr8) and a camera_info topic."""
    scenes = [load_scene(name, height, width)[0] for name in SCENES]
    images = [scenes[i % len(scenes)] for i in range(frames)]
    return write_camera_bag(path, images, storage=storage, encoding=encoding,
                            camera_info=lambda ts, hdr: camera_info_msg(ts, hdr, height, width))


def run_bench(engines: Sequence[str], frames: int, height: int, width: int, storage: str = "sqlite3",
              device: str = "cpu", weights: str | None = None, encoding: str = "bgr8",
              progress: bool = False) -> list[dict[str, Any]]:
    """One replay per engine of one generated bag; returns rows with the timings (seconds)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="dcmpnet_bag_bench_") as tmp:
        src = build_bench_bag(Path(tmp) / "input", frames, height, width, storage, encoding)
        for i, engine in enumerate(engines):
            if engine == "dcp":
                dehazer = Dehazer.from_checkpoint(None, backend="dcp", device=device, bypass_below=0.0)
            elif engine == "tiny":
                ckpt = Path(tmp) / "tiny.pt"
                save_model(DCMPNet("tiny"), ckpt)
                dehazer = Dehazer.from_checkpoint(ckpt, device=device, bypass_below=0.0)
            elif engine == "weights":
                dehazer = Dehazer.from_checkpoint(weights, device=device, bypass_below=0.0)
            else:
                raise ValueError(f"engines: expected dcp, tiny or weights, got {engine!r}")
            dehazer.warmup(height, width)      # first-call costs (allocations, kernel selection) are not replay cost
            summary = replay_bag(src, Path(tmp) / f"out{i}", dehazer, progress=progress)
            rows.append({"engine": engine, "frames": summary.frames_out, "wall_s": summary.wall_s,
                         "inference_s": summary.inference_s, "overhead_s": summary.overhead_s,
                         "read_decode_s": summary.read_decode_s, "encode_write_s": summary.encode_write_s,
                         "overhead_fraction": summary.overhead_fraction})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    head = (f"{'engine':<8} {'frames':>6} {'wall s':>8} {'infer s':>8} {'overhead s':>10} {'read+dec s':>10} "
            f"{'enc+write s':>11} {'overhead':>9} {'ms/frame':>9}  target <= {TARGET_OVERHEAD:.0%}")
    lines = [head]
    for r in rows:
        verdict = "ok" if r["overhead_fraction"] <= TARGET_OVERHEAD else "ABOVE TARGET"
        per = 1e3 * r["wall_s"] / max(1, r["frames"])
        lines.append(f"{r['engine']:<8} {r['frames']:>6} {r['wall_s']:>8.2f} {r['inference_s']:>8.2f} "
                     f"{r['overhead_s']:>10.3f} {r['read_decode_s']:>10.3f} {r['encode_write_s']:>11.3f} "
                     f"{r['overhead_fraction']:>9.1%} {per:>9.1f}  {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dcmpnet_ros.bag_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="480x640", help="frame size HxW (default: %(default)s)")
    p.add_argument("--frames", type=int, default=30, help="frames in the generated bag (default: %(default)s)")
    p.add_argument("--engines", nargs="+", default=["dcp", "tiny"], choices=["dcp", "tiny", "weights"],
                   help="engines to time (default: dcp tiny)")
    p.add_argument("--weights", default=None, help="checkpoint for the 'weights' engine")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: %(default)s)")
    p.add_argument("--storage", default="sqlite3", choices=["sqlite3", "mcap"])
    p.add_argument("--encoding", default="bgr8", choices=["rgb8", "bgr8"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)

    height, width = parse_size(args.size)
    if args.frames < 1:
        p.error("--frames must be at least 1")
    if "weights" in args.engines and not args.weights:
        p.error("the 'weights' engine needs --weights CKPT")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"dcmpnet bag benchmark: {args.frames} frames {height}x{width} {args.encoding}, {args.storage}, "
          f"device {args.device}", flush=True)
    rows = run_bench(args.engines, args.frames, height, width, args.storage, args.device, args.weights,
                     args.encoding, progress=sys.stderr.isatty())
    print(format_rows(rows))
    return 0 if all(r["overhead_fraction"] <= TARGET_OVERHEAD for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
