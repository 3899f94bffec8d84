"""The dehazing network of DCMPNet (upstream ``DIACMPN``)."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .config import DehazeNetConfig
from .depth_net import DepthNet
from .guide import GuideUNet
from .layers import DRDB, MultiScaleAggregation, PatchSplit, SelectiveFusion, TransformerStage, pad_to_multiple


class DehazeOutput(NamedTuple):
    """``dehazed``: (B,3,H,W), same range as the input ([-1, 1] nominal), *not* clamped.

    ``guidance``: the projected U-Net guide maps (coarse, mid, fine) at 1/4, 1/2 and 1/1 scale of
    the input padded to a multiple of 4, with embed_dims[2], [1] and [0] channels (upstream
    ``d1, d2, d3``); the training task may use them for feature-consistency terms.
    """

    dehazed: torch.Tensor
    guidance: tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class DehazeNet(nn.Module):
    """Hazy image (B,3,H,W) in [-1, 1], any H, W >= 16 -> :class:`DehazeOutput`.

    A U-shaped transformer (three encoder and two decoder stages) predicts a residual added to
    the input.  Its encoder is steered by a U-Net guide at three scales and, at full scale, by a
    depth map of the hazy image itself (a DE network followed by a DRDB).  A multi-scale
    aggregation of the encoder feeds the decoder.
    """

    def __init__(self, config: DehazeNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or DehazeNetConfig()
        self.config = cfg
        e = cfg.embed_dims
        w = cfg.guide_width
        self.guide = GuideUNet(w)
        self.guide_proj_coarse = nn.Conv2d(2 * w, e[2], 1)
        self.guide_proj_mid = nn.Conv2d(w, e[1], 1)
        self.guide_proj_fine = nn.Conv2d(3, e[0], 1)
        self.prior_net = DepthNet(cfg.prior)
        self.prior_refine = DRDB(1, cfg.prior.growth)

        self.embed = nn.Conv2d(3, e[0], 3, padding=1, padding_mode="reflect")
        self.downs = nn.ModuleList([nn.Conv2d(e[0], e[1], 2, stride=2), nn.Conv2d(e[1], e[2], 2, stride=2)])
        self.ups = nn.ModuleList([PatchSplit(e[2], e[3]), PatchSplit(e[3], e[4])])
        # 1x1 convs in front of each stage that merge its input with the guidance (and the prior).
        self.stage_in = nn.ModuleList([
            nn.Conv2d(2 * e[0] + 1, e[0], 1),
            nn.Conv2d(2 * e[1], e[1], 1),
            nn.Conv2d(2 * e[2], e[2], 1),
            nn.Conv2d(e[3] + e[1], e[3], 1),
            nn.Conv2d(e[4] + e[0], e[4], 1),
        ])
        self.stages = nn.ModuleList(
            TransformerStage(e[i], cfg.depths[i], cfg.num_heads[i], cfg.mlp_ratios[i], cfg.attn_ratios[i],
                             cfg.window_size)
            for i in range(5)
        )
        self.skips = nn.ModuleList([nn.Conv2d(e[0], e[0], 1), nn.Conv2d(e[1], e[1], 1)])
        self.fusions = nn.ModuleList([SelectiveFusion(e[3]), SelectiveFusion(e[4])])
        self.msaam = MultiScaleAggregation((e[0], e[1], e[2]), cfg.msaam_hidden)
        # 1x1 convs that merge the aggregated encoder features into the decoder.
        self.dec_in = nn.ModuleList([nn.Conv2d(2 * e[2], e[2], 1), nn.Conv2d(e[1] + e[3], e[3], 1)])
        self.head = nn.Conv2d(e[4], 3, 3, padding=1, padding_mode="reflect")

    def guidance(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The projected guide maps of image ``x`` (B,3,H,W): :attr:`DehazeOutput.guidance`, without the rest.

        Runs the U-Net guide only (the training task compares the maps of the hazy and the clear image).
        """
        return self._project_guidance(pad_to_multiple(x, 4))

    def _project_guidance(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        coarse, mid, fine = self.guide(x)
        return self.guide_proj_coarse(coarse), self.guide_proj_mid(mid), self.guide_proj_fine(fine)

    def forward(self, x: torch.Tensor) -> DehazeOutput:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, 4)
        hp, wp = x.shape[-2:]

        g_coarse, g_mid, g_fine = self._project_guidance(x)
        prior = self.prior_refine(self.prior_net(x)[..., :hp, :wp])

        e1 = self.stages[0](self.stage_in[0](torch.cat([self.embed(x), g_fine, prior], dim=1)))
        m2 = self.downs[0](e1)
        e2 = self.stages[1](self.stage_in[1](torch.cat([m2, g_mid], dim=1)))
        m3 = self.downs[1](e2)
        e3 = self.stages[2](self.stage_in[2](torch.cat([m3, g_coarse], dim=1)))
        half, quarter = self.msaam(e1, e2, e3)

        # Published behaviour: the decoder starts from m3, the merged features *before* stage 3;
        # e3 reaches the decoder only through the aggregation.
        y = self.ups[0](self.dec_in[0](torch.cat([quarter, m3], dim=1)))
        y = self.fusions[0](y, self.skips[1](e2)) + y
        y = self.stages[3](self.stage_in[3](torch.cat([y, g_mid], dim=1)))
        y = self.ups[1](self.dec_in[1](torch.cat([half, y], dim=1)))
        y = self.fusions[1](y, self.skips[0](e1)) + y
        y = self.stages[4](self.stage_in[4](torch.cat([y, g_fine], dim=1)))
        out = (self.head(y) + x)[..., :h, :w]
        return DehazeOutput(out, (g_coarse, g_mid, g_fine))
