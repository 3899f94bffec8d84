"""The U-Net guide of the dehazing network."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DoubleConv


class GuideUNet(nn.Module):
    """A classic four-level U-Net (bilinear upsampling) used as a feature guide.

    Input (B,3,H,W); returns the decoder maps at 1/4 scale (2w channels), 1/2 scale (w channels)
    and the 3-channel full-scale output, where w is ``width`` (64 in the paper).
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        w = width
        self.stem = DoubleConv(3, w)
        self.downs = nn.ModuleList([DoubleConv(w, 2 * w), DoubleConv(2 * w, 4 * w),
                                    DoubleConv(4 * w, 8 * w), DoubleConv(8 * w, 8 * w)])
        self.ups = nn.ModuleList([DoubleConv(16 * w, 4 * w), DoubleConv(8 * w, 2 * w),
                                  DoubleConv(4 * w, w), DoubleConv(2 * w, w)])
        self.head = nn.Conv2d(w, 3, 1)

    @staticmethod
    def _up_and_join(deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        deep = F.interpolate(deep, scale_factor=2.0, mode="bilinear", align_corners=True)
        dy, dx = skip.shape[2] - deep.shape[2], skip.shape[3] - deep.shape[3]
        deep = F.pad(deep, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return torch.cat([skip, deep], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        outs = []
        for up in self.ups:
            y = up(self._up_and_join(y, skips.pop()))
            outs.append(y)
        return outs[1], outs[2], self.head(outs[3])
