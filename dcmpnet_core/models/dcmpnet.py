"""DCMPNet: the dehazing network and the DE network, trained together, used together."""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import torch
from torch import nn

from ..utils.depth_convention import RELATIVE_DEPTH, check_depth_kind
from .config import ModelConfig, model_config_from
from .dehaze_net import DehazeNet
from .depth_net import DepthNet


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
    Loading and saving: :mod:`dcmpnet_core.checkpoints.builder`.
    """

    def __init__(self, config: str | Mapping[str, Any] | ModelConfig = "paper",
                 depth_kind: str = RELATIVE_DEPTH) -> None:
        super().__init__()
        self.config = model_config_from(config)
        self.depth_kind = check_depth_kind(depth_kind)
        self.dehaze_net = DehazeNet(self.config.dehaze)
        self.depth_net = DepthNet(self.config.depth)

    def forward(self, hazy: torch.Tensor) -> DCMPNetOutput:
        """Hazy (B,3,H,W) in [-1, 1] -> dehazed image, its depth map and the guidance maps."""
        out = self.dehaze_net(hazy)
        return DCMPNetOutput(out.dehazed, self.depth_net.predict(out.dehazed), out.guidance)
