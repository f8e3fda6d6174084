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
from .augment import AugmentConfig, geometric, intensity, to_device


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
        idx = to_device(torch.randint(0, len(self), (n,), generator=g), self.dev)
        use_c = to_device(torch.rand(n, generator=g) < self.aug.clahe_p, self.dev).view(n, 1, 1)
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
        """``crop`` x ``crop`` patches, one per image, cut in one gather on the device.

        A share ``crop_fg`` of the patches is centred on a labelled pixel (1..254 of the first
        label map), chosen uniformly among that image's labelled pixels; the rest anywhere.
        No value goes back to the host (no ``nonzero``, no ``int()`` of a device tensor): with
        several runs sharing one GPU each host sync waits for the other runs' work, and the
        per-image loop with its syncs cost about 8 ms per image per step there.
        """
        n, c = x.shape[0], self.crop
        h, w = x.shape[-2:]
        dev = x.device
        fg_map = maps[0] if maps and maps[0] is not None and maps[0].dim() == 3 else None
        u = to_device(torch.rand(n, 3, generator=g).double(), dev)
        cy, cx = (u[:, 1] * h).long(), (u[:, 2] * w).long()
        if fg_map is not None:
            fg = ((fg_map > 0) & (fg_map < 255)).flatten(1)
            count = fg.sum(1)
            cum = fg.cumsum(1, dtype=torch.int32)
            k = torch.minimum((u[:, 1] * count).long(), count - 1).clamp_(min=0)
            pos = torch.searchsorted(cum, (k + 1).to(torch.int32)[:, None])[:, 0].clamp_(max=h * w - 1)
            use = (u[:, 0] < self.crop_fg) & (count > 0)
            cy, cx = torch.where(use, pos // w, cy), torch.where(use, pos % w, cx)
        y0 = (cy - c // 2).clamp(0, h - c)
        x0 = (cx - c // 2).clamp(0, w - c)
        ar = torch.arange(c, device=dev)
        rows = (y0[:, None] + ar)[:, :, None]  # (n, c, 1)
        cols = (x0[:, None] + ar)[:, None, :]  # (n, 1, c)
        b = torch.arange(n, device=dev)[:, None, None]
        x = x.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 3, 1, 2).contiguous()
        maps = [m if m is None or m.dim() != 3 else m[b, rows, cols] for m in maps]
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
