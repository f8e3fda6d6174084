"""The synthetic chest CT: determinism, anatomy, ground truth and its volumes."""

from __future__ import annotations

import numpy as np
import pytest

from engine.labels import CONSOLIDATION, EFFUSION, GGO
from engine.phantom import chest_ct

SMALL = dict(shape=(64, 128, 128), spacing=(4.0, 2.8, 2.8))


@pytest.fixture(scope="module")
def ph():
    return chest_ct(**SMALL)


def test_deterministic_for_a_seed(ph):
    again = chest_ct(**SMALL)
    assert np.array_equal(ph.volume.array, again.volume.array)
    assert np.array_equal(ph.labels, again.labels)
    other = chest_ct(seed=1, **SMALL)
    assert not np.array_equal(ph.labels, other.labels)


def test_volume_type_and_geometry(ph):
    v = ph.volume
    assert v.array.dtype == np.int16 and v.is_hu and v.format == "phantom"
    assert v.array.shape == (64, 128, 128) and v.geometry.spacing == (4.0, 2.8, 2.8)
    assert v.geometry.orientation_code() == "LPS"
    assert ph.labels.dtype == np.uint8 and ph.labels.shape == v.shape
    for m in (ph.lung_mask, ph.lung_left, ph.lung_right):
        assert m.dtype == bool and m.shape == v.shape
    assert v.meta["patient_id"] and v.meta["modality"] == "CT"


def test_hu_inside_structures(ph):
    a = ph.volume.array
    assert np.median(a[0:2, 0:4, :]) == pytest.approx(-1000, abs=15)  # air in front of the body
    parench = ph.lung_mask & (ph.labels == 0)
    assert -880 < np.median(a[parench]) < -820
    _, py, _ = np.nonzero(parench)
    vals = a[parench]
    assert np.median(vals[py > np.percentile(py, 80)]) > np.median(vals[py < np.percentile(py, 20)]) + 10  # dependent
    assert 5 < np.std(a[0:4, 0:4, :]) < 40  # noise about 20 HU
    assert 0 <= np.median(a[ph.labels == EFFUSION]) <= 25
    assert -560 <= np.median(a[ph.labels == GGO]) <= -380
    assert 10 <= np.median(a[ph.labels == CONSOLIDATION]) <= 50
    assert a.max() > 700  # cortical bone
    assert a.min() >= -1024


def test_labels_inside_lungs_and_pleura(ph):
    lab = ph.labels
    for value in (GGO, CONSOLIDATION, EFFUSION):
        assert np.count_nonzero(lab == value) > 20, value
    assert np.all(ph.lung_mask[(lab == GGO) | (lab == CONSOLIDATION)])
    assert not np.any(ph.lung_mask[lab == EFFUSION])  # effusion displaces lung
    assert np.array_equal(ph.lung_mask, ph.lung_left | ph.lung_right)
    assert not np.any(ph.lung_left & ph.lung_right)
    # effusion lies posteriorly (high y) and low (small z) in the lungs
    zz, yy, _ = np.nonzero(lab == EFFUSION)
    lz, ly, _ = np.nonzero(ph.lung_mask)
    assert yy.mean() > ly.mean() and zz.mean() < lz.mean()


def test_expected_ml_equals_counts(ph):
    vox = ph.volume.geometry.voxel_volume_ml
    exp = ph.expected_ml
    assert exp["ggo"] == pytest.approx(np.count_nonzero(ph.labels == GGO) * vox)
    assert exp["consolidation"] == pytest.approx(np.count_nonzero(ph.labels == CONSOLIDATION) * vox)
    assert exp["effusion"] == pytest.approx(np.count_nonzero(ph.labels == EFFUSION) * vox)
    assert exp["lung_left"] == pytest.approx(np.count_nonzero(ph.lung_left) * vox)
    assert exp["lung_right"] == pytest.approx(np.count_nonzero(ph.lung_right) * vox)
    assert 1500 < exp["lung_left"] < 3500 and 1500 < exp["lung_right"] < 3500  # adult lungs, mL


def test_orientation_lps(ph):
    nz, ny, nx = ph.volume.shape
    _, _, lx = np.nonzero(ph.lung_left)
    _, _, rx = np.nonzero(ph.lung_right)
    assert lx.mean() > nx / 2 > rx.mean()  # patient left = high x in LPS
    bone = ph.volume.array > 600
    _, by, _ = np.nonzero(bone[:, :, nx // 2 - 3: nx // 2 + 3])
    assert by.mean() > ny / 2  # spine posterior: anterior is the top row
    # trachea (air inside the body centre) only in the upper slices: z increases superior
    centre = ph.volume.array[:, ny // 2 - 8: ny // 2 + 4, nx // 2 - 4: nx // 2 + 4]
    air = (centre < -900).any(axis=(1, 2))
    assert air[-5:].all() and not air[:10].any()


def test_healthy_phantom_has_no_labels():
    ph = chest_ct(lesions=False, **SMALL)
    assert not ph.labels.any()
    assert ph.expected_ml["ggo"] == 0.0 and ph.expected_ml["effusion"] == 0.0
    assert ph.expected_ml["lung_left"] > 1000


def test_anatomy_scales_with_grid(ph):
    big = chest_ct(shape=(100, 192, 192), spacing=(2.56, 1.866, 1.866))
    # same field of view: lung volumes agree within a few percent
    for key in ("lung_left", "lung_right"):
        assert big.expected_ml[key] == pytest.approx(ph.expected_ml[key], rel=0.08)


def test_default_spacing_keeps_field_of_view():
    ph = chest_ct(shape=(30, 64, 64))
    assert ph.volume.geometry.spacing == pytest.approx((10.0, 5.6, 5.6))
    assert 1500 < ph.expected_ml["lung_left"] < 3500


def test_rejects_tiny_shapes():
    with pytest.raises(ValueError):
        chest_ct(shape=(4, 16, 16))


if __name__ == "__main__":  # benchmark print, not a test
    import time
    t0 = time.perf_counter()
    p = chest_ct()
    print(f"chest_ct 300x512x512: {time.perf_counter() - t0:.2f} s; {p.expected_ml}")


def test_small_thick_slice_phantom_builds():
    """Vessels that leave a small field of view are skipped, not a crash (24 slices of 6 mm)."""
    from engine.phantom import chest_ct as build

    ph = build(shape=(24, 96, 96), spacing=(6.0, 3.2, 3.2), seed=5)
    assert ph.volume.shape == (24, 96, 96)
    assert set(np.unique(ph.labels)) <= {0, 1, 2, 3} and ph.labels.any()
