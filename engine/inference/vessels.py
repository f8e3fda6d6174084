"""Vessel rule: GGO and consolidation regions that are pulmonary vessels are removed.

The segmentation models were trained on lung-window slices of COVID-19 pneumonia; a
pulmonary vessel (a bright tube in dark lung) looks like a small consolidation to them.
(On the clear test chest the regions left after the other rules turned out not to be
vessels: ``docs/MODELS.md`` says what they are.) A vessel is a *tube*: along its axis the
image hardly changes, across it the intensity falls off on both sides. The eigenvalues of
the image's Hessian (second derivatives) at a scale near the vessel's radius say so: two
large negative eigenvalues (bright, curved across) and one near zero (flat along), the
basis of Frangi's vesselness (Frangi et al., MICCAI 1998). A consolidation is a patch or
a blob (all eigenvalues of similar size, or flat inside); a nodule is a blob.

The rule (``docs/MODELS.md`` states it)
--------------------------------------
``vessel`` (GGO and consolidation, volumes with known spacing): a connected 3D region is
removed when

0. the region is taken with the holes it encloses in any axial, coronal or sagittal plane
   filled (:func:`_filled`): GGO drawn as a sleeve of haze around an unlabelled vessel is
   tested as the tube it surrounds (a ground-glass halo around a nodule fills to a blob);
1. its cross-section is small: its largest in-plane inscribed radius is at most
   :data:`VESSEL_MAX_RADIUS_MM` (intrapulmonary arteries and veins beyond the hilum are
   at most about 10 mm across; lobar arteries 7-10 mm, segmental 3-6 mm), and
2. at least :data:`VESSEL_FRACTION` of its medial core (voxels at least
   :data:`CORE_DEPTH` as deep inside it as its deepest voxel, and denser than
   :data:`VESSEL_MIN_HU`) are *tube voxels*: the image's Hessian at the scale of the
   region's own calibre (``sigma = radius / sqrt(2)``, clipped to :data:`SCALES_MM`) has
   ``lambda2, lambda3 < 0``, ``|lambda1| <= TUBE_RB * sqrt(|lambda2 lambda3|)``
   (elongated, not a blob), ``|lambda2| >= TUBE_RA * |lambda3|`` (round cross-section,
   not a plate such as a fissure, the pleura or the diaphragm), and a scale-normalised
   contrast ``sigma^2 |lambda3|`` of at least :data:`TUBE_MIN_CONTRAST_HU`.

The rule runs on volumes of at least :data:`MIN_SLICES` slices. On a single slice only
the in-plane part can be seen (a tube voxel then has ``lambda2 < 0`` and ``|lambda1| <=
TUBE_RB * |lambda2|``: a bright line), and a line cannot be told from the linear
consolidation and subpleural bands of organising COVID-19 pneumonia, which are plates
across slices; on the 50 labelled slices of ``medseg100`` that in-plane form removes
1.4 % of the radiologist's GGO and 2.8 % of the consolidation pixels (0.7 mm pixels
assumed; ``benchmarks/vessels.py``), with no clear-lung slice to show a benefit, so single
slices keep their regions.

Every threshold comes from anatomy (vessel calibre, the density of blood against aerated
lung) and Frangi's shape ratios, not from a scan: ``chest_ct_99`` is for testing only.
Scans without a known spacing (image stacks) are left alone: the calibre in mm cannot be
measured there. Images are put on a HU scale first (8-bit lung-window images through the
inverse of the window the models read, :data:`LUNG_WINDOW_HU`).
"""

from __future__ import annotations

import math
from typing import Optional

import cc3d
import numpy as np
from scipy import ndimage

from ..anatomy.boxes import value_box
from ..labels import CONSOLIDATION, FINDING_KEYS, GGO
from ..progress import CancelLike, check_cancel
from ..types import Volume

