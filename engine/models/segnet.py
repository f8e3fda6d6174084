"""SegNet with pooling-index unpooling (seed 001; the encoder is VGG16-like).

The encoder has ``len(convs)`` blocks of 3x3 conv-BN-ReLU layers (VGG16: 2, 2, 3, 3, 3) each
followed by 2x2 max pooling whose indices are kept; the decoder mirrors it, upsampling with
:func:`torch.nn.functional.max_unpool2d` at those indices, then densifying convolutions.
``base`` is the width of the first block (64 in VGG16; reducible), widths double up to
``8 * base``. Inputs must be a multiple of ``2 ** len(convs)``.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .blocks import ConvBNAct

DEFAULTS = {"base": 32, "convs": [2, 2, 3, 3, 3], "num_classes": 4, "in_channels": 1, "activation": "relu"}


def _widths(base: int, n: int) -> list[int]:
    return [base * min(2 ** i, 8) for i in range(n)]


class SegNetEncoder(nn.Module):
    """VGG-style encoder returning the deepest features, pooling indices and sizes."""

    def __init__(self, in_channels: int, base: int, convs: list[int], activation: str = "relu") -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        cin = in_channels
        for w, n in zip(_widths(base, len(convs)), convs):
            layers = []
            for _ in range(n):
                layers.append(ConvBNAct(cin, w, activation=activation))
                cin = w
            self.blocks.append(nn.Sequential(*layers))
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Size]]:
        indices, sizes = [], []
        for block in self.blocks:
            x = block(x)
            sizes.append(x.shape)
            x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
            indices.append(idx)
        return x, indices, sizes


class SegNetDecoder(nn.Module):
    """Mirror of :class:`SegNetEncoder`: max-unpooling at the stored indices, then convolutions."""

    def __init__(self, in_channels: int, base: int, convs: list[int], out_channels: int,
                 activation: str = "relu") -> None:
        super().__init__()
        widths = _widths(base, len(convs))
        self.blocks = nn.ModuleList()
        cin = in_channels
        rev = list(reversed(range(len(convs))))
        for i in rev:
            w_out = widths[i - 1] if i > 0 else widths[0]
            layers = []
            for j in range(convs[i]):
                w = w_out if j == convs[i] - 1 else widths[i]
                layers.append(ConvBNAct(cin, w, activation=activation))
                cin = w
            self.blocks.append(nn.Sequential(*layers))
        self.out_channels = cin
        self.head = nn.Conv2d(cin, out_channels, 3, padding=1) if out_channels else None

    def forward(self, x: torch.Tensor, indices: list[torch.Tensor], sizes: list[torch.Size]) -> torch.Tensor:
        for block, idx, size in zip(self.blocks, reversed(indices), reversed(sizes)):
            x = F.max_unpool2d(x, idx, 2, 2, output_size=size[-2:])
            x = block(x)
        return self.head(x) if self.head is not None else x


class SegNet(nn.Module):
    """SegNet (Badrinarayanan et al.) as used by seed 001."""

    def __init__(self, in_channels: int = 1, num_classes: int = 4, base: int = 32,
                 convs: list[int] | tuple[int, ...] = (2, 2, 3, 3, 3), activation: str = "relu") -> None:
        super().__init__()
        convs = list(convs)
        self.encoder = SegNetEncoder(in_channels, base, convs, activation)
        self.decoder = SegNetDecoder(self.encoder.out_channels, base, convs, num_classes, activation)
        self.multiple = 2 ** len(convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, indices, sizes = self.encoder(x)
        return self.decoder(feats, indices, sizes)


def build(config: dict) -> SegNet:
    c = {**DEFAULTS, **config}
    return SegNet(c["in_channels"], c["num_classes"], c["base"], c["convs"], c["activation"])
