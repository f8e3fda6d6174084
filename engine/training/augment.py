"""Batch augmentation on the training device (CPU or GPU), torch only.

Geometry, applied to images and label maps alike:

* the dihedral group of the square (``flip`` left-right, ``flip_v`` up-down, ``transpose``;
  together every 90-degree rotation and mirror), exact pixel permutations, so a label stays
  aligned with its image to the pixel;
* a random affine warp (rotation, isotropic scale, translation) with an optional elastic
  displacement field, in one ``grid_sample`` (bilinear for images, nearest for labels).

Intensity, on images in [0, 1] (8-bit lung-window slices / 255):

* ``windows``: re-window the slice as if its HU had been shown in another window. The
  training slices are lung-windowed (HU [-1350, 150] -> [0, 1], :mod:`engine.preprocessing.normalize`);
  a preset ``(lo, hi)`` in HU maps ``x -> clip((hu(x) - lo) / (hi - lo), 0, 1)``. Presets cover
  the lung window itself (jittered, as HU-derived inputs of scans windowed by the predictor),
  other common lung windows and a soft-tissue window;
* contrast / brightness jitter, gamma, Gaussian blur and Gaussian noise.

Every random draw comes from the caller's ``torch.Generator`` (on the CPU), so a batch is a
function of the generator's state: the trainer saves that state in its checkpoints.
CLAHE is applied beforehand (a CLAHE copy of each slice is drawn with ``clahe_p``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F

from ..errors import DataError

#: HU of the lung window the 8-bit training slices are in (x = 0 -> -1350, x = 1 -> 150)
SOURCE_WINDOW = (-1350.0, 150.0)

#: named HU windows for ``AugmentConfig.windows``
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-1350.0, 150.0),       # the training / predictor window (HU-derived inputs)
    "lung_narrow": (-1200.0, 0.0),  # W1200 L-600, a common reading window
    "lung_wide": (-1000.0, 400.0),  # W1400 L-300, a common export window
    "soft_tissue": (-160.0, 240.0),  # W400 L40, mediastinum / pleura
}


@dataclass
class AugmentConfig:
    """Probabilities and ranges of each augmentation (JSON ``augment`` of a training config)."""

    flip: float = 0.5
    flip_v: float = 0.0
    transpose: float = 0.0
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
    blur_sigma: tuple[float, float] = (0.5, 1.2)
    clahe_p: float = 0.2
    #: preset name -> probability of re-windowing a slice with it (the rest stay as they are)
    windows: dict = field(default_factory=dict)
    #: jitter of a preset's bounds, in HU (uniform +-)
    window_jitter_hu: float = 60.0

    @classmethod
    def from_dict(cls, d: dict | None) -> "AugmentConfig":
        """Build from a JSON dict; unknown keys or window presets are an error."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DataError(f"Unknown augmentation option(s): {', '.join(sorted(unknown))}. "
                            f"Known: {', '.join(sorted(known))}.")
        bad = set(d.get("windows", {})) - set(WINDOW_PRESETS)
        if bad:
            raise DataError(f"Unknown window preset(s) {', '.join(sorted(bad))}: use {', '.join(WINDOW_PRESETS)}.")
        if sum(d.get("windows", {}).values()) > 1.0:
            raise DataError("The probabilities of the window presets add up to more than 1.")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` (a fresh CPU tensor) on ``device``. To a GPU through pinned memory without
    blocking: a plain ``.to("cuda")`` waits for the GPU to finish its queue, and the trainer
    moves a dozen random draws per step (with several runs sharing one GPU those waits, not
    the arithmetic, set the pace)."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return to_device(torch.rand(n, generator=g, device="cpu"), device) * (hi - lo) + lo


def _chance(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    """``n`` draws of "yes with probability ``p``", on the CPU (the caller decides on the host
    whether any is drawn, without asking the device)."""
    return torch.rand(n, generator=g, device="cpu") < p


def _where(sel: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(sel.view(-1, *([1] * (a.dim() - 1))), a, b)


def dihedral(x: torch.Tensor, maps: list[torch.Tensor], cfg: AugmentConfig,
             g: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Random flips on both axes and transposes (per sample) of ``x`` (B, C, H, W) and label
    maps (B, H, W). Exact: pixels move, none is interpolated. Transposes need H == W."""
    b, dev = x.shape[0], x.device
    draws = [_chance(b, p, g) for p in (cfg.flip, cfg.flip_v, cfg.transpose)]
    if cfg.transpose > 0 and x.shape[-1] != x.shape[-2]:
        raise DataError("Transpose augmentation needs square training images.")
    out_x, out_m = x, list(maps)
    for sel, op in zip(draws, (lambda t: t.flip(-1), lambda t: t.flip(-2), lambda t: t.transpose(-1, -2))):
        if not bool(sel.any()):
            continue
        sel = to_device(sel, dev)
        out_x = _where(sel, op(out_x), out_x)
        out_m = [_where(sel, op(m), m) for m in out_m]
    return out_x, out_m


def geometric(x: torch.Tensor, maps: list[torch.Tensor], cfg: AugmentConfig, g: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Dihedral transform then random affine (+ elastic) warp of images ``x`` (B, C, H, W)
    and label maps (B, H, W)."""
    x, maps = dihedral(x, maps, cfg, g)
    b, dev = x.shape[0], x.device
    ang = _uniform(b, -cfg.rotate_deg, cfg.rotate_deg, g, dev) * math.pi / 180
    sc = torch.exp(_uniform(b, math.log(cfg.scale[0]), math.log(cfg.scale[1]), g, dev))
    tx, ty = _uniform(b, -cfg.translate, cfg.translate, g, dev), _uniform(b, -cfg.translate, cfg.translate, g, dev)
    identity = cfg.rotate_deg == 0 and tuple(cfg.scale) == (1.0, 1.0) and cfg.translate == 0 and cfg.elastic_p <= 0
    if identity:
        return x, maps
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    if cfg.elastic_p > 0:
        coarse = to_device(torch.randn(b, 2, 6, 6, generator=g), dev).to(x.dtype) * cfg.elastic_alpha
        coarse = coarse * to_device(_chance(b, cfg.elastic_p, g), dev).to(x.dtype).view(b, 1, 1, 1)
        disp = F.interpolate(coarse, size=x.shape[-2:], mode="bicubic", align_corners=False)
        grid = grid + disp.permute(0, 2, 3, 1)
    xo = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out_maps = []
    for m in maps:
        mo = F.grid_sample(m[:, None].to(x.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        out_maps.append(mo[:, 0].round().to(m.dtype))
    return xo, out_maps


def rewindow(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Show lung-window images ``x`` in [0, 1] in the HU window ``(lo, hi)`` (per sample, (B,))."""
    s_lo, s_hi = SOURCE_WINDOW
    hu = s_lo + x * (s_hi - s_lo)
    lo, hi = lo.view(-1, 1, 1, 1).to(x.dtype), hi.view(-1, 1, 1, 1).to(x.dtype)
    return ((hu - lo) / (hi - lo)).clamp(0, 1)


def windows(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Re-window each slice with a preset drawn from ``cfg.windows`` (or leave it)."""
    b, dev = x.shape[0], x.device
    if not cfg.windows:
        return x
    u = _uniform(b, 0, 1, g, dev)
    j = cfg.window_jitter_hu
    jl, jh = _uniform(b, -j, j, g, dev), _uniform(b, -j, j, g, dev)
    lo = torch.full((b,), SOURCE_WINDOW[0], device=dev)
    hi = torch.full((b,), SOURCE_WINDOW[1], device=dev)
    chosen = torch.zeros(b, dtype=torch.bool, device=dev)
    edge = 0.0
    for name, p in cfg.windows.items():
        sel = (u >= edge) & (u < edge + p)
        edge += p
        wlo, whi = WINDOW_PRESETS[name]
        lo = torch.where(sel, wlo + jl, lo)
        hi = torch.where(sel, torch.maximum(whi + jh, wlo + jl + 100.0), hi)
        chosen |= sel
    return _where(chosen, rewindow(x, lo, hi), x)


def _gauss_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-sample sigma (pixels), radius 3."""
    r = torch.arange(-3, 4, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (r[None] / sigma.view(-1, 1).to(x.dtype)) ** 2)
    k = k / k.sum(1, keepdim=True)                       # (B, 7)
    b, c, h, w = x.shape
    xx = x.reshape(1, b * c, h, w)
    kk = k.repeat_interleave(c, 0)
    xx = F.conv2d(F.pad(xx, (3, 3, 0, 0), mode="replicate"), kk.view(b * c, 1, 1, 7), groups=b * c)
    xx = F.conv2d(F.pad(xx, (0, 0, 3, 3), mode="replicate"), kk.view(b * c, 1, 7, 1), groups=b * c)
    return xx.view(b, c, h, w)


def _noise(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Standard normal noise shaped like ``x``. On the CPU drawn from ``g``; on a GPU drawn
    there, from a generator seeded by ``g`` (so still a function of ``g``'s state), instead of
    drawing megabytes on the host and copying them over every step."""
    if x.device.type != "cuda":
        return torch.randn(x.shape, generator=g).to(x.dtype)
    seed = int(torch.randint(0, 2**62, (1,), generator=g))
    gd = torch.Generator(device=x.device)
    gd.manual_seed(seed)
    return torch.randn(x.shape, generator=gd, device=x.device, dtype=x.dtype)


def intensity(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Window presets, contrast/brightness jitter, gamma, blur and noise on images in
    [0, 1]; the result stays in [0, 1]."""
    b, dev = x.shape[0], x.device
    x = windows(x, cfg, g)
    on = to_device(_chance(b, cfg.window_p, g), dev).to(x.dtype).view(b, 1, 1, 1)
    a = _uniform(b, *cfg.contrast, g, dev).view(b, 1, 1, 1)
    c = _uniform(b, *cfg.brightness, g, dev).view(b, 1, 1, 1)
    x = on * ((x - 0.5) * a + 0.5 + c) + (1 - on) * x
    x = x.clamp(0, 1)
    gam = torch.exp(_uniform(b, math.log(cfg.gamma[0]), math.log(cfg.gamma[1]), g, dev)).view(b, 1, 1, 1)
    x = x.clamp_min(1e-6) ** gam
    if cfg.blur_p > 0:
        sel = _chance(b, cfg.blur_p, g)
        sig = _uniform(b, *cfg.blur_sigma, g, dev)
        if bool(sel.any()):
            x = _where(to_device(sel, dev), _gauss_blur(x, sig), x)
    if cfg.noise > 0:
        sig = _uniform(b, 0, cfg.noise, g, dev).view(b, 1, 1, 1)
        x = x + sig * _noise(x, g)
    return x.clamp(0, 1)
