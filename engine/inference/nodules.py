"""Solid nodule rule: a round, isolated, solid "consolidation" is set aside as a nodule or mass.

The segmentation models know three findings of COVID-19 pneumonia. A solitary pulmonary
nodule (a rounded opacity of at most 3 cm; beyond that a mass) is none of them, but the
models mark its solid tissue as consolidation. Consolidation is an *airspace* process
(Fleischner Society glossary, Hansell et al., Radiology 2008): a patch, a band or a lobar
or segmental opacity that follows the lung's architecture, in COVID-19 usually peripheral,
subpleural and bordered by ground glass. A nodule is a discrete round opacity surrounded by
aerated lung. A nodule is not pneumonia, and these models cannot say what it is: it is taken
out of the pneumonia findings and reported as a notice to review instead.

The rule (``docs/MODELS.md`` states it and what it removes from real disease)
--------------------------------------------------------------------------
``solid_nodule`` (consolidation, volumes of at least :data:`MIN_SLICES` slices with known
spacing): a 3D region of consolidation (26-connected) is set aside when it is

1. nodule-sized: equivalent-sphere diameter at least :data:`NODULE_MM` ``[0]`` and no extent
   (along z, y or x) above :data:`NODULE_MM` ``[1]`` (the glossary's 3 cm), and at least
   :data:`MIN_PIXELS_ACROSS` pixels across on its largest slice (fewer show no shape);
2. roughly round and compact: smallest / largest extent at least :data:`ROUND_RATIO`, and
   it fills at least :data:`FILL_MIN` of the ellipsoid inscribed in its bounding box (a
   band, a plate or a branching patch does not);
3. isolated in aerated lung: in the ring :data:`RING_MM` mm around it on its own slices
   (in-plane, past the partial-volume edge), at most :data:`RING_MAX_OUTSIDE` outside the
   lungs (it does not lie broadly on the pleura, the mediastinum or the diaphragm), at least
   :data:`RING_MIN_AERATED` aerated (below :data:`AERATED_HU`), and at most
   :data:`RING_MAX_GGO` ground glass (COVID-19 consolidation sits in ground glass);
4. solid: its median at least :data:`SOLID_MIN_HU` HU (8-bit lung-window images through the
   inverse of the models' window, as the vessel rule reads them).

Thresholds come from the definitions (nodule size, round, surrounded by aerated lung, solid),
not from a scan: ``chest_ct_99`` is for testing only. Scans without known spacing (image
stacks) and single slices are left alone (sizes in mm cannot be measured, roundness needs
the third dimension).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cc3d
import numpy as np
from scipy import ndimage

from ..anatomy.boxes import Box, z_slabs
from ..anatomy.lungs import LungMasks
from ..labels import CONSOLIDATION, GGO
from ..progress import CancelLike, check_cancel
from ..types import Volume
from .vessels import MIN_SLICES, hu_image

RULE = "solid_nodule"
#: equivalent-sphere diameter at least [0] mm, no extent above [1] mm (a nodule is at most 3 cm)
NODULE_MM: tuple[float, float] = (5.0, 30.0)
#: smallest / largest extent (mm, along z, y, x) of a roughly round region
ROUND_RATIO = 0.5
#: a region spans at least this many pixels along y and along x on its largest slice: fewer cannot
#: show a shape (a speck of a few coarse voxels measures "5 mm" without being round). CT pixels are
#: 0.5-0.9 mm, so a 5 mm nodule spans 5-10; on coarser grids only larger ones are tested
MIN_PIXELS_ACROSS = 5
#: share of the ellipsoid inscribed in its bounding box that a compact region fills
FILL_MIN = 0.5
#: in-plane ring around the region on its slices, from [0] to [1] mm (past its partial-volume edge)
RING_MM: tuple[float, float] = (1.5, 4.5)
#: at most this share of the ring outside the lungs (not broadly on the pleura or the mediastinum)
RING_MAX_OUTSIDE = 0.2
#: at least this share of the ring aerated lung (below :data:`AERATED_HU`)
RING_MIN_AERATED = 0.5
#: at most this share of the ring ground glass (labelled GGO)
RING_MAX_GGO = 0.25
#: aerated lung is below this (HU); lung parenchyma is about -900 to -700 HU
AERATED_HU = -500.0
#: a solid region's median is at least this (HU); consolidation and soft tissue are about -100 to +50 HU
SOLID_MIN_HU = -100.0
RULE_TEXT = {RULE: (f"a round, isolated, solid region of 'consolidation' ({NODULE_MM[0]:g}-{NODULE_MM[1]:g} mm and "
                    f"at least {MIN_PIXELS_ACROSS} pixels across, "
                    f"smallest extent at least {ROUND_RATIO:g} of the largest, at least {int((1 - RING_MAX_OUTSIDE) * 100)} % "
                    f"of the lung around it within the lungs, {int(RING_MIN_AERATED * 100)} % aerated and at most "
                    f"{int(RING_MAX_GGO * 100)} % ground glass, median at least {SOLID_MIN_HU:g} HU) is a nodule or mass, "
                    f"not pneumonia: taken out of the findings and listed under 'nodules' for review (volumes of at "
                    f"least {MIN_SLICES} slices with known spacing)")}


@dataclass
class Nodule:
    """A region set aside by the ``solid_nodule`` rule."""

    slices: tuple[int, int]          #: first and last slice index (0-based, as findings.json counts)
    diameter_mm: float               #: mean of its long and short axis on its largest slice (Fleischner)
    largest_extent_mm: float         #: its largest extent along z, y or x
    volume_ml: float
    voxels: int
    centre: tuple[float, float, float]  #: centroid (z, y, x) in voxels
    median_hu: float

    @property
    def notice(self) -> str:
        """What the reading shows (slices numbered from 1, as the app shows them)."""
        a, b = self.slices[0] + 1, self.slices[1] + 1
        where = f"slice {a}" if a == b else f"slices {a}-{b}"
        return (f"Solid nodule / mass of {self.diameter_mm:.0f} mm at {where}: not assessed by this model "
                "(it reads pneumonia only) and not counted as consolidation; review it.")

    def to_dict(self) -> dict:
        return {"slices": [int(self.slices[0]), int(self.slices[1])], "diameter_mm": round(self.diameter_mm, 1),
                "largest_extent_mm": round(self.largest_extent_mm, 1), "volume_ml": round(self.volume_ml, 3),
                "voxels": int(self.voxels), "centre_voxel": [round(c, 1) for c in self.centre],
                "median_hu": round(self.median_hu, 1), "notice": self.notice}


def _axes_mm(mask2d: np.ndarray, spacing_yx: tuple[float, float]) -> tuple[float, float]:
    """Long and short axis (mm) of a 2D region: the ellipse with the same second moments."""
    ys, xs = np.nonzero(mask2d)
    pts = np.stack([ys * spacing_yx[0], xs * spacing_yx[1]], axis=1)
    if len(pts) < 3:
        return float(max(spacing_yx)), float(min(spacing_yx))
    ev = np.linalg.eigvalsh(np.cov(pts, rowvar=False))
    # a filled ellipse of semi-axis a has variance a^2 / 4 along it; one pixel adds its own width
    long_, short = (4.0 * np.sqrt(max(e, 0.0)) for e in ev[::-1])
    return float(long_ + min(spacing_yx)), float(short + min(spacing_yx))


def _ring(region: np.ndarray, spacing_yx: tuple[float, float]) -> np.ndarray:
    """The in-plane ring :data:`RING_MM` around ``region`` on each of its slices (bool, same shape)."""
    out = np.zeros(region.shape, dtype=bool)
    for k in range(region.shape[0]):
        if region[k].any():
            d = ndimage.distance_transform_edt(~region[k], sampling=spacing_yx)
            out[k] = (d > RING_MM[0]) & (d <= RING_MM[1])
    return out


def _box_of(labels: np.ndarray, value: int) -> Optional[Box]:
    """Bounding box of ``labels == value``, found a slab of slices at a time (no full-size mask)."""
    nz = labels.shape[0]
    slices = np.zeros(nz, dtype=bool)
    plane = np.zeros(labels.shape[1:], dtype=bool)
    for k in z_slabs(labels.shape):
        m = labels[k] == value
        slices[k] = m.any(axis=(1, 2))
        plane |= m.any(axis=0)
    if not slices.any():
        return None
    zs, ys, xs = np.flatnonzero(slices), np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    return (slice(int(zs[0]), int(zs[-1]) + 1), slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1))


def set_aside_nodules(volume: Volume, labels: np.ndarray, lungs: Optional[LungMasks],
                      cancel: Optional[CancelLike] = None, min_slices: int = MIN_SLICES
                      ) -> tuple[np.ndarray, dict[str, int], list[Nodule]]:
    """Apply the ``solid_nodule`` rule to a ``(z, y, x)`` label map.

    Parameters
    ----------
    volume
        The scan (array, HU flag, geometry).
    labels
        Label map after the anatomy rules (not modified).
    lungs
        The lungs after the gate (the kept findings filled in); ``None``: the rule does not run.
    cancel
        Optional cancel token, checked per region.
    min_slices
        Volumes with fewer slices are left alone.

    Returns
    -------
    labels, removed, nodules
        The label map without the nodules (a new array when one was found), the consolidation
        voxels removed (``{"consolidation": n}``), and the :class:`Nodule` s found, largest first.
    """
    removed = {"consolidation": 0}
    geom = volume.geometry
    if lungs is None or not geom.spacing_known or labels.shape[0] < min_slices:
        return labels, removed, []
    box = _box_of(labels, CONSOLIDATION)  # work inside the consolidation's box: no full-size temporaries
    if box is None:
        return labels, removed, []
    spacing = tuple(float(s) for s in geom.spacing)
    voxel_mm3 = float(np.prod(spacing))
    comp = cc3d.connected_components(labels[box] == CONSOLIDATION, connectivity=26)
    stats = cc3d.statistics(comp)
    pad = [int(np.ceil(RING_MM[1] / s)) + 1 for s in spacing]
    out, found = labels, []
    for i, rbox in enumerate(stats["bounding_boxes"]):
        n = int(stats["voxel_counts"][i])
        if i == 0 or rbox is None or n == 0:
            continue
        ext = np.array([(b.stop - b.start) * s for b, s in zip(rbox, spacing)])
        deq = (6.0 * n * voxel_mm3 / np.pi) ** (1.0 / 3.0)
        if deq < NODULE_MM[0] or ext.max() > NODULE_MM[1] or ext.min() < ROUND_RATIO * ext.max():
            continue
        if n * voxel_mm3 < FILL_MIN * np.pi / 6.0 * float(np.prod(ext)):
            continue
        check_cancel(cancel)
        at = tuple(slice(b.start + o.start, b.stop + o.start) for b, o in zip(rbox, box))  # in the scan
        crop = (at[0],) + tuple(slice(max(b.start - p, 0), min(b.stop + p, m))
                                for b, p, m in zip(at[1:], pad[1:], labels.shape[1:]))
        region = np.zeros(tuple(c.stop - c.start for c in crop), dtype=bool)
        region[tuple(slice(a.start - c.start, a.stop - c.start) for a, c in zip(at, crop))] = comp[rbox] == i
        ring = _ring(region, spacing[1:])
        if not ring.any():
            continue
        img = hu_image(volume, crop)
        lung = lungs.left[crop] | lungs.right[crop]
        outside = 1.0 - float(lung[ring].mean())
        aerated = float((img[ring] < AERATED_HU).mean())
        ggo = float((labels[crop][ring] == GGO).mean())
        median = float(np.median(img[region]))
        if outside > RING_MAX_OUTSIDE or aerated < RING_MIN_AERATED or ggo > RING_MAX_GGO or median < SOLID_MIN_HU:
            continue
        largest = region[int(np.argmax(region.sum(axis=(1, 2))))]
        if min(np.count_nonzero(largest.any(axis=1)), np.count_nonzero(largest.any(axis=0))) < MIN_PIXELS_ACROSS:
            continue
        long_, short = _axes_mm(largest, spacing[1:])
        zz, yy, xx = np.nonzero(region)
        centre = (float(zz.mean() + crop[0].start), float(yy.mean() + crop[1].start), float(xx.mean() + crop[2].start))
        found.append(Nodule((at[0].start, at[0].stop - 1), (long_ + short) / 2.0, float(ext.max()),
                            n * voxel_mm3 / 1000.0, n, centre, median))
        if out is labels:
            out = labels.copy()
        out[crop][region] = 0
        removed["consolidation"] += n
    found.sort(key=lambda nd: -nd.voxels)
    return out, removed, found
