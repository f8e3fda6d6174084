"""Backbones of seed 003's Inf-Net variants, in plain PyTorch, trained from scratch.

``build_backbone(name, width, layers, ...)`` returns a module whose ``forward`` gives four
feature maps at strides 4, 8, 16 and 32 (Inf-Net's x1..x4) and whose ``channels`` lists their
widths. ``name`` is one of ``res2net`` (Res2Net-50 26w4s), ``resnet`` (ResNet-50), ``resnext``
(ResNeXt-50 32x4d), ``resnest`` (ResNeSt-50, split attention radix 2), ``iresnet`` (iResNet-50,
improved residual stages and projection shortcut) and ``vgg16``. ``width=64`` and
``layers=(3, 4, 6, 3)`` give the -50 sizes; both can be reduced for size (configuration).
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from .blocks import ConvBNAct

BACKBONES = ("res2net", "resnet", "resnext", "resnest", "iresnet", "vgg16")


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c)


class SplitAttentionConv(nn.Module):
    """ResNeSt split-attention 3x3 convolution (radix splits, cardinality ``groups``)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, radix: int = 2, groups: int = 1) -> None:
        super().__init__()
        self.radix, self.cout = radix, cout
        self.conv = nn.Conv2d(cin, cout * radix, 3, stride, 1, groups=groups * radix, bias=False)
        self.bn = _bn(cout * radix)
        inter = max(cout * radix // 4, 16)
        self.fc1 = nn.Conv2d(cout, inter, 1, groups=groups)
        self.bn1 = _bn(inter)
        self.fc2 = nn.Conv2d(inter, cout * radix, 1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        b = x.shape[0]
        splits = x.view(b, self.radix, self.cout, *x.shape[-2:])
        gap = splits.sum(1).mean((2, 3), keepdim=True)
        att = self.fc2(F.relu(self.bn1(self.fc1(gap)))).view(b, self.radix, self.cout, 1, 1)
        att = torch.softmax(att, dim=1)
        return (splits * att).sum(1)


class Bottleneck(nn.Module):
    """Bottleneck residual block; ``kind`` selects the ResNet / ResNeXt / ResNeSt / Res2Net /
    iResNet flavour of its middle convolution and normalisation placement."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, kind: str, groups: int = 32,
                 scale: int = 4, position: str = "middle") -> None:
        super().__init__()
        self.kind, self.position = kind, position
        cout = planes * self.expansion
        if kind == "resnext":
            mid = planes * 2  # 32x4d at planes=64 -> 128
            g = math.gcd(groups, mid)
        elif kind == "res2net":
            w = max(int(math.floor(planes * 26 / 64)), 2)
            mid = w * scale
            g = 1
        else:
            mid, g = planes, 1
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = _bn(mid)
        if kind == "res2net":
            self.scale, self.width = scale, mid // scale
            nconv = scale - 1
            self.convs = nn.ModuleList(nn.Conv2d(self.width, self.width, 3, stride, 1, bias=False) for _ in range(nconv))
            self.bns = nn.ModuleList(_bn(self.width) for _ in range(nconv))
            self.pool = nn.AvgPool2d(3, stride, 1) if stride > 1 else None
            self.stride = stride
        elif kind == "resnest":
            self.conv2 = SplitAttentionConv(mid, mid, stride)
        else:
            self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=g, bias=False)
            self.bn2 = _bn(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = _bn(cout)
        if kind == "iresnet" and position == "middle":
            self.bn0 = _bn(cin)  # pre-activation inside a stage
        if kind == "iresnet" and position == "end":
            self.bn_end = _bn(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            if kind == "iresnet":  # improved projection shortcut: max pool then 1x1 conv
                pool = nn.MaxPool2d(3, stride, 1) if stride > 1 else nn.Identity()
                self.downsample = nn.Sequential(pool, nn.Conv2d(cin, cout, 1, bias=False), _bn(cout))
            else:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout))

    def _res2(self, x: torch.Tensor) -> torch.Tensor:
        spx = torch.split(x, self.width, 1)
        outs = []
        sp = None
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            sp = spx[i] if (i == 0 or self.stride > 1) else sp + spx[i]
            sp = F.relu(bn(conv(sp)))
            outs.append(sp)
        last = spx[-1] if self.pool is None else self.pool(spx[-1])
        outs.append(last)
        return torch.cat(outs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        if self.kind == "iresnet" and self.position == "middle":
            x = F.relu(self.bn0(x))
        out = F.relu(self.bn1(self.conv1(x)))
        if self.kind == "res2net":
            out = self._res2(out)
        elif self.kind == "resnest":
            out = self.conv2(out)
        else:
            out = F.relu(self.bn2(self.conv2(out)))
        out = self.conv3(out)
        if not (self.kind == "iresnet" and self.position == "middle"):
            out = self.bn3(out)
        out = out + identity
        if self.kind == "iresnet":
            if self.position == "end":
                return F.relu(self.bn_end(out))
            if self.position == "middle":
                return out
        return F.relu(out)


class ResNetFamily(nn.Module):
    """ResNet-50-shaped backbone (stem + four stages of bottlenecks)."""

    def __init__(self, kind: str, in_channels: int = 1, width: int = 64,
                 layers: tuple[int, ...] = (3, 4, 6, 3), groups: int = 32) -> None:
        super().__init__()
        if kind in ("res2net", "resnest"):  # deep stem as in the Res2Net-v1b / ResNeSt code
            self.stem = nn.Sequential(ConvBNAct(in_channels, width // 2, stride=2),
                                      ConvBNAct(width // 2, width // 2), ConvBNAct(width // 2, width))
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), _bn(width), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.stages = nn.ModuleList()
        cin = width
        self.channels = []
        for i, n in enumerate(layers):
            planes = width * 2 ** i
            blocks = []
            for j in range(n):
                pos = "start" if j == 0 else ("end" if j == n - 1 else "middle")
                blocks.append(Bottleneck(cin, planes, 2 if (j == 0 and i > 0) else 1, kind, groups, position=pos))
                cin = planes * Bottleneck.expansion
            self.stages.append(nn.Sequential(*blocks))
            self.channels.append(cin)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.pool(self.stem(x))
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class VGG16(nn.Module):
    """VGG16 features (13 conv layers in 5 blocks) plus a sixth block giving stride 32."""

    def __init__(self, in_channels: int = 1, width: int = 64, layers: tuple[int, ...] = (2, 2, 3, 3, 3)) -> None:
        super().__init__()
        widths = [width, width * 2, width * 4, width * 8, width * 8]
        self.blocks = nn.ModuleList()
        cin = in_channels
        for w, n in zip(widths, layers):
            convs = []
            for _ in range(n):
                convs.append(ConvBNAct(cin, w))
                cin = w
            self.blocks.append(nn.Sequential(*convs))
        self.extra = nn.Sequential(ConvBNAct(cin, cin), ConvBNAct(cin, cin))
        self.channels = [widths[2], widths[3], widths[4], cin]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, block in enumerate(self.blocks):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            if i >= 2:
                feats.append(x)
        feats.append(self.extra(F.max_pool2d(x, 2)))
        return feats


def build_backbone(name: str, in_channels: int = 1, width: int = 64,
                   layers: tuple[int, ...] | list[int] | None = None, groups: int = 32) -> nn.Module:
    """Build one of :data:`BACKBONES`; ``layers`` defaults to the -50 / 16-layer depths."""
    if name == "vgg16":
        return VGG16(in_channels, width, tuple(layers or (2, 2, 3, 3, 3)))
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {BACKBONES}")
    return ResNetFamily(name, in_channels, width, tuple(layers or (3, 4, 6, 3)), groups)
