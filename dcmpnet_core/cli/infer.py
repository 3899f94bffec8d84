"""``dcmpnet infer``: dehaze images, folders and videos into dehazed PNGs and relative depth maps.

Inputs: image files, video files, and folders, which are searched **recursively** for image
and video files (by extension; hidden files and anything inside OUTDIR are skipped).  Outputs go
to OUTDIR, named after the input's stem; a folder's sub-folders are mirrored under OUTDIR.
Per image: ``<stem>_dehazed.png`` (8-bit, or 16-bit for 16-bit input), ``<stem>_depth.npy``
(float32 H x W relative depth, larger = farther, max 1) and ``<stem>_depth.png`` (INFERNO
colour map, near = bright, far = dark).  Per video frame: the same with
``<stem>_<frame:06d>_`` names; with ``--video-out`` instead one ``<stem>_dehazed.mp4`` and one
colour-mapped ``<stem>_depth.mp4`` (MJPG ``.avi`` where the mp4v encoder is missing).

Every file is written to a temporary name and renamed, so an interrupted run leaves no
half-written output.  Inputs that cannot be read are reported by name after the others are
done, and the exit status is then 1.  Exit status 2: bad arguments or no weights.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..fileio import atomic_write_bytes
from ..fileio import atomic_write_png as _write_png

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm", ".jp2"}
_ENGINE_PREFIX = re.compile(r"^images?(\[\d+\])?: ")
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="dehaze images / folders / videos and estimate relative depth",
                       description=(__doc__ or "").partition("\n\n")[2],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files, video files or folders")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder")
    p.add_argument("--weights", type=Path, default=None,
                   help="DCMPNet checkpoint (default: the bundled weights, if installed)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: %(default)s)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "fp16", "bf16"], help="default: %(default)s")
    p.add_argument("--backend", default="dcmpnet", choices=["dcmpnet", "dcp"],
                   help="dcmpnet (needs weights) or dcp, the classical dark channel prior (default: %(default)s)")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help="run the network on at most N pixels per frame; the restoration is carried back to full "
                        "resolution with a local affine (guided) upsampling")
    p.add_argument("--scale", type=float, default=1.0, metavar="S",
                   help="run the network at S times the input resolution, 0 < S <= 1 (default: %(default)s)")
    p.add_argument("--mode", default="auto",
                   help="inference fast path: auto (= fast: every exact fast path) | eager | fast | compile | "
                        "cuda_graphs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="frames per forward pass; same-size frames are batched (default: %(default)s)")
    p.add_argument("--video-out", action="store_true",
                   help="for videos, write one dehazed video and one depth video instead of per-frame files")
    p.set_defaults(handler=run)


@dataclass
class _Job:
    path: Path
    kind: str          # "image" | "video"
    prefix: Path       # OUTDIR/.../<stem>; outputs append "_dehazed.png" etc.


# --------------------------------------------------------------------------------- atomic writes
def _write_npy(path: Path, array) -> None:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------------------ discovery
def _collect(inputs: list[Path], outdir: Path) -> tuple[list[_Job], list[str]]:
    jobs: list[_Job] = []
    problems: list[str] = []
    used: set[Path] = set()
    out_resolved = outdir.resolve()

    def add(path: Path, prefix: Path) -> None:
        kind = "video" if path.suffix.lower() in VIDEO_EXTS else "image"
        unique, n = prefix, 2
        while unique in used:                 # two inputs with one stem: keep both
            unique, n = prefix.with_name(f"{prefix.name}_{n}"), n + 1
        used.add(unique)
        jobs.append(_Job(path, kind, unique))

    for inp in inputs:
        if inp.is_dir():
            found = []
            for f in sorted(inp.rglob("*")):
                rel = f.relative_to(inp)
                if not f.is_file() or any(part.startswith(".") for part in rel.parts):
                    continue
                if f.suffix.lower() not in IMAGE_EXTS | VIDEO_EXTS:
                    continue
                if out_resolved == f.resolve().parent or out_resolved in f.resolve().parents:
                    continue                  # our own outputs from an earlier run
                found.append((f, rel))
            if not found:
                problems.append(f"{inp}: folder holds no image or video files")
            for f, rel in found:
                add(f, outdir / rel.parent / f.stem)
        elif inp.is_file():
            add(inp, outdir / inp.stem)
        else:
            problems.append(f"{inp}: no such file or folder")
    return jobs, problems


def _read_image(path: Path):
    """RGB (H,W,3) uint8, or float32 in [0, 1] for 16-bit files; None if unreadable."""
    import cv2
    import numpy as np

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        return None
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    if img.dtype != np.uint8:
        return img.astype(np.float32)
    return img


# ------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    from . import CommandError

    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.weights is not None and args.backend == "dcp":
        raise CommandError("--weights has no effect with --backend dcp (the dark channel prior uses no weights)")

    from ..checkpoint import CheckpointError
    from ..config import ConfigError
    from ..inference import Dehazer
    from ..weights import WeightsNotFoundError

    try:
        engine = Dehazer.from_checkpoint(args.weights, device=args.device, precision=args.precision,
                                         backend=args.backend, max_pixels=args.max_pixels,
                                         inference_scale=args.scale, mode=args.mode)
    except WeightsNotFoundError as exc:
        raise CommandError(str(exc)) from None
    except (FileNotFoundError, CheckpointError, ConfigError, ValueError, RuntimeError) as exc:
        raise CommandError(str(exc)) from None

    jobs, problems = _collect(list(args.inputs), args.output)
    args.output.mkdir(parents=True, exist_ok=True)
    runner = _Runner(engine, args.batch_size, args.video_out)
    runner.run(jobs)
    problems += runner.problems
    print(f"dcmpnet infer: {runner.images} image(s) and {runner.frames} video frame(s) -> {args.output} "
          f"({engine.backend} on {engine.device})")
    if problems:
        print(f"dcmpnet infer: {len(problems)} input(s) could not be processed:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    return 0


class _Runner:
    def __init__(self, engine, batch_size: int, video_out: bool) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.video_out = video_out
        self.problems: list[str] = []
        self.images = 0
        self.frames = 0

    def run(self, jobs: list[_Job]) -> None:
        from tqdm import tqdm

        total = sum(1 if j.kind == "image" else max(1, _frame_count(j.path)) for j in jobs)
        with tqdm(total=total, unit="frame", desc="dcmpnet infer", file=sys.stderr, dynamic_ncols=True) as bar:
            images = [j for j in jobs if j.kind == "image"]
            for start in range(0, len(images), self.batch_size):
                self._images(images[start:start + self.batch_size], bar)
            for job in (j for j in jobs if j.kind == "video"):
                self._video(job, bar)

    # ------------------------------------------------------------------------------- images
    def _images(self, chunk: list[_Job], bar) -> None:
        loaded = []
        for job in chunk:
            img = _read_image(job.path)
            if img is None:
                self.problems.append(f"{job.path}: not a readable image")
                bar.update(1)
            else:
                loaded.append((job, img))
        for (job, img), result in self._dehaze([((job, img), str(job.path), img) for job, img in loaded], bar):
            try:
                self._save(job.prefix, result, sixteen_bit=img.dtype.kind == "f")
                self.images += 1
            except OSError as exc:
                self.problems.append(f"{job.path}: could not write outputs ({exc})")

    def _dehaze(self, items: list, bar) -> Iterator:
        """Yield (tag, result) for each (tag, name, image) item; a frame the engine rejects is reported by name."""
        if not items:
            return
        try:
            results = self.engine.process_batch([img for _, _, img in items])
        except (ValueError, RuntimeError) as exc:
            if len(items) > 1:                     # find the bad one(s) frame by frame
                for item in items:
                    yield from self._dehaze([item], bar)
                return
            bar.update(1)
            reason = _ENGINE_PREFIX.sub("", str(exc))    # the file name replaces the engine's "images[k]:"
            self.problems.append(f"{items[0][1]}: {reason}")
            return
        for (tag, _, _), result in zip(items, results):
            bar.update(1)
            yield tag, result

    def _save(self, prefix: Path, result, sixteen_bit: bool) -> None:
        import numpy as np

        from ..visualize import depth_to_color

        dehazed = result.dehazed
        if dehazed.dtype != np.uint8:
            dehazed = np.round(np.clip(dehazed, 0, 1) * (65535.0 if sixteen_bit else 255.0))
            dehazed = dehazed.astype(np.uint16 if sixteen_bit else np.uint8)
        _write_png(prefix.with_name(prefix.name + "_dehazed.png"), dehazed)
        _write_npy(prefix.with_name(prefix.name + "_depth.npy"), result.depth.astype(np.float32))
        _write_png(prefix.with_name(prefix.name + "_depth.png"), depth_to_color(result.depth))

    # ------------------------------------------------------------------------------- videos
    def _video(self, job: _Job, bar) -> None:
        import cv2

        cap = cv2.VideoCapture(str(job.path))
        if not cap.isOpened():
            self.problems.append(f"{job.path}: not a readable video")
            bar.update(1)
            return
        fps = cap.get(cv2.CAP_PROP_FPS)
        writer = _VideoPair(job.prefix, fps if fps and fps > 0 else 25.0) if self.video_out else None
        n_read = 0
        done = 0
        try:
            while True:
                batch = []
                for _ in range(self.batch_size):
                    ok, frame = cap.read()
                    if not ok:
                        break
                    batch.append((n_read, f"{job.path} frame {n_read}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
                    n_read += 1
                if not batch:
                    break
                for index, result in self._dehaze(batch, bar):
                    if writer is not None:
                        writer.write(result)
                    else:
                        self._save(job.prefix.with_name(f"{job.prefix.name}_{index:06d}"), result, False)
                    done += 1
            if n_read == 0:
                self.problems.append(f"{job.path}: no frames could be decoded")
                bar.update(1)
            if writer is not None:
                if done:
                    writer.finish()
                else:
                    writer.abort()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            cap.release()
        self.frames += done


class _VideoPair:
    """A dehazed and a depth video written under temporary names, renamed by :meth:`finish`."""

    def __init__(self, prefix: Path, fps: float) -> None:
        self.prefix, self.fps = prefix, fps
        self.writers: list = []
        self.paths: list[tuple[Path, Path]] = []

    def _open(self, h: int, w: int) -> None:
        import cv2

        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        for ext, codec in ((".mp4", "mp4v"), (".avi", "MJPG")):
            pairs, writers = [], []
            for what in ("dehazed", "depth"):
                final = self.prefix.with_name(f"{self.prefix.name}_{what}{ext}")
                tmp = final.with_name(f".{final.stem}.{os.getpid()}.tmp{ext}")   # the extension picks the muxer
                wr = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), self.fps, (w, h))
                pairs.append((tmp, final))
                writers.append(wr)
            if all(wr.isOpened() for wr in writers):
                self.writers, self.paths = writers, pairs
                return
            for wr, (tmp, _) in zip(writers, pairs):
                wr.release()
                tmp.unlink(missing_ok=True)
        raise OSError(f"OpenCV cannot write video here (tried mp4v .mp4 and MJPG .avi) for {self.prefix.name}")

    def write(self, result) -> None:
        import numpy as np

        from ..visualize import depth_to_color

        dehazed = result.dehazed
        if not self.writers:
            self._open(*dehazed.shape[:2])
        if dehazed.dtype != np.uint8:
            dehazed = np.round(np.clip(dehazed, 0, 1) * 255).astype(np.uint8)
        self.writers[0].write(np.ascontiguousarray(dehazed[..., ::-1]))
        self.writers[1].write(np.ascontiguousarray(depth_to_color(result.depth)[..., ::-1]))

    def finish(self) -> None:
        for wr in self.writers:
            wr.release()
        for tmp, final in self.paths:
            os.replace(tmp, final)
        self.writers = []

    def abort(self) -> None:
        for wr in self.writers:
            wr.release()
        for tmp, _ in self.paths:
            tmp.unlink(missing_ok=True)
        self.writers = []


def _frame_count(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
