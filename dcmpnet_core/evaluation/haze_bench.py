"""Measure the haze level and the pass-through: ``python -m dcmpnet_core.evaluation.haze_bench [--figure PNG]``.

Prints the figures of the README's "Haze-aware operation" section:

* haze level vs density: Spearman over synthetic sequences (the generator's scenes, clear -> dense) and over real
  photos hazed at increasing density (ground-plane depth 2-20 m); levels of clear real photos and of their light /
  medium / dense versions (transmission 0.8 / 0.5 / 0.25 at the median depth);
* latency at 640x480 of a clear frame passed through (with and without depth) against a full dehazing frame;
* a sequence whose haze ramps up across the threshold and back: mode switches, largest frame-to-frame change
  of mean output brightness at the switches, and whether hazy frames above the band equal the network's output;
* ``--figure``: that sequence drawn (haze level, smoothed level, network weight, mode) with OpenCV.

Real photos: scikit-image's, and OpenCV's samples where opencv-doc is installed.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from scipy.stats import spearmanr

from ..data.haze import apply_haze, apply_haze_uint8
from ..data.photos import motorcycle_scene
from ..data.synth import SKY, render_sample
from ..inference.engine import Dehazer
from ..inference.haze_level import DEFAULT_BYPASS_BAND, DEFAULT_BYPASS_BELOW, estimate_haze_level

OPENCV_SAMPLES = "/usr/share/doc/opencv-doc/examples/data"
OPENCV_CLEAR = ("leuvenA.jpg", "leuvenB.jpg", "building.jpg", "licenseplate_motion.jpg", "home.jpg", "stuff.jpg",
                "squirrel_cls.jpg", "messi5.jpg", "fruits.jpg", "baboon.jpg", "aloeL.jpg", "rubberwhale1.png",
                "basketball1.png", "graf1.png")
SKIMAGE_CLEAR = ("astronaut", "coffee", "chelsea", "rocket")
DENSITIES = {"light": 0.8, "medium": 0.5, "dense": 0.25}     # transmission at the median depth


def spearman(x, y) -> float:
    return float(spearmanr(x, y)[0])


def clear_photos() -> dict[str, np.ndarray]:
    """Name -> (H,W,3) uint8 RGB of the clear real photos available here."""
    photos = {n: getattr(skimage.data, n)()[..., :3] for n in SKIMAGE_CLEAR}
    photos["motorcycle"] = np.round(motorcycle_scene()[0] * 255).astype(np.uint8)
    cv2.samples.addSamplesDataSearchPath(OPENCV_SAMPLES)
    for name in OPENCV_CLEAR:
        path = cv2.samples.findFile(name, required=False)
        if path:
            photos[name] = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    return photos


def ground_plane_m(h: int, w: int) -> np.ndarray:
    return np.broadcast_to(np.linspace(20.0, 2.0, h, dtype=np.float32)[:, None], (h, w)).copy()


def hazed(rgb: np.ndarray, t_median: float, airlight=(0.85, 0.85, 0.85)) -> np.ndarray:
    depth = ground_plane_m(*rgb.shape[:2])
    beta = -np.log(t_median) / float(np.median(depth))
    return apply_haze_uint8(rgb, depth, beta, airlight)


def photo_table() -> None:
    photos = clear_photos()
    print(f"\n## Real photos ({len(photos)}): haze level, clear and hazed (t at median depth: "
          f"{', '.join(f'{k} {v}' for k, v in DENSITIES.items())})")
    rows, rhos = {k: [] for k in ("clear", *DENSITIES)}, []
    ramp = (1.0, 0.9, 0.8, 0.65, 0.5, 0.35, 0.25, 0.15)
    for name, rgb in photos.items():
        levels = {"clear": estimate_haze_level(rgb)}
        levels.update({k: estimate_haze_level(hazed(rgb, t)) for k, t in DENSITIES.items()})
        for k, v in levels.items():
            rows[k].append(v)
        rhos.append(spearman([-np.log(t) for t in ramp], [estimate_haze_level(hazed(rgb, t)) for t in ramp]))
        print(f"  {name:24s} " + "  ".join(f"{k} {v:.3f}" for k, v in levels.items()))
    for k, v in rows.items():
        above = sum(x >= DEFAULT_BYPASS_BELOW for x in v)
        print(f"  {k:7s} min {min(v):.3f}  median {statistics.median(v):.3f}  max {max(v):.3f}  "
              f"at or above bypass_below {DEFAULT_BYPASS_BELOW}: {above}/{len(v)}")
    print(f"  Spearman(level, density) per photo over {len(ramp)} densities: min {min(rhos):.3f}, "
          f"mean {statistics.mean(rhos):.3f}")


def synthetic_sequences(scenes: int = 12, size=(240, 320)) -> None:
    rhos, clear_levels = [], []
    t_steps = np.linspace(1.0, 0.15, 10)
    for i in range(scenes):
        s = render_sample(11, i, *size, beta_range=(0.0, 0.0))
        depth = s["depth"].astype(np.float32)
        med = float(np.median(depth[s["labels"] != SKY])) if (s["labels"] != SKY).any() else float(np.median(depth))
        airlight = np.asarray(s["meta"]["airlight"], np.float32)
        betas = [-np.log(t) / med for t in t_steps]
        levels = [estimate_haze_level(apply_haze(s["clear"].astype(np.float32) / 255, depth, b, airlight))
                  for b in betas]
        rhos.append(spearman(betas, levels))
        clear_levels.append(levels[0])
    print(f"\n## Synthetic sequences (dcmpnet synth scenes, {scenes} scenes x {len(t_steps)} densities, "
          f"t at median depth 1.0 -> 0.15): Spearman min {min(rhos):.3f}, mean {statistics.mean(rhos):.3f}; "
          f"clear renders' level median {statistics.median(clear_levels):.3f}")


def latency(weights: str | None, repeat: int = 7) -> None:
    rgb = cv2.resize(clear_photos().get("leuvenA.jpg", clear_photos()["astronaut"]), (640, 480),
                     interpolation=cv2.INTER_AREA)
    full = Dehazer.from_checkpoint(weights, device="cpu", bypass_below=0.0)
    aware = Dehazer.from_checkpoint(weights, device="cpu")
    light = Dehazer.from_checkpoint(weights, device="cpu", passthrough_depth=False)

    for engine in (full, aware, light):
        engine(rgb, stream=None)
    # Interleaved, so that a load change on a shared machine hits all three alike; ratios per round.
    rounds = [[engine(rgb, stream=None).latency_ms for engine in (full, aware, light)] for _ in range(repeat)]
    t_full, t_aware, t_light = (statistics.median(r[k] for r in rounds) for k in range(3))
    r_aware = statistics.median(r[0] / r[1] for r in rounds)
    r_light = statistics.median(r[0] / r[2] for r in rounds)
    out = aware(rgb, stream=None)
    print(f"\n## Latency, clear 640x480 frame (haze level {out.haze_level:.3f}, mode {out.mode}, output equals input: "
          f"{np.array_equal(out.dehazed, rgb)}), {repeat} interleaved rounds, medians")
    print(f"  full dehazing {t_full:.1f} ms; pass-through with depth {t_aware:.1f} ms (full / pass-through per round: "
          f"{r_aware:.1f}x); pass-through without depth {t_light:.2f} ms ({r_light:.0f}x)")
    level_ms = statistics.median(_time_ms(lambda: estimate_haze_level(rgb)) for _ in range(200))
    print(f"  estimate_haze_level alone: {level_ms:.2f} ms")


def _time_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def ramp_sequence(weights: str | None, size=(120, 160)) -> dict:
    """Haze ramping clear -> dense -> clear (with jitter) on one photo through the haze-aware engine."""
    photos = clear_photos()
    rgb = cv2.resize(photos.get("leuvenA.jpg", photos["astronaut"]), size[::-1], interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    t = np.concatenate([np.full(20, 1.0), np.linspace(1.0, 0.25, 50), np.full(20, 0.25), np.linspace(0.25, 1.0, 50),
                        np.full(20, 1.0)])
    frames = len(t)
    t = np.clip(t * (1 + rng.normal(0, 0.02, frames)), 0.05, 1.0)
    aware = Dehazer.from_checkpoint(weights, device="cpu")
    plain = Dehazer.from_checkpoint(weights, device="cpu", bypass_below=0.0)
    rec = {"level": [], "smoothed": [], "weight": [], "mean_out": [], "mean_in": [], "same_as_plain": []}
    for tm in t:
        frame = hazed(rgb, float(tm))
        r = aware(frame, stream="ramp")
        rec["level"].append(r.haze_level)
        rec["smoothed"].append(r.haze_smoothed)
        rec["weight"].append(r.weight)
        rec["mean_out"].append(float(r.dehazed.mean()) / 255)
        rec["mean_in"].append(float(frame.mean()) / 255)
        if r.weight == 1.0:
            rec["same_as_plain"].append(bool(np.array_equal(r.dehazed, plain(frame, stream=None).dehazed)))
    on = [w > 0 for w in rec["weight"]]
    switches = [i for i in range(1, frames) if on[i] != on[i - 1]]
    d_out = np.abs(np.diff(rec["mean_out"]))
    d_in = np.abs(np.diff(rec["mean_in"]))
    near = sorted({j for i in switches for j in range(max(0, i - 3), min(frames - 1, i + 3))})
    print(f"\n## Ramp: {frames} frames {size[1]}x{size[0]}, haze up across the threshold and back (2 crossings)")
    print(f"  mode switches (network on/off): {len(switches)} at frames {switches}")
    print(f"  largest frame-to-frame change of mean output brightness: within 3 frames of a switch "
          f"{100 * d_out[near].max() if near else 0:.2f} % of full scale, anywhere {100 * d_out.max():.2f} % "
          f"(input itself: {100 * d_in.max():.2f} %)")
    same = rec["same_as_plain"]
    print(f"  frames at weight 1 identical to the engine without pass-through: {sum(same)}/{len(same)}")
    return rec


def draw_figure(rec: dict, path: Path) -> None:
    """The ramp's levels, weight and mode as a PNG (OpenCV drawing; matplotlib is not a dependency)."""
    n = len(rec["level"])
    w, h, left, top, plot_h = 900, 360, 60, 40, 240
    img = np.full((h, w, 3), 255, np.uint8)
    x = lambda i: int(left + i * (w - left - 20) / (n - 1))      # noqa: E731
    y = lambda v: int(top + (1 - v) * plot_h)                    # noqa: E731
    colours = {"passthrough": (235, 245, 225), "blend": (210, 235, 250), "dehaze": (245, 225, 215)}
    for i, wt in enumerate(rec["weight"]):
        mode = "passthrough" if wt == 0 else "dehaze" if wt == 1 else "blend"
        cv2.rectangle(img, (x(i), top), (x(min(i + 1, n - 1)), top + plot_h), colours[mode], -1)
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        cv2.line(img, (left, y(v)), (w - 20, y(v)), (200, 200, 200), 1)
        cv2.putText(img, f"{v:.2f}", (8, y(v) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    for v in (DEFAULT_BYPASS_BELOW, DEFAULT_BYPASS_BELOW + DEFAULT_BYPASS_BAND):
        cv2.line(img, (left, y(v)), (w - 20, y(v)), (120, 120, 120), 1, cv2.LINE_AA)
    cv2.putText(img, "bypass_below + band", (w - 190, y(DEFAULT_BYPASS_BELOW + DEFAULT_BYPASS_BAND) - 5),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    cv2.putText(img, "bypass_below", (w - 190, y(DEFAULT_BYPASS_BELOW) + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (90, 90, 90), 1, cv2.LINE_AA)
    series = (("level", (200, 120, 40), 1), ("smoothed", (30, 30, 200), 2), ("weight", (40, 150, 40), 2))
    for key, colour, thick in series:
        pts = np.array([[x(i), y(v)] for i, v in enumerate(rec[key])], np.int32)
        cv2.polylines(img, [pts], False, colour, thick, cv2.LINE_AA)
    cv2.putText(img, "haze level, smoothed level and network weight over a sequence (frames)", (left, 24),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    legend = [("haze level (published)", (200, 120, 40)), ("smoothed level", (30, 30, 200)),
              ("network weight", (40, 150, 40)), ("pass-through", colours["passthrough"]),
              ("blend", colours["blend"]), ("dehaze", colours["dehaze"])]
    lx = left
    for text, colour in legend:
        cv2.rectangle(img, (lx, 305), (lx + 14, 319), colour, -1)
        cv2.rectangle(img, (lx, 305), (lx + 14, 319), (120, 120, 120), 1)
        cv2.putText(img, text, (lx + 18, 317), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        lx += 26 + int(cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.42, 1)[0][0])
    cv2.putText(img, f"frames 0..{n - 1}: haze ramps from clear to dense and back", (left, 345),
                cv2.FONT_HERSHEY_SIMPLEX, 0.42, (60, 60, 60), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    ap.add_argument("--weights", default=None, help="checkpoint (default: the bundled weights)")
    ap.add_argument("--figure", type=Path, default=None, help="write the ramp figure to this PNG")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--only-latency", action="store_true")
    args = ap.parse_args(argv)
    if args.only_latency:
        latency(args.weights)
        return 0
    photo_table()
    synthetic_sequences()
    if not args.skip_latency:
        latency(args.weights)
    rec = ramp_sequence(args.weights)
    if args.figure:
        draw_figure(rec, args.figure)
        print(f"\nfigure: {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
