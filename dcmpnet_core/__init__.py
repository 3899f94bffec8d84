"""dcmpnet_core: DCMPNet (CVPR 2024) dehazing + depth in pure PyTorch. Never imports ROS.

Names are imported lazily, so ``import dcmpnet_core`` (and the CLI's ``--help``) stays fast
until a model is actually used.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "DCMPNet": "models.dcmpnet", "DCMPNetOutput": "models.dcmpnet",
    "DehazeNet": "models.dehaze_net", "DehazeOutput": "models.dehaze_net",
    "DepthNet": "models.depth_net",
    "ModelConfig": "models.config", "DehazeNetConfig": "models.config", "DepthNetConfig": "models.config",
    "VARIANTS": "models.config",
    "get_variant": "models.config", "ConfigError": "models.config",
    "CheckpointError": "checkpoints.upstream",
    "load_model": "checkpoints.builder", "save_model": "checkpoints.builder",
    "convert_upstream": "checkpoints.builder", "LoadedModel": "checkpoints.builder",
    "Dehazer": "inference.engine", "DehazeResult": "inference.engine",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dcmpnet_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
