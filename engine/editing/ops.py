"""Pure label-editing operations on ``uint8`` ``(z, y, x)`` label arrays.

Every operation here computes a :class:`Region` -- a bounding box into the volume
plus a boolean mask of the box's shape -- and never mutates its inputs. The
:class:`~engine.editing.editor.LabelEditor` paints a region with a label value
through the undo history, so one function per tool stays small and testable.

Coordinates are fractional voxel indices ``(z, y, x)``; distances are millimetres
measured with the geometry spacing ``(sz, sy, sx)``, so a round brush is an
ellipse in voxels on an anisotropic grid.

A 2D tool works on one plane: ``plane_axis`` is the array axis the plane is
perpendicular to (0 axial, 1 coronal, 2 sagittal) and the point's coordinate on
that axis picks the slice. ``plane_axis=None`` makes the tool 3D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
from scipy import ndimage

from ..errors import DataError

Box = tuple[slice, slice, slice]
Spacing = tuple[float, float, float]

#: HU ranges of the threshold brush, per finding key. GGO: hazy increase of lung
#: attenuation that leaves vessels visible (about -800..-300 HU); consolidation:
#: soft-tissue attenuation that hides vessels (-300..100 HU); pleural effusion: fluid
#: (0..40 HU). Values are starting points the user can change in the options panel.
THRESHOLD_PRESETS: dict[str, tuple[float, float]] = {
    "ggo": (-800.0, -300.0),
    "consolidation": (-300.0, 100.0),
    "effusion": (0.0, 40.0),
}

#: paint-over modes: which existing voxels a paint may overwrite
PAINT_OVER_MODES = ("everything", "background", "label")


@dataclass(frozen=True)
class Region:
    """A set of voxels: ``box`` (three slices into the volume) and ``mask`` of the box's shape."""

    box: Box
    mask: np.ndarray

    @property
    def count(self) -> int:
        """Number of voxels in the region."""
        return int(np.count_nonzero(self.mask))

    @property
    def empty(self) -> bool:
        return not self.mask.any()

    def tight(self) -> "Region":
        """The same voxels in the smallest box that holds them (an empty region stays as is)."""
        return _tight(self.box, self.mask)

    def to_full(self, shape: Sequence[int]) -> np.ndarray:
        """The region as a full-size boolean array (for tests and small volumes)."""
        out = np.zeros(tuple(shape), dtype=bool)
        out[self.box] = self.mask
        return out


def _tight(box: Box, mask: np.ndarray) -> Region:
    if not mask.any():
        return Region(box, mask)
    sl = ndimage.find_objects(mask.astype(np.uint8))[0]
    new_box = tuple(slice(b.start + s.start, b.start + s.stop) for b, s in zip(box, sl))
    return Region(new_box, mask[sl])  # type: ignore[arg-type]


def box_union(a: Box, b: Box) -> Box:
    """Smallest box holding both boxes."""
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))  # type: ignore


def _clip_box(lo: np.ndarray, hi: np.ndarray, shape: Sequence[int]) -> Optional[Box]:
    """Box of integer indices in ``[lo, hi]`` (inclusive, floats) clipped to ``shape``; None if empty."""
    start = np.maximum(np.ceil(lo - 1e-9).astype(int), 0)
    stop = np.minimum(np.floor(hi + 1e-9).astype(int) + 1, np.asarray(shape))
    if np.any(stop <= start):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(start, stop))  # type: ignore[return-value]


def _empty(shape: Sequence[int]) -> Region:
    return Region((slice(0, 0), slice(0, 0), slice(0, 0)), np.zeros((0, 0, 0), dtype=bool))


