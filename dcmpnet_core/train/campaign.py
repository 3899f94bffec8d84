"""The default-weights campaign: a candidate replaces the bundled weights only when the benchmark says so.

Each round of the campaign fine-tunes the bundled weights (the ``default`` recipe,
``init_from: default``) for as long as a working session allows; :func:`promote` then scores the
candidate and the current bundled weights on the held-out real photos (:mod:`dcmpnet_core.evaluation.quality`,
same settings for both) and replaces the bundled file only when the candidate's PSNR is higher at
**every** haze density -- the network on every frame, what the weights themselves do -- and its
clear-frame fidelity (PSNR of the output against a clear input) is not lower, as users get it: the
engine with its default haze-aware pass-through.  The replacement is atomic; the bundled file keeps
a ``rounds`` list in its metadata (JSON text: date, steps, the benchmark means of each promoted
round; :func:`rounds_of`).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..checkpoints.builder import load_model, save_model
from ..evaluation.quality import HAZY_DENSITIES, QualityReport, run_quality
from ..inference.engine import Dehazer


@dataclass
class Verdict:
    """The comparison of a candidate with the current weights: ``better`` and one line per criterion."""

    better: bool
    lines: list[str] = field(default_factory=list)


def compare(candidate: QualityReport, current: QualityReport, network: str = "network",
            shipped: str = "dcmpnet") -> Verdict:
    """The network's PSNR higher at every haze density; the shipped engine's clear-frame PSNR not lower (ties pass)."""
    verdict = Verdict(True)
    for d in (*HAZY_DENSITIES, "none"):
        method = network if d != "none" else shipped
        new, old = candidate.mean(method, "psnr", d), current.mean(method, "psnr", d)
        ok = new > old if d != "none" else new >= old
        verdict.better &= ok
        label = f"{d} haze PSNR" if d != "none" else "clear-frame PSNR"
        verdict.lines.append(f"[{'better' if ok else 'NOT better'}] {label}: {new:.2f} dB (current {old:.2f} dB)")
    return verdict


def score(path: str | os.PathLike, photos=None, progress: Callable[[str], None] | None = None,
          pairs=None, refine: str = "auto") -> QualityReport:
    """The held-out benchmark of one checkpoint on the CPU (exact fast path).

    Two rows: ``network`` (the network on every frame) and ``dcmpnet`` (the engine as shipped:
    haze-aware pass-through, each image on its own); both with ``refine`` (``auto``: the
    checkpoint's own).  ``pairs`` replaces the held-out set (tests use a small one); ``photos``
    selects from it.
    """
    def method(engine: Dehazer) -> Callable:
        def fn(hazy):
            r = engine(hazy, stream=None)
            return r.dehazed, r.depth
        return fn

    kw = dict(device="cpu", mode="fast", refine=refine)
    engines = {"network": Dehazer.from_checkpoint(path, bypass_below=0.0, **kw),
               "dcmpnet": Dehazer.from_checkpoint(path, **kw)}
    return run_quality({k: method(e) for k, e in engines.items()}, pairs=pairs, photos=photos, progress=progress)[0]


def cpu_name() -> str:
    """The processor's model name (/proc/cpuinfo on Linux), for the round records."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def round_record(report: QualityReport, meta: dict, method: str = "network") -> dict:
    """What the bundled file remembers of a promoted round."""
    return {
        "date": datetime.date.today().isoformat(), "step": meta.get("step"), "host": cpu_name(),
        **{f"psnr_{d}": round(report.mean(method, "psnr", d), 3) for d in HAZY_DENSITIES},
        "psnr_none_shipped": round(report.mean("dcmpnet", "psnr", "none"), 3),
        "ssim_hazy": round(report.mean(method, "ssim"), 4),
        "depth_spearman_hazy": round(report.mean(method, "depth_spearman"), 4),
    }


def rounds_of(meta: dict) -> list[dict]:
    """The promoted rounds recorded in a checkpoint's metadata (oldest first; empty before the campaign)."""
    text = meta.get("rounds")
    return list(json.loads(text)) if text else []


def promote(candidate: str | os.PathLike, target: str | os.PathLike, photos=None, dry_run: bool = False,
            progress: Callable[[str], None] | None = None,
            pairs=None) -> tuple[Verdict, QualityReport, QualityReport]:
    """Score ``candidate`` and ``target``; if the candidate is better, atomically write it over ``target``.

    The written file holds the candidate's networks and config with the target's ``rounds`` history
    plus this round (:func:`round_record`).  A candidate that names no post-processing (``refine``
    in its metadata, as a fresh training run's checkpoint) is scored and written with the target's:
    the campaign keeps its post-processing unless a candidate says otherwise.  Returns the verdict
    and both reports.
    """
    loaded = load_model(candidate)
    model = loaded.model
    old_meta = dict(load_model(target).meta)
    meta = dict(loaded.meta)
    if "refine" not in meta and "refine" in old_meta:
        meta["refine"] = old_meta["refine"]
    cand_report = score(candidate, photos, progress, pairs, refine=meta.get("refine", "none"))
    cur_report = score(target, photos, progress, pairs)
    verdict = compare(cand_report, cur_report)
    if verdict.better and not dry_run:
        rounds = rounds_of(old_meta)
        if not rounds:                       # the first bundled weights, recorded as round 1
            rounds.append({"step": old_meta.get("step"), "note": "trained from scratch (README: round 1)"})
        meta["rounds"] = json.dumps(rounds + [round_record(cand_report, meta)])
        save_model(model, Path(target), meta=meta)
    return verdict, cand_report, cur_report
