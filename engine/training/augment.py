"""Batch augmentation on the training device (CPU or GPU), torch only.

Geometry: horizontal flip, rotation, isotropic scale, translation and an optional elastic
displacement field, applied to images (bilinear) and label maps (nearest) with one
``grid_sample``. Intensity: window jitter (a random linear remap then clip, so that 8-bit
lung-window training transfers to HU scans windowed to [-1350, 150]), gamma, Gaussian noise
and blur. CLAHE is applied beforehand (a CLAHE copy of each slice is drawn with ``clahe_p``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    flip: float = 0.5
    rotate_deg: float = 15.0
    scale: tuple[float, float] = (0.8, 1.25)
    translate: float = 0.08
    elastic_p: float = 0.3
    elastic_alpha: float = 0.03
    window_p: float = 0.8
    contrast: tuple[float, float] = (0.7, 1.3)
    brightness: tuple[float, float] = (-0.12, 0.2)
    gamma: tuple[float, float] = (0.6, 1.6)
    noise: float = 0.03
    blur_p: float = 0.2
    clahe_p: float = 0.2

    @classmethod
    def from_dict(cls, d: dict | None) -> "AugmentConfig":
        d = dict(d or {})
        known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device="cpu").to(device) * (hi - lo) + lo


def geometric(x: torch.Tensor, maps: list[torch.Tensor], cfg: AugmentConfig, g: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Random affine (+ elastic) warp of images ``x`` (B, C, H, W) and label maps (B, H, W)."""
    b, dev = x.shape[0], x.device
    ang = _uniform(b, -cfg.rotate_deg, cfg.rotate_deg, g, dev) * math.pi / 180
    sc = torch.exp(_uniform(b, math.log(cfg.scale[0]), math.log(cfg.scale[1]), g, dev))
    flip = torch.where(_uniform(b, 0, 1, g, dev) < cfg.flip, -1.0, 1.0)
    tx, ty = _uniform(b, -cfg.translate, cfg.translate, g, dev), _uniform(b, -cfg.translate, cfg.translate, g, dev)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    if cfg.elastic_p > 0:
        coarse = torch.randn(b, 2, 6, 6, generator=g).to(dev, x.dtype) * cfg.elastic_alpha
        coarse = coarse * (_uniform(b, 0, 1, g, dev) < cfg.elastic_p).to(x.dtype).view(b, 1, 1, 1)
        disp = F.interpolate(coarse, size=x.shape[-2:], mode="bicubic", align_corners=False)
        grid = grid + disp.permute(0, 2, 3, 1)
    xo = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out_maps = []
    for m in maps:
        mo = F.grid_sample(m[:, None].to(x.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        out_maps.append(mo[:, 0].round().to(m.dtype))
    return xo, out_maps


def intensity(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Window jitter, gamma, blur and noise on images in [0, 1]; result clipped to [0, 1]."""
    b, dev = x.shape[0], x.device
    on = (_uniform(b, 0, 1, g, dev) < cfg.window_p).to(x.dtype).view(b, 1, 1, 1)
    a = _uniform(b, *cfg.contrast, g, dev).view(b, 1, 1, 1)
    c = _uniform(b, *cfg.brightness, g, dev).view(b, 1, 1, 1)
    x = on * ((x - 0.5) * a + 0.5 + c) + (1 - on) * x
    x = x.clamp(0, 1)
    gam = torch.exp(_uniform(b, math.log(cfg.gamma[0]), math.log(cfg.gamma[1]), g, dev)).view(b, 1, 1, 1)
    x = x.clamp_min(1e-6) ** gam
    if cfg.blur_p > 0:
        k = torch.tensor([0.25, 0.5, 0.25], device=dev, dtype=x.dtype)
        kern = (k[:, None] * k[None, :]).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
        blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kern, groups=x.shape[1])
        sel = (_uniform(b, 0, 1, g, dev) < cfg.blur_p).to(x.dtype).view(b, 1, 1, 1)
        x = sel * blurred + (1 - sel) * x
    if cfg.noise > 0:
        sig = _uniform(b, 0, cfg.noise, g, dev).view(b, 1, 1, 1)
        x = x + sig * torch.randn(x.shape, generator=g).to(dev, x.dtype)
    return x.clamp(0, 1)
