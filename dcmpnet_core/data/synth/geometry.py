"""Geometry of the generator's worlds: the pinhole camera, its rays and the analytic primitives rays hit.

World axes are X right, Y up, Z forward; the ground is the plane y = 0.  The camera's rays are
scaled so that their camera-frame z component is 1, so the ray parameter of a hit *is* the
pixel's z-depth in metres: depth is exact per pixel, from ray-plane (:class:`Quad`,
:class:`Ground`) and ray-quadric (:class:`Cylinder`, :class:`Ellipsoid`) intersections.
Cuboids (:func:`box_faces`) are six quads.  Each primitive also gives its screen bounding box
(so a ray is only tested where the primitive can be), texture coordinates in metres and normals.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from ..textures import Material

# the nearest hit a ray accepts, metres (in front of the lens)
NEAR = 0.05
# labels in the per-pixel class map returned by the renderer
SKY, GROUND, STRUCTURE, OBJECT, BACKDROP = 0, 1, 2, 3, 4


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


_SIGNS = np.array([(sx, sy, sz) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64) / 2


def box_corners(box) -> np.ndarray:
    """The eight corners (8,3) of a cuboid recorded by :func:`box_faces` as ``face.box``."""
    centre, w, h, d, ex, ez = box
    axes = np.stack([ex * w, np.array([0.0, h, 0.0]), ez * d])
    return centre + _SIGNS @ axes
