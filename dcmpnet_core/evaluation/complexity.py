"""Parameter and multiply-accumulate counts of the model variants (no real compute: meta tensors)."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..models.config import ModelConfig
from ..models.dcmpnet import DCMPNet


def count_macs(config: ModelConfig, height: int = 480, width: int = 640) -> dict[str, float]:
    """Parameters and MACs of both networks for one (height x width) frame, computed on the meta device."""
    with torch.device("meta"):
        model = DCMPNet(config).eval()
        x = torch.empty(1, 3, height, width)
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            dehazed = model.dehaze_net(x).dehazed
        dehaze_macs = counter.get_total_flops() / 2
        counter = FlopCounterMode(display=False)
        with counter:
            model.depth_net.predict(dehazed)
        depth_macs = counter.get_total_flops() / 2
    return {
        "dehaze_params": sum(p.numel() for p in model.dehaze_net.parameters()),
        "depth_params": sum(p.numel() for p in model.depth_net.parameters()),
        "dehaze_macs": dehaze_macs,
        "depth_macs": depth_macs,
    }
