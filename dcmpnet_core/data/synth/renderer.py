"""The renderer: ray-cast a scene into a clear image with exact depth, then haze it (:func:`render_sample`).

Depth is exact per pixel (camera z-depth in metres, from the intersections in :mod:`.geometry`).
Textures are looked up in metres so that their scale follows perspective, with mip levels from
each pixel's footprint.  Lambert shading with sun and ambient light, cast shadows on the ground, a
tone curve, a little blur and noise finish the clear image.  Sky pixels get a finite far depth.

The haze is :func:`dcmpnet_core.data.haze.apply_haze` (the package's one scattering model) with
parameters drawn by :mod:`.haze_draw`, applied to the clear image as stored (8-bit) and the depth
as stored (float16), so that the stored triple obeys the model exactly.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from ..haze import HAZE_MODEL, apply_haze, transmission
from ..textures import Material, TextureLibrary, sample
from .geometry import GROUND, NEAR, OBJECT, SKY, Camera, box_corners
from .haze_draw import HazeDistribution, airlight_map, sample_haze
from .scenes import Scene, draw_family, photo_clear, photo_layout_depth, random_scene


def _shadow_mask(scene: Scene, cam: Camera) -> np.ndarray | None:
    """Ground shadows of shadow casters: each caster's convex hull projected along the sun onto y = 0."""
    L = np.asarray(scene.sun_dir, np.float64)
    if L[1] <= 0.05 or max(scene.sun_color) < 0.02:
        return None
    seen, groups = set(), []
    for p in scene.prims:
        if not p.casts_shadow:
            continue
        box = getattr(p, "box", None)
        key = id(box) if box is not None else id(p)
        if key in seen:
            continue
        seen.add(key)
        groups.append(p.corners() if box is None else box_corners(box))
    if not groups:
        return None
    sizes = [len(g) for g in groups]
    pts = np.concatenate(groups)
    ground = pts - np.outer(pts[:, 1] / L[1], L)
    # a convex set on the ground plane projects to a convex image region: hull in image space
    uv, z = cam.project(ground)
    mask = np.zeros((cam.height, cam.width), np.uint8)
    start = 0
    for n in sizes:
        zz, q = z[start:start + n], uv[start:start + n]
        start += n
        if np.any(zz <= NEAR) or np.abs(q).max() > 1e5:
            continue
        hull = cv2.convexHull(np.round(q * 4).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255, lineType=cv2.LINE_8, shift=2)
    return mask


def _sky_colors(scene: Scene, lib: TextureLibrary, dirs: np.ndarray) -> np.ndarray:
    sky = scene.sky
    dx, dy, dz = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    elev = np.arctan2(dy, np.sqrt(dx * dx + dz * dz))
    k = np.clip(elev / (np.pi / 2), 0, 1) ** 0.6
    col = np.asarray(sky.horizon, np.float32) * (1 - k)[:, None] + np.asarray(sky.zenith, np.float32) * k[:, None]
    if sky.cloud_cover > 0.02:
        up = dy > 0.02
        if up.any():
            hgt = 1000.0
            u = dx[up] / dy[up] * hgt
            v = dz[up] / dy[up] * hgt
            mat = Material(tex=sky.cloud_tex, mode="tile", texel=sky.cloud_scale / 256 * 4)
            fp = np.full(u.shape, sky.cloud_scale)  # far clouds: take a blurred level
            n = sample(lib, mat, u, v, fp * (hgt / np.maximum(dy[up], 0.02)) / 2000)[:, 0]
            thr = 1 - sky.cloud_cover
            a = np.clip((n - thr) / 0.25, 0, 1) * np.clip(elev[up] / 0.05, 0, 1)
            cc = np.asarray(sky.cloud_color, np.float32) * (0.85 + 0.15 * n[:, None])
            col[up] = col[up] * (1 - a[:, None]) + cc * a[:, None]
    return col


@dataclass
class Rendered:
    """A rendered clear image (H,W,3) float32 in [0, 1], z-depth (H,W) float32 metres, labels (H,W) uint8."""

    clear: np.ndarray
    depth: np.ndarray
    labels: np.ndarray
    sky_depth: float


