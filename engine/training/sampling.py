"""Batches for the trainer: augmented draws from uint8 arrays kept on the training device.

One :class:`Sampler` per source (labelled slices, normal-anatomy negatives, binary
pseudo-labels, teacher labels). Each draw takes its indices and augmentation parameters from
the trainer's ``torch.Generator``, so the sequence of batches is a function of the seed and
the generator's state, which checkpoints save.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..errors import DataError
from .augment import AugmentConfig, geometric, intensity


class Sampler:
    """Draws augmented batches of images (B, 1, H, W) in [0, 1] and their label maps.

    Parameters
    ----------
    x, xc
        uint8 images (N, H, W) and their CLAHE copies (``xc`` may be ``x`` itself).
    maps
        Per-image targets: (N, H, W) label maps (warped with the images), (N, K) vectors
        (left alone) or ``None``.
    crop, crop_fg
        Train on random ``crop`` x ``crop`` patches at the slices' own resolution (0: whole
        slices); a share ``crop_fg`` of them is centred on a labelled pixel (nnU-Net's
        foreground oversampling), the rest anywhere.
    """

    def __init__(self, x: np.ndarray, xc: np.ndarray, maps: list[Optional[np.ndarray]], dev: torch.device,
                 aug: AugmentConfig, crop: int = 0, crop_fg: float = 0.33) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(x)).to(dev)
        self.xc = self.x if xc is x else torch.from_numpy(np.ascontiguousarray(xc)).to(dev)
        self.maps = [None if m is None else torch.from_numpy(np.ascontiguousarray(m)).to(dev) for m in maps]
        self.aug, self.dev = aug, dev
        self.crop, self.crop_fg = int(crop), float(crop_fg)
        if self.crop and (self.crop > self.x.shape[-1] or self.crop > self.x.shape[-2]):
            raise DataError(f"crop {self.crop} is larger than the training slices ({tuple(self.x.shape[-2:])}): "
                            f"use a crop of at most input_size.")

    def __len__(self) -> int:
        return self.x.shape[0]

    def draw(self, n: int, g: torch.Generator, geometry: bool = True) -> tuple[torch.Tensor, list]:
        idx = torch.randint(0, len(self), (n,), generator=g).to(self.dev)
        use_c = (torch.rand(n, generator=g) < self.aug.clahe_p).to(self.dev).view(n, 1, 1)
        src = self.x[idx] if self.xc is self.x else torch.where(use_c, self.xc[idx], self.x[idx])
        x = src.float().div_(255).unsqueeze(1)
        maps = [None if m is None else m[idx] for m in self.maps]
        if self.crop:
            x, maps = self._crop(x, maps, g)
        spatial = [m for m in maps if m is not None and m.dim() == 3]
        if geometry:
            x, warped = geometric(x, spatial, self.aug, g)
            it = iter(warped)
            maps = [None if m is None else (next(it) if m.dim() == 3 else m) for m in maps]
        return intensity(x, self.aug, g), maps


    def _crop(self, x: torch.Tensor, maps: list, g: torch.Generator) -> tuple[torch.Tensor, list]:
        n, c = x.shape[0], self.crop
        h, w = x.shape[-2:]
        fg_map = maps[0] if maps and maps[0] is not None and maps[0].dim() == 3 else None
        u = torch.rand(n, 3, generator=g)
        ys, xs = [], []
        for i in range(n):
            cy, cx = int(u[i, 1] * h), int(u[i, 2] * w)
            if fg_map is not None and u[i, 0] < self.crop_fg:
                fg = ((fg_map[i] > 0) & (fg_map[i] < 255)).flatten().nonzero()
                if len(fg):
                    j = int(u[i, 1] * len(fg)) % len(fg)
                    cy, cx = divmod(int(fg[j]), w)
            ys.append(min(max(cy - c // 2, 0), h - c))
            xs.append(min(max(cx - c // 2, 0), w - c))
        x = torch.stack([x[i, :, y:y + c, xx:xx + c] for i, (y, xx) in enumerate(zip(ys, xs))])
        maps = [m if m is None or m.dim() != 3 else
                torch.stack([m[i, y:y + c, xx:xx + c] for i, (y, xx) in enumerate(zip(ys, xs))]) for m in maps]
        return x, maps


def split_sizes(out, sizes: list[int]) -> list:
    """Split a batched model output (tensor, list or dict of them) into parts of ``sizes``."""
    from .objective import split_output

    parts, rest = [], out
    for n in sizes[:-1]:
        head, rest = split_output(rest, n)
        parts.append(head)
    parts.append(rest)
    return parts
