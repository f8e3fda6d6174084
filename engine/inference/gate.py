"""Lung gate: drop findings that lie outside the chest's lungs (seed 000's stage 1 idea).

The segmentation models were trained on 50 thoracic slices that all show COVID-19
pneumonia. On a whole CT they also mark gas-filled bowel, the stomach and the dome of
the diaphragm under the lungs. Seed 000 segments the lung region first and the infection
inside it; :func:`lung_gate` applies that rule after the fact, with the rule-based lungs of
:func:`engine.quantification.lungs.lung_masks`:

1. *Envelope*: per slice and per lung, the pixels lying between lung pixels both along
   their row and along their column (an orthogonally convex fill). It covers the
   lung and the dense findings inside it (a consolidation the HU rules leave out
   lies between aerated lung, or between lung and chest wall) but not the abdomen.
2. *GGO and consolidation*: each 3D connected region of them is kept whole when at least
   half of it lies within ``lung_margin_mm`` (in-plane) of the envelope,
   and removed otherwise. The margin keeps the subpleural consolidations of COVID-19,
   which the HU rules leave out of the lung and which sit at the lung's outer edge.
3. *Pleural effusion* lies outside the lung, in the pleural space: an effusion region
   is kept when at least half of it lies within ``effusion_margin_mm`` (in-plane) of the
   envelope.

The work runs on a grid subsampled in-plane (4x for 512-pixel slices): cells are
1-2 mm, well below the size of a finding that matters, and the gate costs about as much
as the lung search itself (under a second for 99 slices, 1-3 s for 300, on 2 cores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage

from ..errors import DataError
from ..labels import CONSOLIDATION, EFFUSION, FINDING_KEYS, GGO
from ..progress import CancelLike, check_cancel
from ..types import Volume

KEEP_FRACTION = 0.5
EFFUSION_MARGIN_MM = 20.0
LUNG_MARGIN_MM = 10.0


@dataclass
class GateResult:
    """What :func:`lung_gate` did."""

    labels: np.ndarray            #: gated label map (a new array)
    lung_slices: np.ndarray       #: bool (z,): slices whose envelope holds lung
    removed_voxels: dict          #: per finding key: voxels removed
    lungs: Optional[object]       #: the :class:`~engine.quantification.lungs.LungMasks` used


def _fill_between(mask: np.ndarray, axis: int) -> np.ndarray:
    """Pixels with a ``mask`` pixel on both sides along ``axis`` (mask included)."""
    fwd = np.maximum.accumulate(mask, axis=axis)
    rev = np.flip(np.maximum.accumulate(np.flip(mask, axis=axis), axis=axis), axis=axis)
    return fwd & rev


def envelope(side_masks: list[np.ndarray]) -> np.ndarray:
    """Union over sides of each side's orthogonally convex per-slice fill, ``(z, y, x)`` bool."""
    out = None
    for m in side_masks:
        m = np.asarray(m, dtype=bool)
        env = _fill_between(m, 1) & _fill_between(m, 2)
        out = env if out is None else (out | env)
    return out


def _coarse_any(mask: np.ndarray, f: int) -> np.ndarray:
    """In-plane max-pooling by ``f`` (edges padded)."""
    if f == 1:
        return mask.copy()
    nz, ny, nx = mask.shape
    py, px = (-ny) % f, (-nx) % f
    m = np.pad(mask, ((0, 0), (0, py), (0, px))) if (py or px) else mask
    # OR of f strided views per axis: several times faster than any() over reshaped axes
    rows = m[:, 0::f]
    for i in range(1, f):
        rows = rows | m[:, i::f]
    out = rows[:, :, 0::f]
    for i in range(1, f):
        out = out | rows[:, :, i::f]
    return out


def _keep_regions(found: np.ndarray, region: np.ndarray, fraction: float) -> np.ndarray:
    """Cells of the 3D components of ``found`` with at least ``fraction`` of their cells in ``region``."""
    lab, n = ndimage.label(found)
    if n == 0:
        return np.zeros_like(found)
    size = np.bincount(lab.ravel(), minlength=n + 1)
    inside = np.bincount(lab.ravel(), weights=region.ravel(), minlength=n + 1)
    ok = inside >= fraction * np.maximum(size, 1)
    ok[0] = False
    return ok[lab]


def lung_gate(volume: Volume, labels: np.ndarray, lungs=None, cancel: Optional[CancelLike] = None,
              keep_fraction: float = KEEP_FRACTION,
              effusion_margin_mm: float = EFFUSION_MARGIN_MM,
              lung_margin_mm: float = LUNG_MARGIN_MM) -> GateResult:
    """Gate ``labels`` (0..3 on ``volume``'s grid) by the lungs of ``volume``.

    ``lungs`` may be a ready :class:`~engine.quantification.lungs.LungMasks`; otherwise the
    HU / intensity rules find them. When no lung can be found (not a chest CT, a single
    cropped slice...) nothing is removed and ``lungs`` is ``None``.
    """
    from ..quantification.lungs import lung_masks

    labels = np.asarray(labels)
    nz, ny, nx = labels.shape
    if lungs is None:
        try:
            lungs = lung_masks(volume, cancel=cancel)
        except DataError:
            return GateResult(labels.copy(), np.ones(nz, dtype=bool), {}, None)
    check_cancel(cancel)
    f = max(1, int(min(ny, nx) // 128))
    left, right = _coarse_any(lungs.left, f), _coarse_any(lungs.right, f)
    env = envelope([left, right])
    lung_slices = env.any(axis=(1, 2))
    sy, sx = volume.geometry.spacing[1] * f, volume.geometry.spacing[2] * f
    if env.any():
        # in-plane distance to the envelope (a huge z spacing keeps the transform within
        # each slice); the lung lies inside the envelope, so "near the envelope" is at
        # least as permissive as "near the lung"
        dist = ndimage.distance_transform_edt(~env, sampling=(1e6, sy, sx))
        in_lung, near = dist <= lung_margin_mm, dist <= effusion_margin_mm
    else:
        in_lung = near = np.zeros_like(env)
    check_cancel(cancel)

    out = labels.copy()
    removed = {}
    for values, region in (((GGO, CONSOLIDATION), in_lung), ((EFFUSION,), near)):
        full = (labels >= min(values)) & (labels <= max(values))  # GGO, CONSOLIDATION are 1, 2
        if not full.any():
            continue
        coarse = _coarse_any(full, f)
        keep = _keep_regions(coarse, region, keep_fraction)
        drop_cells = coarse & ~keep
        if not drop_cells.any():
            continue
        drop = np.repeat(np.repeat(drop_cells, f, axis=1), f, axis=2)[:, :ny, :nx] & full
        out[drop] = 0
        for v in values:
            removed[FINDING_KEYS[v]] = int((drop & (labels == v)).sum())
    return GateResult(out, lung_slices, removed, lungs)

