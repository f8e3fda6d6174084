"""Small building blocks shared by the architectures of :mod:`engine.models`."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def norm2d(kind: str, channels: int) -> nn.Module:
    """A 2D normalisation layer: ``"bn"`` batch norm, ``"gn"`` group norm, ``"in"``, or ``"none"``."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        groups = 8 if channels % 8 == 0 else 1
        return nn.GroupNorm(groups, channels)
    if kind == "in":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


def act(kind: str, channels: int = 1) -> nn.Module:
    """An activation: ``"relu"``, ``"prelu"`` (seed 000) or ``"silu"``."""
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind == "silu":
        return nn.SiLU(inplace=True)
    return nn.ReLU(inplace=True)


class ConvBNAct(nn.Sequential):
    """Conv -> norm -> activation."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1,
                 groups: int = 1, norm: str = "bn", activation: str = "relu") -> None:
        pad = dilation * (k // 2)
        super().__init__(
            nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=norm == "none"),
            norm2d(norm, cout),
            act(activation, cout),
        )


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-norm-act layers (the U-Net block), optional dropout between them."""

    def __init__(self, cin: int, cout: int, norm: str = "bn", activation: str = "relu",
                 dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [ConvBNAct(cin, cout, norm=norm, activation=activation)]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        layers.append(ConvBNAct(cout, cout, norm=norm, activation=activation))
        super().__init__(*layers)


class SeparableConv(nn.Sequential):
    """Depthwise (optionally atrous) 3x3 conv then pointwise 1x1, each with norm + ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1, norm: str = "bn") -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, stride, dilation, dilation=dilation, groups=cin, bias=False),
            norm2d(norm, cin), nn.ReLU(inplace=True),
            nn.Conv2d(cin, cout, 1, bias=False), norm2d(norm, cout), nn.ReLU(inplace=True),
        )


def up_to(x: torch.Tensor, ref: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``x`` to the spatial size of ``ref`` (a tensor or an (H, W) tuple)."""
    size = tuple(ref.shape[-2:]) if isinstance(ref, torch.Tensor) else tuple(ref)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def binary_to_two_class(z: torch.Tensor) -> torch.Tensor:
    """Turn a (B, 1, H, W) binary logit into (B, 2, H, W) logits whose softmax equals the sigmoid."""
    return torch.cat([-0.5 * z, 0.5 * z], dim=1)
