"""U-Net (seed 002: 2D U-Net, base 32 filters; seed 001: the 4-class variant at 256x256).

Variants are configuration: ``base`` (filters of the first level, 32 in seed 002),
``depth`` (number of poolings, 4 in both seeds), ``norm`` (``"bn"`` or ``"none"``; seed 002
has none, batch norm trains faster from scratch), ``dropout`` (in the two deepest blocks as in
seed 001's MATLAB U-Net) and ``num_classes`` (4 for background/GGO/consolidation/effusion,
2 for binary infection or lung). Inputs must be a multiple of ``2**depth`` in each dimension.

``deep_supervision`` (nnU-Net's habit) adds a 1x1 head to each of the ``depth - 1`` coarser
decoder levels. In training mode the network then returns ``{"logits": full-resolution
logits, "deep": [logits at 1/2, 1/4, ... resolution]}`` for
:func:`engine.training.losses.deep_supervision_loss`; in eval mode it returns the plain logits
(the registry's contract) and the extra heads cost nothing.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .blocks import DoubleConv

DEFAULTS = {"base": 32, "depth": 4, "norm": "bn", "dropout": 0.0, "num_classes": 4, "in_channels": 1,
            "deep_supervision": False}


class UNet(nn.Module):
    """The 2D U-Net of Ronneberger et al. with a configurable width and depth."""

    def __init__(self, in_channels: int = 1, num_classes: int = 4, base: int = 32, depth: int = 4,
                 norm: str = "bn", dropout: float = 0.0, deep_supervision: bool = False) -> None:
        super().__init__()
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for i, w in enumerate(widths):
            drop = dropout if i >= depth - 1 else 0.0
            self.down.append(DoubleConv(cin, w, norm=norm, dropout=drop))
            cin = w
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(cin, w, 2, stride=2))
            self.dec.append(DoubleConv(2 * w, w, norm=norm))
            cin = w
        self.head = nn.Conv2d(cin, num_classes, 1)
        self.multiple = 2 ** depth
        # heads of the coarser decoder levels, finest first (1/2, 1/4, ...)
        self.deep_heads = nn.ModuleList(
            [nn.Conv2d(w, num_classes, 1) for w in widths[:-1][1:]]) if deep_supervision else None

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        levels = []
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            x = dec(torch.cat([x, skips.pop()], dim=1))
            levels.append(x)
        logits = self.head(x)
        if self.deep_heads is None or not self.training:
            return logits
        coarse = levels[:-1][::-1]  # 1/2, 1/4, ... resolution
        return {"logits": logits, "deep": [h(f) for h, f in zip(self.deep_heads, coarse)]}


def build(config: dict) -> UNet:
    c = {**DEFAULTS, **config}
    return UNet(c["in_channels"], c["num_classes"], c["base"], c["depth"], c["norm"], c["dropout"],
                bool(c["deep_supervision"]))
