"""Finding probabilities: fitting on synthetic scores with a known answer, bar = overlay, scan value."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from engine.inference.presence import (FEATURES, KEEP_ALL, UNCALIBRATED, FindingModel, PresenceModel, fit_finding,
                                       label_regions, load_for, read_evidence, region_features, scan_probabilities)
from engine.labels import CONSOLIDATION, GGO
from engine.metrics.classification import brier, ece, reliability


def test_logistic_fit_recovers_a_known_model():
    rng = np.random.default_rng(0)
    n = 6000
    x = rng.normal(size=(n, len(FEATURES)))
    true_b, true_w = -0.5, np.array([1.5, -1.0, 0.0])
    p = 1 / (1 + np.exp(-(true_b + x @ true_w)))
    y = rng.random(n) < p
    m = fit_finding(x, y, np.arange(n), y, l2=1e-3)
    # standardised inputs: map the fitted weights back to the raw features
    w = np.array(m.weights) / np.array(m.scale)
    b = m.bias - float(np.sum(np.array(m.weights) * np.array(m.mean) / np.array(m.scale)))
    assert np.allclose(w, true_w, atol=0.12) and abs(b - true_b) < 0.1
    q = m.predict(x)
    assert ece(q, y) < 0.03                      # calibrated on its own population
    # p_empty: the truth rate of slices with no kept region (here the slices whose region has q <= 0.5)
    empty = q <= 0.5
    assert m.p_empty == pytest.approx((y[empty].sum() + 0.5) / (empty.sum() + 1), abs=1e-9)


def test_brier_and_ece_on_known_scores():
    y = np.r_[np.ones(50), np.zeros(50)].astype(bool)
    p = np.full(100, 0.9)
    assert brier(p, y) == pytest.approx(0.5 * 0.01 + 0.5 * 0.81)
    assert ece(p, y) == pytest.approx(0.4)
    perfect = np.r_[np.full(50, 1.0), np.full(50, 0.0)]
    assert brier(perfect, y) == 0 and ece(perfect, y) == 0
    bins = reliability(np.r_[np.full(10, 0.05), np.full(10, 0.95)], np.r_[np.zeros(10), np.ones(10)].astype(bool))
    assert [(b["n"], b["observed"]) for b in bins] == [(10, 0.0), (10, 1.0)]


def _model(bias: float) -> PresenceModel:
    fm = FindingModel(bias=bias, weights=[0.0, 10.0, 0.0], mean=[0.0, 0.5, 0.0], scale=[1.0, 1.0, 1.0], p_empty=0.03)
    return PresenceModel(findings={"ggo": fm, "consolidation": fm, "effusion": fm})


def test_bar_above_half_exactly_where_a_region_is_shown():
    rng = np.random.default_rng(1)
    labels = np.zeros((20, 40, 40), np.uint8)
    conf = np.zeros_like(labels)
    for k in range(20):
        for _ in range(rng.integers(0, 4)):
            y, x = rng.integers(0, 34, 2)
            lab = rng.choice([GGO, CONSOLIDATION])
            labels[k, y:y + 5, x:x + 5] = lab
            conf[k, y:y + 5, x:x + 5] = rng.integers(60, 255)   # mean confidence 0.24..1
    shown, slice_p, removed, regions = read_evidence(labels, conf, None, _model(0.0))
    for c, lab in enumerate((GGO, CONSOLIDATION)):
        visible = (shown == lab).any(axis=(1, 2))
        assert np.array_equal(slice_p[:, c] > 0.5, visible)
        assert (slice_p[~visible, c] == pytest.approx(0.03))
    # the regions under 0.5 (mean confidence under 0.5) were removed and counted
    assert sum(removed.values()) == int(((labels > 0) & (shown == 0)).sum()) > 0
    assert (conf[(labels > 0) & (shown == 0)] < 128).all()
    assert regions["ggo"].ids is None and regions["ggo"].features.shape[1] == len(FEATURES)


def test_scan_probability_is_the_most_convincing_region_not_a_count():
    labels = np.zeros((30, 20, 20), np.uint8)
    slice_p = np.full((30, 3), 0.03)
    for k in range(0, 30, 3):       # ten separate small regions, each 0.6
        labels[k, 5:8, 5:8] = GGO
        slice_p[k, 0] = 0.6
    labels[10:14, 12:18, 12:18] = CONSOLIDATION
    slice_p[10:14, 1] = [0.7, 0.95, 0.8, 0.6]
    out = scan_probabilities(labels, slice_p, _model(0.0))
    assert out["ggo"] == pytest.approx(0.6)          # noisy-or would give 0.9999
    assert out["consolidation"] == pytest.approx(0.95)
    assert out["effusion"] == pytest.approx(0.03)   # nothing shown: p_empty


def test_regions_features_and_the_fitted_file_for_other_weights(tmp_path):
    labels = np.zeros((2, 10, 10), np.uint8)
    labels[1, 2:4, 2:4] = GGO
    conf = np.zeros_like(labels)
    conf[1, 2:4, 2:4] = [[255, 255], [0, 0]]
    lung = np.zeros((2, 10, 10), bool)
    lung[1, :, :4] = True
    reg = region_features(labels, GGO, conf, lung)
    assert reg.z.tolist() == [1]
    assert reg.features[0] == pytest.approx([np.log10(4 / 44), 0.5, 1.0])
    _model(1.0).__class__  # noqa: B018 (the dataclass is importable)
    m = _model(1.0)
    m.model_name, m.model_sha256 = "seg", "a" * 64
    m.save(tmp_path / "seg.presence.json")
    got, note = load_for("seg", "a" * 64, models_dir=tmp_path)
    assert got.findings["ggo"].bias == 1.0 and note is None
    got, note = load_for("seg", "b" * 64, models_dir=tmp_path)
    assert got is UNCALIBRATED and "other weights" in note
    got, note = load_for("other", "a" * 64, models_dir=tmp_path)
    assert got is UNCALIBRATED and "missing" in note
    assert KEEP_ALL.findings["ggo"].predict(np.zeros((3, 3))).min() > 0.99


def test_regions_in_the_findings_box_are_the_whole_scans_regions_in_the_same_order():
    """region_features labels only the finding's bounding box; calibration matches its regions to
    label_regions over the whole scan by number, so ids, slices and sizes must agree."""
    rng = np.random.default_rng(3)
    labels = np.zeros((12, 40, 50), np.uint8)
    for _ in range(25):  # scattered blobs of each finding, some touching the box's edges
        z, y, x = rng.integers(2, 11), rng.integers(5, 35), rng.integers(8, 45)
        labels[z, y:y + rng.integers(1, 5), x:x + rng.integers(1, 5)] = rng.integers(1, 4)
    conf = rng.integers(0, 256, labels.shape, dtype=np.uint8)
    for lab in (GGO, 2, 3):
        full, n = label_regions(labels, lab)
        reg = region_features(labels, lab, conf, None)
        assert n == len(reg.z) > 3
        assert reg.box[0].start >= 2 and reg.box[1].start >= 5  # a crop, not the scan
        inside = np.zeros_like(full)
        inside[reg.box] = reg.ids
        np.testing.assert_array_equal(inside, full)
        objs = ndimage.find_objects(full)
        assert reg.z.tolist() == [o[0].start for o in objs]
        sizes = np.bincount(full.ravel(), minlength=n + 1)[1:]
        lung_px = np.full(labels.shape[0], labels[0].size)
        np.testing.assert_allclose(reg.features[:, 0], np.log10(np.maximum(sizes / (lung_px[reg.z] + sizes), 1e-4)))


def test_in_place_reading_and_lung_pixel_counts_give_the_same_reading():
    rng = np.random.default_rng(2)
    labels = np.zeros((12, 40, 40), np.uint8)
    conf = np.zeros_like(labels)
    lung = np.zeros(labels.shape, bool)
    lung[:, 5:35, 3:37] = True
    lung[::3, 5:20] = False
    for k in range(12):
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, 34, 2)
            labels[k, y:y + 5, x:x + 5] = rng.choice([GGO, CONSOLIDATION, 3])
            conf[k, y:y + 5, x:x + 5] = rng.integers(60, 255)
    want = read_evidence(labels, conf, lung, _model(0.0))
    own = labels.copy()
    got = read_evidence(own, conf, lung.sum(axis=(1, 2)), _model(0.0), in_place=True)
    assert got[0] is own and np.array_equal(got[0], want[0]) and got[2] == want[2] and sum(got[2].values()) > 0
    assert np.array_equal(got[1], want[1])
    for key in want[3]:
        assert np.array_equal(got[3][key].features, want[3][key].features)
        assert np.array_equal(got[3][key].z, want[3][key].z) and got[3][key].box == want[3][key].box
