"""Dehaze files in bulk: images, folders and videos into dehazed PNGs and relative depth maps (``dcmpnet infer``).

Inputs: image files, video files, and folders, which are searched **recursively** for image and video files (by
extension; hidden files and anything inside OUTDIR are skipped).  Outputs go to OUTDIR, named after the input's
stem; a folder's sub-folders are mirrored under OUTDIR.  Per image: ``<stem>_dehazed.png`` (8-bit, or 16-bit for
16-bit input), ``<stem>_depth.npy`` (float32 H x W relative depth, larger = farther, max 1) and ``<stem>_depth.png``
(INFERNO colour map, near = bright, far = dark).  Per video frame: the same with ``<stem>_<frame:06d>_`` names;
with ``video_out`` instead one ``<stem>_dehazed.mp4`` and one colour-mapped ``<stem>_depth.mp4`` (MJPG ``.avi``
where the mp4v encoder is missing).

Output names are planned for the whole run before anything is written (:func:`plan_outputs`): no output
overwrites an input or another output of the run; a job whose names would collide gets ``<stem>_2_...``
(:attr:`Job.renamed` says why).  Every file is written to a temporary name and renamed
(:mod:`dcmpnet_core.utils.fileio`), so an interrupted run leaves no half-written output.

Every input is checked against the pixel budget from its header before it is decoded
(:func:`dcmpnet_core.utils.decoding.read_image`).  Inputs that cannot be read or whose network output is not
finite are collected in :attr:`BatchReport.problems`, one line each, starting with the input's name; the run goes
on with the others.  ``haze_levels.csv`` in OUTDIR lists each input's haze level, weight of the network's output
(0 = passed through) and mode.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from tqdm import tqdm

from ..utils.decoding import DEFAULT_MAX_INPUT_PIXELS, DecodeError, check_budget, read_image, to_rgb
from ..utils.fileio import atomic_path, atomic_write_bytes, atomic_write_png
from ..utils.visualize import depth_to_color

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm", ".jp2"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


class BatchError(Exception):
    """The run cannot start (the output folder cannot be written); the message names the folder and the cause."""


@dataclass
class BatchReport:
    """What :func:`run_batch` did: outputs written, the inputs that failed (one line each) and the haze levels."""

    jobs: list
    images: int = 0
    frames: int = 0
    problems: list[str] = field(default_factory=list)
    haze_rows: list[tuple[str, float, float, str]] = field(default_factory=list)

    @property
    def passed(self) -> int:
        """Inputs and frames written unchanged (haze level below the engine's bypass_below)."""
        return sum(1 for row in self.haze_rows if row[2] == 0.0)


def run_batch(engine, inputs: list[Path], outdir: Path, batch_size: int = 1, video_out: bool = False,
              max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> BatchReport:
    """Dehaze ``inputs`` (files and folders) into ``outdir`` with ``engine`` (a Dehazer); see the module docstring.

    Raises :class:`BatchError` when ``outdir`` cannot be created or written; every other problem is reported in
    the returned :attr:`BatchReport.problems`.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    check_output_folder(outdir)
    jobs, problems = collect_jobs(list(inputs), outdir, video_out)
    runner = BatchRunner(engine, batch_size, video_out, max_input_pixels)
    runner.run(jobs)
    if runner.haze_rows:
        write_haze_csv(outdir / "haze_levels.csv", runner.haze_rows)
    return BatchReport(jobs, runner.images, runner.frames, problems + runner.problems, runner.haze_rows)


@dataclass
class Job:
    """One input file and the prefix its outputs are named with."""

    path: Path
    kind: str          # "image" | "video"
    prefix: Path       # OUTDIR/.../<stem>; outputs append "_dehazed.png" etc.
    renamed: str = ""  # why the prefix is not the plain stem ("" when it is)


def _write_npy(path: Path, array) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def collect_jobs(inputs: list[Path], outdir: Path, video_out: bool = False) -> tuple[list[Job], list[str]]:
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
    return plan_outputs(found, video_out), problems


_IMAGE_OUTS = ("_dehazed.png", "_depth.npy", "_depth.png")
_VIDEO_OUTS = ("_dehazed.mp4", "_depth.mp4", "_dehazed.avi", "_depth.avi")


def _claim(name: str, kind: str, video_out: bool) -> tuple[re.Pattern, tuple[str, ...]]:
    """The file names a job with prefix ``name`` may write: a pattern, and the concrete names (none for frames)."""
    if kind == "video" and not video_out:           # <name>_<frame:06d>_dehazed.png, ...
        outs = "|".join(re.escape(o) for o in _IMAGE_OUTS)
        return re.compile(rf"{re.escape(name)}_\d{{6,}}(?:{outs})"), ()
    names = tuple(name + o for o in (_VIDEO_OUTS if kind == "video" else _IMAGE_OUTS))
    return re.compile("|".join(re.escape(n) for n in names)), names


def plan_outputs(found: list[tuple[Path, Path]], video_out: bool) -> list[Job]:
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
        jobs.append(Job(path, kind, prefix.with_name(name), f"{prefix.name}_* would overwrite {why}" if why else ""))
    return jobs


def write_haze_csv(path: Path, rows: list[tuple[str, float, float, str]]) -> None:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["input", "haze_level", "weight", "mode"])
    out.writerows([name, f"{level:.4f}", f"{weight:.4f}", mode] for name, level, weight, mode in rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def check_output_folder(outdir: Path) -> None:
    """Create OUTDIR and prove it writable, or :class:`BatchError` naming the folder and the cause."""
    if outdir.exists() and not outdir.is_dir():
        raise BatchError(f"{outdir} exists and is not a folder")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".dcmpnet-write-test-", dir=outdir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BatchError(f"cannot write to {outdir}: {exc.strerror or exc}") from None


class BatchRunner:
    """Runs the jobs through the engine and writes their outputs; collects the problems by input name."""

    def __init__(self, engine, batch_size: int, video_out: bool, max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS):
        self.engine = engine
        self.batch_size = batch_size
        self.video_out = video_out
        self.max_input_pixels = max_input_pixels
        self.problems: list[str] = []
        self.haze_rows: list[tuple[str, float, float, str]] = []     # (input, haze level, weight, mode)
        self.images = 0
        self.frames = 0

    def run(self, jobs: list[Job]) -> None:
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
    def _images(self, chunk: list[Job], bar) -> None:
        loaded = []
        for job in chunk:
            try:
                loaded.append((job, read_image(job.path, self.max_input_pixels)))
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
            reason = getattr(exc, "detail", None) or str(exc)   # the file name replaces the engine's "images[k]:"
            self.problems.append(f"{items[0][1]}: {reason}")
            return
        for (tag, name, _), result in zip(items, results):
            bar.update(1)
            self.haze_rows.append((name, result.haze_level, result.weight, result.mode))
            if result.output_faulty:             # NaN/Inf (zeroed) or constant output: written, but reported
                self.problems.append(f"{name}: faulty network output: {result.warnings[-1]}")
            yield tag, result

    def _save(self, prefix: Path, result, sixteen_bit: bool) -> None:
        dehazed = result.dehazed
        if dehazed.dtype != np.uint8:
            dehazed = np.round(np.clip(dehazed, 0, 1) * (65535.0 if sixteen_bit else 255.0))
            dehazed = dehazed.astype(np.uint16 if sixteen_bit else np.uint8)
        atomic_write_png(prefix.with_name(prefix.name + "_dehazed.png"), dehazed)
        _write_npy(prefix.with_name(prefix.name + "_depth.npy"), result.depth.astype(np.float32))
        atomic_write_png(prefix.with_name(prefix.name + "_depth.png"), depth_to_color(result.depth))

    # ------------------------------------------------------------------------------- videos
    def _video(self, job: Job, bar) -> None:
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

    def _next_frame(self, cap, job: Job, index: int):
        """The next frame as RGB, or None at the end; a frame over the pixel budget or undecodable ends the video."""
        try:
            ok, frame = cap.read()
            if not ok or frame is None:
                return None
            check_budget(frame.shape[1], frame.shape[0], self.max_input_pixels, f"frame {index}")
            return to_rgb(frame)
        except (DecodeError, cv2.error) as exc:
            self.problems.append(f"{job.path}: frame {index}: {exc}; the video's later frames were not read")
            return None


class _VideoPair:
    """A dehazed and a depth video written under temporary names (:func:`atomic_path`), renamed by :meth:`finish`."""

    def __init__(self, prefix: Path, fps: float) -> None:
        self.prefix, self.fps = prefix, fps
        self.writers: list = []
        self.files = contextlib.ExitStack()

    def _open(self, h: int, w: int) -> None:
        for ext, codec in ((".mp4", "mp4v"), (".avi", "MJPG")):
            files = contextlib.ExitStack()
            # keep_suffix: the temporary file's extension picks OpenCV's muxer
            temps = [files.enter_context(atomic_path(self.prefix.with_name(f"{self.prefix.name}_{what}{ext}"),
                                                     keep_suffix=True)) for what in ("dehazed", "depth")]
            writers = [cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), self.fps, (w, h)) for tmp in temps]
            if all(wr.isOpened() for wr in writers):
                self.writers, self.files = writers, files
                return
            for wr in writers:
                wr.release()
            _discard(files)
        raise OSError(f"OpenCV cannot write video here (tried mp4v .mp4 and MJPG .avi) for {self.prefix.name}")

    def write(self, result) -> None:
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
        self.writers = []
        self.files.close()                  # renames both temporary files over their final names

    def abort(self) -> None:
        for wr in self.writers:
            wr.release()
        self.writers = []
        _discard(self.files)


def _discard(files: contextlib.ExitStack) -> None:
    """Leave the :func:`atomic_path` contexts of ``files`` as after an error: their temporary files are removed."""
    files.__exit__(OSError, OSError("discarded"), None)


def _frame_count(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()
