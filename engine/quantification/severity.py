"""CT severity scores of COVID-19 pneumonia, computed from zone involvement.

Both published schemes score each *lobe* by the fraction of it that is involved
(ground-glass opacity or consolidation). LungLens has no lobe segmentation, so it
scores the six zones of :mod:`.lungs` (upper / middle / lower third of each lung by
height) instead. The totals are therefore zone-based approximations of the lobar
scores, not the published scores themselves; the report says so.

Pan et al. (0-5 per region)
    Pan F, Ye T, Sun P, et al. Time Course of Lung Changes at Chest CT during Recovery
    from Coronavirus Disease 2019 (COVID-19). Radiology 2020;295(3):715-721.
    doi:10.1148/radiol.2020200370. Per lobe: 0 none, 1 < 5 %, 2 5-25 %, 3 26-49 %,
    4 50-75 %, 5 > 75 %; five lobes, total 0-25. Six zones here: total 0-30.
Chung et al. (0-4 per region)
    Chung M, Bernheim A, Mei X, et al. CT Imaging Features of 2019 Novel Coronavirus
    (2019-nCoV). Radiology 2020;295(1):202-207. doi:10.1148/radiol.2020200230.
    Per lobe: 0 none, 1 1-25 %, 2 26-50 %, 3 51-75 %, 4 76-100 %; five lobes, total 0-20.
    Six zones here: total 0-24.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

PAN_CITATION = ("Pan F, Ye T, Sun P, et al. Time Course of Lung Changes at Chest CT during Recovery from "
                "Coronavirus Disease 2019 (COVID-19). Radiology 2020;295(3):715-721. doi:10.1148/radiol.2020200370")
CHUNG_CITATION = ("Chung M, Bernheim A, Mei X, et al. CT Imaging Features of 2019 Novel Coronavirus "
                  "(2019-nCoV). Radiology 2020;295(1):202-207. doi:10.1148/radiol.2020200230")


@dataclass(frozen=True)
class SeverityScore:
    """One severity scheme applied to the six zones."""

    key: str
    name: str
    total: int
    maximum: int
    per_zone: dict[str, int] = field(default_factory=dict)
    citation: str = ""
    note: str = ""

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "total": self.total, "maximum": self.maximum,
                "per_zone": dict(self.per_zone), "citation": self.citation, "note": self.note}


def pan_zone_score(percent: float) -> int:
    """Pan et al. score (0-5) of one region from its % involvement."""
    if percent <= 0:
        return 0
    if percent < 5:
        return 1
    if percent <= 25:
        return 2
    if percent < 50:
        return 3
    if percent <= 75:
        return 4
    return 5


def chung_zone_score(percent: float) -> int:
    """Chung et al. score (0-4) of one region from its % involvement."""
    if percent <= 0:
        return 0
    if percent <= 25:
        return 1
    if percent <= 50:
        return 2
    if percent <= 75:
        return 3
    return 4


#: zone involvement (% of the zone) below which a zone scores 0: the level of segmentation noise the
#: project accepts on clear lungs (issue 10: under 0.5 % of the lung on a clear chest)
MIN_ZONE_PERCENT = 0.5

_NOTE = ("Zone-based approximation: the published score rates five lobes; LungLens rates six zones "
         "(upper, middle, lower zone: thirds of each lung by height; zones are not lobes) with the same "
         f"per-region thresholds. A zone under {MIN_ZONE_PERCENT:g} % involved scores 0 (segmentation noise level).")


def severity_scores(zone_percent: dict[str, float], zones: Sequence[str]) -> list[SeverityScore]:
    """Pan and Chung scores from the % involvement (GGO + consolidation) of each zone.

    ``zone_percent`` maps zone name to % of that zone's lung volume; a zone with no lung
    (missing) or under :data:`MIN_ZONE_PERCENT` involved scores 0, so a scan without a
    plausible finding scores 0.
    """
    pct = {z: zone_percent.get(z, 0.0) for z in zones}
    pct = {z: (p if p >= MIN_ZONE_PERCENT else 0.0) for z, p in pct.items()}
    pan = {z: pan_zone_score(pct[z]) for z in zones}
    chung = {z: chung_zone_score(pct[z]) for z in zones}
    return [
        SeverityScore("pan_zones", "CT severity score (Pan et al. 2020), 6 zones", sum(pan.values()),
                      5 * len(zones), pan, PAN_CITATION, _NOTE),
        SeverityScore("chung_zones", "CT severity score (Chung et al. 2020), 6 zones", sum(chung.values()),
                      4 * len(zones), chung, CHUNG_CITATION, _NOTE),
    ]
