"""Texture library for the synthetic scene generator: real photographs that ship with scikit-image.

Photos are turned into float32 RGB mip pyramids once per process.  Surfaces look them up with
per-pixel texture coordinates in metres (so texture scale follows perspective), a per-material
2-D transform, mirrored tiling, a mip level chosen from each pixel's footprint, and a per-material
affine colour transform (tint, hue rotation, saturation, contrast, gain).

``stereo_motorcycle`` is never loaded here: it is the held-out real evaluation photo.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

# name -> kind.  "photo": colour photograph; "grey": grey photo/texture, tinted by the material.
PHOTO_SOURCES = {
    "astronaut": "photo", "coffee": "photo", "chelsea": "photo", "rocket": "photo",
    "hubble_deep_field": "photo", "immunohistochemistry": "photo", "retina": "photo",
    "camera": "grey", "brick": "grey", "grass": "grey", "gravel": "grey", "moon": "grey",
    "coins": "grey", "cell": "grey", "page": "grey", "text": "grey", "clock": "grey",
}
FORBIDDEN_SOURCES = ("stereo_motorcycle",)
# Procedural textures made once per process from a fixed seed (the same in every worker).
PROCEDURAL = ("noise0", "noise1", "noise2", "noise3", "wood", "tiles", "facade0", "facade1", "stripes", "foliage")
_MAX_SIDE = 512
MIP_BIAS = 0.7
_REMAP_COLS = 256


@dataclass
class Texture:
    name: str
    kind: str                      # "photo" | "grey" | "procedural"
    levels: list                   # mip pyramid, float32 (h,w,3) in [0, 1]

    @property
    def shape(self) -> tuple[int, int]:
        return self.levels[0].shape[:2]


def _pyramid(img: np.ndarray) -> list:
    levels = [np.ascontiguousarray(img, dtype=np.float32)]
    while min(levels[-1].shape[:2]) >= 16 and len(levels) < 8:
        levels.append(cv2.pyrDown(levels[-1]))
    return levels


def _fractal_noise(rng: np.random.Generator, size: int, beta: float = 1.0, octaves: int = 7) -> np.ndarray:
    """Grey 1/f-like noise (size,size) in [0, 1] from resized random grids."""
    out = np.zeros((size, size), np.float32)
    amp_sum = 0.0
    for o in range(octaves):
        n = 2 ** (o + 2)
        if n > size:
            break
        grid = rng.standard_normal((n, n)).astype(np.float32)
        amp = (1.0 / n) ** beta
        # wrap the grid so the noise tiles seamlessly
        grid = np.pad(grid, 2, mode="wrap")
        up = cv2.resize(grid, (size * (n + 4) // n, size * (n + 4) // n), interpolation=cv2.INTER_CUBIC)
        off = 2 * size // n
        out += amp * up[off:off + size, off:off + size]
        amp_sum += amp
    out /= amp_sum
    out -= out.min()
    out /= max(float(out.max()), 1e-6)
    return out


def _procedural(name: str, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """One procedural texture (size,size,3) float32 in [0, 1]."""
    if name.startswith("noise"):
        g = _fractal_noise(rng, size, beta=0.6 + 0.25 * int(name[-1]))
        return np.repeat(g[..., None], 3, axis=2)
    if name == "foliage":
        g = _fractal_noise(rng, size, beta=0.3)
        g = np.clip((g - 0.3) * 1.8, 0, 1) ** 1.5
        return np.repeat(g[..., None], 3, axis=2)
    if name == "wood":
        y = np.arange(size, dtype=np.float32)[:, None]
        n = _fractal_noise(rng, size, beta=0.8)
        plank = (np.floor(y / (size / 8)) % 2) * 0.12
        grain = 0.5 + 0.5 * np.sin((y * 0.9 + n * 40.0) * 0.6)
        seams = (np.mod(y, size / 8) < 1.5).astype(np.float32) * 0.5
        g = np.clip(0.55 + 0.25 * grain - plank - seams + 0.1 * (n - 0.5), 0, 1)
        g = np.broadcast_to(g, (size, size))
        return np.repeat(g[..., None], 3, axis=2).astype(np.float32)
    if name == "tiles":
        n = _fractal_noise(rng, size, beta=1.2)
        yy, xx = np.mgrid[0:size, 0:size]
        grout = ((yy % (size // 4)) < 3) | ((xx % (size // 4)) < 3)
        per_tile = rng.uniform(0.75, 1.0, (4, 4))[yy // (size // 4) % 4, xx // (size // 4) % 4]
        g = np.where(grout, 0.35, per_tile * (0.85 + 0.15 * n)).astype(np.float32)
        return np.repeat(g[..., None], 3, axis=2)
    if name.startswith("facade"):
        # a wall with a grid of windows: dark glass reflecting a little sky, light frames
        n = _fractal_noise(rng, size, beta=1.0)
        wall = rng.uniform(0.45, 0.85, 3).astype(np.float32)
        img = wall[None, None, :] * (0.85 + 0.3 * n[..., None])
        cells = 4 if name == "facade0" else 3
        step = size // cells
        ww, wh = int(step * rng.uniform(0.35, 0.6)), int(step * rng.uniform(0.45, 0.7))
        glass = _fractal_noise(rng, size, beta=1.4)
        for i in range(cells):
            for j in range(cells):
                y0, x0 = i * step + (step - wh) // 2, j * step + (step - ww) // 2
                img[y0 - 2:y0 + wh + 2, x0 - 2:x0 + ww + 2] = 0.8
                tone = rng.uniform(0.08, 0.35)
                img[y0:y0 + wh, x0:x0 + ww] = (tone + 0.25 * glass[y0:y0 + wh, x0:x0 + ww, None]
                                               * np.array([0.8, 0.9, 1.0], np.float32))
        return np.clip(img, 0, 1).astype(np.float32)
    if name == "stripes":
        x = np.arange(size, dtype=np.float32)[None, :]
        n = _fractal_noise(rng, size, beta=1.0)
        g = 0.5 + 0.35 * np.sign(np.sin(x * 2 * np.pi / (size / 6))) + 0.15 * (n - 0.5)
        return np.repeat(np.clip(g, 0, 1)[..., None], 3, axis=2).astype(np.float32)
    raise KeyError(name)


def _load_photo(name: str) -> np.ndarray:
    if name in FORBIDDEN_SOURCES:
        raise ValueError(f"{name} is reserved as the held-out evaluation photo and is never used as a texture")
    # scikit-image is an extra ([train], [bag]): imported only when the photo textures are built
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3].astype(np.float32) / 255.0
    h, w = img.shape[:2]
    if max(h, w) > _MAX_SIDE:
        s = _MAX_SIDE / max(h, w)
        img = cv2.resize(img, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA)
    return img


@dataclass
class TextureLibrary:
    """All textures of one process (photos from scikit-image plus procedural ones)."""

    textures: list = field(default_factory=list)

    @classmethod
    def load(cls) -> TextureLibrary:
        return _library()

    def names(self, kind: str | None = None) -> list[str]:
        return [t.name for t in self.textures if kind is None or t.kind == kind]

    def index(self, name: str) -> int:
        for i, t in enumerate(self.textures):
            if t.name == name:
                return i
        raise KeyError(name)


@functools.lru_cache(maxsize=1)
def _library() -> TextureLibrary:
    lib = TextureLibrary()
    for name, kind in PHOTO_SOURCES.items():
        lib.textures.append(Texture(name, kind, _pyramid(_load_photo(name))))
    rng = np.random.default_rng(20240617)
    for name in PROCEDURAL:
        lib.textures.append(Texture(name, "procedural", _pyramid(_procedural(name, rng))))
    return lib


@dataclass
class Material:
    """How a surface looks up its texture.

    ``mode`` ``tile``: texel (u, v) metres -> texture pixels ``R(rot) @ (u, -v) / texel + origin``,
    mirrored tiling.  ``fit``: the surface's extent ``[-a, a] x [-b, b]`` maps onto the crop
    ``(x0, y0, w, h)`` of the texture once (a photo on a billboard).  ``color``: 3x3 matrix and
    offset applied to the RGB sample, then clipped to [0, 1].
    """

    tex: int
    mode: str = "tile"
    texel: float = 0.01
    rot: float = 0.0
    origin: tuple = (0.0, 0.0)
    crop: tuple = (0.0, 0.0, 1.0, 1.0)
    extent: tuple = (1.0, 1.0)
    color: np.ndarray = field(default_factory=lambda: np.eye(3, dtype=np.float32))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))


def color_transform(rng: np.random.Generator, tint: np.ndarray | None = None, hue: float = 0.15,
                    sat: tuple = (0.7, 1.25), gain: tuple = (0.75, 1.15),
                    contrast: tuple = (0.8, 1.2)) -> tuple[np.ndarray, np.ndarray]:
    """A random affine colour transform: hue rotation about the grey axis, saturation, contrast, gain, tint."""
    a = rng.uniform(-hue, hue) * np.pi
    k = np.ones(3) / np.sqrt(3.0)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * (kx @ kx)
    grey = np.full((3, 3), 1.0 / 3.0)
    s = rng.uniform(*sat)
    c = rng.uniform(*contrast)
    g = rng.uniform(*gain)
    m = grey + s * rot @ (np.eye(3) - grey)
    t = np.ones(3) if tint is None else np.asarray(tint, dtype=np.float64)
    m = g * c * (t[:, None] * m)
    off = g * (1 - c) * 0.5 * t
    return m.astype(np.float32), off.astype(np.float32)


def _remap_points(img: np.ndarray, x: np.ndarray, y: np.ndarray, border: int) -> np.ndarray:
    """Bilinear samples (N,3) of img at float coordinates (N,); any N (OpenCV caps map sides at 32767).

    ``border``: BORDER_REFLECT_101 tiles a texture mirrored (seamless for any photo, at any distance),
    BORDER_REPLICATE clamps (a photo shown once).
    """
    n = x.shape[0]
    rows = -(-n // _REMAP_COLS)
    mx = np.zeros(rows * _REMAP_COLS, np.float32)
    my = np.zeros(rows * _REMAP_COLS, np.float32)
    mx[:n] = x
    my[:n] = y
    out = cv2.remap(img, mx.reshape(rows, _REMAP_COLS), my.reshape(rows, _REMAP_COLS), cv2.INTER_LINEAR,
                    borderMode=border)
    return out.reshape(-1, 3)[:n]


def sample(lib: TextureLibrary, mat: Material, u: np.ndarray, v: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Colours (N,3) float32 in [0, 1] of surface points (u, v) in metres; footprint: metres per pixel (N,)."""
    tex = lib.textures[mat.tex]
    h0, w0 = tex.shape
    if mat.mode == "fit":
        a, b = mat.extent
        x0, y0, cw, ch = mat.crop
        tx = x0 + (u + a) * (cw / (2 * a))
        ty = y0 + (b - v) * (ch / (2 * b))
        texel = 2 * a / cw
    else:
        c, s = np.cos(mat.rot), np.sin(mat.rot)
        tx = (c * u - s * v) / mat.texel + mat.origin[0]
        ty = (s * u + c * v) / -mat.texel + mat.origin[1]
        texel = mat.texel
    border = cv2.BORDER_REFLECT_101 if mat.mode == "tile" else cv2.BORDER_REPLICATE
    nlev = len(tex.levels)
    # mip level = floor(log2(texels per pixel)), from the float exponent without a log; the bias
    # keeps textures a little sharper than strict anti-aliasing, as camera images are
    level = np.clip(np.frexp(np.asarray(footprint * (MIP_BIAS / texel), np.float32))[1] - 1, 0, nlev - 1)
    present = np.flatnonzero(np.bincount(level, minlength=nlev))
    out = np.empty((u.shape[0], 3), np.float32)
    for lv in present:
        img = tex.levels[lv]
        hl, wl = img.shape[:2]
        sx, sy = wl / w0, hl / h0
        if len(present) == 1:
            out = _remap_points(img, tx * sx + (sx - 1) * 0.5, ty * sy + (sy - 1) * 0.5, border)
            break
        sel = level == lv
        out[sel] = _remap_points(img, tx[sel] * sx + (sx - 1) * 0.5, ty[sel] * sy + (sy - 1) * 0.5, border)
    out = out @ mat.color.T + mat.offset
    return np.clip(out, 0.0, 1.0, out=out)
