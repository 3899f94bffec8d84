"""Quality on held-out real photographs: how the default weights are judged.

Two kinds of held-out real photos, none of them ever used for training (``test_quality.py``
checks that no training path can reach them):

* **Photos with measured depth**, hazed with the scattering model ``I = J t + A (1 - t)``,
  ``t = exp(-beta d)`` at light, medium and dense haze (transmission 0.8 / 0.5 / 0.25 at the
  median depth) and three airlights (:func:`dcmpnet_core.data.photos.photo_pairs`), and also
  scored without haze: scikit-image's Middlebury *Motorcycle* (always installed) and Middlebury
  *Aloe* from OpenCV's sample images (Debian/Ubuntu package ``opencv-doc``).
* **Clear real photos** (density ``none``), scored output-vs-input: a dehazer must leave a clear
  frame alone.  OpenCV's sample photos of streets, buildings, a car on a road, an indoor desk and
  a squirrel in leaves (:data:`CLEAR_PHOTOS`), plus the two depth photos above without haze.

Each method's output is scored against the clear photo with the field's metrics (PSNR on the full
image, SSIM as DehazeFormer's evaluation computes it; :mod:`dcmpnet_core.evaluation.metrics`) and its depth
by the Spearman rank correlation with the measured depth over pixels with ground truth.  Photos
whose package is not installed are left out and named (:attr:`QualityReport.missing`).
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np
import torch
from scipy.stats import spearmanr

from ..data.photos import (
    DEFAULT_AIRLIGHTS,
    aloe_scene,
    find_opencv_sample,
    motorcycle_scene,
    photo_pairs,
    read_rgb_float,
)
from ..utils.depth_convention import normalize_depth
from ..utils.fileio import atomic_write_text
from ..utils.visualize import depth_to_color
from .metrics import psnr, ssim

DENSITIES = ("none", "light", "medium", "dense")
HAZY_DENSITIES = DENSITIES[1:]
# OpenCV sample photos used as clear frames: (file, what it shows)
CLEAR_PHOTOS = (("leuvenA.jpg", "street"), ("building.jpg", "building"), ("licenseplate_motion.jpg", "car on a road"),
                ("home.jpg", "outdoor, blue sky"), ("stuff.jpg", "indoor desk"), ("squirrel_cls.jpg", "leaves"))
PHOTO_NAMES = ("motorcycle", "aloe") + tuple(f.rsplit(".", 1)[0] for f, _ in CLEAR_PHOTOS)
HELD_OUT_SOURCES = ("stereo_motorcycle",) + tuple(f for f, _ in CLEAR_PHOTOS) + ("aloeL.jpg", "aloeR.jpg", "aloeGT.png")
# The targets of the default weights (issue: "Default weights that help every real frame").
TARGETS = {"clear_psnr": 30.0, "clear_ssim": 0.95, "psnr_over_dcp_db": 3.0}


@dataclass
class EvalPair:
    """One benchmark input and its target.

    ``hazy``: the input (the clear photo itself for density ``none``); ``clear``: the target;
    ``depth``: relative (H,W) and ``valid`` mask, or None for photos without measured depth.
    """

    name: str
    photo: str
    density: str
    hazy: np.ndarray
    clear: np.ndarray
    depth: np.ndarray | None = None
    valid: np.ndarray | None = None


@dataclass
class Score:
    name: str
    photo: str
    density: str
    method: str
    psnr: float
    ssim: float
    depth_spearman: float


def _fmt(v: float, spec: str) -> str:
    return "inf" if math.isinf(v) else ("-" if math.isnan(v) else format(v, spec))


@dataclass
class QualityReport:
    scores: list[Score] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def methods(self) -> list[str]:
        return list(dict.fromkeys(s.method for s in self.scores))

    def photos(self) -> list[str]:
        return list(dict.fromkeys(s.photo for s in self.scores))

    def mean(self, method: str, key: str, density: str | Sequence[str] | None = None,
             photo: str | None = None) -> float:
        """Mean of one metric; ``density`` one name, several, or None (= the hazy densities)."""
        dens = HAZY_DENSITIES if density is None else ((density,) if isinstance(density, str) else tuple(density))
        vals = [getattr(s, key) for s in self.scores
                if s.method == method and s.density in dens and (photo is None or s.photo == photo)]
        vals = [v for v in vals if not math.isnan(v)]
        return float(np.mean(vals)) if vals else math.nan

    def table(self) -> str:
        """Per density: PSNR; over the hazy cases: PSNR, SSIM, depth rho; clear frames: PSNR, SSIM."""
        head = (f"{'method':<12}" + "".join(f"{'PSNR ' + d:>13}" for d in HAZY_DENSITIES)
                + f"{'hazy PSNR':>11}{'hazy SSIM':>11}{'depth rho':>11}{'clear PSNR':>12}{'clear SSIM':>12}")
        lines = [head, "-" * len(head)]
        for m in self.methods():
            lines.append(f"{m:<12}" + "".join(f"{_fmt(self.mean(m, 'psnr', d), '13.2f'):>13}" for d in HAZY_DENSITIES)
                         + f"{_fmt(self.mean(m, 'psnr'), '11.2f'):>11}{_fmt(self.mean(m, 'ssim'), '11.4f'):>11}"
                         + f"{_fmt(self.mean(m, 'depth_spearman'), '11.3f'):>11}"
                         + f"{_fmt(self.mean(m, 'psnr', 'none'), '12.2f'):>12}"
                         + f"{_fmt(self.mean(m, 'ssim', 'none'), '12.4f'):>12}")
        return "\n".join(lines)

    def photo_table(self) -> str:
        """Per photo and method: PSNR per density (clear photos: none only), SSIM and depth rho over its cases."""
        head = f"{'photo':<22}{'method':<12}" + "".join(f"{'PSNR ' + d:>13}" for d in DENSITIES) + \
            f"{'SSIM':>9}{'depth rho':>11}"
        lines = [head, "-" * len(head)]
        for p in self.photos():
            for m in self.methods():
                lines.append(f"{p:<22}{m:<12}"
                             + "".join(f"{_fmt(self.mean(m, 'psnr', d, p), '13.2f'):>13}" for d in DENSITIES)
                             + f"{_fmt(self.mean(m, 'ssim', DENSITIES, p), '9.4f'):>9}"
                             + f"{_fmt(self.mean(m, 'depth_spearman', DENSITIES, p), '11.3f'):>11}")
        return "\n".join(lines)

    def check_targets(self, method: str, baseline: str = "dcp", hazy: str = "hazy") -> dict[str, tuple[bool, str]]:
        """Each target -> (met, text with the measured value)."""
        out = {}
        cp, cs = self.mean(method, "psnr", "none"), self.mean(method, "ssim", "none")
        out[f"clear frames: PSNR >= {TARGETS['clear_psnr']:.0f} dB"] = (cp >= TARGETS["clear_psnr"],
                                                                       f"{_fmt(cp, '.2f')} dB")
        out[f"clear frames: SSIM >= {TARGETS['clear_ssim']}"] = (cs >= TARGETS["clear_ssim"], f"{_fmt(cs, '.4f')}")
        for d in HAZY_DENSITIES:
            mine = self.mean(method, "psnr", d)
            floor = max(self.mean(baseline, "psnr", d), self.mean(hazy, "psnr", d))
            out[f"{d} haze: PSNR >= {baseline}'s and the hazy input's"] = (
                mine >= floor, f"{mine:.2f} dB vs {floor:.2f} dB")
        gain = self.mean(method, "psnr") - self.mean(baseline, "psnr")
        out[f"hazy mean: PSNR >= {baseline} + {TARGETS['psnr_over_dcp_db']:.0f} dB"] = (
            gain >= TARGETS["psnr_over_dcp_db"], f"{gain:+.2f} dB over {baseline}")
        for key, label, spec in (("ssim", "SSIM", ".4f"), ("depth_spearman", "depth Spearman", ".3f")):
            mine, base = self.mean(method, key), self.mean(baseline, key)
            out[f"hazy mean: {label} >= {baseline}'s"] = (mine >= base, f"{mine:{spec}} vs {base:{spec}}")
        return out

    def write_csv(self, path) -> None:
        """One row per (image, method), written atomically."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["image", "photo", "density", "method", "psnr", "ssim", "depth_spearman"])
        for s in self.scores:
            w.writerow([s.name, s.photo, s.density, s.method, f"{s.psnr:.4f}", f"{s.ssim:.5f}",
                        f"{s.depth_spearman:.4f}"])
        atomic_write_text(path, buf.getvalue())


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).permute(2, 0, 1)[None]