def render(scene: Scene, lib: TextureLibrary | None = None) -> Rendered:
    """Ray-cast a scene: exact z-depth and shaded, textured colour for every pixel."""
    lib = lib or TextureLibrary.load()
    cam = scene.camera
    H, W = cam.height, cam.width
    D = cam.rays()
    C = np.asarray(cam.position, np.float64)
    zbuf = np.full((H, W), np.inf, np.float32)
    ids = np.full((H, W), -1, np.int32)
    boxes = []
    for k, p in enumerate(scene.prims):
        bb = p.bbox(cam)
        boxes.append(bb)
        if bb is None:
            continue
        y0, y1, x0, x1 = bb
        s = p.intersect(C, D[0, y0:y1, x0:x1], D[1, y0:y1, x0:x1], D[2, y0:y1, x0:x1])
        zb = zbuf[y0:y1, x0:x1]
        closer = s < zb
        np.copyto(zb, s, where=closer)
        ids[y0:y1, x0:x1][closer] = k
    n_pix = H * W
    clear = np.zeros((n_pix, 3), np.float32)
    labels = np.zeros(n_pix, np.uint8)
    f = np.float32(cam.focal)
    L = np.asarray(scene.sun_dir, np.float64)
    L = (L / np.linalg.norm(L)).astype(np.float32)
    amb = np.asarray(scene.ambient, np.float32)
    sun = np.asarray(scene.sun_color, np.float32)
    shadow = _shadow_mask(scene, cam)
    if shadow is not None:
        shadow = (cv2.GaussianBlur(shadow, (0, 0), 1.0).astype(np.float32) / 255.0).ravel()
    # group pixels by primitive once (stable counting sort) instead of masking per primitive
    flat_ids = ids.ravel()
    order = np.argsort(flat_ids, kind="stable")
    counts = np.bincount(flat_ids + 1, minlength=len(scene.prims) + 1)
    ends = np.cumsum(counts)
    zflat = zbuf.ravel()
    Dflat = D.reshape(3, -1)
    Cf = C.astype(np.float32)
    for k, p in enumerate(scene.prims):
        if counts[k + 1] == 0:
            continue
        idx = order[ends[k]:ends[k + 1]]
        s = zflat[idx]
        d = Dflat[:, idx].T
        pts = Cf + s[:, None] * d
        u, v, n = p.surface(pts, d)
        if n.ndim == 1:                              # a flat surface: one normal, turned toward the camera
            n0 = np.asarray(n, np.float32)
            if float(np.dot(C - p.center, n0)) < 0:
                n0 = -n0
            facing = d @ n0
            lam = np.full(s.shape, max(float(n0 @ L), 0.0), np.float32)
        else:
            n = np.asarray(n, np.float32)
            facing = np.einsum("ij,ij->i", n, d)
            lam = np.maximum(np.where(facing > 0, np.float32(-1), np.float32(1)) * (n @ L), 0)
        dn = np.sqrt(np.einsum("ij,ij->i", d, d))
        cosi = np.abs(facing) / dn
        footprint = s * dn / f / np.sqrt(np.maximum(cosi, 0.05))
        col = sample(lib, p.material, u, v, footprint)
        if shadow is not None and p.label == GROUND:
            lam = lam * (1.0 - shadow[idx])
        col *= amb + lam[:, None] * sun
        clear[idx] = col
        labels[idx] = p.label
    sky_idx = order[:ends[0]]
    finite = zflat[order[ends[0]:]]
    sky_depth = scene.sky_depth or max(50.0, 1.5 * float(finite.max()) if finite.size else 50.0)
    if sky_idx.size:
        if scene.sky is not None:
            clear[sky_idx] = _sky_colors(scene, lib, Dflat[:, sky_idx].T)
        else:
            clear[sky_idx] = 0.5
        zflat[sky_idx] = sky_depth
    clear = clear.reshape(H, W, 3)
    labels = labels.reshape(H, W)
    return Rendered(np.clip(clear, 0, 1), zbuf, labels, float(sky_depth))


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """Unit Gaussian noise (1024,1024,3) float32, made once per process from a fixed seed."""
    return np.random.default_rng(7).standard_normal((1024, 1024, 3), dtype=np.float32)


def _finish(rng: np.random.Generator, clear: np.ndarray) -> tuple[np.ndarray, dict]:
    """Camera-like finishing of the clear image: exposure/white balance, a little blur and noise."""
    gain = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3)
    gamma = float(rng.uniform(0.85, 1.3))           # tone curve: most photos are more contrasty than Lambert
    img = clear * gain.astype(np.float32)
    img = np.power(np.clip(img, 0, 1), np.float32(gamma), out=img)
    blur = float(rng.uniform(0.0, 0.6))
    if blur > 0.2:                                   # optics; also softens the ray-cast aliasing
        img = cv2.GaussianBlur(img, (0, 0), blur)
    noise = float(rng.uniform(0.0, 0.012))
    h, w = img.shape[:2]
    bank = _noise_bank()
    if noise > 0 and h <= bank.shape[0] and w <= bank.shape[1]:
        y, x = int(rng.integers(0, bank.shape[0] - h + 1)), int(rng.integers(0, bank.shape[1] - w + 1))
        img += bank[y:y + h, x:x + w] * np.float32(noise)
    elif noise > 0:
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
    return np.clip(img, 0, 1), {"blur_sigma": blur, "noise_sigma": noise, "gain": [float(g) for g in gain],
                                "gamma": gamma}