#: largest in-plane inscribed radius (mm) of a region that can be a vessel
VESSEL_MAX_RADIUS_MM = 5.0
#: range of the Hessian's Gaussian scale (mm); a bright tube of radius r answers best near r / sqrt(2)
SCALES_MM: tuple[float, float] = (1.0, 3.5)
#: tube voxels are denser than this (blood about +40 HU; small vessels lose density to partial volume)
VESSEL_MIN_HU = -500.0
#: scale-normalised contrast a tube must show (HU; vessel against aerated lung is about 900 HU)
TUBE_MIN_CONTRAST_HU = 100.0
#: Frangi's blob ratio: |lambda1| / sqrt(|lambda2 lambda3|) at most this (elongated)
TUBE_RB = 0.5
#: Frangi's plate ratio: |lambda2| / |lambda3| at least this (round cross-section, not a sheet)
TUBE_RA = 0.5
#: share of a region's medial core that must be tube voxels for the region to be a vessel
VESSEL_FRACTION = 0.5
#: the region's medial core (3D depth at least this share of its deepest voxel) is what is tested
CORE_DEPTH = 0.5
#: the window that turns 8-bit lung-window images back into approximate HU
LUNG_WINDOW_HU = (-1350.0, 150.0)
#: the image is clipped to this range first: contrast medium and bone do not dominate
CLIP_HU = (-1000.0, 200.0)
#: the rule runs on volumes of at least this many slices (see the module notes)
MIN_SLICES = 8
FINDINGS_TESTED: tuple[int, ...] = (GGO, CONSOLIDATION)
RULE = "vessel"
RULE_TEXT = {RULE: (f"GGO and consolidation regions that are pulmonary vessels are removed: in-plane radius at most "
                    f"{VESSEL_MAX_RADIUS_MM:g} mm and at least {int(VESSEL_FRACTION * 100)} % of the core of the region (with what "
                    f"it encloses: a sleeve of haze around a vessel) on a "
                    f"bright tube of the image (Hessian eigenvalues at the region's calibre, {SCALES_MM[0]:g}-"
                    f"{SCALES_MM[1]:g} mm: elongated, round cross-section, denser than {VESSEL_MIN_HU:g} HU; volumes "
                    f"of at least {MIN_SLICES} slices with known spacing)")}


def hu_image(volume: Volume, box: Optional[tuple[slice, ...]] = None) -> np.ndarray:
    """The volume (or its ``box``) on an (approximate) HU scale, clipped to :data:`CLIP_HU`, float32."""
    a = np.asarray(volume.array[box] if box is not None else volume.array, dtype=np.float32)
    if not volume.is_hu:
        lo, hi = LUNG_WINDOW_HU
        a = lo + a * ((hi - lo) / 255.0)
    return np.clip(a, *CLIP_HU)


class _Lines:
    """``ndimage.gaussian_filter(img, sig, order=..., mode="nearest")[where]``, bit for bit, at a fraction
    of the work.

    The filter is separable: one 1D pass per axis in axis order, each rounded to float32 (scipy's
    ``gaussian_filter``). A value at a ``where`` voxel needs the last pass only on the image lines
    through ``where`` voxels, the one before only on the slices holding them, and so on; every
    line is filtered exactly as in the whole array (each is computed alone, with the same kernel
    and the same edge rule). The first axis's pass is shared by the derivatives of the same order
    along it (3 of the Hessian's 6).
    """

    def __init__(self, img: np.ndarray, sig: list[float], where: np.ndarray) -> None:
        self.img, self.sig, self.nd = img, sig, img.ndim
        idx = np.nonzero(where)  # the order of ``img[where]``
        # per axis a: the distinct index tuples over axes 0..a-1 (the lines kept before pass a), and
        # for every voxel the position of its tuple among them
        self.keys: list[np.ndarray] = []
        self.pos: list[np.ndarray] = []
        for a in range(1, self.nd):
            flat = np.ravel_multi_index(idx[:a], img.shape[:a])
            keys, inverse = np.unique(flat, return_inverse=True)
            self.keys.append(keys)
            self.pos.append(inverse.reshape(-1))
        self.last = idx[-1]
        self._first: dict[int, np.ndarray] = {}

    def _pass(self, a: np.ndarray, image_axis: int, order: int) -> np.ndarray:
        """The 1D pass of the image's axis ``image_axis``, which is axis 0 of the whole image and axis 1
        of the kept lines (earlier axes flattened)."""
        return ndimage.gaussian_filter1d(a, self.sig[image_axis], axis=min(image_axis, 1), order=order,
                                         mode="nearest")

    def derivative(self, order: list[int]) -> np.ndarray:
        """float32 ``(n,)``: the Gaussian derivative of ``order`` at the ``where`` voxels."""
        if order[0] not in self._first:
            self._first[order[0]] = self._pass(self.img, 0, order[0])
        cur = self._first[order[0]].reshape((-1,) + self.img.shape[1:])  # (lines kept so far, rest...)
        for a in range(1, self.nd):
            cur = cur[self.keys[a - 1] if a == 1 else self._subkeys(a)]  # keep the lines through ``where`` voxels
            cur = self._pass(cur, a, order[a])
            if a + 1 < self.nd:
                cur = cur.reshape((-1,) + self.img.shape[a + 1:])
        return cur[self.pos[-1], self.last]

    def _subkeys(self, a: int) -> np.ndarray:
        """Rows of the kept ``(axes 0..a-2 tuple, axis a-1)`` array holding the keys of axis ``a``."""
        prev_keys = self.keys[a - 2]
        n_prev = self.img.shape[a - 1]
        keys = self.keys[a - 1]  # flat indices over axes 0..a-1
        outer, inner = np.divmod(keys, n_prev)
        return np.searchsorted(prev_keys, outer) * n_prev + inner


