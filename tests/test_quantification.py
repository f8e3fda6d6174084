"""Numbers: volumes, percentages, zones, HU statistics, severity, incremental updates."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import GeometryMismatchError
from engine.labels import CONSOLIDATION, EFFUSION, GGO
from engine.phantom import chest_ct
from engine.quantification import (ZONES, IncrementalQuantifier, LungMasks, quantify, severity_scores,
                                   unite_findings)
from engine.quantification.severity import chung_zone_score, pan_zone_score
from engine.types import Geometry

SMALL = dict(shape=(64, 128, 128), spacing=(4.0, 2.8, 2.8))


@pytest.fixture(scope="module")
def ph():
    return chest_ct(**SMALL)


@pytest.fixture(scope="module")
def truth_lungs(ph):
    return LungMasks.from_masks(ph.lung_left, ph.lung_right, ph.volume.geometry)


def test_volumes_exact_on_phantom(ph, truth_lungs):
    q = quantify(ph.labels, ph.volume.geometry, truth_lungs, ph.volume.array)
    for key in ("ggo", "consolidation", "effusion"):
        assert q.findings[key].ml == pytest.approx(ph.expected_ml[key], rel=1e-9)
    assert q.lungs["left"]["ml"] == pytest.approx(ph.expected_ml["lung_left"], rel=1e-9)
    assert q.lungs["right"]["ml"] == pytest.approx(ph.expected_ml["lung_right"], rel=1e-9)
    tot = q.findings["total"]
    assert tot.ml == pytest.approx(ph.expected_ml["ggo"] + ph.expected_ml["consolidation"])
    assert tot.percent_of_lungs == pytest.approx(100 * tot.ml / ph.expected_ml["lungs"])
    # zones partition the lungs and the findings
    assert sum(q.lungs[z]["voxels"] for z in ZONES) == q.lungs["both"]["voxels"]
    for key in ("ggo", "consolidation", "effusion", "total"):
        f = q.findings[key]
        assert sum(z["voxels"] for z in f.zones.values()) == f.voxels
        assert f.voxels_left + f.voxels_right == f.voxels


def test_hu_statistics(ph, truth_lungs):
    q = quantify(ph.labels, ph.volume.geometry, truth_lungs, ph.volume.array)
    a = ph.volume.array
    for key, value in (("ggo", GGO), ("consolidation", CONSOLIDATION), ("effusion", EFFUSION)):
        vals = a[ph.labels == value]
        f = q.findings[key]
        assert f.hu_mean == pytest.approx(vals.mean())
        for p, got in ((10, f.hu_p10), (50, f.hu_p50), (90, f.hu_p90)):
            assert got == np.percentile(vals, p, method="inverted_cdf")
    assert -560 < q.findings["ggo"].hu_p50 < -380
    # no HU: no statistics
    q2 = quantify(ph.labels, ph.volume.geometry, truth_lungs, None)
    assert q2.findings["ggo"].hu_mean is None and not q2.has_hu


def test_hand_made_arrays_percent_and_zones():
    g = Geometry(shape=(6, 4, 4), spacing=(2.0, 1.0, 0.5))  # voxel 1 mm^3 = 0.001 mL
    right = np.zeros(g.shape, bool)
    left = np.zeros(g.shape, bool)
    right[:, :, :2] = True  # LPS: low x = patient right
    left[:, :, 2:] = True
    lungs = LungMasks.from_masks(left, right, g)
    labels = np.zeros(g.shape, np.uint8)
    labels[5, :, 0] = GGO  # top slice (superior), right lung: 4 voxels
    labels[0, 0, 3] = CONSOLIDATION  # bottom slice, left lung
    q = quantify(labels, g, lungs)
    assert q.lungs["right"]["voxels"] == 48 and q.lungs["right"]["ml"] == pytest.approx(0.048)
    assert q.findings["ggo"].voxels == 4 and q.findings["ggo"].ml == pytest.approx(0.004)
    assert q.findings["ggo"].percent_right == pytest.approx(100 * 4 / 48)
    assert q.findings["ggo"].percent_left == 0
    # 6 slices -> 2 per zone; k=5 is the upper zone, k=0 the lower
    assert q.findings["ggo"].zones["right_upper"]["voxels"] == 4
    assert q.findings["ggo"].zones["right_upper"]["percent"] == pytest.approx(100 * 4 / 16)
    assert q.findings["consolidation"].zones["left_lower"]["voxels"] == 1
    assert q.lungs["left_middle"]["voxels"] == 16


def test_findings_outside_lung_are_united_and_effusion_excluded():
    g = Geometry(shape=(3, 4, 8), spacing=(1.0, 1.0, 1.0))
    left = np.zeros(g.shape, bool)
    right = np.zeros(g.shape, bool)
    right[:, :, 1:3] = True
    left[:, :, 5:7] = True
    lungs = LungMasks.from_masks(left, right, g)
    labels = np.zeros(g.shape, np.uint8)
    labels[1, 1, 0] = CONSOLIDATION  # outside, right side of the midline
    labels[1, 1, 5] = EFFUSION  # inside the left lung mask: not lung
    q = quantify(labels, g, lungs)
    assert q.lungs["right"]["voxels"] == 24 + 1
    assert q.lungs["left"]["voxels"] == 24 - 1
    assert q.findings["consolidation"].voxels_right == 1
    united = unite_findings(lungs, labels, g)
    assert united.right[1, 1, 0] and not united.left[1, 1, 5]
    assert united.right.sum() == 25 and united.left.sum() == 23


def test_unknown_spacing_gives_no_ml():
    g = Geometry(shape=(4, 4, 4), spacing_known=False)
    left = np.zeros(g.shape, bool)
    left[:, :, 2:] = True
    right = ~left
    labels = np.zeros(g.shape, np.uint8)
    labels[0, 0, 3] = GGO
    q = quantify(labels, g, LungMasks.from_masks(left, right, g))
    assert not q.spacing_known
    assert q.findings["ggo"].ml is None and q.lungs["both"]["ml"] is None
    assert q.findings["ggo"].voxels == 1 and q.findings["ggo"].percent_left == pytest.approx(100 / 32)


def test_without_lungs_volumes_only(ph):
    q = quantify(ph.labels, ph.volume.geometry, None)
    assert q.findings["ggo"].ml == pytest.approx(ph.expected_ml["ggo"])
    assert q.findings["ggo"].percent_of_lungs is None and q.severity == []


def test_geometry_mismatch_is_reported(ph, truth_lungs):
    with pytest.raises(GeometryMismatchError):
        quantify(ph.labels[:-1], ph.volume.geometry, truth_lungs)


def test_severity_thresholds_and_totals():
    assert [pan_zone_score(p) for p in (0, 0.1, 5, 25, 26, 49, 50, 75, 76, 100)] == [0, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert [chung_zone_score(p) for p in (0, 1, 25, 26, 50, 51, 75, 76, 100)] == [0, 1, 1, 2, 2, 3, 3, 4, 4]
    zp = dict(zip(ZONES, (0.0, 3.0, 30.0, 60.0, 80.0, 10.0)))
    pan, chung = severity_scores(zp, ZONES)
    assert pan.total == 0 + 1 + 3 + 4 + 5 + 2 and pan.maximum == 30
    assert chung.total == 0 + 1 + 2 + 3 + 4 + 1 and chung.maximum == 24
    assert "Radiology" in pan.citation and "zone" in pan.note.lower()
    # under 0.5 % of a zone is segmentation noise: a clear scan with specks scores 0
    specks = dict(zip(ZONES, (0.4, 0.3, 0.2, 0.49, 0.0, 0.1)))
    assert [s.total for s in severity_scores(specks, ZONES)] == [0, 0]
    assert severity_scores(dict(specks, right_upper=0.5), ZONES)[0].per_zone["right_upper"] == 1


def test_incremental_equals_full_recount_after_random_edits(ph, truth_lungs):
    labels = ph.labels.copy()
    g = ph.volume.geometry
    q = IncrementalQuantifier(labels, g, truth_lungs, ph.volume.array)
    rng = np.random.default_rng(3)
    nz, ny, nx = labels.shape
    for step in range(25):
        z0, y0, x0 = rng.integers(0, nz - 4), rng.integers(0, ny - 12), rng.integers(0, nx - 12)
        box = (slice(z0, z0 + rng.integers(1, 4)), slice(y0, y0 + rng.integers(2, 12)),
               slice(x0, x0 + rng.integers(2, 12)))
        old = labels[box].copy()
        new = old.copy()
        mask = rng.random(new.shape) < 0.6
        new[mask] = rng.integers(0, 4)
        labels[box] = new
        if step % 2:
            got = q.update_region(box[0].start, box[0].stop, box[1].start, box[1].stop, box[2].start, box[2].stop)
        else:
            got = q.update(box, old, new)
    full = quantify(labels, g, truth_lungs, ph.volume.array)
    assert got.to_dict() == full.to_dict()
    assert got.findings["ggo"].voxels == np.count_nonzero(labels == GGO)


def test_incremental_ignores_values_outside_the_table(ph, truth_lungs):
    labels = ph.labels.copy()
    q = IncrementalQuantifier(labels, ph.volume.geometry, truth_lungs, ph.volume.array)
    before = q.result().findings["ggo"].voxels
    labels[0:2, 0:4, 0:4] = 7  # an unknown label value painted outside the lungs
    q.update_region(0, 2, 0, 4, 0, 4)
    assert q.result().findings["ggo"].voxels == before
    labels[0:2, 0:4, 0:4] = 0
    assert q.update_region(0, 2, 0, 4, 0, 4).to_dict() == quantify(labels, ph.volume.geometry, truth_lungs,
                                                                  ph.volume.array).to_dict()
