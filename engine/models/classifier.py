"""Slice classifiers of seed 004: the COVID / non-COVID classifier (stage 1; Inception-v3 in
the paper) and the multi-label finding classifier (stage 2: sigmoid probabilities that GGO,
consolidation and effusion are present).

A compact Inception-style CNN trained from scratch: a strided stem, then ``len(blocks)``
stages of Inception modules (1x1, 3x3, double-3x3 = 5x5 and pooling branches concatenated),
each stage followed by 2x2 pooling, global average pooling, dropout and a linear layer with
``num_outputs`` logits. Any input size works (global pooling); the card records the size
trained at.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .blocks import ConvBNAct

DEFAULTS = {"width": 32, "blocks": [1, 2, 2], "num_outputs": 3, "dropout": 0.3, "in_channels": 1}


class Inception(nn.Module):
    """Inception module with four branches; output channels ``cout``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        b = cout // 4
        self.b1 = ConvBNAct(cin, b, k=1)
        self.b3 = nn.Sequential(ConvBNAct(cin, b, k=1), ConvBNAct(b, b))
        self.b5 = nn.Sequential(ConvBNAct(cin, b, k=1), ConvBNAct(b, b), ConvBNAct(b, b))
        self.bp = ConvBNAct(cin, cout - 3 * b, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(x, 3, 1, 1)
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(pooled)], 1)


class SliceClassifier(nn.Module):
    def __init__(self, in_channels: int = 1, num_outputs: int = 3, width: int = 32,
                 blocks: list[int] | tuple[int, ...] = (1, 2, 2), dropout: float = 0.3) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvBNAct(in_channels, width // 2, stride=2), ConvBNAct(width // 2, width),
                                  nn.MaxPool2d(2))
        layers: list[nn.Module] = []
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2 ** (i + 1)
            for _ in range(n):
                layers.append(Inception(cin, cout))
                cin = cout
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.stem(x))
        return self.fc(self.drop(x.mean((2, 3))))


def build(config: dict) -> SliceClassifier:
    c = {**DEFAULTS, **config}
    return SliceClassifier(c["in_channels"], c["num_outputs"], c["width"], c["blocks"], c["dropout"])
