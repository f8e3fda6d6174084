"""Anatomy rules: findings only where they can be.

The segmentation models were trained on 50 thoracic slices that all show COVID-19
pneumonia. On a whole CT they also mark gas-filled bowel, the stomach, the diaphragm's
dome, neck soft tissue and dependent lung. :func:`lung_gate` keeps a finding only where
anatomy allows it, from the scan's one :class:`~engine.anatomy.LungMasks` (found once by
:mod:`engine.anatomy`, never here). Each rule counts what it removed (voxels per finding).

The rules (``docs/MODELS.md`` states them with their sources)
----------------------------------------------------------
*Envelope*: per slice and per lung, the pixels between lung pixels both along their row
and along their column (an orthogonally convex fill): the lung with the dense findings it
encloses, not the abdomen.

1. ``outside_lungs`` (GGO, consolidation): GGO and consolidation are lung tissue. A
   voxel is kept only within ``lung_margin_mm`` (3D distance) of the envelope, and a
   3D region of them only when at least half of it lies there. The margin keeps the
   subpleural consolidation of COVID-19 that an air threshold leaves out of the lung; a
   slice without lung keeps none. The kept voxels are then filled back into the lungs.
2. ``outside_pleural_space`` (effusion): fluid lies between lung and chest wall, outside
   the lung. A voxel is kept only outside the lung masks and within
   :data:`EFFUSION_REACH_MM` of the envelope, a region only when at least half of it lies
   within ``effusion_margin_mm``.
3. ``not_dependent`` (effusion): in a supine patient free fluid lies posteriorly. A
   voxel is kept only behind the anterior quarter of its lung's anterior-posterior extent
   on that slice (:data:`DEPENDENT_FROM`; posterior taken from the geometry, LPS ``y``).
4. ``apex``: never effusion at the apices of a supine patient: effusion in the upper
   :data:`APEX_FRACTION` of a lung's cranio-caudal extent is removed (volumes of at least
   8 slices; superior taken from the geometry). On those slices GGO and consolidation must
   lie within :data:`APEX_MARGIN_PX` pixels of the lung mask itself: the model marks the
   neck and thoracic-inlet soft tissue around the small apical lung, which the 10 mm
   margin and the envelope would otherwise keep.
   (Applied right after rule 1.)
4b. ``too_small`` (effusion, scans with known spacing): a 3D effusion region under
   :data:`EFFUSION_MIN_ML` is removed: thin crescents along the diaphragm and chest wall are
   partial volume, not a reportable effusion.
5. ``not_fluid_density`` (effusion, HU scans only): simple effusions measure about
   0-20 HU, exudates and haemothorax more (``CLINICAL.md``). Voxels below
   ``FLUID_MIN_VOXEL_HU`` (lung or air in partial volume) are removed, and a 3D region
   whose median lies outside ``FLUID_HU`` (dependent lung at -600..-200 HU is the
   commonest false effusion; fresh clot stays under about 90 HU) is removed whole.

The work runs on a grid subsampled in-plane (4x for 512-pixel slices): cells are 1-2 mm,
well below the size of a finding that matters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy import ndimage

from ..anatomy.lungs import LungMasks, unite_findings
from ..labels import CONSOLIDATION, EFFUSION, FINDING_KEYS, GGO
from ..progress import CancelLike, check_cancel
from ..types import Volume

KEEP_FRACTION = 0.5
EFFUSION_MARGIN_MM = 20.0
LUNG_MARGIN_MM = 10.0
#: no effusion voxel lies farther than this from the lung (a large effusion is a few cm thick)
EFFUSION_REACH_MM = 60.0
#: at the apices GGO / consolidation must lie within this many pixels of the lung mask
APEX_MARGIN_PX = 2
#: effusion lies posterior to this fraction of its lung's anterior-posterior extent on its slice
DEPENDENT_FROM = 0.25
#: share of each lung's height, from its top, where effusion is never kept
APEX_FRACTION = 0.25
#: median HU a pleural effusion region must have (fluid: simple 0-20 HU, exudate / blood denser)
FLUID_HU = (-20.0, 90.0)
#: voxels of an effusion below this are lung or air in partial volume, not fluid
FLUID_MIN_VOXEL_HU = -100.0
#: smallest effusion region kept on scans with known spacing (mL)
EFFUSION_MIN_ML = 2.0
RULES: tuple[str, ...] = ("outside_lungs", "outside_pleural_space", "not_dependent", "apex", "too_small",
                          "not_fluid_density")
RULE_TEXT: dict[str, str] = {
    "outside_lungs": f"GGO and consolidation only inside the lungs (within {LUNG_MARGIN_MM:g} mm of the lung on "
                     "the same slice, the region at least half there)",
    "outside_pleural_space": f"effusion only in the pleural space: outside the lung, the region at least half "
                             f"within {EFFUSION_MARGIN_MM:g} mm of it, no voxel beyond {EFFUSION_REACH_MM:g} mm",
    "not_dependent": "effusion only along the lung's dependent (posterior, supine) part: behind the anterior quarter of the lung",
    "apex": f"at the apices (upper {int(APEX_FRACTION * 100)} % of a lung's height): no effusion, and GGO or "
            "consolidation only inside the lung (not the neck and thoracic-inlet soft tissue around it)",
    "too_small": f"no effusion region under {EFFUSION_MIN_ML:g} mL (scans with known spacing)",
    "not_fluid_density": f"effusion of fluid density only (HU scans): region median {FLUID_HU[0]:g} to "
                         f"{FLUID_HU[1]:g} HU, no voxel below {FLUID_MIN_VOXEL_HU:g} HU",
}


@dataclass
class GateResult:
    """What :func:`lung_gate` did."""

    labels: np.ndarray            #: label map after the rules (a new array)
    lung_slices: np.ndarray       #: bool (z,): slices that hold lung
    removed_voxels: dict          #: per finding key: voxels removed by all rules together
    lungs: Optional[LungMasks]    #: the lungs used, with the kept GGO / consolidation filled back
    #: rule name -> finding key -> voxels removed by that rule (rules apply in :data:`RULES` order)
    removed_by_rule: dict = field(default_factory=dict)


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
    rows = m[:, 0::f]
    for i in range(1, f):
        rows = rows | m[:, i::f]
    out = rows[:, :, 0::f]
    for i in range(1, f):
        out = out | rows[:, :, i::f]
    return out


def _full(cells: np.ndarray, f: int, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour in-plane upsampling of a coarse mask back to ``shape``."""
    if f == 1:
        return cells
    return np.repeat(np.repeat(cells, f, axis=1), f, axis=2)[:, :shape[1], :shape[2]]


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