# ---------------------------------------------------------------- brushes
def brush_segment(shape: Sequence[int], spacing: Spacing, p0: Sequence[float], p1: Sequence[float],
                  radius_mm: float, plane_axis: Optional[int] = 0) -> Region:
    """Voxels within ``radius_mm`` of the segment ``p0``-``p1``: one brush drag event.

    The swept shape is a capsule (a disk or sphere moved along the segment), so a
    fast mouse move leaves no gap however far apart the events are: this is exact
    stroke interpolation, finer than stamping at radius/2 steps. At least the voxel
    nearest each end point is included, so a brush smaller than a voxel still paints.

    Parameters
    ----------
    shape, spacing
        Volume shape and spacing ``(sz, sy, sx)`` in mm.
    p0, p1
        Fractional voxel indices ``(z, y, x)`` of the previous and current event
        (equal for a single click).
    radius_mm
        Brush radius in mm.
    plane_axis
        Axis the 2D disk is flat along (0 axial, 1 coronal, 2 sagittal), taken at
        ``round(p1[plane_axis])``; ``None`` for a 3D sphere brush.
    """
    a = np.asarray(p0, dtype=float)
    b = np.asarray(p1, dtype=float)
    sp = np.asarray(spacing, dtype=float)
    r = float(max(radius_mm, 0.0))
    if plane_axis is not None:
        k = float(np.round(b[plane_axis]))
        a[plane_axis] = k
        b[plane_axis] = k
    reach = r / sp
    if plane_axis is not None:
        reach[plane_axis] = 0.0
    box = _clip_box(np.minimum(a, b) - reach - 0.5, np.maximum(a, b) + reach + 0.5, shape)
    if box is None:
        return _empty(shape)
    grids = np.ogrid[box[0], box[1], box[2]]
    # distance (mm) of every voxel centre to the segment
    d = (b - a) * sp
    dd = float(d @ d)
    rel = [(g - a[i]) * sp[i] for i, g in enumerate(grids)]
    if dd > 0:
        t = (rel[0] * d[0] + rel[1] * d[1] + rel[2] * d[2]) / dd
        t = np.clip(t, 0.0, 1.0)
        dist2 = sum((rel[i] - t * d[i]) ** 2 for i in range(3))
    else:
        dist2 = rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2
    mask = np.asarray(dist2 <= r * r + 1e-9)
    mask = np.broadcast_to(mask, tuple(s.stop - s.start for s in box)).copy()
    for p in (a, b):
        idx = tuple(int(np.clip(np.round(p[i]), 0, shape[i] - 1)) - box[i].start for i in range(3))
        if all(0 <= idx[i] < mask.shape[i] for i in range(3)):
            mask[idx] = True
    return Region(box, mask)


def brush_stroke(shape: Sequence[int], spacing: Spacing, points: Sequence[Sequence[float]],
                 radius_mm: float, plane_axis: Optional[int] = 0) -> Region:
    """Union of :func:`brush_segment` over successive points of a whole stroke."""
    pts = [np.asarray(p, dtype=float) for p in points]
    if not pts:
        return _empty(shape)
    if len(pts) == 1:
        pts = pts * 2
    out: Optional[Region] = None
    for p, q in zip(pts[:-1], pts[1:]):
        seg = brush_segment(shape, spacing, p, q, radius_mm, plane_axis)
        out = seg if out is None else union(out, seg)
    assert out is not None
    return out


def union(a: Region, b: Region) -> Region:
    """Union of two regions."""
    if a.empty:
        return b
    if b.empty:
        return a
    box = box_union(a.box, b.box)
    mask = np.zeros(tuple(s.stop - s.start for s in box), dtype=bool)
    for r in (a, b):
        sub = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(r.box, box))
        mask[sub] |= r.mask
    return Region(box, mask)  # type: ignore[arg-type]