def score_image(pred: np.ndarray, clear: np.ndarray) -> tuple[float, float]:
    """PSNR and SSIM of an (H,W,3) float RGB prediction in [0, 1] against the clear image."""
    p, c = _to_tensor(np.clip(pred, 0, 1)), _to_tensor(clear)
    return float(psnr(p, c)), float(ssim(p, c))


def depth_spearman(depth: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> float:
    """Spearman rank correlation between predicted and measured depth over ``valid`` pixels."""
    return float(spearmanr(np.asarray(depth)[valid].ravel(), np.asarray(truth)[valid].ravel()).correlation)


def depth_photo_pairs(name: str, rgb: np.ndarray, depth_m: np.ndarray, valid: np.ndarray,
                      airlights: Sequence = DEFAULT_AIRLIGHTS) -> list[EvalPair]:
    """One photo with measured depth: unhazed (none) and at light/medium/dense haze x each airlight."""
    rel = normalize_depth(depth_m)
    pairs = [EvalPair(f"{name}_none", name, "none", rgb, rgb, rel, valid)]
    for p in photo_pairs(rgb, depth_m=depth_m, valid=valid, name=name, airlights=airlights):
        density = HAZY_DENSITIES[int(p.name.rsplit("_b", 1)[1].split("_")[0])]
        pairs.append(EvalPair(p.name, name, density, p.hazy, p.clear, p.depth, p.valid))
    return pairs


def evaluation_pairs(missing: list[str] | None = None, photos: Sequence[str] | None = None) -> list[EvalPair]:
    """The held-out set (only ``photos`` when given); photos whose package is not installed go to ``missing``."""
    missing = missing if missing is not None else []
    wanted = set(photos) if photos is not None else None
    unknown = sorted(wanted - set(PHOTO_NAMES)) if wanted else []
    if unknown:
        raise ValueError(f"unknown photo(s) {', '.join(unknown)}; choose from {', '.join(PHOTO_NAMES)}")

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    pairs = []
    if want("motorcycle"):
        left, depth_m, _, valid = motorcycle_scene()
        pairs += depth_photo_pairs("motorcycle", left, depth_m, valid)
    aloe = aloe_scene() if want("aloe") else None
    if want("aloe") and aloe is None:
        missing.append("aloe (OpenCV samples: opencv-doc)")
    elif aloe is not None:
        pairs += depth_photo_pairs("aloe", aloe[0], aloe[1], aloe[3])
    for file, _what in CLEAR_PHOTOS:
        stem = file.rsplit(".", 1)[0]
        if not want(stem):
            continue
        path = find_opencv_sample(file)
        if path is None:
            missing.append(f"{file} (OpenCV samples: opencv-doc)")
            continue
        rgb = read_rgb_float(path)
        pairs.append(EvalPair(f"{stem}_none", stem, "none", rgb, rgb))
    return pairs


Method = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray | None]"]


