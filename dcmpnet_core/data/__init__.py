"""Data for training and evaluating DCMPNet: dataset loaders, depth targets, the synthetic scene generator.

``build_dataset`` / ``list_pairs`` / ``detect_layout`` (:mod:`.datasets`) read the public dehazing
layouts and ``dcmpnet synth`` output; :mod:`.synth` renders hazy/clear/depth triples;
:mod:`.photos` hazes a real photo with a known depth map (the held-out motorcycle evaluation).
"""
from __future__ import annotations

from .datasets import (
    LAYOUTS,
    DatasetError,
    HazeDataset,
    PairRecord,
    build_dataset,
    detect_layout,
    list_pairs,
    load_pair,
    read_meta,
    read_rgb,
)
from .depth_targets import DEPTH_SOURCES, DepthError, DepthModel

__all__ = [
    "DEPTH_SOURCES", "LAYOUTS", "DatasetError", "DepthError", "DepthModel", "HazeDataset", "PairRecord",
    "build_dataset", "detect_layout", "list_pairs", "load_pair", "read_meta", "read_rgb",
]
