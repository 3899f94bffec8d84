"""Scene families: random worlds of textured primitives, and the real-photo family.

Each scene is a pinhole camera at a random height, pitch, roll and field of view looking at
analytic primitives (:mod:`.geometry`): a ground plane receding to the horizon, walls and cuboids
(buildings, furniture, cars) standing on it, vertical cylinders (poles, trunks), ellipsoids (tree
crowns, rocks), billboards and framed pictures showing whole photographs, far ridges, and a sky
with perspective clouds.  Textures are scikit-image's photos (never ``stereo_motorcycle``, the
held-out evaluation photo) and procedural ones (:mod:`dcmpnet_core.data.textures`).

Seven families, drawn with :data:`SCENE_WEIGHTS`: road (a car-mounted camera on a multi-lane road
in perspective: lane markings, vehicles in the lanes at every depth, roadside trees, poles and
buildings, a large sky: what a driving stack sees), street, open landscape, indoor room, close-up
clutter, collage, and ``photo`` (real photos hazed over an image-aligned layout depth:
:func:`photo_clear`, :func:`photo_layout_depth`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..textures import PHOTO_SOURCES, Material, TextureLibrary, color_transform
from .errors import SynthError
from .geometry import (
    BACKDROP,
    GROUND,
    OBJECT,
    STRUCTURE,
    Camera,
    Cylinder,
    Ellipsoid,
    Ground,
    Quad,
    box_faces,
)

SCENE_FAMILIES = ("road", "street", "landscape", "indoor", "closeup", "collage", "photo")
SCENE_WEIGHTS = (0.2, 0.1, 0.1, 0.12, 0.1, 0.08, 0.3)


def draw_family(rng: np.random.Generator) -> str:
    """One of :data:`SCENE_FAMILIES`, drawn with :data:`SCENE_WEIGHTS`."""
    return SCENE_FAMILIES[int(rng.choice(len(SCENE_FAMILIES), p=SCENE_WEIGHTS))]


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
        family = draw_family(rng)
    if family not in _BUILDERS:
        raise SynthError(f"scene family must be one of {SCENE_FAMILIES}, got {family!r}")
    used: list = []
    scene = _BUILDERS[family](rng, height, width, _Materials(rng, lib, used))
    scene.textures = sorted(set(used))
    return scene


# Natural colour photos (and one grey one) that the "photo" family hazes directly; never the motorcycle.
PHOTO_FAMILY_SOURCES = {"astronaut": 3, "coffee": 3, "chelsea": 3, "rocket": 3, "camera": 1,
                        "immunohistochemistry": 1, "hubble_deep_field": 1}


def photo_layout_depth(rng: np.random.Generator, clear: np.ndarray) -> np.ndarray:
    """A plausible depth map (metres) for a real photo: a receding ground plus image-aligned regions.

    The photo's own regions (Felzenszwalb segments) get depths of objects standing at different
    distances, so haze changes at the photo's edges as it does at real occlusion boundaries; the
    rest recedes like a ground plane towards a horizon.  This is the depth the haze is made with,
    not the photo's true depth, so it is never used as a DE-network target (``depth_target``).
    """
    # imported here, not at the top: only the photo family needs it, so start-up stays light
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


def photo_clear(rng: np.random.Generator, lib: TextureLibrary, h: int, w: int) -> tuple[np.ndarray, str]:
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