def run_quality(methods: Mapping[str, Method], pairs: Sequence[EvalPair] | None = None,
                progress: Callable[[str], None] | None = None,
                photos: Sequence[str] | None = None) -> tuple[QualityReport, dict[str, dict]]:
    """Score every method on every pair; ``methods[name](hazy float (H,W,3) in [0,1]) -> (dehazed, depth|None)``.

    The input itself is scored as the method ``hazy``.  ``pairs`` default to the held-out set
    (:func:`evaluation_pairs`, ``photos`` selects some).  Returns the report and, per pair name,
    the outputs (for previews).
    """
    report = QualityReport()
    if pairs is None:
        pairs = evaluation_pairs(report.missing, photos)
    outputs: dict[str, dict] = {}
    for i, pair in enumerate(pairs):
        p, s = score_image(pair.hazy, pair.clear)
        report.scores.append(Score(pair.name, pair.photo, pair.density, "hazy", p, s, math.nan))
        outputs[pair.name] = {"hazy": pair.hazy, "clear": pair.clear, "depth_true": pair.depth}
        for name, fn in methods.items():
            if progress:
                progress(f"{pair.name} ({i + 1}/{len(pairs)}): {name}")
            dehazed, depth = fn(pair.hazy)
            p, s = score_image(dehazed, pair.clear)
            rho = (depth_spearman(depth, pair.depth, pair.valid)
                   if depth is not None and pair.depth is not None else math.nan)
            report.scores.append(Score(pair.name, pair.photo, pair.density, name, p, s, rho))
            outputs[pair.name][name] = (dehazed, depth)
    return report, outputs


def preview_grid(outputs: Mapping[str, dict], methods: Sequence[str], names: Sequence[str] | None = None,
                 width: int = 320) -> np.ndarray:
    """Rows of (hazy | each method | clear | each method's depth | measured depth), (H,W,3) uint8 RGB.

    A photo without measured depth gets a black tile in the last column.
    """
    names = list(names or outputs)
    rows = []
    for n in names:
        o = outputs[n]
        h, w = o["hazy"].shape[:2]
        size = (width, int(round(h * width / w)))
        tiles = [o["hazy"]] + [o[m][0] for m in methods] + [o["clear"]]
        tiles = [cv2.resize((np.clip(t, 0, 1) * 255).astype(np.uint8), size, interpolation=cv2.INTER_AREA)
                 for t in tiles]
        for m in methods:
            if o[m][1] is not None:
                tiles.append(cv2.resize(depth_to_color(o[m][1]), size, interpolation=cv2.INTER_AREA))
        truth = o["depth_true"]
        tiles.append(cv2.resize(depth_to_color(truth), size, interpolation=cv2.INTER_AREA) if truth is not None
                     else np.zeros((size[1], size[0], 3), np.uint8))
        rows.append(np.concatenate(tiles, axis=1))
    widest = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, widest - r.shape[1]), (0, 0))) for r in rows]
    return np.concatenate(rows, axis=0)
