"""``dcmpnet demo``: the main job end to end on a fresh machine, with nothing to download.

1. Builds a small foggy camera recording from real photographs that ship with scikit-image (astronaut, coffee,
   chelsea, rocket, and the left view of stereo_motorcycle). Fog follows the atmospheric scattering model
   ``I = J t + A (1 - t)``, ``t = exp(-beta d)``: ``J`` the photo, ``A`` a light grey airlight, ``d`` relative
   depth. For stereo_motorcycle ``d`` comes from its real disparity map
   (:func:`dcmpnet_core.utils.depth_convention.disparity_to_depth`, holes filled from their neighbourhood); the other
   photos get a ground-plane depth (far at a horizon line, nearer towards the bottom). ``beta`` grows from frame to
   frame, as when driving into fog.
2. Writes it as a rosbag2 (``/camera/image_raw`` bgr8 at 10 Hz and ``/camera/camera_info``).
3. Replays it with :func:`dcmpnet_ros.replay.replay_bag`, the code behind ``dcmpnet bag``, using the bundled default
   weights, or the classical dark-channel-prior backend when none are installed (and says so).
4. Writes a preview per frame and a grid of all frames (hazy | dehazed | depth colour map | clean photo) and
   prints PSNR against the clean photos and where everything is.

Output directory (``--out``, default ``./dcmpnet_demo``)::

    foggy_bag/          the generated foggy rosbag2
    dehazed_bag/        the replay's output: the foggy topics plus /dehazed/image, /dehazed/depth,
                        /dehazed/camera_info
    preview/frame_NNN.png, preview_grid.png

The directory is replaced as a whole only when a run completes; a directory the demo did not create is never
overwritten.
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dcmpnet_core.cli.common import CommandError, add_engine_arguments, parse_size
from dcmpnet_core.data.haze import apply_haze_uint8
from dcmpnet_core.inference.options import BACKENDS
from dcmpnet_core.utils.fileio import replace_dir

DEFAULT_OUT = "dcmpnet_demo"
DEFAULT_SIZE = (240, 320)
SCENES = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle")
IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
FRAME_ID = "camera_optical_frame"
RATE_HZ = 10.0
START_NS = 1_700_000_000 * 10**9
AIRLIGHT = (0.86, 0.88, 0.90)            # light, slightly bluish grey, in [0, 1] RGB
BETA_RANGE = (1.2, 2.6)                  # scattering coefficient per unit of relative depth, first to last frame
HORIZON = 0.35                           # ground-plane depth: horizon row as a fraction of the height
NEAREST = 0.12                           # ground-plane depth at the bottom row (the horizon is at 1)
HFOV_DEG = 70.0
_MARKER = ".dcmpnet_demo"


# ------------------------------------------------------------------------------------------ scenes
def _center_crop(img: np.ndarray, aspect: float) -> np.ndarray:
    """Crop (H,W,...) to width/height = ``aspect`` around the centre."""
    h, w = img.shape[:2]
    if w / h > aspect:
        cw = int(round(h * aspect))
        x0 = (w - cw) // 2
        return img[:, x0:x0 + cw]
    ch = int(round(w / aspect))
    y0 = (h - ch) // 2
    return img[y0:y0 + ch]


def ground_plane_depth(height: int, width: int, horizon: float = HORIZON, nearest: float = NEAREST) -> np.ndarray:
    """(H,W) float32 relative depth of a flat ground seen by a level camera, in (0, 1].

    Below the horizon row depth falls as ``1 / (row - horizon)`` (perspective of a plane), reaching ``nearest`` at
    the bottom row; at and above the horizon everything is as far as the horizon (1.0).
    """
    y = (np.arange(height, dtype=np.float64) + 0.5) / height
    span = 1.0 - horizon
    below = np.maximum(y - horizon, nearest * span)
    column = np.minimum(nearest * span / below, 1.0)
    return np.repeat(column[:, None], width, axis=1).astype(np.float32)


def _fill_invalid(depth: np.ndarray, valid: np.ndarray, sigma: float = 15.0) -> np.ndarray:
    """Fill invalid pixels with a Gaussian-weighted mean of the valid ones around them (normalised convolution)."""
    # here, not at the top: `dcmpnet --help` imports this module and must stay light
    import cv2

    w = valid.astype(np.float64)
    num = cv2.GaussianBlur(np.where(valid, depth, 0.0), (0, 0), sigma)
    den = cv2.GaussianBlur(w, (0, 0), sigma)
    far = float(depth[valid].max()) if valid.any() else 1.0
    filled = np.where(den > 1e-6, num / np.maximum(den, 1e-6), far)
    return np.where(valid, depth, filled)


def load_scene(name: str, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A clean photo (H,W,3) uint8 RGB and its relative depth (H,W) float32 in (0, 1] (larger = farther)."""
    # here, not at the top: `dcmpnet --help` imports this module and must stay light
    import cv2
    from skimage import data

    from dcmpnet_core.utils.depth_convention import disparity_to_depth, normalize_depth

    aspect = width / height
    if name == "motorcycle":
        left, _, disparity = data.stereo_motorcycle()
        valid = np.isfinite(disparity) & (disparity > 0)
        depth = _fill_invalid(disparity_to_depth(disparity, valid).astype(np.float64), valid)
        rgb = _center_crop(left, aspect)
        depth = _center_crop(depth, aspect)
    elif name in SCENES:
        rgb = _center_crop(getattr(data, name)(), aspect)
        depth = None
    else:
        raise ValueError(f"scene must be one of {', '.join(SCENES)}, got {name!r}")
    rgb = cv2.resize(np.ascontiguousarray(rgb[..., :3]), (width, height), interpolation=cv2.INTER_AREA)
    if depth is None:
        depth = ground_plane_depth(height, width)
    else:
        depth = cv2.resize(np.ascontiguousarray(depth, dtype=np.float32), (width, height),
                           interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(rgb), normalize_depth(depth)


def add_haze(clean: np.ndarray, depth: np.ndarray, beta: float, airlight: Sequence[float] = AIRLIGHT) -> np.ndarray:
    """Foggy (H,W,3) uint8 from clean (H,W,3) uint8 RGB and depth (H,W): the package's scattering model."""
    return apply_haze_uint8(clean, depth, beta, airlight)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two (H,W,3) uint8 images (inf when equal): :func:`metrics.psnr`."""
    import torch  # here, not at the top: `dcmpnet demo --help` starts without torch

    from dcmpnet_core.evaluation.metrics import psnr as batch_psnr
    pair = (torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].double() for x in (a, b))
    return float(batch_psnr(*pair, data_range=255.0)[0])


# ---------------------------------------------------------------------------------------- bag writing
def camera_info_msg(ts: Any, header: Any, height: int, width: int, hfov_deg: float = HFOV_DEG) -> Any:
    """A plumb_bob sensor_msgs/CameraInfo (rosbags class of ``ts``) of an ideal pinhole camera."""
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return ts.types["sensor_msgs/msg/CameraInfo"](
        header=header, height=height, width=width, distortion_model="plumb_bob", d=np.zeros(5),
        k=np.array([f, 0, cx, 0, f, cy, 0, 0, 1], np.float64), r=np.eye(3).reshape(-1),
        p=np.array([f, 0, cx, 0, 0, f, cy, 0, 0, 0, 1, 0], np.float64), binning_x=0, binning_y=0, roi=roi)


def write_camera_bag(path: Path, images: Sequence[np.ndarray], storage: str = "sqlite3", encoding: str = "bgr8",
                     camera_info: Callable[[Any, Any], Any] | None = None, topic: str = IMAGE_TOPIC,
                     info_topic: str = CAMERA_INFO_TOPIC, rate_hz: float = RATE_HZ, start_ns: int = START_NS,
                     frame_id: str = FRAME_ID) -> Path:
    """Write (H,W,3) uint8 RGB ``images`` as a rosbag2 camera stream; header stamps equal the log times."""
    # optional: rosbags (the [bag] extra), and `dcmpnet --help` imports this module
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from .conversions import encode_image

    ts = get_typestore(Stores.ROS2_HUMBLE)
    Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    Image = ts.types["sensor_msgs/msg/Image"]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=8, storage_plugin=plugin) as writer:
        img_conn = writer.add_connection(topic, "sensor_msgs/msg/Image", typestore=ts)
        info_conn = writer.add_connection(info_topic, "sensor_msgs/msg/CameraInfo", typestore=ts) \
            if camera_info else None
        for i, rgb in enumerate(images):
            t = start_ns + int(round(i * 1e9 / rate_hz))
            header = Header(stamp=Time(sec=t // 10**9, nanosec=t % 10**9), frame_id=frame_id)
            writer.write(img_conn, t, ts.serialize_cdr(encode_image(Image, header, rgb, encoding),
                                                       "sensor_msgs/msg/Image"))
            if info_conn is not None:
                writer.write(info_conn, t, ts.serialize_cdr(camera_info(ts, header), "sensor_msgs/msg/CameraInfo"))
    return path


@dataclass
class DemoFrame:
    """One generated frame: the scene name, ``beta``, clean and foggy (H,W,3) uint8 RGB, true depth (H,W)."""

    scene: str
    beta: float
    clean: np.ndarray
    hazy: np.ndarray
    depth: np.ndarray


def make_frames(count: int, height: int, width: int) -> list[DemoFrame]:
    """``count`` foggy frames cycling through :data:`SCENES`, ``beta`` rising over :data:`BETA_RANGE`."""
    scenes = {name: load_scene(name, height, width) for name in SCENES[:count]}
    lo, hi = BETA_RANGE
    frames = []
    for i in range(count):
        name = SCENES[i % len(SCENES)]
        clean, depth = scenes[name]
        beta = lo if count == 1 else lo + (hi - lo) * i / (count - 1)
        frames.append(DemoFrame(name, beta, clean, add_haze(clean, depth, beta), depth))
    return frames


# -------------------------------------------------------------------------------------------- demo
def _panel_row(hazy: np.ndarray, dehazed: np.ndarray, depth: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """(H, 4W, 3) uint8 RGB: hazy | dehazed | depth colour map | clean photo, labelled."""
    # here, not at the top: `dcmpnet --help` imports this module and must stay light
    from dcmpnet_core.utils.visualize import draw_label, side_by_side

    ref = np.ascontiguousarray(clean.copy())
    draw_label(ref, "clean (reference)")
    return np.concatenate([side_by_side(hazy, dehazed, depth), ref], axis=1)


def _prepare_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / _MARKER).exists():
        raise FileExistsError(f"--out {out} exists, is not empty and was not made by dcmpnet demo; "
                              "choose another directory (nothing was changed)")


def choose_engine(weights: str | None, backend: str, device: str) -> tuple[Any, str]:
    """The Dehazer for the demo and a sentence saying which engine it is (and why)."""
    # here, not at the top: `dcmpnet --help` imports this module and must stay light
    from dcmpnet_core.checkpoints.bundled import default_weights_path, missing_weights_message
    from dcmpnet_core.inference.engine import Dehazer

    if backend == "dcp":
        if weights:
            raise ValueError("--weights and --backend dcp do not go together: the dark channel prior uses no weights")
        return Dehazer.from_checkpoint(None, backend="dcp", device=device), \
            "engine: classical dark channel prior (--backend dcp)"
    path = weights or default_weights_path()
    if path is None:
        if backend == "dcmpnet":
            raise FileNotFoundError(missing_weights_message())
        note = ("NOTE: no trained DCMPNet weights are installed, so this demo uses the classical dark-channel-prior "
                "backend instead (no network). To see DCMPNet, pass --weights CKPT. Details: "
                + missing_weights_message())
        return Dehazer.from_checkpoint(None, backend="dcp", device=device), note
    source = "given" if weights else "bundled default"
    return Dehazer.from_checkpoint(path, device=device), f"engine: DCMPNet, {source} weights {path}"


def run_demo(out: str | os.PathLike = DEFAULT_OUT, frames: int = len(SCENES), weights: str | None = None,
             backend: str = "auto", device: str = "auto", storage: str = "sqlite3",
             size: tuple[int, int] = DEFAULT_SIZE, progress: bool = True,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the foggy bag, replay it, write previews; returns paths, the replay summary and per-frame PSNR."""
    # here, not at the top: `dcmpnet --help` imports this module and must stay light
    import cv2

    from .replay import BagReplay, stop_on_signals

    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames: expected an integer >= 1, got {frames!r}")
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend: expected one of {', '.join(('auto', *BACKENDS))}, got {backend!r}")
    out = Path(out)
    _prepare_out_dir(out)
    dehazer, engine_note = choose_engine(weights, backend, device)
    log(engine_note)
    height, width = size
    t0 = time.perf_counter()
    demo_frames = make_frames(frames, height, width)
    log(f"built {frames} foggy frame(s) {height}x{width} from scikit-image photos "
        f"({', '.join(dict.fromkeys(f.scene for f in demo_frames))}), beta {demo_frames[0].beta:.2f} .. "
        f"{demo_frames[-1].beta:.2f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.dcmpnet-tmp-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        foggy = write_camera_bag(work / "foggy_bag", [f.hazy for f in demo_frames], storage=storage,
                                 camera_info=lambda ts, hdr: camera_info_msg(ts, hdr, height, width))
        (work / "preview").mkdir()
        rows: list[np.ndarray] = []
        scores: list[dict[str, Any]] = []

        def on_frame(ev: Any) -> None:
            f = demo_frames[ev.index]
            row = _panel_row(ev.rgb, ev.result.dehazed, ev.result.depth, f.clean)
            cv2.imwrite(str(work / "preview" / f"frame_{ev.index:03d}.png"), row[..., ::-1])
            rows.append(row)
            scores.append({"frame": ev.index, "scene": f.scene, "beta": f.beta,
                           "psnr_hazy": psnr(ev.rgb, f.clean), "psnr_dehazed": psnr(ev.result.dehazed, f.clean)})

        replay = BagReplay(foggy, work / "dehazed_bag", dehazer, image_topics=[IMAGE_TOPIC],
                           copy_all_topics=True, progress=progress, on_frame=on_frame)
        with stop_on_signals(replay):
            summary = replay.run()
        cv2.imwrite(str(work / "preview_grid.png"), np.concatenate(rows, axis=0)[..., ::-1])
        (work / _MARKER).write_text("made by dcmpnet demo; the whole directory is replaced by the next run\n")
        _replace_dir(work, out)
        summary.input_path, summary.output_path = out / "foggy_bag", out / "dehazed_bag"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"out": out, "foggy_bag": out / "foggy_bag", "dehazed_bag": out / "dehazed_bag",
            "previews": sorted((out / "preview").glob("frame_*.png")), "grid": out / "preview_grid.png",
            "summary": summary, "scores": scores, "engine": engine_note, "seconds": time.perf_counter() - t0}