# ---------------------------------------------------------------- polygon / lasso
def polygon_mask_2d(shape_2d: Sequence[int], vertices: np.ndarray, outline: bool = True) -> np.ndarray:
    """Boolean ``(rows, cols)`` mask of pixels inside a polygon or on its outline.

    ``vertices`` is an ``(N, 2)`` array of ``(row, col)`` fractional indices; the
    polygon is closed automatically. Interior by the even-odd rule with scanline
    rasterisation in numpy (each edge crossing of a pixel row toggles the inside
    state of every pixel to its right); with ``outline`` the pixels the outline passes
    through are added so that what the user drew is painted (a lasso), without it only
    pixels whose centre lies inside count (a measurement: the outline's pixels made a
    3-pixel circle's area 58 % too large).
    """
    h, w = int(shape_2d[0]), int(shape_2d[1])
    v = np.asarray(vertices, dtype=float).reshape(-1, 2)
    out = np.zeros((h, w), dtype=bool)
    if len(v) < 3 or h == 0 or w == 0:
        return out
    y0, x0 = v[:, 0], v[:, 1]
    y1, x1 = np.roll(y0, -1), np.roll(x0, -1)
    rows = np.arange(h, dtype=float)
    toggles = np.zeros((h, w + 1), dtype=np.int32)
    for ya, xa, yb, xb in zip(y0, x0, y1, x1):
        if ya == yb:
            continue
        lo, hi = min(ya, yb), max(ya, yb)
        r = rows[(rows >= lo) & (rows < hi)]  # half-open: a vertex is counted once
        if r.size == 0:
            continue
        xi = xa + (r - ya) * (xb - xa) / (yb - ya)
        start = np.clip(np.floor(xi).astype(int) + 1, 0, w)  # first column with centre > xi
        np.add.at(toggles, (r.astype(int), start), 1)
    out = (np.cumsum(toggles, axis=1)[:, :w] % 2).astype(bool)
    if not outline:
        return out
    for ya, xa, yb, xb in zip(y0, x0, y1, x1):  # the outline
        n = int(np.ceil(2 * max(abs(yb - ya), abs(xb - xa)))) + 1
        t = np.linspace(0.0, 1.0, n)
        r = np.round(ya + t * (yb - ya)).astype(int)
        c = np.round(xa + t * (xb - xa)).astype(int)
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        out[r[ok], c[ok]] = True
    return out


def polygon_region(shape: Sequence[int], vertices: np.ndarray, plane_axis: int, index: int) -> Region:
    """Lasso / polygon fill on one slice.

    Parameters
    ----------
    shape
        Volume shape.
    vertices
        ``(N, 2)`` fractional in-plane coordinates: the two array axes other than
        ``plane_axis``, in array order (``(y, x)`` on an axial slice).
    plane_axis, index
        The slice: array axis and index along it.
    """
    if not 0 <= index < shape[plane_axis]:
        return _empty(shape)
    axes = [i for i in range(3) if i != plane_axis]
    v = np.asarray(vertices, dtype=float).reshape(-1, 2)
    if len(v) < 3:
        return _empty(shape)
    lo = np.maximum(np.floor(v.min(axis=0)).astype(int), 0)
    hi = np.minimum(np.ceil(v.max(axis=0)).astype(int) + 1, [shape[axes[0]], shape[axes[1]]])
    if np.any(hi <= lo):
        return _empty(shape)
    m2 = polygon_mask_2d(hi - lo, v - lo)
    box = [slice(0, 0)] * 3
    box[plane_axis] = slice(index, index + 1)
    box[axes[0]] = slice(int(lo[0]), int(hi[0]))
    box[axes[1]] = slice(int(lo[1]), int(hi[1]))
    return Region(tuple(box), np.expand_dims(m2, plane_axis)).tight()  # type: ignore[arg-type]


