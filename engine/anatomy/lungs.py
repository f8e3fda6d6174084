"""Left and right lung masks, and their upper / middle / lower zones.

:func:`lung_masks` finds the lungs of a scan; :meth:`LungMasks.from_masks` wraps masks
that come from elsewhere (a model, a file, the phantom's ground truth, a user's edits).

HU rules (``volume.is_hu``)
---------------------------
The search runs on a grid subsampled 2x in-plane (for scans at least 256 pixels wide),
then the boundary is refined at full resolution:

1. *Air*: voxels below -300 HU.
2. *Outside air*: air components (3D, 6-connected) that touch the in-plane border of
   the image are the air around the body, and are dropped.
3. *Airways*: voxels below -950 HU are dropped, which removes the lumen of the trachea
   and main bronchi; a one-voxel in-plane opening then breaks the thin partial-volume shell
   around their lumen, so the airways no longer bridge the two lungs. Parenchyma lies
   between -950 and -300 HU (GGO included). The opening is in-plane, so single slices
   and thin stacks work too.
4. *Lungs*: the remaining components larger than 30 mL (and larger than 10 % of the
   biggest one) are lungs; on stacks thinner than 6 cm (single slices) 10 cm2 per slice
   replaces the 30 mL. Two of them -> one per side; one big component crossing the
   midline (lungs touching at the anterior junction) is cut at the column of least
   lung between the two halves.
5. *Vessels and small airways*: each lung is closed (3D, radius 2 voxels) and its
   holes up to 500 mm^2 are filled slice by slice, so vessels, intrapulmonary bronchi and
   small dense findings they enclose belong to the lung, as in reference lung masks
   (larger holes are the liver or heart under the domes; larger findings are added from
   the labels, see below).
6. *Refinement*: at full resolution, the interior comes from the coarse mask and the
   boundary band (one coarse voxel wide) keeps only voxels below -300 HU.

8-bit images (``is_hu`` False) follow the same steps with intensity rules: "air" is
below an Otsu threshold of the body's histogram, and no airway threshold exists (the
trachea is removed only when the opening breaks it off the lungs).

Sides are decided in patient space: the lung whose centroid has the larger LPS ``x``
(world coordinates from the geometry) is the patient's left, so an LPS and a RAS
source of the same patient give the same sides.

Findings rule
-------------
GGO and consolidation are lung tissue: :func:`unite_findings` adds their voxels to the
lung on their side (so a consolidation on the pleura that the HU rules left out still
counts as lung). Pleural effusion lies in the pleural space, outside the lung: its
voxels are never lung, and are removed from the lung masks when a mask covers them.

Zones
-----
Each lung is cut into three zones of equal height (slices), upper / middle / lower,
from its own superior-inferior extent. Every voxel of the scan carries a zone code in
:attr:`LungMasks.zones` (see :data:`ZONES`): lung voxels their lung's zone (1..6),
other voxels ``6 + zone`` by side of the midline and height, so findings outside the
lung masks still fall into a zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cc3d
import numpy as np
from scipy import ndimage

from ..errors import DataError
from ..labels import CONSOLIDATION, EFFUSION, GGO
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Geometry, Volume
from . import morph
from .boxes import bounding_box, z_slabs
from .zones import LEFT, RIGHT, _left_sign, _zone_codes, _zones_from, zone_tables  # noqa: F401

#: zone names, in zone-code order (code = index + 1)
ZONES: tuple[str, ...] = ("right_upper", "right_middle", "right_lower",
                          "left_upper", "left_middle", "left_lower")
AIR_HU, AIRWAY_HU = -300.0, -950.0
MIN_LUNG_ML = 30.0
#: on stacks thinner than 6 cm (single slices): smallest lung cross-section per slice (cm2)
MIN_LUNG_CM2 = 10.0
#: values of :meth:`LungMasks.label_map` (``python -m engine lungs`` writes them)
RIGHT_LUNG, LEFT_LUNG = 1, 2
LUNG_LABELS: dict[int, str] = {RIGHT_LUNG: "right lung", LEFT_LUNG: "left lung"}
MAX_HOLE_MM2 = 500.0  # vessels and bronchi are filled up to this cross-section (25 mm wide)


@dataclass
class LungMasks:
    """Left and right lung masks on a scan's grid, with zone codes.

    Attributes
    ----------
    left, right
        bool ``(z, y, x)`` masks of the patient's left and right lung.
    zones
        uint8 ``(z, y, x)`` zone code of every voxel: ``1..6`` (``ZONES[code - 1]``)
        for lung voxels, ``7..12`` (``6 + code``) for the other voxels. Made from
        :attr:`zone_codes` on first use when built with ``zones=None`` (a full-size array
        the AI reading itself never needs: :meth:`zones_in` gives any box of it).
    extents
        Per side (``"right"``, ``"left"``): first and last slice index of that lung
        (``None`` when the lung is empty).
    method
        How the masks were made: ``"hu-rules"``, ``"intensity-rules"``,
        ``"model+hu-rules"``, ``"given"``.
    warnings
        Things a reader of the numbers should know (one lung missing...).
    """

    left: np.ndarray
    right: np.ndarray
    zones: Optional[np.ndarray] = field(repr=False)  # a property (below): made on first use when None
    extents: dict[str, Optional[tuple[int, int]]]
    method: str = "given"
    warnings: list[str] = field(default_factory=list)
    #: lung voxels per zone code (index 0..12; only 1..6 are non-zero)
    zone_voxels: np.ndarray = field(default_factory=lambda: np.zeros(13, dtype=np.int64))
    #: the zone codes as :func:`zone_tables` gives them: outside the lungs ``(z, x)``, right and
    #: left lung ``(z,)`` (``None`` when only :attr:`zones` was given)
    zone_codes: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default=None, repr=False)

    def zones_in(self, box: tuple[slice, ...]) -> np.ndarray:
        """``zones[box]`` (a ``(z, y, x)`` box of slices), made for the box alone when the full
        array was not made yet (the same values)."""
        made = self.__dict__.get("_zones")
        if made is not None or self.zone_codes is None:
            return self.zones[box]
        return _zones_from(self.left[box], self.right[box], self.zone_codes, box[0], box[2])

    @property
    def lung(self) -> np.ndarray:
        """Both lungs (a new array)."""
        return self.left | self.right

    def pixels_per_slice(self) -> np.ndarray:
        """int64 ``(z,)``: lung pixels (either lung) on each slice, counted a slab at a time."""
        out = np.zeros(self.left.shape[0], dtype=np.int64)
        for k in z_slabs(self.left.shape):
            out[k] = np.count_nonzero(self.left[k] | self.right[k], axis=(1, 2))
        return out

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.left.shape)  # type: ignore[return-value]

    def label_map(self) -> np.ndarray:
        """uint8 ``(z, y, x)``: 0 background, 1 right lung, 2 left lung (:data:`LUNG_LABELS`)."""
        out = np.zeros(self.left.shape, dtype=np.uint8)
        out[self.right] = RIGHT_LUNG
        out[self.left] = LEFT_LUNG
        return out

    @classmethod
    def from_label_map(cls, labels: np.ndarray, geometry: Geometry, method: str = "given") -> "LungMasks":
        """Wrap a label map of :meth:`label_map`'s convention (1 right, 2 left)."""
        labels = np.asarray(labels)
        return cls.from_masks(labels == LEFT_LUNG, labels == RIGHT_LUNG, geometry, method=method)

    @classmethod
    def from_masks(cls, left: np.ndarray, right: np.ndarray, geometry: Geometry,
                   method: str = "given", warnings: Optional[list[str]] = None) -> "LungMasks":
        """Wrap ready masks (``left`` = patient's left) and compute their zones."""
        left = np.ascontiguousarray(left, dtype=bool)
        right = np.ascontiguousarray(right, dtype=bool)
        if left.shape != tuple(geometry.shape) or right.shape != tuple(geometry.shape):
            raise DataError(f"Lung masks of shape {left.shape} do not match the scan {geometry.shape}.")
        return cls._own(left, right & ~left, geometry, method, warnings)

    @classmethod
    def _own(cls, left: np.ndarray, right: np.ndarray, geometry: Geometry, method: str,
             warnings: Optional[list[str]]) -> "LungMasks":
        """Wrap masks this module made (C-contiguous bool, ``right`` without ``left``): no copy."""
        tables, extents, counts = _zone_codes(left, right, geometry)
        return cls(left=left, right=right, zones=None, extents=extents, method=method,
                   warnings=list(warnings or []), zone_voxels=counts, zone_codes=tables)