def _hessian_eigenvalues(img: np.ndarray, sigma_mm: float, spacing: tuple[float, ...],
                         where: Optional[np.ndarray] = None) -> np.ndarray:
    """Scale-normalised Hessian eigenvalues ``sigma^2 * lambda`` (HU), sorted by magnitude.

    Gaussian derivatives with a per-axis sigma in voxels (``sigma_mm / spacing``), so the
    scale is the same in mm along anisotropic axes; derivatives are in HU per mm^2.
    Returns ``img.shape + (ndim,)``, or ``(n, ndim)`` for the ``n`` voxels of the bool mask
    ``where`` (the eigen-decomposition is the costly part: only where it is needed).
    """
    nd = img.ndim
    sig = [max(sigma_mm / s, 0.5) for s in spacing]
    shape = img.shape if where is None else (int(np.count_nonzero(where)),)
    h = np.empty(shape + (nd, nd), dtype=np.float32)
    at = None if where is None else _Lines(img, sig, where)
    for i in range(nd):
        for j in range(i, nd):
            order = [0] * nd
            order[i] += 1
            order[j] += 1
            d = ndimage.gaussian_filter(img, sig, order=order, mode="nearest") if at is None else at.derivative(order)
            d *= sigma_mm ** 2 / (spacing[i] * spacing[j])
            h[..., i, j] = d
            h[..., j, i] = d
    ev = np.linalg.eigvalsh(h)
    idx = np.argsort(np.abs(ev), axis=-1)
    return np.take_along_axis(ev, idx, axis=-1)


def tube_voxels(img: np.ndarray, spacing: tuple[float, ...], sigma_mm: float,
                where: Optional[np.ndarray] = None) -> np.ndarray:
    """Voxels of ``img`` (HU) that lie on a bright tube at scale ``sigma_mm`` (2D: a line).

    With the bool mask ``where`` only those voxels are tested (the others are False).
    """
    ev = _hessian_eigenvalues(img, sigma_mm, spacing, where)
    dense = (img if where is None else img[where]) > VESSEL_MIN_HU
    if img.ndim == 3:
        l1, l2, l3 = np.abs(ev[..., 0]), np.abs(ev[..., 1]), np.abs(ev[..., 2])
        bright = (ev[..., 1] < 0) & (ev[..., 2] < 0)
        elongated = l1 <= TUBE_RB * np.sqrt(l2 * l3)
        round_section = l2 >= TUBE_RA * l3
        strong = l3 >= TUBE_MIN_CONTRAST_HU
        ok = dense & bright & elongated & round_section & strong
    else:
        l1, l2 = np.abs(ev[..., 0]), np.abs(ev[..., 1])
        ok = dense & (ev[..., 1] < 0) & (l1 <= TUBE_RB * l2) & (l2 >= TUBE_MIN_CONTRAST_HU)
    if where is None:
        return ok
    out = np.zeros(img.shape, dtype=bool)
    out[where] = ok
    return out


def _filled(region: np.ndarray) -> np.ndarray:
    """``region`` with the holes it encloses in any axial, coronal or sagittal plane filled.

    GGO drawn as a sleeve of haze around a vessel (the vessel itself left unlabelled or
    labelled otherwise) encloses it in the planes across the vessel: filled, the sleeve is
    tested as the tube it surrounds.
    """
    out = region.copy()
    cross = ndimage.generate_binary_structure(2, 1)
    for axis in range(3):
        if region.shape[axis] < 3:
            continue
        # every plane across ``axis`` at once: a structure that only connects within such a plane
        # (the array's border seeds the background only within the planes), so each plane is
        # filled exactly as binary_fill_holes fills it alone
        plane = np.zeros((3, 3, 3), dtype=bool)
        np.moveaxis(plane, axis, 0)[1] = cross
        out |= ndimage.binary_fill_holes(region, structure=plane)
    return out


