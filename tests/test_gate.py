"""The lung gate keeps findings in and next to the lungs and drops those below them."""

from pathlib import Path

import numpy as np
import pytest

from engine.inference.gate import envelope, lung_gate
from engine.labels import CONSOLIDATION, EFFUSION, GGO
from engine.phantom import chest_ct
from engine.quantification.lungs import lung_masks, unite_findings

DICOM_99 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dicom" / "chest_ct_99"


@pytest.fixture(scope="module")
def phantom():
    return chest_ct(shape=(64, 128, 128), spacing=(4.0, 2.8, 2.8), seed=3)


def test_envelope_fills_between_lung_pixels_along_rows_and_columns():
    ring = np.zeros((1, 7, 7), dtype=bool)
    ring[0, 1:6, 1:6] = True
    ring[0, 2:5, 2:5] = False                  # a dense finding inside aerated lung
    env = envelope([ring])
    assert env[0, 1:6, 1:6].all() and env.sum() == 25
    c_shape = ring.copy()
    c_shape[0, 2:5, 5] = False                 # open to the right: the notch is not enclosed
    env = envelope([c_shape])
    assert not env[0, 3, 3]                    # lung above and below, none to its right
    assert env[0, 1, 1:6].all() and env[0, 5, 1:6].all()
    two = envelope([c_shape, ring])  # sides are filled separately, then united
    assert two[0, 3, 3]


def test_true_findings_survive_and_findings_outside_the_chest_go(phantom):
    labels = phantom.labels.copy()
    assert (labels > 0).any()
    kept = lung_gate(phantom.volume, labels)
    assert np.array_equal(kept.labels, labels)  # every phantom finding lies in or at the lungs
    assert kept.removed_voxels == {}

    lungs = phantom.lung_mask
    zs = np.flatnonzero(lungs.any(axis=(1, 2)))
    below = zs.min() - 4 if zs.min() >= 4 else None
    fake = labels.copy()
    if below is not None:
        fake[below, 50:70, 50:70] = CONSOLIDATION          # "bowel" on a slice without lung
    z = int(zs[len(zs) // 2])
    gated = lung_gate(phantom.volume, fake)
    if below is not None:
        assert (gated.labels[below] == 0).all()
        assert not gated.lung_slices[below] and gated.lung_slices[z]
        assert gated.removed_voxels["consolidation"] == 400
    # everything that was in the phantom's truth is still there
    assert np.array_equal(gated.labels[labels > 0], labels[labels > 0])


def test_effusion_next_to_the_lung_is_kept_and_far_effusion_is_not(phantom):
    labels = np.zeros_like(phantom.labels)
    eff = phantom.labels == EFFUSION
    assert eff.any()
    labels[eff] = EFFUSION
    assert np.array_equal(lung_gate(phantom.volume, labels).labels, labels)
    far = np.zeros_like(labels)
    far[:6, 10:20, 60:70] = EFFUSION                      # the lowest slices, no lung there
    assert lung_gate(phantom.volume, far).labels.sum() == 0


def test_no_lung_means_nothing_removed():
    from engine.types import Geometry, Volume
    v = Volume(np.full((10, 32, 32), 40, np.int16), Geometry((10, 32, 32), spacing=(2.0, 1.0, 1.0)), is_hu=True)
    labels = np.zeros((10, 32, 32), np.uint8)
    labels[3:6, 10:20, 10:20] = GGO
    g = lung_gate(v, labels)
    assert g.lungs is None and np.array_equal(g.labels, labels)


@pytest.mark.skipif(not DICOM_99.is_dir(), reason="needs ../shared/data/dicom/chest_ct_99")
def test_default_model_finds_under_half_a_percent_of_clear_lungs_as_infection():
    """Issue 4's check: a non-COVID chest CT (clear lungs), the shipped default model."""
    from engine.inference import Predictor
    from engine.io import load

    v = load(DICOM_99)
    pred = Predictor(device="cpu", findings_model=False, covid_model=False, threads=2).predict(v)
    lungs = unite_findings(lung_masks(v), pred.labels, v.geometry).lung
    infected = np.isin(pred.labels, (GGO, CONSOLIDATION)) & lungs
    fraction = infected.sum() / lungs.sum()
    assert lungs.sum() * v.geometry.voxel_volume_ml > 2000   # the lungs were found (about 4.5 L)
    assert fraction < 0.005, f"{100 * fraction:.2f} % of the lungs marked as infection"
    assert any("outside the lungs" in n for n in pred.notes)


def test_coarse_grid_is_a_max_pool_with_padding():
    from engine.inference.gate import _coarse_any
    rng = np.random.default_rng(0)
    m = rng.random((3, 130, 129)) > 0.97
    ref = np.pad(m, ((0, 0), (0, 2), (0, 3))).reshape(3, 33, 4, 33, 4).any(axis=(2, 4))
    assert np.array_equal(_coarse_any(m, 4), ref)
    assert np.array_equal(_coarse_any(m, 1), m)