def _get_zones(self: LungMasks) -> np.ndarray:
    made = self.__dict__.get("_zones")
    if made is None:
        made = self.__dict__["_zones"] = _zones_from(self.left, self.right, self.zone_codes)
    return made


def _set_zones(self: LungMasks, zones: Optional[np.ndarray]) -> None:
    self.__dict__["_zones"] = zones


LungMasks.zones = property(_get_zones, _set_zones, doc="The zone code of every voxel (see the class).")  # type: ignore


def unite_findings(lungs: LungMasks, labels: np.ndarray, geometry: Geometry, in_place: bool = False) -> LungMasks:
    """Lung masks with GGO and consolidation added and effusion removed (module rule).

    GGO and consolidation outside the lungs join the lung on their side of the midline
    (:attr:`LungMasks.zones`). Only the findings' bounding box is visited, a slab of slices
    at a time (:mod:`engine.anatomy.boxes`), and the zones only there. ``in_place``: edit
    ``lungs``' own masks instead of copies (the AI reading, for lungs it found itself: no
    full-size copy); ``lungs`` must not be used afterwards, the result shares its masks.
    """
    labels = np.asarray(labels)
    if labels.shape != lungs.shape:
        raise DataError(f"Labels of shape {labels.shape} do not match the lung masks {lungs.shape}.")
    keep = in_place and all(m.dtype == bool and m.flags.c_contiguous and m.flags.writeable
                            for m in (lungs.left, lungs.right))
    left = lungs.left if keep else np.array(lungs.left, dtype=bool, order="C")
    right = lungs.right if keep else np.array(lungs.right, dtype=bool, order="C")
    if left.shape != tuple(geometry.shape):
        raise DataError(f"Lung masks of shape {left.shape} do not match the scan {geometry.shape}.")
    box = bounding_box(labels)
    if box is not None:
        sub, sub_left, sub_right = labels[box], left[box], right[box]
        for k in z_slabs(sub.shape):
            # the zones of the masks as given (read before this slab is edited)
            zone = lungs.zones_in((slice(box[0].start + k.start, box[0].start + k.stop), box[1], box[2]))
            lab = sub[k]
            dense = (lab == GGO) | (lab == CONSOLIDATION)
            not_eff = lab != EFFUSION
            side = sub_left[k]  # views: editing them edits the new masks
            side |= dense & (zone >= 10)  # outside-lung voxels on the left side
            side &= not_eff
            side = sub_right[k]
            side |= dense & (zone >= 7) & (zone <= 9)
            side &= not_eff
    for k in z_slabs(right.shape):  # the left lung wins where masks overlap (as in LungMasks.from_masks)
        right[k] &= ~left[k]
    return LungMasks._own(left, right, geometry, lungs.method, lungs.warnings)