def _posterior_half(lungs: LungMasks, volume: Volume) -> np.ndarray:
    """bool ``(z, y, x)``: per slice, rows behind the anterior quarter of either lung (nearest lung slice
    for slices beyond the bases)."""
    nz, ny, nx = lungs.shape
    posterior_up = volume.geometry.direction_matrix[1, 1] >= 0  # row index grows towards posterior (LPS +y)
    out = np.zeros((nz, ny, nx), dtype=bool)
    rows = np.arange(ny)
    for mask in (lungs.right, lungs.left):
        any_row = mask.any(axis=2)  # (z, y)
        has = np.flatnonzero(any_row.any(axis=1))
        if has.size == 0:
            continue
        for k in range(nz):
            # a slice just beyond the lung base (the costophrenic recess) uses its nearest lung slice
            src = int(has[np.argmin(np.abs(has - k))])
            ys = np.flatnonzero(any_row[src])
            if posterior_up:
                sel = rows >= ys[0] + DEPENDENT_FROM * (ys[-1] - ys[0])
            else:
                sel = rows <= ys[-1] - DEPENDENT_FROM * (ys[-1] - ys[0])
            out[k, sel, :] = True
    return out


def _apex_slices(lungs: LungMasks, volume: Volume) -> np.ndarray:
    """bool ``(z,)``: slices in the upper :data:`APEX_FRACTION` of either lung's height, and above it."""
    nz = lungs.shape[0]
    out = np.zeros(nz, dtype=bool)
    if nz < 8:
        return out
    superior_up = volume.geometry.direction_matrix[2, 2] >= 0
    for ext in lungs.extents.values():
        if ext is None:
            continue
        k0, k1 = ext
        n = int(round(APEX_FRACTION * (k1 - k0 + 1)))
        if n <= 0:
            continue
        if superior_up:  # the slices above the lung's top are the thoracic inlet and neck: apex too
            out[k1 - n + 1:] = True
        else:
            out[:k0 + n] = True
    return out