def render_sample(seed: int, index: int, height: int, width: int, beta_range: tuple | None = None,
                  family: str | None = None, lib: TextureLibrary | None = None,
                  distribution: HazeDistribution | None = None) -> dict:
    """One synthetic sample, fully determined by ``(seed, index)``.

    Returns ``{"hazy": (H,W,3) uint8 RGB, "clear": (H,W,3) uint8 RGB, "depth": (H,W) float16
    metres, "labels": (H,W) uint8, "meta": dict}``; ``hazy`` is exactly the scattering model
    applied to ``clear / 255`` and ``depth`` (then rounded to 8 bits).
    """
    rng = np.random.default_rng([int(seed), int(index)])
    if family is None:
        family = draw_family(rng)
    if family == "photo":
        return _photo_sample(rng, seed, index, height, width, beta_range, lib or TextureLibrary.load(), distribution)
    for _attempt in range(4):
        scene = random_scene(rng, height, width, family, lib)
        r = render(scene, lib)
        # an object right in front of the lens hides the scene: draw again (rarely needed)
        if float((r.depth < 0.6).mean()) < 0.35:
            break
    clear_f, finish = _finish(rng, r.clear)
    clear = np.round(clear_f * 255).astype(np.uint8)
    depth16 = r.depth.astype(np.float16)
    haze = sample_haze(rng, depth16.astype(np.float32), r.labels, beta_range, distribution)
    amap = airlight_map(haze["airlight"], haze["airlight_gradient"], height, width)
    hazy_f = apply_haze(clear.astype(np.float32) / np.float32(255), depth16.astype(np.float32), haze["beta"], amap)
    hazy = np.round(hazy_f * 255).astype(np.uint8)
    t = transmission(depth16[r.labels != SKY], haze["beta"], np.float64)
    cam = scene.camera
    meta = {
        "seed": [int(seed), int(index)], "scene": scene.family, "haze_model": HAZE_MODEL,
        **haze,
        "transmission_range": [float(t.min()), float(t.max())] if t.size else [0.0, 0.0],
        "depth": {"unit": "m", "kind": "z-depth", "dtype": "float16", "sky_depth": r.sky_depth,
                  "min": float(depth16.min()), "max": float(depth16.max())},
        "sky_fraction": float((r.labels == SKY).mean()),
        "camera": {"hfov_deg": cam.hfov_deg, "height_m": cam.position[1], "pitch_deg": cam.pitch_deg,
                   "roll_deg": cam.roll_deg, "yaw_deg": cam.yaw_deg, "focal_px": cam.focal},
        "textures": scene.textures, **finish,
    }
    return {"hazy": hazy, "clear": clear, "depth": depth16, "labels": r.labels, "meta": meta}


def _photo_sample(rng: np.random.Generator, seed: int, index: int, height: int, width: int,
                  beta_range: tuple | None, lib: TextureLibrary,
                  distribution: HazeDistribution | None = None) -> dict:
    """The "photo" family: a real photo hazed over :func:`_photo_layout_depth` (no DE-network target)."""
    clear_f, source = photo_clear(rng, lib, height, width)
    clear_f, finish = _finish(rng, clear_f)
    clear = np.round(clear_f * 255).astype(np.uint8)
    depth16 = photo_layout_depth(rng, clear_f).astype(np.float16)
    labels = np.full((height, width), OBJECT, np.uint8)
    haze = sample_haze(rng, depth16.astype(np.float32), labels, beta_range, distribution)
    amap = airlight_map(haze["airlight"], haze["airlight_gradient"], height, width)
    hazy_f = apply_haze(clear.astype(np.float32) / np.float32(255), depth16.astype(np.float32), haze["beta"], amap)
    hazy = np.round(hazy_f * 255).astype(np.uint8)
    t = transmission(depth16, haze["beta"], np.float64)
    meta = {
        "seed": [int(seed), int(index)], "scene": "photo", "haze_model": HAZE_MODEL,
        **haze,
        "transmission_range": [float(t.min()), float(t.max())],
        "depth": {"unit": "m", "kind": "haze layout (not the photo's depth)", "dtype": "float16",
                  "min": float(depth16.min()), "max": float(depth16.max())},
        # the haze depth does not describe the photo's content: no target for the DE network
        "depth_target": False,
        "sky_fraction": 0.0, "textures": [source], **finish,
    }
    return {"hazy": hazy, "clear": clear, "depth": depth16, "labels": labels, "meta": meta}