# -- finding the lungs ----------------------------------------------------------------------

def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, bins=256)
    w = np.cumsum(hist).astype(float)
    m = np.cumsum(hist * (edges[:-1] + edges[1:]) / 2.0)
    total, mtotal = w[-1], m[-1]
    w2 = total - w
    valid = (w > 0) & (w2 > 0)
    between = np.zeros_like(w)
    between[valid] = (mtotal * w[valid] / total - m[valid]) ** 2 * total / (w[valid] * w2[valid])
    return float(edges[int(np.argmax(between)) + 1])


def _air_threshold(values: np.ndarray) -> float:
    """Air / tissue threshold of an 8-bit image whose window is unknown.

    Otsu's threshold of the body's histogram separates lung from soft tissue in a lung
    window. In a narrow (soft-tissue, mediastinal) window the lungs are clipped to the
    darkest value while fat stays a little above it, and Otsu puts fat with the air;
    when at least 10 % of the body sits at the darkest value, the threshold is moved to a
    quarter of the way from that floor to Otsu's value (fat at -100 HU lies above it in a
    W400/L40 window, clipped lung below).
    """
    thr = _otsu(values)
    floor = float(values.min())
    if np.mean(values <= floor + 1.0) >= 0.10:
        thr = floor + 0.25 * (thr - floor)
    return thr


