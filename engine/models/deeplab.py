"""DeepLab-v3+ (seed 004): Xception-style encoder of atrous separable convolutions, ASPP with
rates 6/12/18 at output stride 16, and a decoder fusing stride-4 low-level features.

``mode="all"``: one all-class stream, ``num_classes`` logits.
``mode="per_finding"``: one specialised binary stream per finding (GGO, consolidation,
effusion), as seed 004's specialised DeepLab streams; their logits z_k are merged into
4-class logits ``[0, z_ggo, z_cons, z_eff]`` (a class wins where its stream is positive and
strongest). Training additionally returns the per-stream logits for their own binary loss.

Configuration: ``width`` (32 gives entry-flow widths 32..256; Xception uses 64..728),
``middle`` (middle-flow blocks; 16 in Xception-65, reducible), ``aspp_channels`` (256),
``rates`` ((6, 12, 18)). Inputs must be a multiple of 16 (32 recommended).
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .blocks import ConvBNAct, SeparableConv, up_to

DEFAULTS = {"mode": "all", "width": 32, "middle": 4, "aspp_channels": 128, "rates": [6, 12, 18],
            "num_classes": 4, "in_channels": 1}


class XceptionBlock(nn.Module):
    """Three separable convolutions with a residual connection (last one may stride)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.convs = nn.Sequential(SeparableConv(cin, cout, dilation=dilation),
                                   SeparableConv(cout, cout, dilation=dilation),
                                   SeparableConv(cout, cout, stride=stride, dilation=dilation))
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x) + (x if self.skip is None else self.skip(x))


class XceptionEncoder(nn.Module):
    """Aligned-Xception-style encoder with output stride 16; returns (low-level s4, high-level s16)."""

    def __init__(self, in_channels: int, width: int, middle: int) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(ConvBNAct(in_channels, w // 2, stride=2), ConvBNAct(w // 2, w))
        self.block1 = XceptionBlock(w, 2 * w, stride=2)          # stride 4: low-level features
        self.block2 = XceptionBlock(2 * w, 4 * w, stride=2)      # stride 8
        self.block3 = XceptionBlock(4 * w, 8 * w, stride=2)      # stride 16
        self.middle = nn.Sequential(*[XceptionBlock(8 * w, 8 * w) for _ in range(middle)])
        self.exit = nn.Sequential(XceptionBlock(8 * w, 12 * w, dilation=2),  # atrous instead of stride 32
                                  SeparableConv(12 * w, 16 * w, dilation=2))
        self.low_channels, self.high_channels = 2 * w, 16 * w

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.block1(self.stem(x))
        high = self.exit(self.middle(self.block3(self.block2(low))))
        return low, high


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three atrous separable 3x3 branches, image pooling."""

    def __init__(self, cin: int, c: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList([ConvBNAct(cin, c, k=1)] + [SeparableConv(cin, c, dilation=r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, c, 1, bias=False), nn.ReLU(inplace=True))
        self.project = nn.Sequential(ConvBNAct(c * (len(rates) + 2), c, k=1), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [b(x) for b in self.branches]
        feats.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(feats, 1))


class DeepLabV3Plus(nn.Module):
    """One DeepLab-v3+ stream."""

    def __init__(self, in_channels: int = 1, num_classes: int = 4, width: int = 32, middle: int = 4,
                 aspp_channels: int = 128, rates: tuple[int, ...] = (6, 12, 18)) -> None:
        super().__init__()
        self.encoder = XceptionEncoder(in_channels, width, middle)
        self.aspp = ASPP(self.encoder.high_channels, aspp_channels, tuple(rates))
        self.low = ConvBNAct(self.encoder.low_channels, 48, k=1)
        self.decoder = nn.Sequential(SeparableConv(aspp_channels + 48, aspp_channels),
                                     SeparableConv(aspp_channels, aspp_channels))
        self.head = nn.Conv2d(aspp_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.encoder(x)
        y = up_to(self.aspp(high), low)
        y = self.decoder(torch.cat([y, self.low(low)], 1))
        return up_to(self.head(y), x)


class DeepLabStreams(nn.Module):
    """Per-finding specialised DeepLab-v3+ streams merged into 4-class logits."""

    def __init__(self, in_channels: int = 1, width: int = 32, middle: int = 4, aspp_channels: int = 128,
                 rates: tuple[int, ...] = (6, 12, 18), n_streams: int = 3) -> None:
        super().__init__()
        self.streams = nn.ModuleList(DeepLabV3Plus(in_channels, 1, width, middle, aspp_channels, rates)
                                     for _ in range(n_streams))

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        z = torch.cat([s(x) for s in self.streams], 1)
        logits = torch.cat([torch.zeros_like(z[:, :1]), z], 1)
        if self.training:
            return {"logits": logits, "streams": z}
        return logits


def build(config: dict) -> nn.Module:
    c = {**DEFAULTS, **config}
    if c["mode"] == "per_finding":
        return DeepLabStreams(c["in_channels"], c["width"], c["middle"], c["aspp_channels"], c["rates"],
                              c["num_classes"] - 1)
    if c["mode"] != "all":
        raise ValueError(f"deeplabv3plus mode must be 'all' or 'per_finding', not {c['mode']!r}")
    return DeepLabV3Plus(c["in_channels"], c["num_classes"], c["width"], c["middle"], c["aspp_channels"], c["rates"])
