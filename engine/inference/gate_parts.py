"""Parts of the lung gate shared by its numpy path (:mod:`.gate`) and its torch path (:mod:`.gate_torch`).

The rules' constants and texts, :class:`GateResult`, the gate's cell grid (in-plane pooling,
boxes of cells), the envelope and its distance, 3D regions (``cc3d``), the posterior and apical
masks, and :class:`_Dropper`, which removes voxels a slab of slices at a time and counts them per
rule. :mod:`.gate` states the rules; :func:`.gate.lung_gate` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import cc3d
import numpy as np
from scipy import ndimage

from ..anatomy.boxes import Box, bounding_box, z_slabs
from ..anatomy.lungs import LungMasks
from ..labels import CONSOLIDATION, EFFUSION, FINDING_KEYS, GGO
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
    "outside_lungs": f"GGO and consolidation only inside the lungs (within {LUNG_MARGIN_MM:g} mm of the lung, on "
                     "a slice that holds lung, the region at least half there)",
    "outside_pleural_space": f"effusion only in the pleural space: outside the lung, the region at least half "
                             f"within {EFFUSION_MARGIN_MM:g} mm of it, no voxel beyond {EFFUSION_REACH_MM:g} mm; on a "
                             "slice without lung only below the lung base on scans with known spacing",
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


DENSE = (GGO, CONSOLIDATION)


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


#: unsigned integer as wide as ``f`` bools: viewing a row of bools through it pools ``f`` columns at once
_WORD = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _coarse_any(mask: np.ndarray, f: int) -> np.ndarray:
    """In-plane max-pooling by ``f`` (edges padded)."""
    if f == 1:
        return mask.copy()
    nz, ny, nx = mask.shape
    py, px = (-ny) % f, (-nx) % f
    m = np.pad(mask, ((0, 0), (0, py), (0, px))) if (py or px) else mask
    if f in _WORD and m.dtype == bool:
        # f neighbouring columns are one machine word, f neighbouring rows one reduced axis: one read
        words = np.ascontiguousarray(m).view(_WORD[f]).reshape(nz, (ny + py) // f, f, (nx + px) // f)
        return np.bitwise_or.reduce(words, axis=2) != 0
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


def _cell_box(box: Box, f: int, shape: tuple[int, int, int]) -> tuple[Box, Box]:
    """``box`` widened in-plane to whole ``f``-cells: (the full-resolution box, the same box in cells)."""
    (z, y, x), (_, ny, nx) = box, shape
    y0, y1, x0, x1 = y.start // f, -(-y.stop // f), x.start // f, -(-x.stop // f)
    full = (z, slice(y0 * f, min(ny, y1 * f)), slice(x0 * f, min(nx, x1 * f)))
    return full, (z, slice(y0, y1), slice(x0, x1))


def _grow(box: Box, margin: tuple[int, int, int], shape: tuple[int, ...]) -> Box:
    """``box`` grown by ``margin`` per axis, clipped to ``shape``."""
    return tuple(slice(max(0, s.start - m), min(n, s.stop + m))  # type: ignore[return-value]
                 for s, m, n in zip(box, margin, shape))


def _paste(src: np.ndarray, src_box: Box, dst_box: Box) -> np.ndarray:
    """``src`` (covering ``src_box``) seen on ``dst_box`` of the same grid; False where it does not reach."""
    out = np.zeros(tuple(s.stop - s.start for s in dst_box), dtype=bool)
    lo = [max(a.start, b.start) for a, b in zip(src_box, dst_box)]
    hi = [min(a.stop, b.stop) for a, b in zip(src_box, dst_box)]
    if all(h > l for l, h in zip(lo, hi)):
        out[tuple(slice(l - b.start, h - b.start) for l, h, b in zip(lo, hi, dst_box))] = \
            src[tuple(slice(l - a.start, h - a.start) for l, h, a in zip(lo, hi, src_box))]
    return out


def _components(found: np.ndarray) -> tuple[np.ndarray, int]:
    """6-connected 3D components of ``found`` (``scipy.ndimage.label``'s default neighbourhood)."""
    lab, n = cc3d.connected_components(np.ascontiguousarray(found), connectivity=6, return_N=True,
                                       out_dtype=np.uint32)
    return lab, int(n)


def _keep_regions(found: np.ndarray, region: np.ndarray, fraction: float) -> np.ndarray:
    """Cells of the 3D components of ``found`` with at least ``fraction`` of their cells in ``region``."""
    lab, n = _components(found)
    if n == 0:
        return np.zeros_like(found)
    size = cc3d.statistics(lab)["voxel_counts"].astype(np.int64)
    inside = np.bincount(lab[region & found], minlength=n + 1)
    ok = inside >= fraction * np.maximum(size, 1)
    ok[0] = False
    return ok[lab]


def _posterior_rows(lung_rows: tuple[np.ndarray, ...], volume: Volume, rows: slice) -> np.ndarray:
    """bool ``(z, len(rows))``: per slice, the rows behind the anterior quarter of either lung (the nearest
    lung slice for slices beyond the bases). ``lung_rows``: per lung, bool ``(z, y)``, the rows holding it."""
    nz, ny = lung_rows[0].shape
    posterior_up = volume.geometry.direction_matrix[1, 1] >= 0  # row index grows towards posterior (LPS +y)
    out = np.zeros((nz, rows.stop - rows.start), dtype=bool)
    r = np.arange(rows.start, rows.stop)
    for any_row in lung_rows:
        has = np.flatnonzero(any_row.any(axis=1))
        if has.size == 0:
            continue
        # a slice just beyond the lung base (the costophrenic recess) uses its nearest lung slice (the lower
        # one on a tie)
        k = np.arange(nz)
        hi = np.clip(np.searchsorted(has, k), 0, has.size - 1)
        lo = np.clip(hi - 1, 0, has.size - 1)
        src = np.where(np.abs(has[lo] - k) <= np.abs(has[hi] - k), has[lo], has[hi])
        first = np.argmax(any_row, axis=1)
        last = ny - 1 - np.argmax(any_row[:, ::-1], axis=1)
        y0, y1 = first[src], last[src]
        if posterior_up:
            out |= r[None, :] >= (y0 + DEPENDENT_FROM * (y1 - y0))[:, None]
        else:
            out |= r[None, :] <= (y1 - DEPENDENT_FROM * (y1 - y0))[:, None]
    return out


def _z_sign(volume: Volume) -> int:
    """+1 when the slice index grows towards the head (LPS ``z``), else -1."""
    return 1 if volume.geometry.direction_matrix[2, 2] >= 0 else -1


def _apex_slices(lungs: LungMasks, volume: Volume) -> np.ndarray:
    """bool ``(z,)``: slices in the upper :data:`APEX_FRACTION` of either lung's height, and above it."""
    nz = lungs.shape[0]
    out = np.zeros(nz, dtype=bool)
    if nz < 8:
        return out
    superior_up = _z_sign(volume) > 0
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


def _near_lung(lungs: LungMasks, box: Box, margin_px: int) -> np.ndarray:
    """bool on ``box``: the lung dilated in-plane (4-connected, ``margin_px`` steps) on each slice."""
    shape = lungs.shape
    wide = _grow(box, (0, margin_px, margin_px), shape)
    lung = lungs.left[wide] | lungs.right[wide]
    cross = ndimage.generate_binary_structure(2, 1)[None]
    grown = ndimage.binary_dilation(lung, structure=cross, iterations=margin_px) if lung.any() else lung
    return grown[:, box[1].start - wide[1].start:box[1].stop - wide[1].start,
                 box[2].start - wide[2].start:box[2].stop - wide[2].start]


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


def _min_voxels(ml: float, voxel_ml: float) -> int:
    """Fewest voxels whose volume (``voxels * voxel_ml``, in floating point) is not under ``ml``."""
    t = max(0, int(np.ceil(ml / voxel_ml)))
    while t > 0 and (t - 1) * voxel_ml >= ml:
        t -= 1
    while t * voxel_ml < ml:
        t += 1
    return t


def _of(labels: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """bool: voxels of ``labels`` holding one of ``classes``."""
    m = labels == classes[0]
    for c in classes[1:]:
        m |= labels == c
    return m


class _Dropper:
    """Removes voxels from ``out`` inside a box, a slab of slices at a time, and counts them per rule
    and finding.

    ``box`` is in the scan's coordinates (``out[0, 0, 0]`` is voxel ``origin`` of the scan); a
    rule is a function ``(labels, k, at) -> bool mask`` of one slab: ``labels`` the slab's labels
    (a view of ``out``), ``k`` the slab relative to the box, ``at`` the slab's box in the scan (to
    read the lungs or the HU there).
    """

    def __init__(self, out: np.ndarray, box: Box, by_rule: Optional[dict[str, dict[str, int]]] = None,
                 origin: tuple[int, int, int] = (0, 0, 0)) -> None:
        self.out, self.box, self.origin = out, box, origin
        self.sub = out[tuple(slice(b.start - o, b.stop - o) for b, o in zip(box, origin))]  # a view of ``out``
        self.by_rule: dict[str, dict[str, int]] = {r: {} for r in RULES} if by_rule is None else by_rule

    def within(self, box: Box) -> "_Dropper":
        """The same counts on a box inside this one (``box`` relative to it)."""
        return _Dropper(self.out, _offset(box, self.box), self.by_rule, self.origin)

    def slabs(self) -> Iterator[tuple[slice, Box]]:
        """``(k, at)`` of each slab: relative to the box, and in the scan."""
        z0 = self.box[0].start
        for k in z_slabs(self.sub.shape):
            yield k, (slice(z0 + k.start, z0 + k.stop), self.box[1], self.box[2])

    def each(self, rule: str, mask_of: Callable[[np.ndarray, slice, Box], np.ndarray]) -> None:
        """Remove, slab by slab, the voxels ``mask_of`` marks, counted under ``rule``."""
        per = self.by_rule[rule]
        for k, at in self.slabs():
            sub = self.sub[k]
            mask = mask_of(sub, k, at)
            vals = sub[mask]
            if vals.size == 0:
                continue
            counts = np.bincount(vals, minlength=4)
            for v in (GGO, CONSOLIDATION, EFFUSION):
                if counts[v]:
                    per[FINDING_KEYS[v]] = per.get(FINDING_KEYS[v], 0) + int(counts[v])
            sub[mask] = 0

    def coarse(self, classes: tuple[int, ...], f: int) -> np.ndarray:
        """bool cells (the box's ``f``-cell grid; its in-plane start is a multiple of ``f``) holding ``classes``."""
        nz, ny, nx = self.sub.shape
        out = np.empty((nz, -(-ny // f), -(-nx // f)), dtype=bool)
        for k, _ in self.slabs():
            out[k] = _coarse_any(_of(self.sub[k], classes), f)
        return out

    def mask(self, classes: tuple[int, ...]) -> np.ndarray:
        """bool: the box's voxels holding ``classes`` (one array for the box: keep the box small)."""
        out = np.empty(self.sub.shape, dtype=bool)
        for k, _ in self.slabs():
            out[k] = _of(self.sub[k], classes)
        return out

    def cells(self, rule: str, cells: np.ndarray, f: int, classes: tuple[int, ...]) -> None:
        """Remove the voxels of ``classes`` in ``cells`` (as from :meth:`coarse`), only inside their box."""
        cb = bounding_box(cells)
        if cb is None:
            return
        d = self.within(_voxel_box(cb, f, self.sub.shape))
        cells = cells[cb]
        d.each(rule, lambda sub, k, at: _of(sub, classes) & _full(cells[k], f, sub.shape))

    def remaining(self, classes: tuple[int, ...]) -> Optional["_Dropper"]:
        """The dropper on the bounding box of what is left of ``classes`` (``None`` when nothing is)."""
        nz, ny, nx = self.sub.shape
        slices = np.zeros(nz, dtype=bool)
        plane = np.zeros((ny, nx), dtype=bool)
        for k, _ in self.slabs():
            m = _of(self.sub[k], classes)
            slices[k] = m.any(axis=(1, 2))
            plane |= m.any(axis=0)
        if not slices.any():
            return None
        zs, ys, xs = np.flatnonzero(slices), np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
        return self.within((slice(int(zs[0]), int(zs[-1]) + 1), slice(int(ys[0]), int(ys[-1]) + 1),
                            slice(int(xs[0]), int(xs[-1]) + 1)))


LungCells = tuple[int, np.ndarray, np.ndarray]


def _lung_cells(lungs: LungMasks, lung_slices: np.ndarray, f: int) -> Optional[LungCells]:
    """``(first lung slice, right, left)``: each lung on the cell grid, over the slices holding lung."""
    zs = np.flatnonzero(lung_slices)
    if zs.size == 0:
        return None
    zr = slice(int(zs[0]), int(zs[-1]) + 1)
    return zr.start, _coarse_any(lungs.right[zr], f), _coarse_any(lungs.left[zr], f)


def _distance_masks(cells: Optional[LungCells], cshape: tuple[int, int, int], volume: Volume, f: int,
                    margins_mm: tuple[float, ...]) -> tuple[Optional[Box], list[np.ndarray]]:
    """Cells within each of ``margins_mm`` (3D distance) of the lungs' envelope, on a box of the cell grid
    (``cshape``).

    The distance is computed only inside the lungs' cell box grown by the largest margin (no
    farther cell can be within it), so it is the same as on the whole grid. ``(None, [])`` when
    the envelope is empty.
    """
    if cells is None:
        return None, []
    z0, right, left = cells
    env = np.zeros(right.shape, dtype=bool)
    for side in (left, right):  # each lung's fill inside its own box (the same fill, a quarter of the work)
        b = bounding_box(side)
        if b is not None:
            env[b] |= envelope([side[b]])
    ebox = bounding_box(env)
    if ebox is None:
        return None, []
    env = env[ebox]
    box, inner, sampling = _reach_box(ebox, z0, cshape, volume, f, max(margins_mm))
    outside = np.ones(tuple(s.stop - s.start for s in box), dtype=bool)
    outside[inner] = ~env
    return box, _within(outside, sampling, margins_mm)


def _reach_box(ebox: Box, z0: int, cshape: tuple[int, int, int], volume: Volume, f: int, reach: float
               ) -> tuple[Box, Box, tuple[float, float, float]]:
    """The envelope's cell box ``ebox`` (slices from ``z0``) grown by ``reach`` mm within ``cshape``:
    ``(grown box, ebox inside it, cell sampling (z, y, x) in mm)``. Shared by the numpy and torch gates."""
    ebox = (slice(ebox[0].start + z0, ebox[0].stop + z0), ebox[1], ebox[2])
    sy, sx = volume.geometry.spacing[1] * f, volume.geometry.spacing[2] * f
    sz = volume.geometry.spacing[0] if cshape[0] > 1 else 1e6  # a single slice: in-plane only
    box = _grow(ebox, tuple(int(np.ceil(reach / s)) + 1 for s in (sz, sy, sx)), cshape)  # type: ignore[arg-type]
    inner = tuple(slice(e.start - b.start, e.stop - b.start) for e, b in zip(ebox, box))
    return box, inner, (sz, sy, sx)  # type: ignore[return-value]


def _within(outside: np.ndarray, sampling: tuple[float, float, float], margins_mm: tuple[float, ...]
            ) -> list[np.ndarray]:
    """bool masks: cells of ``outside`` within each margin of its False cells (Euclidean, in mm).

    ``scipy.ndimage.distance_transform_edt``'s distances, bit for bit: its feature transform,
    then the distance summed and rooted as scipy does (``((dz*sz)^2 + (dy*sy)^2) + (dx*sx)^2``), a
    slab of slices at a time instead of five float64 arrays three times the grid's size.
    """
    ft = ndimage.distance_transform_edt(outside, sampling=sampling, return_distances=False, return_indices=True)
    masks = [np.empty(outside.shape, dtype=bool) for _ in margins_mm]
    ny, nx = outside.shape[1:]
    grid = (None, np.arange(ny, dtype=ft.dtype)[None, :, None], np.arange(nx, dtype=ft.dtype)[None, None, :])
    for k in z_slabs(outside.shape, itemsize=8):
        grid_z = np.arange(k.start, k.stop, dtype=ft.dtype)[:, None, None]
        total = None
        for axis, s in enumerate(sampling):
            d = (ft[axis, k] - (grid_z if axis == 0 else grid[axis])).astype(np.float64)
            d *= s
            d *= d
            total = d if total is None else np.add(total, d, out=total)
        np.sqrt(total, out=total)
        for m, mm in zip(masks, margins_mm):
            np.less_equal(total, mm, out=m[k])
    return masks


def _on_lung_slices(masks: list[np.ndarray], z0: int, lung_slices: np.ndarray, spacing_known: bool,
                    z_sign: int) -> list[np.ndarray]:
    """The gate's distance masks (``in_lung``, ``near``, ``reach``; slices from ``z0``) with no cell on a slice
    without lung, in place.

    GGO and consolidation are lung tissue: a slice without lung holds none, whatever the 3D
    distance to the lung on the slices beside it (a 10 mm margin is 10 slices of an image stack
    without spacing, and reached into the liver and the stomach under the lung bases). Effusion
    may continue below the lung base into the costophrenic recess, so on scans with known
    spacing its masks keep the slices below the lowest lung slice (``z_sign``: +1 when the slice
    index grows towards the head); never above the lungs, and not at all without spacing.
    """
    in_lung, near, reach = masks
    nz = in_lung.shape[0]
    has = np.asarray(lung_slices[z0:z0 + nz], dtype=bool)
    in_lung[~has] = False
    eff_ok = has.copy()
    zs = np.flatnonzero(lung_slices)
    if spacing_known and zs.size:
        k = np.arange(z0, z0 + nz)
        eff_ok |= (k < zs[0]) if z_sign > 0 else (k > zs[-1])  # below the base (the recess)
    near[~eff_ok] = False
    reach[~eff_ok] = False
    return [in_lung, near, reach]


def _voxel_box(cells: Box, f: int, shape: tuple[int, ...]) -> Box:
    """A box of the cell grid as a box of voxels (clipped to ``shape``)."""
    return (cells[0], slice(cells[1].start * f, min(shape[1], cells[1].stop * f)),
            slice(cells[2].start * f, min(shape[2], cells[2].stop * f)))


def _offset(inner: Box, outer: Box) -> Box:
    """``inner`` (relative to ``outer``) in the coordinates of ``outer``'s array."""
    return tuple(slice(o.start + i.start, o.start + i.stop) for i, o in zip(inner, outer))  # type: ignore[return-value]


def _effusion_rules(drop: _Dropper, lungs: LungMasks, volume: Volume) -> None:
    """Rules 2 (effusion in the lung) to 5 for the effusion inside ``drop``'s box."""
    left, right = lungs.left, lungs.right
    drop.each("outside_pleural_space", lambda sub, k, at: (sub == EFFUSION) & (left[at] | right[at]))
    post = _posterior_rows((lungs.right.any(axis=2), lungs.left.any(axis=2)), volume, drop.box[1])
    drop.each("not_dependent", lambda sub, k, at: (sub == EFFUSION) & ~post[at[0], :, None])
    apex = _apex_slices(lungs, volume)
    drop.each("apex", lambda sub, k, at: (sub == EFFUSION) & apex[at[0], None, None])
    _effusion_regions(drop, volume)


def _effusion_regions(drop: _Dropper, volume: Volume) -> None:
    """Rules 4b (too small) and 5 (not of fluid density) for the effusion inside ``drop``'s box."""
    hu = volume.array
    rest = drop.remaining((EFFUSION,))
    if rest is not None and volume.geometry.spacing_known:
        eff = rest.mask((EFFUSION,))
        big = cc3d.dust(eff, _min_voxels(EFFUSION_MIN_ML, volume.geometry.voxel_volume_ml), connectivity=6)
        rest.each("too_small", lambda sub, k, at: eff[k] & ~big[k])
        rest = rest.remaining((EFFUSION,))
    if rest is not None and volume.is_hu:
        rest.each("not_fluid_density", lambda sub, k, at: (sub == EFFUSION) & (hu[at] < FLUID_MIN_VOXEL_HU))
        rest = rest.remaining((EFFUSION,))
        if rest is not None:
            lab, n = _components(rest.mask((EFFUSION,)))
            med = _median_per_region(hu[rest.box], lab, n)
            bad = (med < FLUID_HU[0]) | (med > FLUID_HU[1])
            bad[0] = False
            rest.each("not_fluid_density", lambda sub, k, at: bad[lab[k]])


def _canonical(by_rule: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Per rule, the findings in label order (GGO, consolidation, effusion), whatever order slabs found them in."""
    keys = [FINDING_KEYS[v] for v in (GGO, CONSOLIDATION, EFFUSION)]
    return {rule: {k: per[k] for k in keys if k in per} for rule, per in by_rule.items()}


def _totals(by_rule: dict[str, dict[str, int]]) -> dict[str, int]:
    tot: dict[str, int] = {}
    for per in by_rule.values():
        for k, v in per.items():
            tot[k] = tot.get(k, 0) + v
    return tot


# -- the lungs' part, made once per lung masks (gate.py, gate_torch.py) --------------------------

@dataclass(frozen=True)
class GatePrep:
    """What the gate takes from the lungs alone (:func:`prepare_gate`), kept with the
    :class:`LungMasks` object it was made from."""
    geometry: object
    margins: tuple[float, float, float]
    lung_slices: np.ndarray
    box: Optional[Box]  # the cell-grid box of ``masks``
    masks: list[np.ndarray]  # cells within each margin of the lungs' envelope


_PREP_KEY = "_gate_prep"


def prepare_gate(volume: Volume, lungs: LungMasks, effusion_margin_mm: float = EFFUSION_MARGIN_MM,
                 lung_margin_mm: float = LUNG_MARGIN_MM) -> GatePrep:
    """The lungs' part of :func:`.gate.lung_gate`: the slices holding lung and the cells within each
    margin of the lungs' envelope (3D distance), the same arrays the gate makes for itself.

    They are kept with ``lungs``, and :func:`.gate.lung_gate` (and the device gate) use them for the
    same geometry and margins. Lung masks are not edited in place once in use: only Run AI's
    fill of lungs it found itself (``own_lungs``) edits them, after the gate has read these,
    and the old object is not used afterwards. Made early, they take the gate's distance
    transform off Run AI's path: beside the networks (:mod:`.background`), or when the app
    opens a scan.
    """
    margins = (lung_margin_mm, effusion_margin_mm, EFFUSION_REACH_MM)
    made = kept_prep(volume, lungs, margins)
    if made is not None:
        return made
    nz, ny, nx = volume.shape
    f = max(1, int(min(ny, nx) // 128))  # as in the gates
    lung_slices = lungs.left.any(axis=(1, 2)) | lungs.right.any(axis=(1, 2))
    cshape = (nz, -(-ny // f), -(-nx // f))
    box, masks = _distance_masks(_lung_cells(lungs, lung_slices, f), cshape, volume, f, margins)
    for m in (lung_slices, *masks):
        m.flags.writeable = False  # shared by every gate run on these lungs
    made = GatePrep(volume.geometry, margins, lung_slices, box, masks)
    lungs.__dict__[_PREP_KEY] = made
    return made


def kept_prep(volume: Volume, lungs: LungMasks, margins: tuple[float, float, float]) -> Optional[GatePrep]:
    """The :func:`prepare_gate` result kept with ``lungs`` for this geometry and margins, if any."""
    made = lungs.__dict__.get(_PREP_KEY)
    return made if made is not None and made.geometry == volume.geometry and made.margins == margins else None