def narrow_window(volume: Volume) -> bool:
    """True for an 8-bit image in a narrow (soft-tissue) window: the lungs are clipped to black.

    The test of :func:`_air_threshold`: at least 10 % of the central half of the image sits
    at its darkest value.
    """
    if volume.is_hu:
        return False
    a = volume.array
    c = a[::max(1, a.shape[0] // 8), a.shape[1] // 4: 3 * a.shape[1] // 4: 2, a.shape[2] // 4: 3 * a.shape[2] // 4: 2]
    c = c.astype(np.float32).ravel()
    return bool(c.size) and float(np.mean(c <= float(c.min()) + 1.0)) >= 0.10


def _label6(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """6-connected components of a 3D mask, numbered in raster order of their first voxel as
    ``scipy.ndimage.label`` numbers them (connected-components-3d: 2.6x faster on the 300-slice
    phantom's air; the lung masks of the phantom, chest_ct_99, the radiopaedia stacks and the
    NY-SBU slices are the same bytes as with scipy)."""
    lab, n = cc3d.connected_components(np.ascontiguousarray(mask, dtype=bool), connectivity=6, return_N=True)
    return lab, int(n)


def _sizes(lab: np.ndarray, n: int) -> np.ndarray:
    """Voxels of components ``1..n`` of a label array, counted a slab at a time (no full-size
    int64 copy of the labels)."""
    counts = np.zeros(n + 1, dtype=np.int64)
    for k in z_slabs(lab.shape, itemsize=8):
        counts += np.bincount(lab[k].ravel(), minlength=n + 1)
    return counts[1:]


def _inside_air(air: np.ndarray) -> np.ndarray:
    """Air components that do not touch the in-plane border of the image."""
    lab, n = _label6(air)
    if n == 0:
        return air
    border = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(),
                                       lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    keep = np.ones(n + 1, dtype=bool)
    keep[border] = False
    keep[0] = False
    return keep[lab]


def _split_midline(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut one component into two at the column (x) of least lung near the middle."""
    prof = mask.sum(axis=(0, 1), dtype=np.int64)
    xs = np.flatnonzero(prof)
    lo, hi = xs[0] + (xs[-1] - xs[0]) // 3, xs[0] + 2 * (xs[-1] - xs[0]) // 3
    cut = lo + int(np.argmin(prof[lo:hi + 1]))
    a = mask.copy()
    a[:, :, cut:] = False
    b = mask & ~a
    return a, b


def _close_and_fill(mask: np.ndarray, max_hole_px: int, radius: int = 2) -> np.ndarray:
    """3D closing then slice-wise filling of holes up to ``max_hole_px`` pixels, in the bounding box.

    The size limit keeps the liver and heart out: at the diaphragm dome an axial slice
    shows lung all around the dome, a hole much larger than any vessel.
    """
    idx = np.nonzero(mask.any(axis=(1, 2)))[0]
    if idx.size == 0:
        return mask
    ys = np.flatnonzero(mask.any(axis=(0, 2)))
    xs = np.flatnonzero(mask.any(axis=(0, 1)))
    m = radius + 1
    box = (slice(max(idx[0] - m, 0), idx[-1] + m + 1), slice(max(ys[0] - m, 0), ys[-1] + m + 1),
           slice(max(xs[0] - m, 0), xs[-1] + m + 1))
    sub = morph.closing(np.pad(mask[box], m), morph.ALL_AXES, iterations=radius)[m:-m, m:-m, m:-m]
    # holes: in-plane components of the background that do not touch the slice border
    in_plane = np.zeros((3, 3, 3), dtype=bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    lab, n = ndimage.label(~sub, structure=in_plane)
    if n:
        keep = np.bincount(lab.ravel(), minlength=n + 1) <= max_hole_px
        keep[0] = False
        keep[np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(),
                                       lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))] = False
        sub |= keep[lab]
    out = np.zeros_like(mask)
    out[box] = sub | mask[box]
    return out


def lung_masks(volume: Volume, progress: Optional[ProgressCallback] = None,
               cancel: Optional[CancelLike] = None, model_mask: Optional[np.ndarray] = None,
               labels: Optional[np.ndarray] = None) -> LungMasks:
    """Find the left and right lungs of ``volume`` (see the module docstring for the rules).

    Parameters
    ----------
    volume
        The scan, canonical grid.
    progress, cancel
        See :mod:`engine.progress`.
    model_mask
        Optional lung-region mask from a model (``engine.models`` "lung"), bool or 0/1 on the
        scan grid. When given, the lungs are the model mask united with the rule-based lungs
        that touch it, minus the airways and outside air the rules found.
    labels
        Optional finding labels, united with the lungs by :func:`unite_findings`.

    Raises
    ------
    DataError
        No lung could be found (the scan is not a chest CT, or is cropped to the body).
    """
    report = as_progress(progress)
    geometry = volume.geometry
    arr = volume.array
    nz, ny, nx = arr.shape
    f = 2 if min(ny, nx) >= 256 else 1
    coarse = arr[:, ::f, ::f]
    warnings: list[str] = []
    report(0.0, "Finding air")
    if volume.is_hu:
        air = coarse < AIR_HU
        parench_ok = coarse >= AIRWAY_HU
        method = "hu-rules"
        full_air_thr = AIR_HU
    else:
        inside = coarse[:, coarse.shape[1] // 4: 3 * coarse.shape[1] // 4, coarse.shape[2] // 4: 3 * coarse.shape[2] // 4]
        thr = _air_threshold(inside[::2, ::2, ::2].ravel().astype(np.float32))
        air = coarse < thr
        parench_ok = np.ones_like(air)
        method = "intensity-rules"
        full_air_thr = thr
    check_cancel(cancel)
    report(0.15, "Removing the air around the body")
    inside_air = _inside_air(air)
    check_cancel(cancel)
    report(0.35, "Removing the airways")
    cand = morph.opening(inside_air & parench_ok, morph.IN_PLANE)
    lab, n = _label6(cand)
    check_cancel(cancel)
    sizes = _sizes(lab, n)
    vox_ml = geometry.voxel_volume_ml * f * f
    order = np.argsort(sizes)[::-1]
    # a thin stack (single slices) holds only a slab of lung: at least 10 cm2 of it per slice
    slab_mm = nz * geometry.spacing[0]
    min_ml = MIN_LUNG_ML if slab_mm >= 60.0 else min(MIN_LUNG_ML, MIN_LUNG_CM2 * slab_mm / 10.0)
    big = [int(i) + 1 for i in order[:2]
           if sizes[i] * vox_ml >= (min_ml if geometry.spacing_known else 0)
           and sizes[i] >= 0.1 * sizes[order[0]]]
    if not geometry.spacing_known:
        big = [i for i in big if sizes[i - 1] >= 0.001 * cand.size]
    if not big:
        raise DataError("No lungs found in this scan: it may not be a chest CT, or the lungs are cut off. "
                        "Draw the lung mask by hand or load one.")
    parts = [lab == i for i in big]
    if len(parts) == 2:
        _add_fragments(parts, lab, sizes, big)
    del lab
    if len(parts) == 1:
        one = parts[0]
        prof = one.any(axis=(0, 1))
        xs = np.flatnonzero(prof)
        width = (xs[-1] - xs[0] + 1) / one.shape[2]
        if width > 0.45:  # both lungs in one component
            parts = list(_split_midline(one))
            warnings.append("The two lungs touch; they were split at the midline.")
        else:
            warnings.append("Only one lung was found.")
    report(0.55, "Filling vessels and airways")
    located = []
    for part in parts:
        w = part.sum(axis=(0, 1), dtype=np.int64)
        cx = float(np.average(np.arange(part.shape[2]), weights=w)) * f
        cz = float(np.mean(np.flatnonzero(part.any(axis=(1, 2)))))
        cy = float(np.mean(np.flatnonzero(part.any(axis=(0, 2))))) * f
        located.append((float(geometry.index_to_world((cz, cy, cx))[0]), part))  # LPS x: + is left
    if len(located) == 2:
        located.sort(key=lambda item: item[0])
        sides = [(RIGHT, located[0][1]), (LEFT, located[1][1])]
    else:
        sides = [(LEFT if located[0][0] > _mid_world_x(geometry) else RIGHT, located[0][1])]
    full: dict[int, np.ndarray] = {LEFT: np.zeros(arr.shape, bool), RIGHT: np.zeros(arr.shape, bool)}
    for i, (side, part) in enumerate(sides):
        check_cancel(cancel)
        filled = _close_and_fill(part, max(int(MAX_HOLE_MM2 / (geometry.spacing[1] * geometry.spacing[2] * f * f)), 4))
        full[side] = _refine(filled, arr, f, full_air_thr)
        report(0.55 + 0.4 * (i + 1) / len(sides), "Refining the lung boundary")
    left, right = full[LEFT], full[RIGHT]
    if model_mask is not None:
        left, right, method = _with_model(model_mask, left, right, arr, geometry, volume.is_hu)
    left, right = np.ascontiguousarray(left, dtype=bool), np.ascontiguousarray(right, dtype=bool)
    for k in z_slabs(right.shape):  # the left lung wins where masks overlap (as in LungMasks.from_masks)
        right[k] &= ~left[k]
    lungs = LungMasks._own(left, right, geometry, method, warnings)
    if labels is not None:
        lungs = unite_findings(lungs, labels, geometry, in_place=True)
    report(1.0, "Lungs found")
    return lungs


def unite_lung_model(lungs: LungMasks, model_mask: np.ndarray, volume: Volume) -> LungMasks:
    """The lungs :func:`lung_masks` gives with ``model_mask``, from the rules' lungs already found (``lungs``,
    :func:`lung_masks` of the same ``volume`` without it): the same masks, without searching again. New arrays;
    ``lungs`` is not changed."""
    left, right, method = _with_model(model_mask, lungs.left, lungs.right, volume.array, volume.geometry,
                                      volume.is_hu)
    left, right = np.ascontiguousarray(left, dtype=bool), np.ascontiguousarray(right, dtype=bool)
    for k in z_slabs(right.shape):  # the left lung wins where masks overlap (as in lung_masks)
        right[k] &= ~left[k]
    return LungMasks._own(left, right, volume.geometry, method, lungs.warnings)


def _add_fragments(parts: list[np.ndarray], lab: np.ndarray, sizes: np.ndarray, big: list[int]) -> None:
    """Add the smaller air components to the lung on their side (in place).

    Vessels, fissures and dense disease cut a lung into several pieces on a single
    slice (or a thin stack); keeping only the two largest pieces drops the rest of the
    lung. A piece of at least 1 % of the largest lung that lies on one lung's side of the
    midline between the two lungs joins that lung, unless it is small and central (the
    trachea or the oesophagus).
    """
    nx = lab.shape[2]
    cols = np.arange(nx, dtype=np.float64)
    centre = []
    for part in parts:
        w = part.sum(axis=(0, 1), dtype=np.int64)
        centre.append(float(np.average(cols, weights=w)))
    mid = 0.5 * (centre[0] + centre[1])
    half_gap = 0.5 * abs(centre[1] - centre[0])
    biggest = float(sizes.max())
    candidates = [i + 1 for i in np.flatnonzero(sizes >= 0.01 * biggest) if i + 1 not in big]
    if not candidates:
        return
    objects = ndimage.find_objects(lab)
    for i in candidates:
        box = objects[i - 1]
        piece = lab[box] == i
        w = piece.sum(axis=(0, 1), dtype=np.int64)
        cx = float(np.average(cols[box[2]], weights=w))
        if abs(cx - mid) < 0.25 * half_gap and sizes[i - 1] < 0.1 * biggest:
            continue  # a small central air column: trachea or oesophagus
        side = 0 if abs(cx - centre[0]) <= abs(cx - centre[1]) else 1
        parts[side][box] |= piece


def _mid_world_x(geometry: Geometry) -> float:
    nz, ny, nx = geometry.shape
    return float(geometry.index_to_world(((nz - 1) / 2, (ny - 1) / 2, (nx - 1) / 2))[0])


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    out = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(int(idx[0]) - margin, 0), min(int(idx[-1]) + margin + 1, mask.shape[ax])))
    return tuple(out)


def _upsample_into(out: np.ndarray, mask: np.ndarray, f: int) -> None:
    """Nearest-neighbour in-plane upsampling of ``mask`` by ``f`` into ``out`` (cropped to fit)."""
    for dy in range(f):
        for dx in range(f):
            target = out[:, dy::f, dx::f]
            target[...] = mask[:, :target.shape[1], :target.shape[2]]


def _refine(coarse_mask: np.ndarray, arr: np.ndarray, f: int, air_thr: float) -> np.ndarray:
    """Full-resolution mask: coarse interior plus the boundary band's air-like voxels."""
    if f == 1:
        return coarse_mask
    out = np.zeros(arr.shape, dtype=bool)
    if not coarse_mask.any():
        return out
    cb = _bbox(coarse_mask, 2)
    sub = coarse_mask[cb]
    inner = morph.erode(sub, morph.IN_PLANE)  # in-plane only: z is not subsampled
    band = morph.dilate(sub, morph.IN_PLANE) & ~inner
    fb = (cb[0], slice(cb[1].start * f, min(cb[1].stop * f, arr.shape[1])),
          slice(cb[2].start * f, min(cb[2].stop * f, arr.shape[2])))
    region = out[fb]
    _upsample_into(region, inner, f)
    band_f = np.empty(region.shape, dtype=bool)
    _upsample_into(band_f, band, f)
    a = arr[fb]
    for k in range(region.shape[0]):
        region[k] |= band_f[k] & (a[k] < air_thr)
    return out


#: a part of the lung model's mask that touches neither rules lung is kept only when it is at least this share
#: of the smaller rules lung (a lung the rules missed whole); smaller parts are gas in the bowel or the stomach
#: under the diaphragm, where findings were kept (radiopaedia 74724: 5 340 voxels of "consolidation" in bowel
#: walls). Reading's lung Dice on all 50 medseg slices: 0.955 / 0.925 (lung / soft-tissue window) against
#: 0.953 / 0.925 (0.2 of the smaller lung gave 0.953); the 10 held-out slices unchanged (docs/MODELS.md)
MISSED_LUNG_SHARE = 0.5


def _with_model(model_mask: np.ndarray, left: np.ndarray, right: np.ndarray, arr: np.ndarray,
                geometry: Geometry, is_hu: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """Unite a model's lung mask with the rule-based lungs; sides from the rules or the midline."""
    model = np.asarray(model_mask).astype(bool)
    if model.shape != arr.shape:
        raise DataError(f"The lung model's mask {model.shape} does not match the scan {arr.shape}.")
    if is_hu:
        model &= ~(arr < AIRWAY_HU - 30)  # airway lumen and outside air, with a noise margin
    union = model | left | right
    lab, n = _label6(union)
    touch_left = np.unique(lab[left])
    touch_right = np.unique(lab[right])
    new_left = left | (model & np.isin(lab, touch_left[touch_left > 0]) & ~right)
    new_right = right | (model & np.isin(lab, touch_right[touch_right > 0]) & ~new_left)
    rest = model & ~new_left & ~new_right
    if rest.any():  # a part apart from both rules lungs: a lung they missed whole, or gas in the bowel or stomach
        rest_lab, _ = _label6(rest)
        sizes = np.bincount(rest_lab[rest])  # the part's voxels only: no int64 copy of the scan-size labels
        least = MISSED_LUNG_SHARE * min(int(left.sum()), int(right.sum()))
        rest &= (sizes >= max(least, 1))[rest_lab] & (rest_lab > 0)
    if rest.any():
        nx = arr.shape[2]
        mid = (nx - 1) / 2.0
        cols = np.arange(nx) > mid if _left_sign(geometry) > 0 else np.arange(nx) < mid
        new_left |= rest & cols[None, None, :]
        new_right |= rest & ~cols[None, None, :]
    return new_left, new_right, "model+hu-rules" if is_hu else "model+intensity-rules"
