"""Inf-Net (Fan et al. 2020) with the swappable backbones of seed 003.

Low-level features (x1, stride 4) feed the edge-attention branch (edge map, edge loss);
receptive-field blocks on x2..x4 feed the parallel partial decoder, which gives the coarse
global map S_g at stride 8; three reverse-attention blocks refine it at x4, x3 and x2, each
guided by the edge features. Training returns every side output for deep supervision
(weighted BCE + weighted IoU, plus BCE on the edge map); eval returns the final map.

Configuration: ``backbone`` (see :mod:`engine.models.backbones`), ``width`` (64 = -50 size),
``layers``, ``groups`` (ResNeXt cardinality), ``channel`` (RFB width, 32), ``ra_channels``
(reverse-attention widths at x4 and at x3/x2; 256 and 64 in Inf-Net) and ``num_classes``:
1 gives the binary Inf-Net (eval output two-class logits background/infection); more than 1
adds a multi-class head on the last reverse-attention and edge features (eval output
``num_classes`` logits). Inputs must be a multiple of 32.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .backbones import build_backbone
from .blocks import binary_to_two_class, up_to

DEFAULTS = {"backbone": "res2net", "width": 64, "layers": None, "groups": 32, "channel": 32,
            "ra_channels": [256, 64], "num_classes": 1, "in_channels": 1}


class BasicConv2d(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 dilation: int = 1, relu: bool = False) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=padding, dilation=dilation, bias=False),
                                   nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class RFB(nn.Module):
    """Receptive field block (modified, as in Inf-Net)."""

    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        def branch(k: int) -> nn.Sequential:
            p = k // 2
            return nn.Sequential(BasicConv2d(cin, c, 1), BasicConv2d(c, c, (1, k), (0, p)),
                                 BasicConv2d(c, c, (k, 1), (p, 0)), BasicConv2d(c, c, 3, k, dilation=k))
        self.b0 = BasicConv2d(cin, c, 1)
        self.b1, self.b2, self.b3 = branch(3), branch(5), branch(7)
        self.cat = BasicConv2d(4 * c, c, 3, 1)
        self.res = BasicConv2d(cin, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cat(torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], 1))
        return F.relu(y + self.res(x))


class PartialDecoder(nn.Module):
    """Parallel partial decoder aggregating the three high-level features into S_g."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.up1, self.up2, self.up3 = BasicConv2d(c, c, 3, 1), BasicConv2d(c, c, 3, 1), BasicConv2d(c, c, 3, 1)
        self.up4, self.up5 = BasicConv2d(c, c, 3, 1), BasicConv2d(2 * c, 2 * c, 3, 1)
        self.cat2, self.cat3 = BasicConv2d(2 * c, 2 * c, 3, 1), BasicConv2d(3 * c, 3 * c, 3, 1)
        self.conv4 = BasicConv2d(3 * c, 3 * c, 3, 1)
        self.conv5 = nn.Conv2d(3 * c, 1, 1)

    def forward(self, x4: torch.Tensor, x3: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x2_1 = self.up1(up_to(x4, x3)) * x3
        x3_1 = self.up2(up_to(x4, x2)) * self.up3(up_to(x3, x2)) * x2
        x2_2 = self.cat2(torch.cat([x2_1, self.up4(up_to(x4, x3))], 1))
        x3_2 = self.cat3(torch.cat([x3_1, self.up5(up_to(x2_2, x2))], 1))
        return self.conv5(self.conv4(x3_2))


class ReverseAttention(nn.Module):
    """Reverse attention: erase the current prediction, learn the missed regions, add back."""

    def __init__(self, cin: int, c: int, edge_c: int, k: int, n_convs: int) -> None:
        super().__init__()
        p = k // 2
        self.conv1 = BasicConv2d(cin, c, 1, relu=True)
        convs: list[nn.Module] = [BasicConv2d(c + edge_c, c, k, p, relu=True)]
        convs += [BasicConv2d(c, c, k, p, relu=True) for _ in range(n_convs - 1)]
        self.convs = nn.Sequential(*convs)
        self.out = nn.Conv2d(c, 1, 3 if k == 3 else 1, padding=1 if k == 3 else 0)

    def forward(self, feat: torch.Tensor, prior: torch.Tensor, edge: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prior = up_to(prior, feat)
        rev = 1.0 - torch.sigmoid(prior)
        x = self.conv1(feat * rev)
        x = self.convs(torch.cat([x, up_to(edge, x)], 1))
        return self.out(x) + prior, x


class InfNet(nn.Module):
    """Inf-Net for lung infection segmentation."""

    def __init__(self, in_channels: int = 1, num_classes: int = 1, backbone: str = "res2net", width: int = 64,
                 layers: list[int] | None = None, groups: int = 32, channel: int = 32,
                 ra_channels: tuple[int, int] | list[int] = (256, 64)) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone, in_channels, width, layers, groups)
        c1, c2, c3, c4 = self.backbone.channels
        self.rfb2, self.rfb3, self.rfb4 = RFB(c2, channel), RFB(c3, channel), RFB(c4, channel)
        self.pd = PartialDecoder(channel)
        e = 64
        self.edge1, self.edge2 = BasicConv2d(c1, e, 1, relu=True), BasicConv2d(e, e, 3, 1, relu=True)
        self.edge3 = BasicConv2d(e, e, 3, 1, relu=True)
        self.edge_out = nn.Conv2d(e, 1, 3, padding=1)
        r4, r = ra_channels
        self.ra4 = ReverseAttention(c4, r4, e, 5, 3)
        self.ra3 = ReverseAttention(c3, r, e, 3, 2)
        self.ra2 = ReverseAttention(c2, r, e, 3, 2)
        self.num_classes = num_classes
        self.class_head = None
        if num_classes > 1:
            self.class_head = nn.Sequential(BasicConv2d(r + e + 1, 64, 3, 1, relu=True),
                                            BasicConv2d(64, 64, 3, 1, relu=True), nn.Conv2d(64, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor | list[torch.Tensor]]:
        size = x.shape[-2:]
        x1, x2, x3, x4 = self.backbone(x)
        edge_feat = self.edge3(self.edge2(self.edge1(x1)))
        s5 = self.pd(self.rfb4(x4), self.rfb3(x3), self.rfb2(x2))
        s4, _ = self.ra4(x4, s5, edge_feat)
        s3, _ = self.ra3(x3, s4, edge_feat)
        s2, f2 = self.ra2(x2, s3, edge_feat)
        logits = None
        if self.class_head is not None:
            h = torch.cat([up_to(f2, edge_feat), edge_feat, up_to(s2, edge_feat)], 1)
            logits = up_to(self.class_head(h), size)
        if not self.training:
            return logits if logits is not None else binary_to_two_class(up_to(s2, size))
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {
            "side": [up_to(s, size) for s in (s5, s4, s3, s2)],
            "edge": up_to(self.edge_out(edge_feat), size)}
        if logits is not None:
            out["logits"] = logits
        return out


def build(config: dict) -> InfNet:
    c = {**DEFAULTS, **config}
    return InfNet(c["in_channels"], c["num_classes"], c["backbone"], c["width"], c["layers"], c["groups"],
                  c["channel"], c["ra_channels"])
