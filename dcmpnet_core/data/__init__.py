"""Data for training and evaluating DCMPNet: dataset loaders, depth targets, the synthetic scene generator.

``build_dataset`` / ``list_pairs`` / ``detect_layout`` (:mod:`.datasets`) read the public dehazing
layouts and ``dcmpnet synth`` output; :mod:`.synth` renders hazy/clear/depth triples;
:mod:`.photos` hazes a real photo with a known depth map (the held-out motorcycle evaluation).
Names are imported lazily so that the generator (and its worker processes) never import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "LAYOUTS": "datasets", "DatasetError": "datasets", "HazeDataset": "datasets", "PairRecord": "datasets",
    "build_dataset": "datasets", "detect_layout": "datasets", "list_pairs": "datasets", "load_pair": "datasets",
    "read_meta": "datasets", "read_rgb": "datasets",
    "DEPTH_SOURCES": "depth_targets", "DepthError": "depth_targets", "DepthModel": "depth_targets",
    "write_dataset": "synth", "render_sample": "synth", "SynthError": "synth",
    "photo_pairs": "photos", "motorcycle_scene": "photos",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