def _near_lung(lung: np.ndarray, slices: np.ndarray, margin_px: int) -> np.ndarray:
    """bool ``(z, y, x)``: on ``slices``, the lung dilated in-plane by ``margin_px``; elsewhere False."""
    out = np.zeros(lung.shape, dtype=bool)
    for k in np.flatnonzero(slices):
        if lung[k].any():
            out[k] = ndimage.binary_dilation(lung[k], iterations=margin_px)
    return out


def _box(mask: np.ndarray) -> Optional[tuple[slice, slice, slice]]:
    """Bounding box of ``mask`` (``None`` when empty): the rules work inside it."""
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    if zs.size == 0:
        return None
    sub = mask[zs[0]:zs[-1] + 1]
    ys = np.flatnonzero(sub.any(axis=(0, 2)))
    xs = np.flatnonzero(sub.any(axis=(0, 1)))
    return (slice(int(zs[0]), int(zs[-1]) + 1), slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1))


def _median_per_region(values: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """Median of ``values`` in each labelled region 1..n (index 0 unused); only labelled voxels are sorted."""
    med = np.zeros(n + 1)
    sel = lab > 0
    ids = lab[sel]
    vals = values[sel]
    order = np.lexsort((vals, ids))
    ids, vals = ids[order], vals[order]
    starts = np.searchsorted(ids, np.arange(1, n + 2))
    for i in range(1, n + 1):
        seg = vals[starts[i - 1]:starts[i]]
        med[i] = float(np.median(seg)) if seg.size else 0.0
    return med


def lung_gate(volume: Volume, labels: np.ndarray, lungs: Optional[LungMasks],
              cancel: Optional[CancelLike] = None, keep_fraction: float = KEEP_FRACTION,
              effusion_margin_mm: float = EFFUSION_MARGIN_MM,
              lung_margin_mm: float = LUNG_MARGIN_MM) -> GateResult:
    """Apply the module's rules to ``labels`` (0..3 on ``volume``'s grid).

    ``lungs`` is the scan's :class:`~engine.anatomy.LungMasks` (found once by the
    caller). ``None`` means the scan has no lung: every finding is removed (rule
    ``outside_lungs`` / ``outside_pleural_space``).
    """
    labels = np.asarray(labels)
    nz, ny, nx = labels.shape
    out = labels.copy()
    by_rule: dict[str, dict[str, int]] = {r: {} for r in RULES}

    def drop(rule: str, mask: np.ndarray) -> None:
        box = _box(mask)
        if box is None:
            return
        sub, m = out[box], mask[box]
        counts = np.bincount(sub[m], minlength=4)
        for v in (GGO, CONSOLIDATION, EFFUSION):
            if counts[v]:
                by_rule[rule][FINDING_KEYS[v]] = by_rule[rule].get(FINDING_KEYS[v], 0) + int(counts[v])
        sub[m] = 0

    if lungs is None:
        dense = (out == GGO) | (out == CONSOLIDATION)
        drop("outside_lungs", dense)
        drop("outside_pleural_space", out == EFFUSION)
        return GateResult(out, np.zeros(nz, dtype=bool), _totals(by_rule), None, by_rule)

    f = max(1, int(min(ny, nx) // 128))
    env = envelope([_coarse_any(lungs.left, f), _coarse_any(lungs.right, f)])
    lung_slices = lungs.lung.any(axis=(1, 2))
    sy, sx = volume.geometry.spacing[1] * f, volume.geometry.spacing[2] * f
    if env.any():
        # 3D distance to the envelope (a single slice: in-plane only)
        sz = volume.geometry.spacing[0] if nz > 1 else 1e6
        dist = ndimage.distance_transform_edt(~env, sampling=(sz, sy, sx))
        in_lung, near = dist <= lung_margin_mm, dist <= effusion_margin_mm
        reach = dist <= EFFUSION_REACH_MM
    else:
        in_lung = near = reach = np.zeros_like(env)
    check_cancel(cancel)

    # 1. GGO and consolidation inside the lungs
    dense = (out == GGO) | (out == CONSOLIDATION)
    if dense.any():
        coarse = _coarse_any(dense, f)
        keep = _keep_regions(coarse, in_lung, keep_fraction) & in_lung
        drop("outside_lungs", dense & ~_full(keep, f, out.shape))
        dense = (out == GGO) | (out == CONSOLIDATION)
        apex = _apex_slices(lungs, volume)
        if dense.any() and apex.any():
            # around the apices the neck and thoracic-inlet soft tissue is not lung: inside the lung only
            drop("apex", dense & apex[:, None, None] & ~_near_lung(lungs.lung, apex, APEX_MARGIN_PX))
    check_cancel(cancel)

    # 2-5. effusion in the dependent pleural space, not at the apex, of fluid density
    eff = out == EFFUSION
    if eff.any():
        eff_c = _coarse_any(eff, f)
        keep = _keep_regions(eff_c, near, keep_fraction) & reach
        drop("outside_pleural_space", eff & (~_full(keep, f, out.shape) | lungs.lung))
        eff = out == EFFUSION
        if eff.any():
            drop("not_dependent", eff & ~_posterior_half(lungs, volume))
        eff = out == EFFUSION
        if eff.any():
            drop("apex", eff & _apex_slices(lungs, volume)[:, None, None])
        eff = out == EFFUSION
        if eff.any() and volume.geometry.spacing_known:
            box = _box(eff)
            lab, n = ndimage.label(eff[box])
            if n:
                small = np.bincount(lab.ravel(), minlength=n + 1) * volume.geometry.voxel_volume_ml < EFFUSION_MIN_ML
                small[0] = False
                gone = np.zeros_like(eff)
                gone[box] = small[lab]
                drop("too_small", gone)
        eff = out == EFFUSION
        if eff.any() and volume.is_hu:
            hu = volume.array
            low = eff & (hu < FLUID_MIN_VOXEL_HU)
            drop("not_fluid_density", low)
            eff = out == EFFUSION
            box = _box(eff)
            lab, n = ndimage.label(eff[box]) if box is not None else (None, 0)
            if n:
                med = _median_per_region(hu[box], lab, n)
                bad = (med < FLUID_HU[0]) | (med > FLUID_HU[1])
                bad[0] = False
                gone = np.zeros_like(eff)
                gone[box] = bad[lab]
                drop("not_fluid_density", gone)
    check_cancel(cancel)
    filled = unite_findings(lungs, out, volume.geometry)
    return GateResult(out, lung_slices, _totals(by_rule), filled, by_rule)


def _totals(by_rule: dict[str, dict[str, int]]) -> dict[str, int]:
    tot: dict[str, int] = {}
    for per in by_rule.values():
        for k, v in per.items():
            tot[k] = tot.get(k, 0) + v
    return tot
