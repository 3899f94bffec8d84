"""Synthetic hazy scenes: procedural 3-D worlds textured with real photos, hazed with the scattering model.

Each sample is a ray-cast scene (a pinhole camera at a random height, pitch, roll and field of
view) built from analytic primitives: a ground plane receding to the horizon, walls and cuboids
(buildings, furniture, cars) standing on it, vertical cylinders (poles, trunks), ellipsoids (tree
crowns, rocks), billboards and framed pictures showing whole photographs, far ridges, and a sky
with perspective clouds (the families are listed below).

Depth is exact per pixel (camera z-depth in metres, from ray-plane and ray-quadric
intersections).  Textures are scikit-image's photos (never ``stereo_motorcycle``, the held-out
evaluation photo) and procedural ones, looked up in metres so that their scale follows
perspective, with mip levels from each pixel's footprint.  Lambert shading with sun and ambient
light, cast shadows on the ground, a tone curve, a little blur and noise finish the clear image.

Haze follows the atmospheric scattering model exactly: ``I = J * t + A * (1 - t)``,
``t = exp(-beta * d)``, with ``J`` the clear image as stored (8-bit), ``d`` the stored depth
(float16 metres) and ``A`` a per-image airlight (grey 0.6-1.0 with a bluish or yellowish tint,
optionally a mild linear gradient over the image: :func:`airlight_map`).

The haze density is continuous, from none to dense, because a camera sees every weather: by
default a fraction :data:`HAZE_FREE_FRACTION` (10 %) of the images is haze-free (``beta = 0``: the
hazy image *is* the clear one, so the network learns to leave a clear frame alone), and the rest
draws the optical depth at the median scene depth, ``tau = beta * d_median = -ln t_median``,
uniformly in :data:`OPTICAL_DEPTH_RANGE` (0.02-2.4: transmission 0.98 to 0.09 at the median
depth).  The ``density`` recorded in each sample's meta names the band the draw fell in: none
(``t_median`` 1), very light (> 0.9), light (0.55-0.9), medium (0.25-0.55) or dense (< 0.25).
``beta_range`` fixes a range of ``beta`` instead (density ``range``).

Six scene families, drawn with :data:`SCENE_WEIGHTS`: road (a car-mounted camera on a multi-lane
road in perspective: lane markings, vehicles in the lanes at every depth, roadside trees, poles and
buildings, a large sky: what a driving stack sees), street, open landscape, indoor room, close-up
clutter, collage, and ``photo`` (real photos hazed over an image-aligned layout depth).

Output layout of :func:`write_dataset` (the loaders' ``synthetic`` layout)::

    OUT/synth.json                      manifest (format, size, seed, counts, haze settings)
    OUT/preview.png                     a few samples: hazy | clear | depth (colour map)
    OUT/{train,test}/hazy/<stem>.png    8-bit RGB hazy image
    OUT/{train,test}/GT/<stem>.png      8-bit RGB clear image
    OUT/{train,test}/depth/<stem>.npy   (H,W) float16 z-depth in metres (sky at a finite far depth)
    OUT/{train,test}/meta/<stem>.json   beta, airlight, gradient, scene family, camera, textures

The output appears atomically: it is written into a hidden temporary folder beside ``OUT`` and
renamed when complete; an interruption removes the temporary folder.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..utils.fileio import replace_dir
from .haze import apply_haze
from .textures import PHOTO_SOURCES, Material, TextureLibrary, color_transform, sample

FORMAT = "dcmpnet-synth"
FORMAT_VERSION = 1
SCENE_FAMILIES = ("road", "street", "landscape", "indoor", "closeup", "collage", "photo")
SCENE_WEIGHTS = (0.2, 0.1, 0.1, 0.12, 0.1, 0.08, 0.3)
NEAR = 0.05
# haze density: a haze-free fraction, then the optical depth at the median (non-sky) depth,
# tau = beta * d_median = -ln(t_median), uniform in OPTICAL_DEPTH_RANGE
HAZE_FREE_FRACTION = 0.1
OPTICAL_DEPTH_RANGE = (0.02, 2.4)
# the bands that name a draw in the meta (lower bound of t_median for each; "dense" below 0.25)
HAZE_BANDS = (("none", 1.0), ("very light", 0.9), ("light", 0.55), ("medium", 0.25), ("dense", 0.0))
AIRLIGHT_GREY = (0.6, 1.0)


@dataclass(frozen=True)
class HazeDistribution:
    """How densities are drawn: a haze-free fraction, then tau = -ln(t_median) uniform in ``optical_depth``."""

    free_fraction: float = HAZE_FREE_FRACTION
    optical_depth: tuple = OPTICAL_DEPTH_RANGE

    def __post_init__(self) -> None:
        lo, hi = (float(x) for x in self.optical_depth)
        if not 0.0 <= self.free_fraction <= 1.0 or not 0.0 <= lo <= hi:
            raise SynthError(f"haze distribution: expected a haze-free fraction in [0, 1] and optical depths "
                             f"0 <= lo <= hi, got {self.free_fraction} and {self.optical_depth}")
# labels in the per-pixel class map returned by render()
SKY, GROUND, STRUCTURE, OBJECT, BACKDROP = 0, 1, 2, 3, 4


class SynthError(ValueError):
    """Bad generator arguments or an output folder that cannot be written."""


# --------------------------------------------------------------------------- camera
@dataclass
class Camera:
    """Pinhole camera; world axes X right, Y up, Z forward; image rows go down.

    ``rays()`` gives world directions scaled so that the camera-frame z component is 1: the ray
    parameter of a hit is then its z-depth.
    """

    height: int
    width: int
    hfov_deg: float = 60.0
    position: tuple = (0.0, 1.6, 0.0)
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    roll_deg: float = 0.0

    @property
    def focal(self) -> float:
        return 0.5 * self.width / math.tan(math.radians(self.hfov_deg) / 2)

    @functools.cached_property
    def rotation(self) -> np.ndarray:
        """World-from-camera rotation (camera x right, y down, z forward)."""
        y, p, r = (math.radians(v) for v in (self.yaw_deg, self.pitch_deg, self.roll_deg))
        ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
        rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
        rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
        return ry @ rx @ rz @ np.diag([1.0, -1.0, 1.0])

    def rays(self) -> np.ndarray:
        """(3,H,W) float32 world ray directions with camera z = 1."""
        f = self.focal
        xs = (np.arange(self.width, dtype=np.float64) - (self.width - 1) / 2) / f
        ys = (np.arange(self.height, dtype=np.float64) - (self.height - 1) / 2) / f
        r = self.rotation
        d = (r[:, 0, None, None] * xs[None, None, :] + r[:, 1, None, None] * ys[None, :, None]
             + r[:, 2, None, None])
        return d.astype(np.float32)

    def to_camera(self, pts: np.ndarray) -> np.ndarray:
        """World points (N,3) -> camera frame (N,3) (x right, y down, z forward)."""
        return (np.asarray(pts, np.float64) - np.asarray(self.position)) @ self.rotation

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N,3) -> pixel coordinates (N,2) (x, y) and camera z (N,)."""
        pc = self.to_camera(pts)
        z = pc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([pc[:, 0] / z * self.focal + (self.width - 1) / 2,
                           pc[:, 1] / z * self.focal + (self.height - 1) / 2], axis=1)
        return uv, z