def _replace_dir(built: Path, out: Path) -> None:
    if out.exists():
        _prepare_out_dir(out)              # re-check: nothing foreign appeared while the demo ran
    replace_dir(built, out)


# --------------------------------------------------------------------------------------------- CLI
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="build a foggy bag from built-in photos, dehaze it, write previews (no download)",
        description="The main job on built-in data: builds a small foggy rosbag2 from photographs that ship with "
                    "scikit-image (fog from the scattering model with real or ground-plane depth), replays it "
                    "through the same code as 'dcmpnet bag', and writes the dehazed bag and preview PNGs "
                    "(hazy | dehazed | depth | clean). Uses the bundled DCMPNet weights, or the dark-channel-prior "
                    "backend when none are installed.")
    p.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: ./%(default)s); replaced as a "
                   "whole by the next run; a directory not made by the demo is never touched")
    p.add_argument("--weights", default=None, help="DCMPNet checkpoint (default: the bundled weights if installed)")
    add_engine_arguments(p, ["backend"], defaults={"backend": "auto"}, choices={"backend": ("auto", *BACKENDS)},
                         helps={"backend": "auto: DCMPNet with weights if any, else dark channel prior"})
    p.add_argument("--frames", type=int, default=len(SCENES), help="frames in the foggy bag (default: %(default)s)")
    add_engine_arguments(p, ["device"])
    p.add_argument("--storage", default="sqlite3", choices=["sqlite3", "mcap"],
                   help="rosbag2 storage of both bags (default: %(default)s)")
    p.add_argument("--size", default=f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}",
                   help="frame size HxW (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    size = parse_size(args.size)
    if args.frames < 1:
        raise CommandError(f"--frames: expected an integer >= 1, got {args.frames}")
    if args.weights and not Path(args.weights).is_file():
        raise CommandError(f"--weights: no such checkpoint file: {args.weights}")
    try:
        res = run_demo(args.out, args.frames, args.weights, args.backend, args.device, args.storage, size,
                       progress=not args.no_progress, log=lambda s: print(s, flush=True))
    except (FileExistsError, FileNotFoundError, ValueError, RuntimeError) as exc:
        raise CommandError(str(exc)) from exc
    print(res["summary"].format())
    print(f"{'frame':>5}  {'scene':<10} {'beta':>5}  {'PSNR hazy':>9}  {'PSNR dehazed':>12}  (dB against the clean "
          "photo)")
    for s in res["scores"]:
        print(f"{s['frame']:>5}  {s['scene']:<10} {s['beta']:>5.2f}  {s['psnr_hazy']:>9.2f}  "
              f"{s['psnr_dehazed']:>12.2f}")
    out = res["out"]
    print(f"done in {res['seconds']:.1f} s. Everything is in {out.resolve()}:")
    print(f"  foggy input bag : {res['foggy_bag']}  (rosbag2 {args.storage}: {IMAGE_TOPIC}, {CAMERA_INFO_TOPIC})")
    print(f"  dehazed bag     : {res['dehazed_bag']}  (the foggy topics plus /dehazed/image, /dehazed/depth, "
          "/dehazed/camera_info)")
    if res["previews"]:
        print(f"  previews        : {res['previews'][0].parent}/frame_000.png .. {res['previews'][-1].name} "
              "(hazy | dehazed | depth, near=bright | clean)")
    print(f"  preview grid    : {res['grid']}")
    print(f"next: dcmpnet bag YOUR_BAG OUT_BAG --backend {'dcp' if 'dark' in res['engine'] else 'dcmpnet'}   "
          f"(or, with ROS 2: ros2 bag play {res['dehazed_bag']})")
    return 0


if __name__ == "__main__":
    # This module's own parser, through the core's runner: the demo never imports dcmpnet_ros.cli, which imports it.
    from dcmpnet_core.cli import run as run_cli

    sys.exit(run_cli(["demo", *sys.argv[1:]], extra=[sys.modules[__name__]]))