def _max_inplane_radius_mm(mask: np.ndarray, spacing_yx: tuple[float, float]) -> float:
    """Largest in-plane inscribed radius (mm) of a ``(z, y, x)`` mask over its slices."""
    r = 0.0
    for z in range(mask.shape[0]):
        if mask[z].any():
            d = ndimage.distance_transform_edt(np.pad(mask[z], 1), sampling=spacing_yx)
            r = max(r, float(d.max()))
    return r


def remove_vessels(volume: Volume, labels: np.ndarray, cancel: Optional[CancelLike] = None,
                   min_slices: int = MIN_SLICES, in_place: bool = False) -> tuple[np.ndarray, dict[str, int]]:
    """Apply the ``vessel`` rule to a ``(z, y, x)`` label map.

    Parameters
    ----------
    volume
        The scan (its array, HU flag and geometry).
    labels
        Label map on the scan's grid (not modified unless ``in_place``).
    cancel
        Optional cancel token, checked per region.
    min_slices
        Volumes with fewer slices are left alone (:data:`MIN_SLICES`). ``1`` applies the
        in-plane form to single slices (``benchmarks/vessels.py`` measures it on the
        labelled slices).
    in_place
        Set the vessel regions to background in ``labels`` itself (the AI reading's own map:
        no full-size copy).

    Returns
    -------
    labels, removed
        The label map with the vessel regions set to background (a new array when
        anything was removed), and per finding key the voxels removed (keys of
        :data:`FINDINGS_TESTED` only, 0 when nothing).
    """
    removed = {FINDING_KEYS[f]: 0 for f in FINDINGS_TESTED}
    geom = volume.geometry
    if not geom.spacing_known or labels.shape[0] < min_slices:
        return labels, removed
    # the findings' bounding box (found a slab at a time: no full-size mask); regions labelled by
    # connected-components-3d (linear time, one pass for both findings: regions of different
    # findings never merge)
    box0 = value_box(labels, FINDINGS_TESTED)
    if box0 is None:
        return labels, removed
    part = labels[box0]
    if part.dtype == np.uint8:  # a table lookup: one pass, no bool temporaries
        table = np.zeros(256, dtype=np.uint8)
        table[list(FINDINGS_TESTED)] = FINDINGS_TESTED
        sub = table[part]
    else:
        sub = np.where(np.isin(part, FINDINGS_TESTED), part, 0).astype(np.uint8)
    single = labels.shape[0] == 1
    if single:
        comp = cc3d.connected_components(sub[0], connectivity=8)[None]
    else:
        comp = cc3d.connected_components(sub, connectivity=26)
    out = labels
    spacing = tuple(float(s) for s in geom.spacing)
    for i, box in enumerate(ndimage.find_objects(comp), start=1):  # each region's box, in label order
        if box is None:
            continue
        check_cancel(cancel)
        region = comp[box] == i
        finding = int(sub[box][region][0])
        solid = _filled(region)  # a sleeve of haze around a vessel is tested with the vessel inside
        radius = _max_inplane_radius_mm(solid, spacing[1:])
        if radius > VESSEL_MAX_RADIUS_MM:
            continue
        gbox = tuple(slice(b.start + o.start, b.stop + o.start) for b, o in zip(box, box0))
        sigma = float(np.clip(radius / math.sqrt(2.0), *SCALES_MM))
        pad = [int(math.ceil(3.0 * sigma / s)) + 1 for s in spacing]
        crop = tuple(slice(max(b.start - p, 0), min(b.stop + p, n_)) for b, p, n_ in
                     zip(gbox, pad, labels.shape))
        img = hu_image(volume, crop)
        inner = tuple(slice(b.start - c.start, b.stop - c.start) for b, c in zip(gbox, crop))
        if single:
            depth = ndimage.distance_transform_edt(np.pad(solid[0], 1), sampling=spacing[1:])[None, 1:-1, 1:-1]
        else:
            depth = ndimage.distance_transform_edt(np.pad(solid, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
        core = solid & (depth >= CORE_DEPTH * depth.max()) & (img[inner] > VESSEL_MIN_HU)
        if not core.any():
            continue
        where = np.zeros(img.shape, dtype=bool)
        where[inner] = core
        if single:
            tube = tube_voxels(img[0], spacing[1:], sigma, where[0])[None][inner]
        else:
            tube = tube_voxels(img, spacing, sigma, where)[inner]
        if (tube & core).sum() >= VESSEL_FRACTION * core.sum():
            if out is labels and not in_place:
                out = labels.copy()
            out[gbox][region] = 0
            removed[FINDING_KEYS[finding]] += int(region.sum())
    return out, removed
