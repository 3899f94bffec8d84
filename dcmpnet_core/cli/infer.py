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
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..utils.decoding import (
    DEFAULT_MAX_INPUT_PIXELS,
    DecodeError,
    check_budget,
    decode_checked,
    file_bytes,
    header_size,
)
from ..utils.fileio import atomic_write_bytes
from ..utils.fileio import atomic_write_png as _write_png
from .haze_options import add_bypass_arguments, check_bypass_arguments

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
    p.add_argument("--max-input-pixels", type=int, default=DEFAULT_MAX_INPUT_PIXELS, metavar="N",
                   help="pixel budget: refuse any image or video whose header declares more than N pixels, before "
                        "decoding it (default: %(default)s)")
    p.add_argument("--scale", type=float, default=1.0, metavar="S",
                   help="run the network at S times the input resolution, 0 < S <= 1 (default: %(default)s)")
    p.add_argument("--mode", default="auto",
                   help="inference fast path: auto (= fast: every exact fast path) | eager | fast | compile | "
                        "cuda_graphs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="frames per forward pass; same-size frames are batched (default: %(default)s)")
    p.add_argument("--video-out", action="store_true",
                   help="for videos, write one dehazed video and one depth video instead of per-frame files")
    add_bypass_arguments(p)
    p.set_defaults(handler=run)


@dataclass
class _Job:
    path: Path
    kind: str          # "image" | "video"
    prefix: Path       # OUTDIR/.../<stem>; outputs append "_dehazed.png" etc.
    renamed: str = ""  # why the prefix is not the plain stem ("" when it is)


# --------------------------------------------------------------------------------- atomic writes
def _write_npy(path: Path, array) -> None:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------------------ discovery
def _collect(inputs: list[Path], outdir: Path, video_out: bool = False) -> tuple[list[_Job], list[str]]:
    """Jobs for every input with output names planned for the whole run, and the inputs that cannot be used."""
    found: list[tuple[Path, Path]] = []        # (input file, default output prefix)
    problems: list[str] = []
    out_resolved = outdir.resolve()
    for inp in inputs:
        if inp.is_dir():
            files = []
            for f in sorted(inp.rglob("*")):
                rel = f.relative_to(inp)
                if not f.is_file() or any(part.startswith(".") for part in rel.parts):
                    continue
                if f.suffix.lower() not in IMAGE_EXTS | VIDEO_EXTS:
                    continue
                if out_resolved == f.resolve().parent or out_resolved in f.resolve().parents:
                    continue                  # our own outputs from an earlier run
                files.append((f, outdir / rel.parent / f.stem))
            if not files:
                problems.append(f"{inp}: folder holds no image or video files")
            found += files
        elif inp.is_file():
            if inp.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS:
                found.append((inp, outdir / inp.stem))
            else:                             # the same rule as for folders (GIF, text, ...)
                problems.append(f"{inp}: unsupported file type {inp.suffix or '(no extension)'!r}; images: "
                                f"{' '.join(sorted(IMAGE_EXTS))}; videos: {' '.join(sorted(VIDEO_EXTS))}")
        else:
            problems.append(f"{inp}: no such file or folder")
    return _plan_outputs(found, video_out), problems


_IMAGE_OUTS = ("_dehazed.png", "_depth.npy", "_depth.png")
_VIDEO_OUTS = ("_dehazed.mp4", "_depth.mp4", "_dehazed.avi", "_depth.avi")


def _claim(name: str, kind: str, video_out: bool) -> tuple[re.Pattern, tuple[str, ...]]:
    """The file names a job with prefix ``name`` may write: a pattern, and the concrete names (none for frames)."""
    if kind == "video" and not video_out:           # <name>_<frame:06d>_dehazed.png, ...
        outs = "|".join(re.escape(o) for o in _IMAGE_OUTS)
        return re.compile(rf"{re.escape(name)}_\d{{6,}}(?:{outs})"), ()
    names = tuple(name + o for o in (_VIDEO_OUTS if kind == "video" else _IMAGE_OUTS))
    return re.compile("|".join(re.escape(n) for n in names)), names


def _plan_outputs(found: list[tuple[Path, Path]], video_out: bool) -> list[_Job]:
    """Give every input a prefix whose outputs collide with no input and no other job's outputs."""
    inputs: dict[Path, set[str]] = {}
    for path, _ in found:
        inputs.setdefault(path.resolve().parent, set()).add(path.name)
    claims: dict[Path, list[tuple[str, re.Pattern, tuple[str, ...]]]] = {}
    jobs = []
    for path, prefix in found:
        kind = "video" if path.suffix.lower() in VIDEO_EXTS else "image"
        folder = prefix.parent.resolve()
        taken = claims.setdefault(folder, [])
        name, n, why = prefix.name, 2, ""
        while True:
            pattern, names = _claim(name, kind, video_out)
            clash = next((f"input {f}" for f in sorted(inputs.get(folder, ())) if pattern.fullmatch(f)), "")
            clash = clash or next((f"the outputs of {other}" for other, pat, concrete in taken
                                   if other == name or any(pat.fullmatch(c) for c in names)
                                   or any(pattern.fullmatch(c) for c in concrete)), "")
            if not clash:
                break
            why = why or clash
            name, n = f"{prefix.name}_{n}", n + 1
        taken.append((name, pattern, names))
        jobs.append(_Job(path, kind, prefix.with_name(name), f"{prefix.name}_* would overwrite {why}" if why else ""))
    return jobs


_SAMPLE_TYPES = "8- or 16-bit unsigned integers, or float"


def _read_image(path: Path, max_pixels: int = DEFAULT_MAX_INPUT_PIXELS):
    """RGB (H,W,3) uint8, or float32 for 16-bit and float files; DecodeError naming what is wrong.

    The size comes from the header and is checked against ``max_pixels`` before anything is decoded.
    """
    import cv2

    width, height = header_size(path)
    check_budget(width, height, max_pixels, "its header")
    data = file_bytes(path)
    img = decode_checked(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None or img.size == 0:
        raise DecodeError("unreadable", "not a readable image (OpenCV could not decode it)")
    return _as_rgb(img)


def _as_rgb(img):
    """An OpenCV-decoded array (BGR order, any channel count and depth) -> RGB as the engine takes it."""
    import cv2
    import numpy as np

    if img.dtype == np.uint16:
        img = img.astype(np.float32) / 65535.0
    elif img.dtype.kind == "f":
        img = img.astype(np.float32)          # values outside [0, 1] are named by the engine
    elif img.dtype != np.uint8:
        raise DecodeError("unsupported", f"{img.dtype} samples are not supported (expected {_SAMPLE_TYPES})")
    channels = 1 if img.ndim == 2 else img.shape[2]
    code = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}.get(channels)
    if code is None:
        raise DecodeError("unsupported", f"{channels} channels are not supported (expected 1, 3 or 4)")
    return cv2.cvtColor(np.ascontiguousarray(img.reshape(img.shape[0], img.shape[1], channels)
                                             if channels == 1 else img), code)


# ------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    from . import CommandError

    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_bypass_arguments(args)
    if args.max_input_pixels < 256:
        raise CommandError(f"--max-input-pixels: expected an integer >= 256 (16x16), got {args.max_input_pixels}")
    if args.weights is not None and args.backend == "dcp":
        raise CommandError("--weights has no effect with --backend dcp (the dark channel prior uses no weights)")

    from ..checkpoints.bundled import WeightsNotFoundError
    from ..checkpoints.format import CheckpointError
    from ..inference.engine import Dehazer
    from ..models.config import ConfigError

    try:
        engine = Dehazer.from_checkpoint(args.weights, device=args.device, precision=args.precision,
                                         backend=args.backend, max_pixels=args.max_pixels,
                                         inference_scale=args.scale, mode=args.mode, bypass_below=args.bypass_below,
                                         bypass_band=args.bypass_band)
    except WeightsNotFoundError as exc:
        raise CommandError(str(exc)) from None
    except (FileNotFoundError, CheckpointError, ConfigError, ValueError, RuntimeError) as exc:
        raise CommandError(str(exc)) from None

    _check_output_folder(args.output)
    jobs, problems = _collect(list(args.inputs), args.output, args.video_out)
    runner = _Runner(engine, args.batch_size, args.video_out, args.max_input_pixels)
    runner.run(jobs)
    problems += runner.problems
    passed = sum(1 for row in runner.haze_rows if row[2] == 0.0)
    if runner.haze_rows:
        _write_haze_csv(args.output / "haze_levels.csv", runner.haze_rows)
    print(f"dcmpnet infer: {runner.images} image(s) and {runner.frames} video frame(s) -> {args.output} "
          f"({engine.backend} on {engine.device}; {passed} passed through undehazed, haze level below "
          f"{args.bypass_below:g})")
    for job in (j for j in jobs if j.renamed):
        print(f"  {job.path} -> {job.prefix}_* (renamed: {job.renamed})")
    if problems:
        print(f"dcmpnet infer: {len(problems)} input(s) could not be processed:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    return 0


def _write_haze_csv(path: Path, rows: list[tuple[str, float, float, str]]) -> None:
    import csv

    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["input", "haze_level", "weight", "mode"])
    out.writerows([name, f"{level:.4f}", f"{weight:.4f}", mode] for name, level, weight, mode in rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def _check_output_folder(outdir: Path) -> None:
    """Create OUTDIR and prove it writable, or CommandError (exit 2) naming the folder and the cause."""
    import tempfile

    from . import CommandError

    if outdir.exists() and not outdir.is_dir():
        raise CommandError(f"-o/--output: {outdir} exists and is not a folder")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".dcmpnet-write-test-", dir=outdir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CommandError(f"-o/--output: cannot write to {outdir}: {exc.strerror or exc}") from None


class _Runner:
    def __init__(self, engine, batch_size: int, video_out: bool, max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS):
        self.engine = engine
        self.batch_size = batch_size
        self.video_out = video_out
        self.max_input_pixels = max_input_pixels
        self.problems: list[str] = []
        self.haze_rows: list[tuple[str, float, float, str]] = []     # (input, haze level, weight, mode)
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
                try:
                    self._video(job, bar)
                except OSError as exc:        # the partial video output has been removed
                    self.problems.append(f"{job.path}: could not write outputs ({exc})")

    # ------------------------------------------------------------------------------- images
    def _images(self, chunk: list[_Job], bar) -> None:
        loaded = []
        for job in chunk:
            try:
                loaded.append((job, _read_image(job.path, self.max_input_pixels)))
            except DecodeError as exc:
                self.problems.append(f"{job.path}: {exc}")
                bar.update(1)
            except Exception as exc:     # noqa: BLE001 - whatever a decoder raises, the batch goes on
                self.problems.append(f"{job.path}: not a readable image ({type(exc).__name__}: {exc})")
                bar.update(1)
        for (job, img), result in self._dehaze([((job, img), str(job.path), img) for job, img in loaded], bar):
            try:
                self._save(job.prefix, result, sixteen_bit=img.dtype.kind == "f")
                self.images += 1
            except OSError as exc:
                self.problems.append(f"{job.path}: could not write outputs ({exc})")

    def _dehaze(self, items: list, bar, stream: object = None) -> Iterator:
        """Yield (tag, result) for each (tag, name, image) item; a frame the engine rejects is reported by name.

        ``stream``: None for independent images, a key for the frames of one video (pass-through state).
        """
        if not items:
            return
        try:
            results = self.engine.process_batch([img for _, _, img in items], stream=stream)
        except (ValueError, RuntimeError) as exc:
            if len(items) > 1:                     # find the bad one(s) frame by frame
                for item in items:
                    yield from self._dehaze([item], bar, stream)
                return
            bar.update(1)
            reason = _ENGINE_PREFIX.sub("", str(exc))    # the file name replaces the engine's "images[k]:"
            self.problems.append(f"{items[0][1]}: {reason}")
            return
        for (tag, name, _), result in zip(items, results):
            bar.update(1)
            self.haze_rows.append((name, result.haze_level, result.weight, result.mode))
            if result.output_faulty:             # NaN/Inf (zeroed) or constant output: written, but reported
                self.problems.append(f"{name}: faulty network output: {result.warnings[-1]}")
            yield tag, result

    def _save(self, prefix: Path, result, sixteen_bit: bool) -> None:
        import numpy as np

        from ..utils.visualize import depth_to_color

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
        try:
            if not cap.isOpened():
                raise DecodeError("unreadable", "not a readable video")
            size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            check_budget(*size, self.max_input_pixels, "its header")
        except DecodeError as exc:
            cap.release()
            self.problems.append(f"{job.path}: {exc}")
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
                    frame = self._next_frame(cap, job, n_read)
                    if frame is None:
                        break
                    batch.append((n_read, f"{job.path} frame {n_read}", frame))
                    n_read += 1
                if not batch:
                    break
                for index, result in self._dehaze(batch, bar, stream=str(job.path)):
                    if writer is not None:
                        writer.write(result)
                    else:
                        self._save(job.prefix.with_name(f"{job.prefix.name}_{index:06d}"), result, False)
                    done += 1
            if n_read == 0:
                self.problems.append(f"{job.path}: no frames could be decoded")
                bar.update(1)
            declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            # Containers that estimate their frame count may be off by a frame or two; a truncated file is not.
            if n_read and n_read + max(2, declared // 50) < declared:
                self.problems.append(f"{job.path}: only {n_read} of the {declared} frames its header declares could "
                                     f"be decoded (truncated or damaged file); those {n_read} were processed")
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
            self.engine.reset_stream(str(job.path))
        self.frames += done


    def _next_frame(self, cap, job: _Job, index: int):
        """The next frame as RGB, or None at the end; a frame over the pixel budget or undecodable ends the video."""
        import cv2

        try:
            ok, frame = cap.read()
            if not ok or frame is None:
                return None
            check_budget(frame.shape[1], frame.shape[0], self.max_input_pixels, f"frame {index}")
            return _as_rgb(frame)
        except (DecodeError, cv2.error) as exc:
            self.problems.append(f"{job.path}: frame {index}: {exc}; the video's later frames were not read")
            return None


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

        from ..utils.visualize import depth_to_color

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
