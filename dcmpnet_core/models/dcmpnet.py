"""DCMPNet: the dehazing network and the DE network, trained together, used together."""
from __future__ import annotations

import os
from typing import Any, Mapping, NamedTuple

import torch
from torch import nn

from ..checkpoints.format import (
    DEPTH_KINDS,
    build_checkpoint,
    check_state_fits,
    load_state_strict,
    read_checkpoint,
    safe_torch_load,
)
from ..checkpoints.upstream import convert_dehaze_state_dict, convert_depth_state_dict
from ..utils.fileio import atomic_torch_save
from .config import ConfigError, ModelConfig, model_config_from
from .dehaze_net import DehazeNet
from .depth_net import DepthNet

StateDictOrPath = Mapping[str, Any] | str | os.PathLike


class DCMPNetOutput(NamedTuple):
    """Outputs of the whole model.

    ``dehazed`` (B,3,H,W), unclamped, [-1, 1] nominal; ``depth`` (B,1,H,W) from the DE network
    applied to ``dehazed``; ``guidance`` as in :class:`~dcmpnet_core.models.dehaze_net.DehazeOutput`.
    """

    dehazed: torch.Tensor
    depth: torch.Tensor
    guidance: tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class DCMPNet(nn.Module):
    """The two networks of DCMPNet (Zhang, Zhou, Li, CVPR 2024).

    ``config`` is a variant name (``"paper"``, ``"small"``, ``"tiny"``), a :class:`ModelConfig` or
    a mapping.  ``depth_kind`` records what the DE network's output means: ``relative_depth``
    (larger = farther, this project's training convention) or ``relative_disparity`` (larger =
    nearer; networks trained by the original code against a disparity-predicting teacher).
    """

    def __init__(self, config: str | Mapping[str, Any] | ModelConfig = "paper",
                 depth_kind: str = "relative_depth") -> None:
        super().__init__()
        if depth_kind not in DEPTH_KINDS:
            raise ValueError(f"depth_kind must be one of {DEPTH_KINDS}, got {depth_kind!r}")
        self.config = model_config_from(config)
        self.depth_kind = depth_kind
        self.dehaze_net = DehazeNet(self.config.dehaze)
        self.depth_net = DepthNet(self.config.depth)

    def forward(self, hazy: torch.Tensor) -> DCMPNetOutput:
        """Hazy (B,3,H,W) in [-1, 1] -> dehazed image, its depth map and the guidance maps."""
        out = self.dehaze_net(hazy)
        return DCMPNetOutput(out.dehazed, self.depth_net.predict(out.dehazed), out.guidance)

    # ----------------------------------------------------------------------------------- loading
    @classmethod
    def from_upstream(cls, dehaze_state_dict: StateDictOrPath, depth_state_dict: StateDictOrPath,
                      config: str | Mapping[str, Any] | ModelConfig = "paper",
                      depth_kind: str = "relative_disparity") -> "DCMPNet":
        """Build from the original release's weights (state dicts, whole checkpoints or their paths).

        The tensors ``conv11``, ``conv22``, ``conv_fu``, ``ccc`` and ``fuse_conv1`` take no part
        in the published output and are dropped; any other mismatch raises one
        :class:`~dcmpnet_core.checkpoints.upstream.CheckpointError` listing every missing, unexpected and
        misshaped tensor.  Returns the model in eval mode.
        """
        model = cls(config, depth_kind=depth_kind)
        dehaze = safe_torch_load(dehaze_state_dict) if isinstance(dehaze_state_dict, (str, os.PathLike)) \
            else dehaze_state_dict
        depth = safe_torch_load(depth_state_dict) if isinstance(depth_state_dict, (str, os.PathLike)) \
            else depth_state_dict
        load_state_strict(model.dehaze_net, convert_dehaze_state_dict(dehaze, model.dehaze_net), "dehazing-network")
        load_state_strict(model.depth_net, convert_depth_state_dict(depth, model.depth_net), "DE-network")
        return model.eval()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> "DCMPNet":
        """Load a project checkpoint (``torch.load(weights_only=True)``); returns the model in eval mode."""
        ckpt = read_checkpoint(path, map_location)
        try:
            config = model_config_from(ckpt["config"])  # sizes outside config.LIMITS fail here, before any layer
        except ConfigError as exc:
            raise ConfigError(f"{os.fspath(path)!r}: invalid model config: {exc}") from None
        with torch.device("meta"):                       # shapes only: no memory until the tensors fit
            skeleton = cls(config, depth_kind=ckpt["depth_kind"])
        check_state_fits(skeleton.dehaze_net, ckpt["dehaze_net"], f"{os.fspath(path)!r}: dehazing-network")
        check_state_fits(skeleton.depth_net, ckpt["depth_net"], f"{os.fspath(path)!r}: DE-network")
        model = cls(config, depth_kind=ckpt["depth_kind"])
        model.checkpoint_meta = dict(ckpt.get("meta") or {})
        load_state_strict(model.dehaze_net, ckpt["dehaze_net"], f"{os.fspath(path)!r}: dehazing-network")
        load_state_strict(model.depth_net, ckpt["depth_net"], f"{os.fspath(path)!r}: DE-network")
        return model.eval()

    def checkpoint_dict(self, meta: Mapping[str, Any] | None = None, half: bool = False) -> dict:
        return build_checkpoint(self.config.to_dict(), self.dehaze_net.state_dict(), self.depth_net.state_dict(),
                                self.depth_kind, meta, half)

    def save_checkpoint(self, path: str | os.PathLike, meta: Mapping[str, Any] | None = None,
                        half: bool = False) -> None:
        """Write a project checkpoint atomically; ``half`` stores floating tensors as float16."""
        atomic_torch_save(self.checkpoint_dict(meta, half), path)