# ---------------------------------------------------------------- flood fill
def flood_fill(labels: np.ndarray, seed: Sequence[int], plane_axis: Optional[int] = None,
               connectivity: int = 1, max_voxels: Optional[int] = None) -> Region:
    """Connected region of voxels with the seed's label value, containing ``seed``.

    Labels only a box around the seed and doubles it while the component touches a
    box face that is not a volume face, so filling a small region of a large volume
    costs about the region's size, not the volume's.

    Parameters
    ----------
    labels
        ``uint8`` label array.
    seed
        Integer ``(z, y, x)`` index.
    plane_axis
        Restrict to the slice through ``seed`` perpendicular to this axis (2D fill);
        ``None`` for a 3D fill.
    connectivity
        1 for face neighbours (6 in 3D, 4 in 2D), up to 3 for all 26 neighbours.
    max_voxels
        Raise :class:`~engine.errors.DataError` when the region grows beyond this.
    """
    shape = labels.shape
    seed_i = tuple(int(s) for s in seed)
    if not all(0 <= seed_i[i] < shape[i] for i in range(3)):
        raise DataError(f"The fill seed {seed_i} is outside the volume {shape}.")
    value = labels[seed_i]
    structure = ndimage.generate_binary_structure(3, connectivity)
    if plane_axis is not None:
        keep = [slice(None)] * 3
        keep[plane_axis] = slice(1, 2)
        flat = np.zeros_like(structure)
        flat[tuple(keep)] = structure[tuple(keep)]
        structure = flat
    half = 16
    while True:
        lo = [max(s - half, 0) for s in seed_i]
        hi = [min(s + half + 1, n) for s, n in zip(seed_i, shape)]
        if plane_axis is not None:
            lo[plane_axis], hi[plane_axis] = seed_i[plane_axis], seed_i[plane_axis] + 1
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        same = labels[box] == value
        lab, _ = ndimage.label(same, structure=structure)
        comp = lab == lab[tuple(s - a for s, a in zip(seed_i, lo))]
        grow = False
        for ax in range(3):
            if ax == plane_axis:
                continue
            if lo[ax] > 0 and comp.take(0, axis=ax).any():
                grow = True
            if hi[ax] < shape[ax] and comp.take(-1, axis=ax).any():
                grow = True
        count = int(np.count_nonzero(comp))
        if max_voxels is not None and count > max_voxels:
            raise DataError(f"The filled region has more than {max_voxels} voxels; "
                            "click inside a closed region or use a 2D fill.")
        if not grow:
            return _tight(box, comp)  # type: ignore[arg-type]
        half *= 2


# ---------------------------------------------------------------- filters
def restrict_to_range(region: Region, intensities: np.ndarray, lo: float, hi: float) -> Region:
    """Keep only the region's voxels whose intensity (HU) lies in ``[lo, hi]`` (threshold brush)."""
    if region.empty:
        return region
    vals = intensities[region.box]
    return Region(region.box, region.mask & (vals >= lo) & (vals <= hi))


def restrict_paint_over(region: Region, labels: np.ndarray, mode: str = "everything",
                        over_label: Optional[int] = None) -> Region:
    """Keep only the voxels a paint may overwrite.

    ``mode`` is ``"everything"`` (any voxel), ``"background"`` (only label 0) or
    ``"label"`` (only voxels holding ``over_label``).
    """
    if mode not in PAINT_OVER_MODES:
        raise ValueError(f"paint-over mode must be one of {PAINT_OVER_MODES}, got {mode!r}")
    if region.empty or mode == "everything":
        return region
    cur = labels[region.box]
    if mode == "background":
        return Region(region.box, region.mask & (cur == 0))
    if over_label is None:
        raise ValueError("paint-over mode 'label' needs over_label")
    return Region(region.box, region.mask & (cur == over_label))


def without_values(region: Region, labels: np.ndarray, values: Iterable[int]) -> Region:
    """``region`` without the voxels that hold one of ``values`` (the labels a person has hidden: an edit never
    changes what cannot be seen; QA pass: one eraser stroke removed 1 169 voxels of a hidden GGO, unseen)."""
    values = [int(v) for v in values]
    if region.empty or not values:
        return region
    return Region(region.box, region.mask & ~np.isin(labels[region.box], values))


