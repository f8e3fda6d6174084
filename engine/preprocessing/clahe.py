"""Contrast-limited adaptive histogram equalisation (CLAHE, seed 004), numpy only."""

from __future__ import annotations

import numpy as np


def _tile_maps(img: np.ndarray, tiles: tuple[int, int], clip_limit: float, bins: int) -> np.ndarray:
    th, tw = img.shape[0] // tiles[0], img.shape[1] // tiles[1]
    blocks = img[: th * tiles[0], : tw * tiles[1]].reshape(tiles[0], th, tiles[1], tw).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(tiles[0] * tiles[1], th * tw)
    n = th * tw
    hist = np.stack([np.bincount(b, minlength=bins) for b in blocks]).astype(np.float64)
    limit = max(clip_limit * n / bins, 1.0)
    excess = np.clip(hist - limit, 0, None).sum(1, keepdims=True)
    hist = np.minimum(hist, limit) + excess / bins
    cdf = np.cumsum(hist, axis=1)
    maps = (cdf - cdf[:, :1]) / np.maximum(cdf[:, -1:] - cdf[:, :1], 1e-9)
    return maps.reshape(tiles[0], tiles[1], bins)


def clahe(image: np.ndarray, clip_limit: float = 2.0, tiles: tuple[int, int] = (8, 8), bins: int = 256) -> np.ndarray:
    """CLAHE of a 2D image.

    Parameters
    ----------
    image : ndarray
        2D uint8 image, or float image in [0, 1].
    clip_limit : float
        Histogram clip limit relative to a uniform histogram (OpenCV convention; 2.0 default).
    tiles : (int, int)
        Grid of contextual regions.

    Returns
    -------
    ndarray
        float32 image in [0, 1] of the same shape, each pixel mapped by the bilinear blend of
        the four nearest tiles' clipped-histogram equalisation maps.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError("clahe expects a 2D image")
    q = img if img.dtype == np.uint8 else np.clip(np.rint(np.asarray(img, np.float32) * (bins - 1)), 0, bins - 1)
    q = q.astype(np.intp)
    h, w = q.shape
    ph, pw = (-h) % tiles[0], (-w) % tiles[1]
    padded = np.pad(q, ((0, ph), (0, pw)), mode="reflect") if (ph or pw) else q
    maps = _tile_maps(padded, tiles, clip_limit, bins)
    th, tw = padded.shape[0] / tiles[0], padded.shape[1] / tiles[1]
    # tile-centre coordinates of every pixel
    fy = (np.arange(h) + 0.5) / th - 0.5
    fx = (np.arange(w) + 0.5) / tw - 0.5
    y0 = np.clip(np.floor(fy).astype(int), 0, tiles[0] - 1)
    x0 = np.clip(np.floor(fx).astype(int), 0, tiles[1] - 1)
    y1, x1 = np.minimum(y0 + 1, tiles[0] - 1), np.minimum(x0 + 1, tiles[1] - 1)
    wy = np.clip(fy - y0, 0, 1)[:, None]
    wx = np.clip(fx - x0, 0, 1)[None, :]
    Y0, X0, Y1, X1 = y0[:, None], x0[None, :], y1[:, None], x1[None, :]
    v00, v01 = maps[Y0, X0, q], maps[Y0, X1, q]
    v10, v11 = maps[Y1, X0, q], maps[Y1, X1, q]
    # lerp form: where the four maps agree (e.g. a flat image) the result is exactly that value
    top = v00 + wx * (v01 - v00)
    bottom = v10 + wx * (v11 - v10)
    out = top + wy * (bottom - top)
    return out.astype(np.float32)
