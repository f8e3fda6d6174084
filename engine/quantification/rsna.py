"""RSNA expert consensus CT category of COVID-19 pneumonia, from the segmented findings.

Simpson S, Kay FU, Abbara S, et al. Radiological Society of North America Expert
Consensus Document on Reporting Chest CT Findings Related to COVID-19. Radiol
Cardiothorac Imaging 2020;2(2):e200152. doi:10.1148/ryct.2020200152.

The consensus names four categories (typical, indeterminate, atypical, negative for
pneumonia) by the pattern and distribution of the findings. LungLens sees GGO,
consolidation and effusion in the lungs and their zones, so it derives the category from
the distribution of the segmented findings that passed the anatomy rules:

Features (measured)
    ``ggo`` / ``consolidation`` present (at least :data:`MIN_ML` mL, or
    :data:`MIN_VOXELS` voxels without spacing); ``bilateral`` (GGO or consolidation in
    both lungs, each side at least 10 % of the involvement); ``peripheral`` (at least
    :data:`PERIPHERAL_SHARE` of the involvement in the outer third of the lung, by
    in-plane depth from the lung's outer contour); ``lower_zone`` (lower zones more
    involved than upper zones, in % of zone volume); ``multifocal`` (at least 3 separate
    3D regions); ``diffuse`` (5 or 6 of the 6 zones involved); ``effusion``; ``central``
    (at most a third of the involvement peripheral).
Rules
    negative: no GGO and no consolidation, or together under
    :data:`MIN_INVOLVEMENT_PERCENT` % of the lung (scattered specks at the level of
    segmentation noise on clear lungs make no pattern). typical: GGO, bilateral and peripheral
    predominant, no effusion. atypical: consolidation without GGO in a single region, or a
    single central region. indeterminate: any other GGO or consolidation (multifocal,
    diffuse, perihilar or unilateral without a specific distribution), and a typical
    pattern with an effusion (effusion is uncommon in COVID-19 and points away).
Not assessed (LungLens cannot see them)
    rounded morphology, crazy paving, reverse halo and other organising-pneumonia signs,
    discrete small nodules and tree-in-bud, cavitation, smooth interlobular septal
    thickening.

In a multireader study the typical category had about 86 % sensitivity and 80 %
specificity for COVID-19 (Som A, et al. Radiol Cardiothorac Imaging 2020;
doi:10.1148/ryct.2020200276): a category is a reporting aid, not a diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy import ndimage

from ..anatomy.lungs import ZONES, LungMasks
from ..labels import CONSOLIDATION, EFFUSION, GGO
from ..types import Geometry

CITATION = ("Simpson S, Kay FU, Abbara S, et al. Radiological Society of North America Expert Consensus Document "
            "on Reporting Chest CT Findings Related to COVID-19. Radiol Cardiothorac Imaging 2020;2(2):e200152. "
            "doi:10.1148/ryct.2020200152")
CATEGORIES = ("typical", "indeterminate", "atypical", "negative")
NOT_ASSESSED = ("rounded morphology", "crazy paving", "reverse halo / organising pneumonia signs",
                "small nodules and tree-in-bud", "cavitation", "interlobular septal thickening")
MIN_ML = 0.1
#: GGO + consolidation under this share of the lung (%) is no pneumonia pattern: the level of
#: segmentation noise the project accepts on clear lungs (issue 10)
MIN_INVOLVEMENT_PERCENT = 0.5
MIN_VOXELS = 20
PERIPHERAL_SHARE = 0.6
MULTIFOCAL_REGIONS = 3


@dataclass
class RsnaCategory:
    """The derived category, what decided it, and what could not be assessed."""

    category: str
    deciding: list[str]
    features: dict[str, Optional[bool]]
    not_assessed: list[str] = field(default_factory=lambda: list(NOT_ASSESSED))
    citation: str = CITATION
    caveat: str = ("Derived from the segmented findings' distribution; a reporting aid, not a diagnosis. "
                   "Zones are thirds of each lung's height, not lobes.")

    def to_dict(self) -> dict:
        return {"category": self.category, "deciding_features": list(self.deciding), "features": dict(self.features),
                "not_assessed": list(self.not_assessed), "citation": self.citation, "caveat": self.caveat}


def _depth_share_peripheral(mask: np.ndarray, lungs: LungMasks) -> float:
    """Share of ``mask`` voxels in the outer third of their lung (in-plane depth from the lung's contour).

    The lungs are expected with the findings filled back (:func:`engine.anatomy.unite_findings`);
    voxels outside both lungs count as not peripheral.
    """
    total = int(mask.sum())
    if total == 0:
        return 0.0
    periph = 0
    for side in (lungs.right, lungs.left):
        hit = mask & side
        for k in np.flatnonzero(hit.any(axis=(1, 2))):
            lung = ndimage.binary_fill_holes(side[k])
            depth = ndimage.distance_transform_edt(lung)
            dmax = float(depth.max())
            if dmax > 0:
                periph += int(np.count_nonzero(depth[hit[k]] <= dmax / 3.0))
    return periph / total


def rsna_category(labels: np.ndarray, lungs: Optional[LungMasks], geometry: Geometry) -> RsnaCategory:
    """Derive the RSNA category of ``labels`` (after the anatomy rules) on ``lungs`` (module docstring)."""
    vox_ml = geometry.voxel_volume_ml
    known = geometry.spacing_known

    def present(n: int) -> bool:
        return n * vox_ml >= MIN_ML if known else n >= MIN_VOXELS

    n_ggo = int(np.count_nonzero(labels == GGO))
    n_con = int(np.count_nonzero(labels == CONSOLIDATION))
    n_eff = int(np.count_nonzero(labels == EFFUSION))
    ggo, con, eff = present(n_ggo), present(n_con), present(n_eff)
    feats: dict[str, Optional[bool]] = {"ggo": ggo, "consolidation": con, "effusion": eff}
    lung_vox = int(lungs.lung.sum()) if lungs is not None else 0
    share = 100.0 * (n_ggo + n_con) / lung_vox if lung_vox else None
    faint = share is not None and share < MIN_INVOLVEMENT_PERCENT
    if not (ggo or con) or faint:
        for k in ("bilateral", "peripheral", "lower_zone", "multifocal", "diffuse", "central"):
            feats[k] = None
        size = f"{MIN_ML:g} mL" if known else f"{MIN_VOXELS} voxels"
        deciding = (["no GGO or consolidation segmented"] if not (n_ggo or n_con) else
                    [f"GGO and consolidation each under {size} (specks only)"]
                    if not (ggo or con) else
                    [f"GGO and consolidation {share:.2f} % of the lung, under {MIN_INVOLVEMENT_PERCENT:g} % "
                     "(segmentation noise level): no pneumonia pattern"])
        deciding += ["pleural effusion present"] if eff else []
        return RsnaCategory("negative", deciding, feats)
    inv = (labels == GGO) | (labels == CONSOLIDATION)
    if lungs is None:
        feats.update(bilateral=None, peripheral=None, lower_zone=None, diffuse=None, central=None)
    else:
        right = int(np.count_nonzero(inv & (lungs.zones >= 1) & (lungs.zones <= 3) | inv & (lungs.zones >= 7)
                                     & (lungs.zones <= 9)))
        left = int(inv.sum()) - right
        tot = max(right + left, 1)
        feats["bilateral"] = right >= 0.1 * tot and left >= 0.1 * tot and present(right) and present(left)
        share = _depth_share_peripheral(inv, lungs)
        feats["peripheral"] = share >= PERIPHERAL_SHARE
        feats["central"] = share <= 1.0 / 3.0
        zpct = {}
        for i, z in enumerate(ZONES, start=1):
            lung_vox = int(lungs.zone_voxels[i])
            zpct[z] = 100.0 * int(np.count_nonzero(inv & ((lungs.zones == i) | (lungs.zones == i + 6)))) / lung_vox \
                if lung_vox else 0.0
        upper = zpct["right_upper"] + zpct["left_upper"]
        lower = zpct["right_lower"] + zpct["left_lower"]
        feats["lower_zone"] = lower > upper
        feats["diffuse"] = sum(1 for v in zpct.values() if v > 0.5) >= 5
    lab, n = ndimage.label(inv)
    sizes = np.bincount(lab.ravel())[1:] if n else np.zeros(0, dtype=np.int64)
    regions = int(sum(1 for s in sizes if present(int(s))))
    feats["multifocal"] = regions >= MULTIFOCAL_REGIONS
    deciding: list[str] = []
    if ggo and feats.get("bilateral") and feats.get("peripheral") and not eff:
        deciding = ["bilateral GGO", "peripheral predominance"]
        if con:
            deciding.append("with consolidation")
        if feats.get("lower_zone"):
            deciding.append("lower-zone predominance")
        if feats["multifocal"]:
            deciding.append("multifocal")
        return RsnaCategory("typical", deciding, feats)
    if con and not ggo and regions <= 1:
        return RsnaCategory("atypical", ["isolated consolidation without GGO"], feats)
    if regions <= 1 and feats.get("central"):
        return RsnaCategory("atypical", ["a single central finding"], feats)
    if ggo and feats.get("bilateral") and feats.get("peripheral") and eff:
        deciding = ["bilateral peripheral GGO", "but a pleural effusion (points away from COVID-19)"]
    else:
        if feats.get("diffuse"):
            deciding.append("diffuse")
        if feats["multifocal"]:
            deciding.append("multifocal")
        if feats.get("bilateral") is False:
            deciding.append("unilateral")
        if feats.get("peripheral") is False:
            deciding.append("no peripheral predominance")
        if eff:
            deciding.append("pleural effusion (points away from COVID-19)")
        deciding.append("GGO with consolidation" if ggo and con else ("GGO" if ggo else "consolidation"))
    return RsnaCategory("indeterminate", deciding, feats)


#: fewest slices a lung must span for its upper, middle and lower zones (severity, RSNA zone features)
MIN_ZONE_SLICES = 3


def zones_missing(lungs: Optional[LungMasks]) -> Optional[str]:
    """Why the zone-based scores (severity, the RSNA category's zonal features) cannot be given, or ``None``.

    They rate the upper, middle and lower zone of each lung: without lungs, or with a lung that spans fewer
    than :data:`MIN_ZONE_SLICES` slices (a single slice, a thin stack, a lung not found), a score would rate
    zones that are not there (a single slice scored 4 of its 6 zones as clear).
    """
    if lungs is None:
        return "no lungs were found"
    short = []
    for side in ("right", "left"):
        ext = lungs.extents.get(side)
        span = 0 if ext is None else ext[1] - ext[0] + 1
        if span < MIN_ZONE_SLICES:
            short.append(f"the {side} lung {'was not found' if span == 0 else f'spans {span} slice(s)'}")
    if not short:
        return None
    return (" and ".join(short) + f": zones need each lung over at least {MIN_ZONE_SLICES} slices (upper, middle "
            "and lower)")


def rsna_or_none(labels: np.ndarray, lungs: Optional[LungMasks], geometry: Geometry) -> Optional[RsnaCategory]:
    """:func:`rsna_category`, or ``None`` when :func:`zones_missing` says the zones it reads are not there."""
    return None if zones_missing(lungs) else rsna_category(labels, lungs, geometry)
