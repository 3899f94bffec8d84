"""Writing a dataset: samples rendered in worker processes, a progress bar, a manifest and a preview, atomically.

Output layout of :func:`write_dataset` (the loaders' ``synthetic`` layout)::

    OUT/synth.json                      manifest (format, size, seed, counts, haze settings)
    OUT/preview.png                     a few samples: hazy | clear | depth (the project's depth colour map)
    OUT/{train,test}/hazy/<stem>.png    8-bit RGB hazy image
    OUT/{train,test}/GT/<stem>.png      8-bit RGB clear image
    OUT/{train,test}/depth/<stem>.npy   (H,W) float16 z-depth in metres (sky at a finite far depth)
    OUT/{train,test}/meta/<stem>.json   beta, airlight, gradient, scene family, camera, textures

The output appears atomically: it is written into a hidden temporary folder beside ``OUT`` and
swapped in when complete (:func:`dcmpnet_core.utils.fileio.replace_dir`); an interruption removes
the temporary folder.  Sample ``i`` depends only on ``(seed, i)``, so the number of workers never
changes the output.  Workers are fresh (spawned) interpreters that import only this subpackage's
NumPy/OpenCV code, never torch.
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ...utils.fileio import replace_dir
from ...utils.visualize import depth_to_color
from . import scenes
from .errors import SynthError
from .haze_draw import AIRLIGHT_GREY, HazeDistribution
from .renderer import render_sample

FORMAT = "dcmpnet-synth"
FORMAT_VERSION = 1


def _write_one(args) -> str:
    out, split, stem, seed, index, h, w, beta_range, haze = args
    smp = render_sample(seed, index, h, w, beta_range, distribution=haze)
    base = Path(out) / split
    for sub, key in (("hazy", "hazy"), ("GT", "clear")):
        path = base / sub / f"{stem}.png"
        if not cv2.imwrite(str(path), cv2.cvtColor(smp[key], cv2.COLOR_RGB2BGR)):
            raise SynthError(f"cannot write {path}")
    np.save(base / "depth" / f"{stem}.npy", smp["depth"])
    with open(base / "meta" / f"{stem}.json", "w", encoding="utf-8") as fh:
        json.dump(smp["meta"], fh, indent=1)
    return stem


def _init_worker() -> None:
    cv2.setNumThreads(1)


def write_preview(root: Path, split: str, stems: list, path: Path) -> None:
    """A grid of samples (rows: hazy | clear | depth colour map) as a PNG."""
    rows = []
    for stem in stems:
        hz = cv2.imread(str(root / split / "hazy" / f"{stem}.png"))
        gt = cv2.imread(str(root / split / "GT" / f"{stem}.png"))
        # metric depth from 0.05 m to the far sky: a log stretch shows near and far structure alike
        dm = depth_to_color(np.load(root / split / "depth" / f"{stem}.npy"), log=True)[..., ::-1]
        rows.append(np.concatenate([hz, gt, dm], axis=1))
    if rows:
        cv2.imwrite(str(path), np.concatenate(rows, axis=0))


def write_dataset(out: str | Path, count: int, size: tuple[int, int], seed: int = 0, split_test: int = 0,
                  beta_range: tuple | None = None, workers: int = 1, overwrite: bool = False,
                  haze: HazeDistribution | None = None,
                  progress: bool = True, preview: int = 6) -> dict:
    """Generate ``count`` samples of ``size`` (H, W) into ``out`` (the ``synthetic`` layout), atomically.

    The last ``split_test`` samples go to ``test``, the rest to ``train``.  Sample ``i`` is
    determined by ``(seed, i)`` whatever ``workers`` is.  Returns the manifest written to
    ``out/synth.json``.
    """
    out = Path(out)
    h, w = (int(v) for v in size)
    if count < 1:
        raise SynthError(f"--count must be >= 1, got {count}")
    if h < 16 or w < 16 or h > 8192 or w > 8192:
        raise SynthError(f"--size must be between 16 and 8192 pixels per side, got {h} {w}")
    if not 0 <= split_test <= count:
        raise SynthError(f"--split-test must be between 0 and --count ({count}), got {split_test}")
    if beta_range is not None:
        a, b = (float(x) for x in beta_range)
        if not (0 < a <= b) or not math.isfinite(b):
            raise SynthError(f"--beta-range must be two numbers 0 < a <= b (per metre), got {a} {b}")
        beta_range = (a, b)
    if workers < 1:
        raise SynthError(f"--workers must be >= 1, got {workers}")
    if out.exists() and not overwrite:
        raise SynthError(f"{out} exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    n_train = count - split_test
    jobs = []
    for i in range(count):
        split = "train" if i < n_train else "test"
        jobs.append((str(tmp), split, f"{i:06d}", seed, i, h, w, beta_range, haze))
    t0 = time.time()
    try:
        for split, n in (("train", n_train), ("test", split_test)):
            if n:
                for sub in ("hazy", "GT", "depth", "meta"):
                    (tmp / split / sub).mkdir(parents=True)
        _run_jobs(jobs, workers, progress)
        manifest = {
            "format": FORMAT, "version": FORMAT_VERSION, "layout": "synthetic", "size": [h, w], "seed": seed,
            "count": {"train": n_train, "test": split_test},
            "beta_range": list(beta_range) if beta_range else None,
            "haze": ({"haze_free_fraction": (haze or HazeDistribution()).free_fraction,
                      "optical_depth_at_median_depth": list((haze or HazeDistribution()).optical_depth),
                      "airlight_grey": list(AIRLIGHT_GREY)}
                     if beta_range is None else "beta uniform in beta_range (per metre)"),
            "files": {"hazy": "<split>/hazy/<stem>.png", "clear": "<split>/GT/<stem>.png",
                      "depth": "<split>/depth/<stem>.npy (float16 z-depth in metres)",
                      "meta": "<split>/meta/<stem>.json"},
            "scene_families": dict(zip(scenes.SCENE_FAMILIES, scenes.SCENE_WEIGHTS)),
            "generator": "dcmpnet_core.data.synth", "seconds": round(time.time() - t0, 2),
        }
        with open(tmp / "synth.json", "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1)
        if preview:
            split = "train" if n_train else "test"
            first = 0 if n_train else n_train
            last = n_train if n_train else count
            write_preview(tmp, split, [f"{i:06d}" for i in range(first, min(last, first + preview))],
                          tmp / "preview.png")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _run_jobs(jobs: list, workers: int, progress: bool) -> None:
    bar = tqdm(total=len(jobs), desc="synth", unit="img", disable=not progress, mininterval=0.5)
    try:
        if workers == 1:
            for j in jobs:
                _write_one(j)
                bar.update(1)
        else:
            # spawn: fresh interpreters, so OpenCV's thread pool is never inherited across fork
            with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
                for _ in pool.imap_unordered(_write_one, jobs, chunksize=4):
                    bar.update(1)
    finally:
        bar.close()
