"""Seed 000's two-stage, two-stream structure/texture encoder-decoder (Elharrouss et al.).

The input slice is split inside the module into structure S and texture T = I - S by
interval-gradient smoothing (:mod:`engine.preprocessing.decomposition`, eps_s = 1e-4), so
callers pass the plain slice. Each stage is a SegNet-like encoder-decoder with PReLU and
one encoder per stream (structure, texture); the deepest features of both streams are
concatenated, fused by a 1x1 convolution and decoded by max-unpooling at the structure
stream's pooling indices. Stage 1 segments the lung region (1 logit); stage 2 takes both
components plus the stage-1 probability and segments infection (1 logit); with
``stages=3`` a third stage takes the components plus the stage-2 probability and gives the
multi-class map (``num_classes`` logits).

Eval output: ``stages=3`` -> (B, num_classes, H, W) logits; ``stages=2`` -> two-class
(background, infection) logits. Training output: ``{"lung", "infection", "logits"}``.
Inputs must be a multiple of ``2 ** len(convs)``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..preprocessing.decomposition import interval_gradient_smooth
from .blocks import binary_to_two_class
from .segnet import SegNetDecoder, SegNetEncoder

DEFAULTS = {"base": 16, "convs": [2, 2, 3, 3, 3], "stages": 3, "num_classes": 4, "in_channels": 1,
            "sigma": 3.0, "iterations": 3}


class TwoStreamSegNet(nn.Module):
    """One stage: structure and texture encoders, fused, one unpooling decoder (PReLU)."""

    def __init__(self, extra: int, out: int, base: int, convs: list[int]) -> None:
        super().__init__()
        self.enc_s = SegNetEncoder(1 + extra, base, convs, "prelu")
        self.enc_t = SegNetEncoder(1 + extra, base, convs, "prelu")
        c = self.enc_s.out_channels
        self.fuse = nn.Sequential(nn.Conv2d(2 * c, c, 1), nn.BatchNorm2d(c), nn.PReLU(c))
        self.dec = SegNetDecoder(c, base, convs, out, "prelu")

    def forward(self, s: torch.Tensor, t: torch.Tensor, extra: list[torch.Tensor]) -> torch.Tensor:
        fs, idx, sizes = self.enc_s(torch.cat([s, *extra], 1))
        ft, _, _ = self.enc_t(torch.cat([t, *extra], 1))
        return self.dec(self.fuse(torch.cat([fs, ft], 1)), idx, sizes)


class TwoStageTwoStream(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 4, base: int = 16,
                 convs: list[int] | tuple[int, ...] = (2, 2, 3, 3, 3), stages: int = 3,
                 sigma: float = 3.0, iterations: int = 3) -> None:
        super().__init__()
        convs = list(convs)
        self.sigma, self.iterations, self.stages = sigma, iterations, stages
        self.stage1 = TwoStreamSegNet(in_channels - 1, 1, base, convs)
        self.stage2 = TwoStreamSegNet(in_channels, 1, base, convs)
        self.stage3 = TwoStreamSegNet(in_channels, num_classes, base, convs) if stages >= 3 else None
        self.multiple = 2 ** len(convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        img = x[:, :1]
        s = interval_gradient_smooth(img, self.sigma, self.iterations).to(x.dtype)
        t = img - s
        rest = [x[:, 1:]] if x.shape[1] > 1 else []
        lung = self.stage1(s, t, rest)
        inf = self.stage2(s, t, rest + [torch.sigmoid(lung)])
        logits = self.stage3(s, t, rest + [torch.sigmoid(inf)]) if self.stage3 is not None else None
        if self.training:
            out = {"lung": lung, "infection": inf}
            if logits is not None:
                out["logits"] = logits
            return out
        return logits if logits is not None else binary_to_two_class(inf)


def build(config: dict) -> TwoStageTwoStream:
    c = {**DEFAULTS, **config}
    return TwoStageTwoStream(c["in_channels"], c["num_classes"], c["base"], c["convs"], c["stages"],
                             c["sigma"], c["iterations"])
