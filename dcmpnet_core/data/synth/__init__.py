"""Synthetic hazy scenes: procedural 3-D worlds textured with real photos, hazed with the scattering model.

Each sample is a ray-cast scene with exact per-pixel depth (camera z-depth in metres), a clear
image shaded and finished like a photo, and the hazy image made from them by the package's one
scattering model, ``I = J * t + A * (1 - t)``, ``t = exp(-beta * d)``
(:func:`dcmpnet_core.data.haze.apply_haze`), at a density from none to dense.  Sample ``i`` of a
set is fully determined by ``(seed, i)``.

The parts, in the order a sample is made:

* :mod:`.geometry`: the pinhole camera, its rays and the primitives (planes, quads, cuboids,
  cylinders, ellipsoids) with their exact ray intersections;
* :mod:`.scenes`: the scene families (road, street, landscape, indoor, close-up, collage, and the
  real-photo family) and their weights :data:`SCENE_WEIGHTS`;
* :mod:`.haze_draw`: each image's haze density and airlight (the haze distribution:
  :class:`HazeDistribution`, 10 % haze-free, the optical depth at the median depth uniform in 0.02-2.4);
* :mod:`.renderer`: ray casting, shading and finishing, then the haze (:func:`render_sample`);
* :mod:`.writer`: :func:`write_dataset`, the loaders' ``synthetic`` layout written atomically by
  worker processes, with a manifest and a preview.

Neither the generator nor its worker processes import torch: it runs on NumPy and OpenCV.
"""
from __future__ import annotations

from .errors import SynthError
from .geometry import (
    BACKDROP,
    GROUND,
    NEAR,
    OBJECT,
    SKY,
    STRUCTURE,
    Camera,
    Cylinder,
    Ellipsoid,
    Ground,
    Primitive,
    Quad,
    box_faces,
)
from .haze_draw import (
    AIRLIGHT_GREY,
    HAZE_BANDS,
    HAZE_FREE_FRACTION,
    OPTICAL_DEPTH_RANGE,
    HazeDistribution,
    airlight_map,
    haze_band,
    sample_haze,
)
from .renderer import Rendered, render, render_sample
from .scenes import (
    PHOTO_FAMILY_SOURCES,
    SCENE_FAMILIES,
    SCENE_WEIGHTS,
    Scene,
    Sky,
    draw_family,
    photo_clear,
    photo_layout_depth,
    random_scene,
)
from .writer import FORMAT, FORMAT_VERSION, write_dataset, write_preview

__all__ = [
    "AIRLIGHT_GREY", "BACKDROP", "FORMAT", "FORMAT_VERSION", "GROUND", "HAZE_BANDS", "HAZE_FREE_FRACTION", "NEAR",
    "OBJECT", "OPTICAL_DEPTH_RANGE", "PHOTO_FAMILY_SOURCES", "SCENE_FAMILIES", "SCENE_WEIGHTS", "SKY", "STRUCTURE",
    "Camera", "Cylinder", "Ellipsoid", "Ground", "HazeDistribution", "Primitive", "Quad", "Rendered", "Scene", "Sky",
    "SynthError", "airlight_map", "box_faces", "draw_family", "haze_band", "photo_clear", "photo_layout_depth",
    "random_scene", "render", "render_sample", "sample_haze", "write_dataset", "write_preview",
]
