"""RSNA category from the distribution of the segmented findings, on the phantom's lungs."""

from __future__ import annotations

import numpy as np
import pytest

from engine.anatomy import LungMasks
from engine.labels import CONSOLIDATION, EFFUSION, GGO
from engine.phantom import chest_ct
from engine.quantification.rsna import NOT_ASSESSED, rsna_category
from scipy import ndimage


@pytest.fixture(scope="module")
def case():
    ph = chest_ct(shape=(48, 128, 128), spacing=(5.0, 2.8, 2.8), seed=5)
    lungs = LungMasks.from_masks(ph.lung_left, ph.lung_right, ph.volume.geometry)
    return ph, lungs


def _rim(mask: np.ndarray, zs: range) -> np.ndarray:
    """Outer rim (3 px) of ``mask`` on slices ``zs``: peripheral."""
    out = np.zeros_like(mask)
    for k in zs:
        out[k] = mask[k] & ~ndimage.binary_erosion(mask[k], iterations=3)
    return out


def test_categories_from_built_distributions(case):
    ph, lungs = case
    g = ph.volume.geometry
    none = np.zeros(ph.labels.shape, np.uint8)
    r = rsna_category(none, lungs, g)
    assert r.category == "negative" and r.not_assessed == list(NOT_ASSESSED)

    # bilateral, peripheral GGO in the lower half: typical, with lower-zone predominance
    typical = none.copy()
    typical[_rim(ph.lung_right, range(8, 24)) | _rim(ph.lung_left, range(8, 24))] = GGO
    r = rsna_category(typical, lungs, g)
    assert r.category == "typical", r.deciding
    assert r.features["bilateral"] and r.features["peripheral"] and r.features["lower_zone"]
    assert "bilateral GGO" in r.deciding

    # the same with a pleural effusion: points away -> indeterminate
    with_eff = typical.copy()
    with_eff[10:14, 100:110, 20:30] = EFFUSION
    r = rsna_category(with_eff, lungs, g)
    assert r.category == "indeterminate" and any("effusion" in d for d in r.deciding)

    # GGO in one lung only: indeterminate, unilateral
    uni = none.copy()
    uni[_rim(ph.lung_right, range(8, 30))] = GGO
    r = rsna_category(uni, lungs, g)
    assert r.category == "indeterminate" and "unilateral" in r.deciding

    # one central consolidation without GGO: atypical
    one = none.copy()
    zs = np.flatnonzero(ph.lung_right.any(axis=(1, 2)))
    k = int(np.median(zs))
    for z in range(k - 4, k + 5):
        one[z][ndimage.binary_erosion(ph.lung_right[z], iterations=7)] = CONSOLIDATION
    assert 100 * (one > 0).sum() / lungs.lung.sum() >= 0.5
    r = rsna_category(one, lungs, g)
    assert r.category == "atypical", (r.deciding, r.features)
    assert r.features["central"] and not r.features["multifocal"]

    # scattered specks under 0.5 % of the lung: negative, with the reason
    specks = none.copy()
    for z in (10, 20, 30):
        ys, xs = np.nonzero(ph.lung_left[z])
        specks[z, ys[0]:ys[0] + 2, xs[0]:xs[0] + 2] = GGO
        ys, xs = np.nonzero(ph.lung_right[z])
        specks[z, ys[0]:ys[0] + 2, xs[0]:xs[0] + 2] = CONSOLIDATION
    r = rsna_category(specks, lungs, g)
    assert r.category == "negative" and "under 0.5 %" in r.deciding[0]

    # a few voxels of each, under 0.1 mL: negative, and not said to be "no GGO or consolidation segmented"
    tiny = none.copy()
    tiny[20, 60, 30:32] = GGO  # 2 voxels of 0.039 mL: 0.08 mL
    r = rsna_category(tiny, lungs, g)
    assert r.category == "negative" and r.deciding == ["GGO and consolidation each under 0.1 mL (specks only)"]
    assert rsna_category(none, lungs, g).deciding == ["no GGO or consolidation segmented"]


def test_no_zones_no_category_and_no_severity():
    """Severity and the RSNA category rate the upper, middle and lower zone of each lung. A single slice (one
    zone per lung), a lung not found, or no lungs at all have no such zones: both are withheld (a single slice
    scored 4 of its 6 zones as clear and got a category), with the reason."""
    from engine.anatomy import LungMasks
    from engine.quantification.numbers import quantify
    from engine.quantification.rsna import rsna_or_none, zones_missing
    from engine.types import Geometry

    def case(nz, both=True):
        g = Geometry((nz, 64, 64), spacing=(2.0, 1.0, 1.0))
        right = np.zeros(g.shape, bool)
        left = np.zeros(g.shape, bool)
        right[:, 10:50, 5:28] = True
        if both:
            left[:, 10:50, 36:59] = True
        labels = np.zeros(g.shape, np.uint8)
        labels[:, 20:40, 8:20] = 1  # GGO in the right lung on every slice
        return labels, LungMasks.from_masks(left, right, g), g

    labels, lungs, g = case(1)
    assert zones_missing(lungs) == ("the right lung spans 1 slice(s) and the left lung spans 1 slice(s): zones "
                                    "need each lung over at least 3 slices (upper, middle and lower)")
    assert rsna_or_none(labels, lungs, g) is None and quantify(labels, g, lungs).severity == []
    labels, lungs, g = case(9, both=False)
    assert zones_missing(lungs).startswith("the left lung was not found")
    assert rsna_or_none(labels, lungs, g) is None and quantify(labels, g, lungs).severity == []
    assert zones_missing(None) == "no lungs were found" and rsna_or_none(labels, None, g) is None
    labels, lungs, g = case(9)
    assert zones_missing(lungs) is None
    category = rsna_or_none(labels, lungs, g)
    severity = quantify(labels, g, lungs).severity
    assert category is not None and category.category in ("typical", "indeterminate", "atypical", "negative")
    assert severity and severity[0].total > 0
