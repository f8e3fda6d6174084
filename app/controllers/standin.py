"""A small synthetic chest used when :mod:`engine.phantom` is not part of the build."""

from __future__ import annotations

import numpy as np

from engine.types import Geometry, Volume


def standin_chest(shape: tuple[int, int, int] = (80, 192, 192),
                  spacing: tuple[float, float, float] = (3.0, 1.6, 1.6)) -> tuple[Volume, np.ndarray]:
    """An elliptic body with two lungs, a spine and three label blobs (GGO, consolidation, effusion)."""
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    zc, yc, xc = (s / 2.0 for s in shape)
    ry, rx = shape[1] * 0.36, shape[2] * 0.45
    body = ((y - yc) / ry) ** 2 + ((x - xc) / rx) ** 2 <= 1.0
    zn = (z - zc) / (shape[0] * 0.48)
    lung_r = ((y - yc) / (ry * 0.75)) ** 2 + ((np.abs(x - xc) - rx * 0.45) / (rx * 0.35)) ** 2 + zn ** 2
    lungs = (lung_r <= 1.0) & body
    arr = np.full(shape, -1000, dtype=np.int16)
    arr[np.broadcast_to(body, shape)] = 40
    arr[lungs] = -850
    spine = ((y - (yc + ry * 0.7)) ** 2 + (x - xc) ** 2 <= (rx * 0.12) ** 2)
    arr[np.broadcast_to(spine, shape)] = 700
    labels = np.zeros(shape, dtype=np.uint8)
    ggo = ((z - zc) ** 2 / 100 + (y - yc) ** 2 / 300 + (x - (xc + rx * 0.45)) ** 2 / 300) <= 1
    cons = ((z - zc) ** 2 / 60 + (y - yc) ** 2 / 120 + (x - (xc - rx * 0.45)) ** 2 / 120) <= 1
    eff = lungs & (y > yc + ry * 0.45)
    labels[ggo & lungs] = 1
    labels[cons & lungs] = 2
    labels[eff] = 3
    arr[labels == 1] = -500
    arr[labels == 2] = 30
    arr[labels == 3] = 15
    geom = Geometry(shape=shape, spacing=spacing, origin=(-xc * spacing[2], -yc * spacing[1], 0.0))
    return Volume(arr, geom, is_hu=True, source=None, format="phantom"), labels