# --------------------------------------------------------------------------- primitives
class Primitive:
    """A surface that rays can hit; subclasses give intersection, bounding box and surface frame."""

    label = OBJECT
    material: Material
    casts_shadow = False

    def bbox(self, cam: Camera) -> tuple[int, int, int, int] | None:
        """Screen rectangle (y0, y1, x0, x1) that holds all hits, or None when off screen.

        The primitive lies in the convex hull of its corners; that hull clipped to z >= NEAR has
        its vertices among the corners in front and the NEAR crossings of corner-to-corner segments.
        """
        pc = cam.to_camera(self.corners())
        z = pc[:, 2]
        front = z > NEAR
        if not front.any():
            return None
        if not front.all():
            i, j = np.nonzero(front[:, None] & ~front[None, :])
            w = ((NEAR * 1.001 - z[j]) / (z[i] - z[j]))[:, None]
            pc = np.concatenate([pc[front], pc[j] + w * (pc[i] - pc[j])])
        uv = pc[:, :2] / pc[:, 2:] * cam.focal + np.array([(cam.width - 1) / 2, (cam.height - 1) / 2])
        uv = np.clip(uv, -1e6, 1e6)
        x0, y0 = np.floor(uv.min(axis=0)).astype(int) - 1
        x1, y1 = np.ceil(uv.max(axis=0)).astype(int) + 2
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, cam.width), min(y1, cam.height)
        if x0 >= x1 or y0 >= y1:
            return None
        return int(y0), int(y1), int(x0), int(x1)

    def corners(self) -> np.ndarray:
        raise NotImplementedError

    def intersect(self, c: np.ndarray, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def surface(self, p: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For hit points (N,3) and ray directions (N,3): texture coords u, v (N,) metres, normals (N,3)."""
        raise NotImplementedError


class Quad(Primitive):
    """A rectangle ``center + u*U + v*V``, ``|u| <= a``, ``|v| <= b``; ``shape(u, v)`` can cut it further."""

    def __init__(self, center, u_axis, v_axis, a: float, b: float, material: Material, label: int = OBJECT,
                 shape=None, casts_shadow: bool = False) -> None:
        self.center = np.asarray(center, np.float64)
        u = np.asarray(u_axis, np.float64)
        v = np.asarray(v_axis, np.float64)
        self.U = u / math.sqrt(u @ u)
        self.V = v / math.sqrt(v @ v)
        (a0, a1, a2), (b0, b1, b2) = self.U, self.V
        self.N = np.array([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])
        self.a, self.b = float(a), float(b)
        if material.mode == "fit" and tuple(material.extent) != (self.a, self.b):
            material = dataclasses.replace(material, extent=(self.a, self.b))     # the photo spans this quad
        self.material, self.label, self.shape = material, label, shape
        self.casts_shadow = casts_shadow

    def corners(self) -> np.ndarray:
        a, b = self.a, self.b
        return np.array([self.center + su * a * self.U + sv * b * self.V for su in (-1, 1) for sv in (-1, 1)])

    def intersect(self, c, dx, dy, dz):
        n, o = self.N, self.center
        denom = dx * np.float32(n[0]) + dy * np.float32(n[1]) + dz * np.float32(n[2])
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.float32(np.dot(o - c, n)) / denom
        q = c - o
        u = np.float32(q @ self.U) + s * (dx * np.float32(self.U[0]) + dy * np.float32(self.U[1])
                                          + dz * np.float32(self.U[2]))
        v = np.float32(q @ self.V) + s * (dx * np.float32(self.V[0]) + dy * np.float32(self.V[1])
                                          + dz * np.float32(self.V[2]))
        hit = (s > NEAR) & (np.abs(u) <= self.a) & (np.abs(v) <= self.b)
        if self.shape is not None and hit.any():
            hit[hit] = self.shape(u[hit], v[hit])
        return np.where(hit, s, np.float32(np.inf))

    def surface(self, p, d):
        q = p - self.center.astype(np.float32)
        return q @ self.U.astype(np.float32), q @ self.V.astype(np.float32), self.N


class Ground(Quad):
    """The ground plane y = 0 out to ``far`` metres, textured top-down."""

    def __init__(self, material: Material, far: float, center_xz=(0.0, 0.0), y: float = 0.0) -> None:
        super().__init__((center_xz[0], y, center_xz[1]), (0, 0, 1), (1, 0, 0), far, far, material, GROUND)


class Cylinder(Primitive):
    """A vertical cylinder (pole, trunk, pillar) from y0 to y1."""

    def __init__(self, x: float, z: float, r: float, y0: float, y1: float, material: Material,
                 label: int = OBJECT) -> None:
        self.x, self.z, self.r, self.y0, self.y1 = float(x), float(z), float(r), float(y0), float(y1)
        self.material, self.label, self.casts_shadow = material, label, True

    def corners(self):
        r = self.r
        return np.array([(self.x + sx * r, y, self.z + sz * r) for sx in (-1, 1) for sz in (-1, 1)
                         for y in (self.y0, self.y1)])

    def intersect(self, c, dx, dy, dz):
        ox, oz = np.float32(c[0] - self.x), np.float32(c[2] - self.z)
        a = dx * dx + dz * dz
        b = 2 * (ox * dx + oz * dz)
        cc = np.float32(ox * ox + oz * oz - self.r * self.r)
        disc = b * b - 4 * a * cc
        with np.errstate(invalid="ignore", divide="ignore"):
            s = (-b - np.sqrt(disc)) / (2 * a)
        y = np.float32(c[1]) + s * dy
        hit = (disc >= 0) & (s > NEAR) & (y >= self.y0) & (y <= self.y1)
        return np.where(hit, s, np.float32(np.inf))

    def surface(self, p, d):
        nx, nz = (p[:, 0] - self.x) / self.r, (p[:, 2] - self.z) / self.r
        u = np.arctan2(nx, -nz) * self.r            # the texture seam faces away from the camera
        n = np.stack([nx, np.zeros_like(nx), nz], axis=1)
        return u, p[:, 1], n


class Ellipsoid(Primitive):
    """An axis-aligned ellipsoid (tree crown, bush, rock, ball)."""

    def __init__(self, center, radii, material: Material, label: int = OBJECT) -> None:
        self.center = np.asarray(center, np.float64)
        self.radii = np.asarray(radii, np.float64)
        self.material, self.label, self.casts_shadow = material, label, True

    def corners(self):
        return np.array([self.center + self.radii * np.array([sx, sy, sz])
                         for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])

    def intersect(self, c, dx, dy, dz):
        inv = (1.0 / self.radii).astype(np.float32)
        o = ((c - self.center) / self.radii).astype(np.float32)
        ex, ey, ez = dx * inv[0], dy * inv[1], dz * inv[2]
        a = ex * ex + ey * ey + ez * ez
        b = 2 * (o[0] * ex + o[1] * ey + o[2] * ez)
        cc = np.float32(o @ o - 1)
        disc = b * b - 4 * a * cc
        with np.errstate(invalid="ignore", divide="ignore"):
            s = (-b - np.sqrt(disc)) / (2 * a)
        return np.where((disc >= 0) & (s > NEAR), s, np.float32(np.inf))

    def surface(self, p, d):
        q = (p - self.center) / self.radii
        n = q / self.radii
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-9
        r = float(self.radii.mean())
        u = np.arctan2(q[:, 0], -q[:, 2]) * r       # the texture seam faces away from the camera
        v = np.arcsin(np.clip(q[:, 1], -1, 1)) * r
        return u, v, n


def box_faces(center_xz, size, yaw: float, materials, label: int = OBJECT, y0: float = 0.0,
              top_material: Material | None = None) -> list:
    """The six faces of a cuboid standing at height y0: size (w, h, d), yaw in radians.

    ``materials``: one Material for all sides or a list of 4 (front, right, back, left).
    """
    w, h, d = size
    cx, cz = center_xz
    cy = y0 + h / 2
    c, s = math.cos(yaw), math.sin(yaw)
    ex = np.array([c, 0, -s])     # local x (width)
    ez = np.array([s, 0, c])      # local z (depth)
    ey = np.array([0.0, 1.0, 0.0])
    centre = np.array([cx, cy, cz])
    mats = materials if isinstance(materials, (list, tuple)) else [materials] * 4
    faces = [
        Quad(centre - ez * d / 2, ex, ey, w / 2, h / 2, mats[0], label),     # front (toward -z)
        Quad(centre + ex * w / 2, ez, ey, d / 2, h / 2, mats[1], label),
        Quad(centre + ez * d / 2, -ex, ey, w / 2, h / 2, mats[2], label),
        Quad(centre - ex * w / 2, -ez, ey, d / 2, h / 2, mats[3], label),
        Quad(centre + ey * h / 2, ex, ez, w / 2, d / 2, top_material or mats[0], label),
        Quad(centre - ey * h / 2, ex, -ez, w / 2, d / 2, top_material or mats[0], label),
    ]
    for f in faces:
        f.casts_shadow = True
        f.box = (centre, w, h, d, ex, ez)
    return faces


# --------------------------------------------------------------------------- scenes
@dataclass
class Sky:
    horizon: tuple = (0.85, 0.88, 0.9)
    zenith: tuple = (0.45, 0.6, 0.85)
    cloud_cover: float = 0.3
    cloud_color: tuple = (0.95, 0.95, 0.95)
    cloud_tex: int = 0
    cloud_scale: float = 300.0


@dataclass
class Scene:
    """Everything :func:`render` needs: camera, primitives, lighting, sky, sky depth."""

    camera: Camera
    prims: list = field(default_factory=list)
    family: str = "custom"
    sun_dir: tuple = (0.3, 0.8, -0.4)
    sun_color: tuple = (0.6, 0.58, 0.52)
    ambient: tuple = (0.55, 0.57, 0.62)
    sky: Sky | None = field(default_factory=Sky)
    sky_depth: float | None = None            # None: 1.5 x farthest hit (at least 50 m)
    textures: list = field(default_factory=list)


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


class _Materials:
    """Random materials for the scene builders (tints, texture scales and colour jitter per surface)."""

    def __init__(self, rng: np.random.Generator, lib: TextureLibrary, used: list) -> None:
        self.rng, self.lib, self.used = rng, lib, used
        self.photos = lib.names("photo") + ["camera", "coins", "clock", "page"]

    def _mat(self, name: str, **kw) -> Material:
        self.used.append(name)
        return Material(tex=self.lib.index(name), **kw)

    def tile(self, name: str, texel: tuple, tint=None, **cjit) -> Material:
        rng = self.rng
        m, off = color_transform(rng, tint, **cjit)
        h, w = self.lib.textures[self.lib.index(name)].shape
        return self._mat(name, mode="tile", texel=float(np.exp(rng.uniform(*np.log(texel)))),
                         rot=float(rng.uniform(-0.3, 0.3)) if rng.random() < 0.3 else 0.0,
                         origin=(float(rng.uniform(0, w)), float(rng.uniform(0, h))), color=m, offset=off)

    def photo(self, aspect: float, name: str | None = None) -> tuple[Material, float]:
        """A whole-photo (or large crop) material for a surface of width/height ``aspect``; returns the crop aspect."""
        rng = self.rng
        name = name or _pick(rng, self.photos)
        h, w = self.lib.textures[self.lib.index(name)].shape
        frac = rng.uniform(0.45, 1.0)
        cw = w * frac
        ch = min(h, cw / max(aspect, 1e-3))
        cw = ch * aspect if ch < cw / aspect else cw
        x0, y0 = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
        tint = None
        if PHOTO_SOURCES.get(name) == "grey":
            tint = rng.uniform(0.6, 1.0, 3)
        m, off = color_transform(rng, tint, hue=0.08, sat=(0.8, 1.2), gain=(0.8, 1.1))
        return self._mat(name, mode="fit", crop=(x0, y0, cw, ch), color=m, offset=off), cw / ch

    def photo_tile(self, texel=(0.003, 0.02)) -> Material:
        return self.tile(_pick(self.rng, self.photos), texel)

    def ground(self, kind: str | None = None) -> Material:
        rng = self.rng
        kind = kind or _pick(rng, ["grass", "gravel", "asphalt", "paving", "soil", "dry"])
        if kind == "grass":
            return self.tile(_pick(rng, ["grass", "foliage", "noise2"]), (0.004, 0.015),
                             tint=rng.uniform([0.25, 0.4, 0.1], [0.45, 0.62, 0.25]))
        if kind == "gravel":
            return self.tile("gravel", (0.002, 0.006), tint=rng.uniform(0.55, 0.85) * rng.uniform(0.9, 1.1, 3))
        if kind == "asphalt":
            return self.tile(_pick(rng, ["gravel", "noise3", "moon"]), (0.002, 0.01),
                             tint=rng.uniform(0.3, 0.5) * rng.uniform(0.95, 1.05, 3), contrast=(0.5, 0.9))
        if kind == "paving":
            return self.tile(_pick(rng, ["brick", "tiles"]), (0.002, 0.006),
                             tint=rng.uniform([0.5, 0.45, 0.4], [0.85, 0.75, 0.7]))
        if kind == "dry":
            return self.tile(_pick(rng, ["grass", "noise1"]), (0.004, 0.015),
                             tint=rng.uniform([0.55, 0.45, 0.25], [0.8, 0.7, 0.45]))
        return self.tile(_pick(rng, ["moon", "noise1", "gravel"]), (0.003, 0.02),
                         tint=rng.uniform([0.4, 0.3, 0.2], [0.65, 0.5, 0.38]))

    def wall(self) -> Material:
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            return self.tile("brick", (0.004, 0.009), tint=rng.uniform([0.55, 0.3, 0.2], [0.85, 0.5, 0.4]))
        if r < 0.45:
            return self.tile(_pick(rng, ["noise0", "noise1", "cell"]), (0.01, 0.04),
                             tint=rng.uniform(0.55, 0.95, 3), contrast=(0.3, 0.7))
        if r < 0.65:
            return self.tile(_pick(rng, ["facade0", "facade1"]), (0.008, 0.014))
        if r < 0.75:
            return self.photo_tile((0.004, 0.02))
        if r < 0.85:
            return self.photo(self.rng.uniform(0.8, 2.0))[0]       # a mural
        return self.tile(_pick(rng, ["stripes", "tiles", "wood", "text", "page"]), (0.004, 0.015),
                         tint=rng.uniform(0.45, 1.0, 3))

    def paint(self) -> Material:
        """A mostly uniform coloured surface with a little texture (cars, furniture, boxes)."""
        rng = self.rng
        tint = rng.uniform(0.05, 1.0, 3)
        tint = tint / max(tint.max(), 1e-3) * rng.uniform(0.25, 0.95)
        return self.tile(_pick(rng, ["noise0", "noise2", "noise3", "wood", "stripes", "tiles"]), (0.002, 0.02),
                         tint=tint, contrast=(0.3, 0.9))

    def obj(self) -> Material:
        r = self.rng.random()
        if r < 0.3:
            return self.paint()
        if r < 0.6:
            return self.photo_tile((0.0007, 0.004))
        if r < 0.85:
            return self.photo(self.rng.uniform(0.6, 1.6))[0]       # a whole photo per face (print, poster)
        return self.wall()

    def foliage(self) -> Material:
        rng = self.rng
        return self.tile(_pick(rng, ["foliage", "grass", "noise3"]), (0.003, 0.01),
                         tint=rng.uniform([0.15, 0.3, 0.08], [0.4, 0.55, 0.2]), contrast=(1.0, 1.4))

    def bark(self) -> Material:
        rng = self.rng
        return self.tile(_pick(rng, ["wood", "gravel", "noise1"]), (0.002, 0.006),
                         tint=rng.uniform([0.25, 0.18, 0.1], [0.45, 0.35, 0.25]))


def _camera(rng, h, w, height, pitch, hfov=(50, 80), roll=2.0, yaw=12.0, x=0.0, z=0.0) -> Camera:
    return Camera(h, w, hfov_deg=float(rng.uniform(*hfov)), position=(x, float(rng.uniform(*height)), z),
                  yaw_deg=float(rng.uniform(-yaw, yaw)), pitch_deg=float(rng.uniform(*pitch)),
                  roll_deg=float(rng.uniform(-roll, roll)))


def _sky(rng, mats: _Materials) -> Sky:
    overcast = rng.random() < 0.45
    if overcast:
        g = rng.uniform(0.65, 0.92)
        hz = np.clip(g + rng.uniform(-0.03, 0.03, 3), 0, 1)
        zen = np.clip(hz - rng.uniform(0.0, 0.12) + np.array([0, 0.01, 0.03]), 0, 1)
    else:
        hz = rng.uniform([0.75, 0.8, 0.85], [0.95, 0.95, 1.0])
        zen = rng.uniform([0.25, 0.4, 0.65], [0.55, 0.65, 0.95])
    cloud = mats.lib.index(_pick(rng, ["noise0", "noise1", "noise2"]))
    return Sky(tuple(hz), tuple(zen), cloud_cover=float(rng.uniform(0.0, 0.8)),
               cloud_color=tuple(np.clip(rng.uniform(0.8, 1.0) + rng.uniform(-0.03, 0.03, 3), 0, 1)),
               cloud_tex=cloud, cloud_scale=float(rng.uniform(150, 600)))


def _sun(rng, indoor=False):
    if indoor:
        el = math.radians(rng.uniform(55, 85))
    else:
        el = math.radians(rng.uniform(12, 70))
    az = rng.uniform(0, 2 * math.pi)
    d = (math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az))
    overcast = rng.random() < 0.4
    strength = rng.uniform(0.05, 0.3) if overcast else rng.uniform(0.35, 0.9)
    warm = rng.uniform([1.0, 0.92, 0.8], [1.05, 1.0, 0.95])
    amb = rng.uniform(0.55, 0.85) if overcast else rng.uniform(0.3, 0.7)
    amb = amb * rng.uniform([0.95, 0.97, 1.0], [1.0, 1.0, 1.08])
    return d, tuple(strength * warm), tuple(amb)


def _photo_board(mats: _Materials, x, z, width, yaw, y0=0.0, label=OBJECT, name=None) -> list:
    """A billboard on posts showing a whole photograph."""
    rng = mats.rng
    mat, aspect = mats.photo(rng.uniform(0.7, 1.8), name)
    h = width / aspect
    c, s = math.cos(yaw), math.sin(yaw)
    ex = np.array([c, 0, -s])
    centre = np.array([x, y0 + h / 2, z])
    prims = [Quad(centre, ex, (0, 1, 0), width / 2, h / 2, mat, label, casts_shadow=True)]
    prims[0].box = (centre, width, h, 0.05, ex, np.array([s, 0, c]))
    if y0 > 0.2:
        post = mats.bark() if rng.random() < 0.5 else mats.paint()
        for side in (-1, 1):
            px = x + side * 0.4 * width * c
            pz = z - side * 0.4 * width * s + 0.03
            prims.append(Cylinder(px, pz, 0.05 + 0.01 * width, 0.0, y0, post))
    return prims


def _tree(mats: _Materials, x, z, scale=1.0) -> list:
    rng = mats.rng
    h = rng.uniform(2.0, 5.0) * scale
    r = rng.uniform(0.08, 0.25) * scale
    crown = np.array([rng.uniform(1.0, 2.5), rng.uniform(1.2, 3.0), rng.uniform(1.0, 2.5)]) * scale
    prims = [Cylinder(x, z, r, 0.0, h + crown[1] * 0.3, mats.bark()),
             Ellipsoid((x, h + crown[1] * 0.8, z), crown, mats.foliage())]
    return prims


def _ridge(rng, width: float, height: float):
    """A far skyline: random fractal profile v_top(u) for a Quad shape."""
    n = 64
    prof = np.cumsum(rng.standard_normal(n)) * rng.uniform(0.05, 0.2)
    prof = cv2.GaussianBlur(prof.reshape(1, -1).astype(np.float32), (0, 0), 1.5).ravel()
    prof = (prof - prof.min()) / max(float(np.ptp(prof)), 1e-6)
    top = -height + 2 * height * (rng.uniform(0.25, 0.6) + rng.uniform(0.2, 0.4) * prof)
    us = np.linspace(-width, width, n)

    def shape(u, v):
        return v <= np.interp(u, us, top)

    return shape


def _scatter_xz(rng, cam: Camera, z_range, margin=1.2, log=True):
    z = math.exp(rng.uniform(*np.log(z_range))) if log else rng.uniform(*z_range)
    half = z * math.tan(math.radians(cam.hfov_deg) / 2) * margin
    yaw = math.radians(cam.yaw_deg)
    x = rng.uniform(-half, half)
    # rotate with the camera's yaw so objects land in view
    return x * math.cos(yaw) + z * math.sin(yaw), -x * math.sin(yaw) + z * math.cos(yaw)


def _lane_marks(mats: _Materials, xs, far: float, dashed: bool) -> list:
    """White road markings on the ground plane: dashed or solid lines at the lateral positions ``xs``."""
    rng = mats.rng
    paint = mats.tile(_pick(rng, ["noise0", "noise2"]), (0.01, 0.04), tint=rng.uniform(0.7, 0.95) * np.ones(3),
                      contrast=(0.1, 0.3))
    width = float(rng.uniform(0.1, 0.16))
    prims = []
    for x in xs:
        if not dashed:
            prims.append(Quad((x, 0.03, far * 0.4), (0, 0, 1), (1, 0, 0), far * 0.4, width / 2, paint, GROUND))
            continue
        dash, gap = float(rng.uniform(2.5, 4.5)), float(rng.uniform(5.0, 9.0))
        z = float(rng.uniform(-gap, 0.0))
        while z < min(far * 0.5, 70.0):
            prims.append(Quad((x, 0.03, z + dash / 2), (0, 0, 1), (1, 0, 0), dash / 2, width / 2, paint, GROUND))
            z += dash + gap
    return prims


def _vehicle(mats: _Materials, x: float, z: float, yaw: float) -> list:
    """A car (body and cabin), van or lorry standing on the road at (x, z)."""
    rng = mats.rng
    kind = _pick(rng, ["car", "car", "car", "van", "lorry"])
    body = mats.paint()
    if kind == "lorry":
        w, length = float(rng.uniform(2.4, 2.6)), float(rng.uniform(7, 14))
        return (box_faces((x, z), (w, rng.uniform(2.8, 3.8), length), yaw, mats.obj(), y0=0.6)
                + box_faces((x, z - length / 2 + 1.0), (w, 0.6, 2.0), yaw, body))
    w, length = float(rng.uniform(1.65, 1.95)), float(rng.uniform(3.8, 5.0))
    if kind == "van":
        return box_faces((x, z), (w, rng.uniform(1.7, 2.3), length), yaw, body, y0=0.3)
    glass = mats.tile("noise3", (0.01, 0.03), tint=rng.uniform(0.08, 0.25) * np.ones(3), contrast=(0.2, 0.5))
    return (box_faces((x, z), (w, rng.uniform(0.55, 0.75), length), yaw, body, y0=0.3)
            + box_faces((x, z + length * 0.05), (w * 0.88, rng.uniform(0.45, 0.6), length * 0.5), yaw,
                        [glass, body, glass, body], y0=0.85, top_material=body))


def _road(rng, h, w, mats: _Materials) -> Scene:
    """A car-mounted camera on a multi-lane road: markings, vehicles at every depth, roadside, big sky."""
    cam = _camera(rng, h, w, (1.2, 1.9), (-6, 2), hfov=(50, 95), roll=1.5, yaw=6.0)
    far = float(rng.uniform(90, 300))
    lanes, lane_w = int(rng.integers(2, 6)), float(rng.uniform(3.0, 3.8))
    left = -lane_w * (0.5 + float(rng.integers(0, lanes)))          # the camera drives in one of the lanes
    right = left + lanes * lane_w
    prims = [Ground(mats.ground(_pick(rng, ["grass", "dry", "gravel", "paving", "soil"])), far * 1.5)]
    prims.append(Quad(((left + right) / 2, 0.02, far / 2), (0, 0, 1), (1, 0, 0), far / 2, (right - left) / 2 + 0.5,
                      mats.ground("asphalt"), GROUND))
    prims += _lane_marks(mats, [left + k * lane_w for k in range(1, lanes)], far, dashed=True)
    prims += _lane_marks(mats, [left + 0.2, right - 0.2], far, dashed=False)
    for _ in range(int(rng.integers(1, 9))):
        lane = int(rng.integers(0, lanes))
        zz = float(np.exp(rng.uniform(np.log(6), np.log(min(far * 0.6, 150)))))
        prims += _vehicle(mats, left + (lane + 0.5) * lane_w + rng.normal(0, 0.2), zz, float(rng.normal(0, 0.03)))
    urban = rng.random() < 0.45
    for side, edge in ((-1, left), (1, right)):
        z = float(rng.uniform(0, 20))
        while z < far * 0.8:
            x = edge + side * rng.uniform(1.5, 6.0)
            r = rng.random()
            if urban and r < 0.5:
                bw, bd = float(rng.uniform(6, 14)), float(rng.uniform(8, 25))
                prims += box_faces((x + side * bw / 2, z + bd / 2), (bw, rng.uniform(4, 25), bd), 0.0, mats.wall(),
                                   STRUCTURE)
                z += bd
            elif r < 0.8:
                prims += _tree(mats, x, z, scale=rng.uniform(0.8, 1.8))
            else:
                prims.append(Cylinder(x, z, rng.uniform(0.08, 0.18), 0, rng.uniform(5, 10), mats.paint()))
            z += float(np.exp(rng.uniform(np.log(4), np.log(30))))
    if rng.random() < 0.3:
        prims += _photo_board(mats, right + rng.uniform(2, 5), rng.uniform(15, 60), rng.uniform(3, 8),
                              rng.uniform(-0.8, -0.2), y0=rng.uniform(2, 5))
    if rng.random() < 0.7:
        bw = far * 2
        prims.append(Quad((0, 0, far * rng.uniform(1.0, 1.3)), (1, 0, 0), (0, 1, 0), bw, rng.uniform(15, 60),
                          mats.foliage() if rng.random() < 0.5 else mats.wall(), BACKDROP, shape=_ridge(rng, bw, 40)))
    sun, sc, amb = _sun(rng)
    return Scene(cam, prims, "road", sun, sc, amb, _sky(rng, mats))


def _street(rng, h, w, mats: _Materials) -> Scene:
    cam = _camera(rng, h, w, (1.3, 2.4) if rng.random() < 0.8 else (3.0, 9.0), (-9, 3))
    far = float(rng.uniform(60, 220))
    road = float(rng.uniform(3, 9))
    walk = float(rng.uniform(1.5, 4))
    prims = [Ground(mats.ground(_pick(rng, ["asphalt", "asphalt", "paving", "gravel"])), far * 1.5)]
    for side in (-1, 1):
        prims.append(Quad((side * (road + walk / 2), 0.04, far / 2), (0, 0, 1), (1, 0, 0), far / 2, walk / 2,
                          mats.ground("paving"), GROUND))
        z = float(rng.uniform(-5, 5))
        while z < far:
            depth = float(rng.uniform(6, 25))
            if rng.random() < 0.85:
                bw = float(rng.uniform(6, 14))
                bh = float(rng.uniform(4, 30))
                x = side * (road + walk + bw / 2 + rng.uniform(0, 1.5))
                prims += box_faces((x, z + depth / 2), (bw, bh, depth), 0.0, mats.wall(), STRUCTURE)
            z += depth + (rng.uniform(1, 8) if rng.random() < 0.3 else 0.0)
        for _ in range(int(rng.integers(0, 6))):
            zz = float(np.exp(rng.uniform(np.log(3), np.log(far * 0.7))))
            xx = side * (road + rng.uniform(0.3, walk - 0.3))
            if rng.random() < 0.5:
                prims += _tree(mats, xx, zz)
            else:
                prims.append(Cylinder(xx, zz, rng.uniform(0.06, 0.18), 0, rng.uniform(3, 8), mats.paint()))
    for _ in range(int(rng.integers(0, 6))):
        zz = float(np.exp(rng.uniform(np.log(4), np.log(far * 0.6))))
        xx = float(rng.uniform(-road + 1.2, road - 1.2))
        size = (rng.uniform(1.6, 2.0), rng.uniform(1.3, 1.8), rng.uniform(3.8, 4.8))
        if rng.random() < 0.2:
            size = (rng.uniform(2.3, 2.6), rng.uniform(2.5, 3.5), rng.uniform(6, 12))
        prims += box_faces((xx, zz), size, float(rng.normal(0, 0.08)), mats.obj())
    for _ in range(int(rng.integers(0, 3))):
        side = 1 if rng.random() < 0.5 else -1
        zz = float(rng.uniform(5, 40))
        prims += _photo_board(mats, side * (road + walk * 0.5), zz, rng.uniform(2, 6),
                              side * rng.uniform(0.2, 1.2), y0=rng.uniform(0.5, 2.5))
    if rng.random() < 0.7:
        bw = far * 2
        prims.append(Quad((0, 0, far * rng.uniform(1.0, 1.3)), (1, 0, 0), (0, 1, 0), bw, rng.uniform(15, 60),
                          mats.wall(), BACKDROP, shape=_ridge(rng, bw, 40)))
    sun, sc, amb = _sun(rng)
    return Scene(cam, prims, "street", sun, sc, amb, _sky(rng, mats))


def _landscape(rng, h, w, mats: _Materials) -> Scene:
    cam = _camera(rng, h, w, (1.4, 4.0) if rng.random() < 0.7 else (6.0, 20.0), (-10, 2), hfov=(45, 85))
    far = float(rng.uniform(120, 450))
    prims = [Ground(mats.ground(_pick(rng, ["grass", "grass", "dry", "soil", "gravel"])), far * 1.2)]
    for k in range(int(rng.integers(1, 3))):
        d = far * (1 + 0.5 * k)
        bw = d * 3
        hh = d * rng.uniform(0.04, 0.2)
        if rng.random() < 0.6:
            mat = mats.foliage()
        else:
            mat = mats.tile(_pick(mats.rng, ["moon", "noise1"]), (0.05, 0.4), tint=rng.uniform(0.35, 0.6, 3))
        prims.append(Quad((0, hh * 0.9, d), (1, 0, 0), (0, 1, 0), bw, hh, mat, BACKDROP, shape=_ridge(rng, bw, hh)))
    for _ in range(int(rng.integers(2, 16))):
        x, z = _scatter_xz(rng, cam, (4, far * 0.8))
        prims += _tree(mats, x, z, scale=rng.uniform(0.7, 2.0))
    for _ in range(int(rng.integers(0, 4))):
        x, z = _scatter_xz(rng, cam, (10, far * 0.6))
        prims += box_faces((x, z), (rng.uniform(4, 12), rng.uniform(3, 8), rng.uniform(4, 12)),
                           float(rng.uniform(0, math.pi)), mats.wall(), STRUCTURE)
    for _ in range(int(rng.integers(0, 6))):
        x, z = _scatter_xz(rng, cam, (3, 60))
        r = rng.uniform(0.3, 1.5)
        prims.append(Ellipsoid((x, r * 0.3, z), (r, r * rng.uniform(0.5, 0.9), r),
                               mats.tile(_pick(rng, ["moon", "gravel"]), (0.002, 0.01),
                                         tint=rng.uniform(0.4, 0.75, 3))))
    for _ in range(int(rng.integers(0, 3))):
        x, z = _scatter_xz(rng, cam, (6, 40))
        prims += _photo_board(mats, x, z, rng.uniform(2, 8), rng.uniform(-0.6, 0.6), y0=rng.uniform(0, 3))
    sun, sc, amb = _sun(rng)
    return Scene(cam, prims, "landscape", sun, sc, amb, _sky(rng, mats))


def _indoor(rng, h, w, mats: _Materials) -> Scene:
    rw, rd, rh = float(rng.uniform(4, 12)), float(rng.uniform(6, 30)), float(rng.uniform(2.5, 4.5))
    cam = _camera(rng, h, w, (1.0, min(1.9, rh - 0.4)), (-18, 6), hfov=(50, 85), yaw=20,
                  x=float(rng.uniform(-rw / 4, rw / 4)), z=0.3)
    floor = mats.ground(_pick(rng, ["paving", "gravel"])) if rng.random() < 0.3 else (
        mats.tile(_pick(rng, ["wood", "tiles", "noise2", "brick"]), (0.002, 0.008), tint=rng.uniform(0.35, 0.9, 3)))
    # ceilings get no direct light here, so a brighter albedo stands in for the lamps
    ceil = mats.tile(_pick(rng, ["tiles", "tiles", "noise0"]), (0.004, 0.02), tint=rng.uniform(0.85, 1.0, 3),
                     contrast=(0.1, 0.4), gain=(1.1, 1.4))
    prims = [Ground(floor, rd * 2, center_xz=(0, rd / 2)),
             Quad((0, rh, rd / 2), (1, 0, 0), (0, 0, 1), rw, rd, ceil, STRUCTURE)]
    wall = mats.wall()
    walls = [
        Quad((-rw / 2, rh / 2, rd / 2), (0, 0, 1), (0, 1, 0), rd, rh / 2, wall if rng.random() < 0.6 else mats.wall(),
             STRUCTURE),
        Quad((rw / 2, rh / 2, rd / 2), (0, 0, -1), (0, 1, 0), rd, rh / 2, wall if rng.random() < 0.6 else mats.wall(),
             STRUCTURE),
        Quad((0, rh / 2, rd), (1, 0, 0), (0, 1, 0), rw / 2, rh / 2, mats.wall(), STRUCTURE),
        Quad((0, rh / 2, -2), (-1, 0, 0), (0, 1, 0), rw / 2, rh / 2, wall, STRUCTURE),
    ]
    prims += walls
    for _ in range(int(rng.integers(1, 6))):             # pictures with frames on the walls
        side = int(rng.integers(0, 3))
        pw = float(rng.uniform(0.4, min(3.0, rw * 0.6)))
        mat, aspect = mats.photo(rng.uniform(0.6, 1.8))
        ph = min(pw / aspect, rh * 0.6)
        pw = ph * aspect
        cy = float(rng.uniform(ph / 2 + 0.3, rh - ph / 2 - 0.1))
        frame = mats.paint()
        if side == 2:
            cx = float(rng.uniform(-rw / 2 + pw / 2, rw / 2 - pw / 2))
            prims.append(Quad((cx, cy, rd - 0.02), (1, 0, 0), (0, 1, 0), pw / 2, ph / 2, mat))
            prims.append(Quad((cx, cy, rd - 0.01), (1, 0, 0), (0, 1, 0), pw / 2 + 0.05, ph / 2 + 0.05, frame))
        else:
            sx = -1 if side == 0 else 1
            cz = float(rng.uniform(1 + pw / 2, rd - pw / 2))
            prims.append(Quad((sx * (rw / 2 - 0.02), cy, cz), (0, 0, -sx), (0, 1, 0), pw / 2, ph / 2, mat))
            prims.append(Quad((sx * (rw / 2 - 0.01), cy, cz), (0, 0, -sx), (0, 1, 0), pw / 2 + 0.05, ph / 2 + 0.05,
                              frame))
    for _ in range(int(rng.integers(2, 10))):            # furniture
        bw, bh, bd = rng.uniform(0.3, 2.2), rng.uniform(0.3, 2.0), rng.uniform(0.3, 1.5)
        bh = min(bh, rh - 0.3)
        x = float(rng.uniform(-rw / 2 + bw / 2, rw / 2 - bw / 2))
        z = float(np.exp(rng.uniform(np.log(1.2), np.log(max(rd - 1, 1.5)))))
        z = max(z, cam.position[2] + 0.8 + 0.5 * math.hypot(bw, bd))     # keep it in front of the camera
        if rng.random() < 0.25:                          # a table: top on four legs
            top = mats.obj()
            prims += box_faces((x, z), (bw, 0.05, bd), 0.0, top, OBJECT, y0=bh * 0.5 + 0.4)
            for sx in (-1, 1):
                for sz in (-1, 1):
                    prims.append(Cylinder(x + sx * bw * 0.42, z + sz * bd * 0.42, 0.03, 0, bh * 0.5 + 0.4, top))
        else:
            prims += box_faces((x, z), (bw, bh, bd), float(rng.normal(0, 0.3)),
                               [mats.obj() for _ in range(4)] if rng.random() < 0.3 else mats.obj())
    for _ in range(int(rng.integers(0, 12))):            # small clutter on the floor
        s = float(rng.uniform(0.1, 0.5))
        x = float(rng.uniform(-rw / 2 + s, rw / 2 - s))
        z = float(np.exp(rng.uniform(np.log(1.2), np.log(max(rd - 1, 1.5)))))
        if rng.random() < 0.6:
            size = (s * rng.uniform(0.5, 1.5), s * rng.uniform(0.5, 1.5), s)
            prims += box_faces((x, z), size, float(rng.uniform(0, 3)), mats.obj())
        else:
            prims.append(Ellipsoid((x, s / 2, z), (s / 2, s / 2, s / 2), mats.obj()))
    for _ in range(int(rng.integers(0, 3))):             # pillars
        prims.append(Cylinder(rng.uniform(-rw / 2, rw / 2), rng.uniform(2, rd), rng.uniform(0.1, 0.4), 0, rh,
                              mats.wall(), STRUCTURE))
    sun, sc, amb = _sun(rng, indoor=True)
    return Scene(cam, prims, "indoor", sun, sc, amb, None)


def _closeup(rng, h, w, mats: _Materials) -> Scene:
    cam = _camera(rng, h, w, (0.6, 1.8), (-25, 2), hfov=(40, 75), yaw=15)
    back = float(rng.uniform(3, 12))
    prims = [Ground(mats.ground() if rng.random() < 0.5 else mats.tile(
        _pick(rng, ["wood", "tiles", "noise2"]), (0.002, 0.01), tint=rng.uniform(0.3, 0.9, 3)), back * 3)]
    if rng.random() < 0.5:
        mat, aspect = mats.photo(rng.uniform(1.2, 2.0))
        bw = back * rng.uniform(1.2, 2.0)
        bh = bw / aspect
        prims.append(Quad((cam.position[0], bh / 2, back), (1, 0, 0), (0, 1, 0), bw, bh / 2 + 0.5, mat, STRUCTURE))
        prims.append(Quad((0, back * 2, back + 0.01), (1, 0, 0), (0, 1, 0), back * 4, back * 2, mats.wall(),
                          STRUCTURE))
    else:
        prims.append(Quad((0, back * 2, back), (1, 0, 0), (0, 1, 0), back * 4, back * 2, mats.wall(), STRUCTURE))
    if rng.random() < 0.5:
        sx = -1 if rng.random() < 0.5 else 1
        prims.append(Quad((sx * rng.uniform(1.5, 4), back, back / 2), (0, 0, 1), (0, 1, 0), back, back, mats.wall(),
                          STRUCTURE))
    for _ in range(int(rng.integers(6, 22))):
        x, z = _scatter_xz(rng, cam, (1.0, back * 0.9), margin=1.0)
        r = rng.random()
        s = float(rng.uniform(0.15, 1.2))
        if r < 0.45:
            size = (s * rng.uniform(0.6, 1.6), s * rng.uniform(0.5, 2.0), s * rng.uniform(0.6, 1.6))
            prims += box_faces((x, z), size, float(rng.uniform(0, math.pi)), mats.obj(),
                               y0=0.0 if rng.random() < 0.8 else s)
        elif r < 0.65:
            prims.append(Cylinder(x, z, s * rng.uniform(0.2, 0.5), 0, s * rng.uniform(1, 3), mats.obj()))
        elif r < 0.85:
            rr = s * 0.5
            prims.append(Ellipsoid((x, rr, z), (rr, rr * rng.uniform(0.7, 1.1), rr), mats.obj()))
        else:
            prims += _photo_board(mats, x, z, s * 1.5, rng.uniform(-0.7, 0.7), y0=rng.uniform(0, 0.5))
    sun, sc, amb = _sun(rng, indoor=rng.random() < 0.5)
    outdoor_sky = rng.random() < 0.3
    return Scene(cam, prims, "closeup", sun, sc, amb, _sky(rng, mats) if outdoor_sky else None)


def _collage(rng, h, w, mats: _Materials) -> Scene:
    """Whole photographs on tilted planes at different depths in front of a photo wall (a 2.5-D collage).

    Most pixels then carry real-photo statistics while depth still varies within and between planes.
    """
    cam = _camera(rng, h, w, (0.8, 2.0), (-12, 6), hfov=(40, 75), yaw=10)
    back = float(np.exp(rng.uniform(np.log(4), np.log(40))))
    mat, aspect = mats.photo(rng.uniform(1.0, 1.8))
    bw = back * 1.6
    cy = cam.position[1]
    prims = [Quad((cam.position[0], cy, back), (1, 0, 0), (0, 1, 0), bw, bw / aspect, mat, STRUCTURE),
             Ground(mats.ground() if rng.random() < 0.5 else mats.photo_tile((0.002, 0.01)), back * 3)]
    for _ in range(int(rng.integers(3, 9))):
        x, z = _scatter_xz(rng, cam, (max(0.8, back * 0.08), back * 0.85), margin=0.9)
        pw = float(z * rng.uniform(0.15, 0.7))
        mat, aspect = mats.photo(rng.uniform(0.6, 1.8))
        yaw, tilt = rng.uniform(-0.9, 0.9), rng.uniform(-0.5, 0.5)
        u = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
        v = np.array([math.sin(yaw) * math.sin(tilt), math.cos(tilt), math.cos(yaw) * math.sin(tilt)])
        y = float(cy + rng.uniform(-0.3, 0.3) * z * 0.5)
        prims.append(Quad((x, max(y, pw / aspect / 2 * 0.5), z), u, v, pw / 2, pw / aspect / 2, mat,
                          casts_shadow=True))
    sun, sc, amb = _sun(rng, indoor=rng.random() < 0.5)
    return Scene(cam, prims, "collage", sun, sc, amb, _sky(rng, mats) if rng.random() < 0.3 else None)


_BUILDERS = {"road": _road, "street": _street, "landscape": _landscape, "indoor": _indoor, "closeup": _closeup,
             "collage": _collage}


def random_scene(rng: np.random.Generator, height: int, width: int, family: str | None = None,
                 lib: TextureLibrary | None = None) -> Scene:
    """A random scene of one family (one of :data:`SCENE_FAMILIES`; None = drawn with :data:`SCENE_WEIGHTS`)."""
    lib = lib or TextureLibrary.load()
    if family is None:
        family = SCENE_FAMILIES[int(rng.choice(len(SCENE_FAMILIES), p=SCENE_WEIGHTS))]
    if family not in _BUILDERS:
        raise SynthError(f"scene family must be one of {SCENE_FAMILIES}, got {family!r}")
    used: list = []
    scene = _BUILDERS[family](rng, height, width, _Materials(rng, lib, used))
    scene.textures = sorted(set(used))
    return scene


# --------------------------------------------------------------------------- rendering
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
        groups.append(p.corners() if box is None else _box_corners(box))
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


_SIGNS = np.array([(sx, sy, sz) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64) / 2


def _box_corners(box) -> np.ndarray:
    centre, w, h, d, ex, ez = box
    axes = np.stack([ex * w, np.array([0.0, h, 0.0]), ez * d])
    return centre + _SIGNS @ axes


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


# --------------------------------------------------------------------------- haze
def airlight_map(airlight, gradient, height: int, width: int) -> np.ndarray:
    """Per-pixel airlight (H,W,3) float32: ``A * (1 + gx * (x/W - 0.5) + gy * (y/H - 0.5))``."""
    a = np.asarray(airlight, np.float32).reshape(1, 1, 3)
    gx, gy = (float(g) for g in gradient)
    if gx == 0 and gy == 0:
        return np.broadcast_to(a, (height, width, 3))
    xs = ((np.arange(width) + 0.5) / width - 0.5).astype(np.float32)
    ys = ((np.arange(height) + 0.5) / height - 0.5).astype(np.float32)
    g = 1.0 + np.float32(gx) * xs[None, :] + np.float32(gy) * ys[:, None]
    return a * g[..., None]


def haze_band(t_median: float) -> str:
    """The name of the density band a transmission at the median depth falls in (:data:`HAZE_BANDS`)."""
    for name, lower in HAZE_BANDS:
        if t_median >= lower:
            return name
    return HAZE_BANDS[-1][0]


def sample_haze(rng: np.random.Generator, depth: np.ndarray, labels: np.ndarray,
                beta_range: tuple | None = None, haze: HazeDistribution | None = None) -> dict:
    """Random haze parameters for one image: beta, airlight RGB, airlight gradient, density band."""
    haze = haze or HazeDistribution()
    solid = labels != SKY
    d_med = float(np.median(depth[solid])) if solid.any() else float(np.median(depth))
    if beta_range is not None:
        beta = float(rng.uniform(*beta_range))
        density = "range"
    elif rng.random() < haze.free_fraction:
        beta, density = 0.0, "none"
    else:
        tau = float(rng.uniform(*haze.optical_depth))
        beta = tau / max(d_med, 0.1)
        density = haze_band(math.exp(-tau))
    grey = rng.uniform(*AIRLIGHT_GREY)
    kind = _pick(rng, ["neutral", "neutral", "bluish", "yellowish"])
    tint = {"neutral": rng.uniform(-0.01, 0.01, 3),
            "bluish": np.array([-1.0, -0.3, 1.0]) * rng.uniform(0.01, 0.06),
            "yellowish": np.array([1.0, 0.6, -1.0]) * rng.uniform(0.01, 0.06)}[kind]
    airlight = np.clip(grey + tint, 0.5, 1.0)
    gradient = (0.0, 0.0)
    if rng.random() < 0.3:
        gradient = (float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.1, 0.05)))
    return {"beta": float(beta), "airlight": [float(a) for a in airlight], "airlight_gradient": list(gradient),
            "airlight_tint": kind, "density": density, "median_depth": d_med}


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


# Natural colour photos (and one grey one) that the "photo" family hazes directly; never the motorcycle.
PHOTO_FAMILY_SOURCES = {"astronaut": 3, "coffee": 3, "chelsea": 3, "rocket": 3, "camera": 1,
                        "immunohistochemistry": 1, "hubble_deep_field": 1}


def _photo_layout_depth(rng: np.random.Generator, clear: np.ndarray) -> np.ndarray:
    """A plausible depth map (metres) for a real photo: a receding ground plus image-aligned regions.

    The photo's own regions (Felzenszwalb segments) get depths of objects standing at different
    distances, so haze changes at the photo's edges as it does at real occlusion boundaries; the
    rest recedes like a ground plane towards a horizon.  This is the depth the haze is made with,
    not the photo's true depth, so it is never used as a DE-network target (``depth_target``).
    """
    from skimage.segmentation import felzenszwalb

    h, w = clear.shape[:2]
    near = float(np.exp(rng.uniform(np.log(1.0), np.log(8.0))))
    far = near * float(np.exp(rng.uniform(np.log(2.0), np.log(15.0))))
    horizon = rng.uniform(-0.4, 0.45) * h
    y = np.arange(h, dtype=np.float32)[:, None] + np.float32(rng.uniform(-0.15, 0.15)) * (
        np.arange(w, dtype=np.float32)[None, :] - w / 2)          # a slightly tilted horizon
    dy = np.maximum(y - horizon, 1e-3)
    base = np.clip(near * (h - horizon) / dy, near, far).astype(np.float32)
    if rng.random() < 0.25:                                       # just the receding plane
        depth = base
    else:
        small = cv2.resize(clear, (max(8, w // 3), max(8, h // 3)), interpolation=cv2.INTER_AREA)
        seg = felzenszwalb(small, scale=float(rng.uniform(100, 400)), sigma=0.6, min_size=max(4, int(h * w / 3000)))
        seg = cv2.resize(seg.astype(np.int32), (w, h), interpolation=cv2.INTER_NEAREST)
        n = int(seg.max()) + 1
        counts = np.bincount(seg.ravel(), minlength=n).astype(np.float64)
        mean_base = np.bincount(seg.ravel(), weights=base.ravel().astype(np.float64), minlength=n) / np.maximum(
            counts, 1)
        bottom = np.zeros(n)                                      # lowest row of each segment: where it stands
        np.maximum.at(bottom, seg.ravel(), np.repeat(np.arange(h), w).astype(np.float64))
        standing = np.clip(near * (h - horizon) / np.maximum(bottom - horizon, 1e-3), near, far)
        # each region: standing upright at its footing distance, or part of the ground, or a far backdrop
        kind = rng.choice(3, size=n, p=[0.55, 0.3, 0.15])
        seg_depth = np.where(kind == 0, standing * rng.uniform(0.8, 1.1, n),
                             np.where(kind == 1, mean_base, far * rng.uniform(0.6, 1.0, n)))
        flat = seg_depth[seg].astype(np.float32)
        depth = np.where((kind == 1)[seg], base, flat)
        depth = cv2.GaussianBlur(depth, (0, 0), 1.0)
    return np.clip(depth, near, far).astype(np.float32)


def _photo_clear(rng: np.random.Generator, lib: TextureLibrary, h: int, w: int) -> tuple[np.ndarray, str]:
    """A random crop of a real photo, resized to (h, w), flipped and colour-jittered: (H,W,3) float32."""
    names = list(PHOTO_FAMILY_SOURCES)
    p = np.array([PHOTO_FAMILY_SOURCES[n] for n in names], np.float64)
    name = names[int(rng.choice(len(names), p=p / p.sum()))]
    img = lib.textures[lib.index(name)].levels[0]
    ih, iw = img.shape[:2]
    s = float(rng.uniform(0.45, 1.0)) * min(ih / h, iw / w)
    ch, cw = max(8, int(h * s)), max(8, int(w * s))
    y0, x0 = int(rng.integers(0, ih - ch + 1)), int(rng.integers(0, iw - cw + 1))
    crop = cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA if s > 1 else cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    m, off = color_transform(rng, hue=0.08, sat=(0.8, 1.2), gain=(0.85, 1.1), contrast=(0.9, 1.15))
    crop = np.clip(crop.reshape(-1, 3) @ m.T + off, 0, 1).reshape(h, w, 3)
    return np.ascontiguousarray(crop, dtype=np.float32), name


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
        family = SCENE_FAMILIES[int(rng.choice(len(SCENE_FAMILIES), p=SCENE_WEIGHTS))]
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
    t = np.exp(-haze["beta"] * depth16[r.labels != SKY].astype(np.float64))
    cam = scene.camera
    meta = {
        "seed": [int(seed), int(index)], "scene": scene.family, "haze_model": "I = J*t + A*(1-t), t = exp(-beta*d)",
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
    clear_f, source = _photo_clear(rng, lib, height, width)
    clear_f, finish = _finish(rng, clear_f)
    clear = np.round(clear_f * 255).astype(np.uint8)
    depth16 = _photo_layout_depth(rng, clear_f).astype(np.float16)
    labels = np.full((height, width), OBJECT, np.uint8)
    haze = sample_haze(rng, depth16.astype(np.float32), labels, beta_range, distribution)
    amap = airlight_map(haze["airlight"], haze["airlight_gradient"], height, width)
    hazy_f = apply_haze(clear.astype(np.float32) / np.float32(255), depth16.astype(np.float32), haze["beta"], amap)
    hazy = np.round(hazy_f * 255).astype(np.uint8)
    t = np.exp(-haze["beta"] * depth16.astype(np.float64))
    meta = {
        "seed": [int(seed), int(index)], "scene": "photo", "haze_model": "I = J*t + A*(1-t), t = exp(-beta*d)",
        **haze,
        "transmission_range": [float(t.min()), float(t.max())],
        "depth": {"unit": "m", "kind": "haze layout (not the photo's depth)", "dtype": "float16",
                  "min": float(depth16.min()), "max": float(depth16.max())},
        # the haze depth does not describe the photo's content: no target for the DE network
        "depth_target": False,
        "sky_fraction": 0.0, "textures": [source], **finish,
    }
    return {"hazy": hazy, "clear": clear, "depth": depth16, "labels": labels, "meta": meta}


# --------------------------------------------------------------------------- writing
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


def depth_colormap(depth: np.ndarray) -> np.ndarray:
    """A picture of a depth map: (H,W) metres -> (H,W,3) uint8 RGB (log scale, near = bright)."""
    d = np.log(np.maximum(np.asarray(depth, np.float32), 1e-3))
    lo, hi = float(d.min()), float(d.max())
    g = ((hi - d) / max(hi - lo, 1e-6) * 255).astype(np.uint8)
    cmap = getattr(cv2, "COLORMAP_TURBO", cv2.COLORMAP_JET)
    return cv2.cvtColor(cv2.applyColorMap(g, cmap), cv2.COLOR_BGR2RGB)


def write_preview(root: Path, split: str, stems: list, path: Path) -> None:
    """A grid of samples (rows: hazy | clear | depth colour map) as a PNG."""
    rows = []
    for stem in stems:
        hz = cv2.imread(str(root / split / "hazy" / f"{stem}.png"))
        gt = cv2.imread(str(root / split / "GT" / f"{stem}.png"))
        dm = cv2.cvtColor(depth_colormap(np.load(root / split / "depth" / f"{stem}.npy")), cv2.COLOR_RGB2BGR)
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
            "scene_families": dict(zip(SCENE_FAMILIES, SCENE_WEIGHTS)),
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
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="synth", unit="img", disable=not progress, mininterval=0.5)
    try:
        if workers == 1:
            for j in jobs:
                _write_one(j)
                bar.update(1)
        else:
            import multiprocessing as mp

            # spawn: fresh interpreters, so OpenCV's thread pool is never inherited across fork
            with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
                for _ in pool.imap_unordered(_write_one, jobs, chunksize=4):
                    bar.update(1)
    finally:
        bar.close()
