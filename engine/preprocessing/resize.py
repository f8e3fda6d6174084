"""Resizing slices to a model's input size and predictions back."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize_image(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize of a 2D float image to (H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))[None, None]
    if tuple(t.shape[-2:]) == tuple(size):
        return t[0, 0].numpy()
    shrink = size[0] < t.shape[-2] or size[1] < t.shape[-1]
    out = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False, antialias=shrink)
    return out[0, 0].numpy()


def resize_labels(lab: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2D integer label map to (H, W)."""
    lab = np.asarray(lab)
    if lab.shape == tuple(size):
        return lab
    ys = np.minimum(((np.arange(size[0]) + 0.5) * lab.shape[0] / size[0]).astype(int), lab.shape[0] - 1)
    xs = np.minimum(((np.arange(size[1]) + 0.5) * lab.shape[1] / size[1]).astype(int), lab.shape[1] - 1)
    return lab[ys[:, None], xs[None, :]]