# ---------------------------------------------------------------- components
def small_islands(labels: np.ndarray, label: int, min_voxels: int, connectivity: int = 1) -> Region:
    """Voxels of ``label`` in connected components smaller than ``min_voxels`` (to erase).

    Convert a volume threshold with ``ml / geometry.voxel_volume_ml``.
    """
    mask = labels == label
    if not mask.any():
        return _empty(labels.shape)
    region = _tight((slice(0, labels.shape[0]), slice(0, labels.shape[1]), slice(0, labels.shape[2])), mask)
    lab, n = ndimage.label(region.mask, structure=ndimage.generate_binary_structure(3, connectivity))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    small = sizes < int(min_voxels)
    small[0] = False
    return Region(region.box, small[lab]).tight()


def outside_largest_component(labels: np.ndarray, label: int, connectivity: int = 1) -> Region:
    """Voxels of ``label`` outside its largest connected component (to erase)."""
    mask = labels == label
    if not mask.any():
        return _empty(labels.shape)
    region = _tight((slice(0, labels.shape[0]), slice(0, labels.shape[1]), slice(0, labels.shape[2])), mask)
    lab, n = ndimage.label(region.mask, structure=ndimage.generate_binary_structure(3, connectivity))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    drop = np.ones(n + 1, dtype=bool)
    drop[0] = False
    drop[int(np.argmax(sizes))] = False
    return Region(region.box, drop[lab]).tight()


# ---------------------------------------------------------------- fill between slices
def labelled_slices(labels: np.ndarray, label: int, axis: int = 0) -> list[int]:
    """Indices along ``axis`` of the slices that hold ``label``."""
    other = tuple(i for i in range(3) if i != axis)
    return [int(i) for i in np.flatnonzero((labels == label).any(axis=other))]


def interpolate_between_slices(labels: np.ndarray, label: int, i0: int, i1: int, axis: int = 0,
                               spacing: Spacing = (1.0, 1.0, 1.0)) -> Region:
    """Shape-based interpolation of ``label`` on the slices strictly between ``i0`` and ``i1``.

    Each end slice's mask becomes a signed distance map (mm, negative inside, from
    :func:`scipy.ndimage.distance_transform_edt`); slice ``i`` gets the voxels where
    the linear blend of the two maps is negative or zero. Raises
    :class:`~engine.errors.DataError` when an end slice does not hold the label.
    """
    i0, i1 = sorted((int(i0), int(i1)))
    if i1 - i0 < 2:
        return _empty(labels.shape)
    axes = [i for i in range(3) if i != axis]
    a = np.take(labels, i0, axis=axis) == label
    b = np.take(labels, i1, axis=axis) == label
    if not a.any() or not b.any():
        missing = i0 if not a.any() else i1
        raise DataError(f"Slice {missing} holds no voxel of label {label}: "
                        "draw the label on both end slices first.")
    both = a | b
    rows, cols = np.nonzero(both)
    r0, r1 = max(rows.min() - 1, 0), min(rows.max() + 2, both.shape[0])
    c0, c1 = max(cols.min() - 1, 0), min(cols.max() + 2, both.shape[1])
    sampling = (spacing[axes[0]], spacing[axes[1]])

    def sdf(m: np.ndarray) -> np.ndarray:
        m = m[r0:r1, c0:c1]
        return (ndimage.distance_transform_edt(~m, sampling=sampling)
                - ndimage.distance_transform_edt(m, sampling=sampling))

    da, db = sdf(a), sdf(b)
    n = i1 - i0
    masks = [((1 - k / n) * da + (k / n) * db) <= 0 for k in range(1, n)]
    stack = np.stack(masks, axis=axis)
    box = [slice(0, 0)] * 3
    box[axis] = slice(i0 + 1, i1)
    box[axes[0]] = slice(int(r0), int(r1))
    box[axes[1]] = slice(int(c0), int(c1))
    return Region(tuple(box), stack).tight()  # type: ignore[arg-type]


def edited_voxels(labels: np.ndarray, reference: Optional[np.ndarray]) -> np.ndarray:
    """Voxels of ``labels`` that differ from ``reference`` (the last AI result or the starting labels; ``None``:
    all zero): what a person changed (:meth:`engine.editing.LabelEditor.person_mask`, the export's mask)."""
    return labels != (0 if reference is None else reference)
