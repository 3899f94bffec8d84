"""The DE (depth estimation) network: a DRDB encoder-decoder without skip connections."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .config import DepthNetConfig
from .layers import DRDB, pad_to_multiple


class DepthNet(nn.Module):
    """Image (B,3,H,W) in [-1, 1] -> one-channel depth map (B,1,H',W').

    Four stride-2 convs down, four stride-2 transposed convs up, a DRDB at every scale, a 1x1
    conv head and no output activation.  H' = 16 * ceil(H / 16) (same for W): for sides that are
    not multiples of 16 the map is larger than the input and its top-left H x W part is the one
    aligned with the input (that is how the dehazing network uses it).
    """

    def __init__(self, config: DepthNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or DepthNetConfig()
        self.config = cfg
        chans = (3, *cfg.widths)                                   # 3, 24, 48, 96, 128
        self.enc_blocks = nn.ModuleList(DRDB(c, cfg.growth) for c in chans)
        self.downs = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, stride=2, padding=1) for i in range(4))
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(chans[4 - i], chans[3 - i], 4, stride=2, padding=1) for i in range(4)
        )
        self.dec_blocks = nn.ModuleList(DRDB(chans[3 - i], cfg.growth) for i in range(3))
        self.head = nn.Conv2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, down in zip(self.enc_blocks, self.downs):
            x = down(block(x))
        x = self.enc_blocks[4](x)
        x = self.ups[0](x)
        for block, up in zip(self.dec_blocks, self.ups[1:]):
            x = up(block(x))
        # In fp16/bf16 inference the 1x1 head is kept in float32 (fastpath.keep_fp32_islands): depth is
        # returned in float32 and normalised per image, so its range must not overflow.
        return self.head(x.to(self.head.weight.dtype))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Depth aligned with the input: reflect-pad to a multiple of 16, run, crop back to (B,1,H,W)."""
        return predict_aligned(self, x)


def predict_aligned(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """:meth:`DepthNet.predict` through ``net``: a DepthNet or a wrapper that calls its forward (DDP).

    Image (B,3,H,W) -> depth (B,1,H,W): reflect-padded to a multiple of 16, run, cropped back.
    """
    h, w = x.shape[-2:]
    return net(pad_to_multiple(x, 16))[..., :h, :w]
