"""The lung gate keeps findings in and next to the lungs and drops those below them."""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from engine.inference.gate import envelope, lung_gate
from engine.labels import CONSOLIDATION, EFFUSION, GGO
from engine.phantom import chest_ct
from engine.types import Geometry, Volume
from engine.anatomy import lung_masks

DICOM_99 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dicom" / "chest_ct_99"


@pytest.fixture(scope="module")
def phantom():
    return chest_ct(shape=(64, 128, 128), spacing=(4.0, 2.8, 2.8), seed=3)


@pytest.fixture(scope="module")
def lungs(phantom):
    return lung_masks(phantom.volume)


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


def test_true_findings_survive_and_findings_outside_the_chest_go(phantom, lungs):
    labels = phantom.labels.copy()
    assert (labels > 0).any()
    kept = lung_gate(phantom.volume, labels, lungs)
    # every phantom finding lies in or at the lungs: at most a few edge voxels of 9094 go
    # (a 3-voxel effusion fragment under 2 mL is removed as too small)
    assert (kept.labels != labels).sum() <= 10
    assert set(kept.removed_by_rule) == {"outside_lungs", "outside_pleural_space", "not_dependent", "apex", "too_small",
                                         "not_fluid_density"}
    assert sum(kept.removed_voxels.values()) == (kept.labels != labels).sum()
    # the kept GGO and consolidation are filled back into the lungs; effusion is not lung
    assert kept.lungs.lung[np.isin(kept.labels, (GGO, CONSOLIDATION))].all()
    assert not kept.lungs.lung[kept.labels == EFFUSION].any()

    truth_lung = phantom.lung_mask
    zs = np.flatnonzero(truth_lung.any(axis=(1, 2)))
    below = zs.min() - 4 if zs.min() >= 4 else None
    fake = labels.copy()
    if below is not None:
        fake[below, 50:70, 50:70] = CONSOLIDATION          # "bowel" on a slice without lung
    z = int(zs[len(zs) // 2])
    gated = lung_gate(phantom.volume, fake, lungs)
    if below is not None:
        assert (gated.labels[below] == 0).all()
        assert not gated.lung_slices[below] and gated.lung_slices[z]
        assert gated.removed_by_rule["outside_lungs"]["consolidation"] >= 400


def test_effusion_next_to_the_lung_is_kept_and_far_effusion_is_not(phantom, lungs):
    labels = np.zeros_like(phantom.labels)
    eff = phantom.labels == EFFUSION
    assert eff.any()
    labels[eff] = EFFUSION
    kept = lung_gate(phantom.volume, labels, lungs)
    assert (kept.labels == EFFUSION).sum() >= eff.sum() - 3      # all but a 3-voxel fragment (too small)
    assert kept.removed_voxels == {"effusion": int(eff.sum() - (kept.labels == EFFUSION).sum())}
    far = np.zeros_like(labels)
    far[:6, 10:20, 60:70] = EFFUSION                      # the lowest slices, no lung there
    assert lung_gate(phantom.volume, far, lungs).labels.sum() == 0


def test_effusion_at_the_apex_in_front_or_of_lung_density_is_removed(phantom, lungs):
    v = phantom.volume
    zs = np.flatnonzero(lungs.lung.any(axis=(1, 2)))
    top = int(zs[-1]) - 1                                 # k grows superior (LPS): the apex
    ring = ndimage.binary_dilation(lungs.right[top], iterations=2) & ~lungs.right[top]
    ys = np.nonzero(lungs.right[top])[0]
    apex = np.zeros_like(phantom.labels)
    apex[top][ring & (np.arange(128)[:, None] > ys.mean())] = EFFUSION   # posterior, but at the apex
    g = lung_gate(v, apex, lungs)
    assert g.labels.sum() == 0 and g.removed_by_rule["apex"]["effusion"] == int((apex > 0).sum())
    # a true effusion moved in front of the lung (anterior quarter) is not dependent
    mid = int(zs[len(zs) // 3])
    ys = np.nonzero(lungs.right[mid])[0]
    front = np.zeros_like(phantom.labels)
    ring = ndimage.binary_dilation(lungs.right[mid], iterations=2) & ~lungs.right[mid]
    front[mid][ring & (np.arange(128)[:, None] < ys.min() + 2)] = EFFUSION
    g = lung_gate(v, front, lungs)
    assert g.labels.sum() == 0 and g.removed_by_rule["not_dependent"]["effusion"] > 0
    # the phantom's own effusion filled with lung-density HU: not fluid, removed on the HU scan
    eff = phantom.labels == EFFUSION
    arr = v.array.copy()
    arr[eff] = -650
    lungy = Volume(arr, v.geometry, is_hu=True)
    labels = np.where(eff, EFFUSION, 0).astype(np.uint8)
    g = lung_gate(lungy, labels, lungs)
    assert g.labels.sum() == 0 and g.removed_by_rule["not_fluid_density"]["effusion"] >= int(eff.sum()) - 3
    # the same image read as 8-bit has no HU: the density rule does not apply
    assert lung_gate(v, labels, lungs).removed_by_rule["not_fluid_density"] == {}


def test_no_lung_removes_every_finding():
    v = Volume(np.full((10, 32, 32), 40, np.int16), Geometry((10, 32, 32), spacing=(2.0, 1.0, 1.0)), is_hu=True)
    labels = np.zeros((10, 32, 32), np.uint8)
    labels[3:6, 10:20, 10:20] = GGO
    labels[7, 10:20, 10:20] = EFFUSION
    g = lung_gate(v, labels, None)
    assert g.lungs is None and g.labels.sum() == 0
    assert g.removed_by_rule["outside_lungs"] == {"ggo": 300}
    assert g.removed_by_rule["outside_pleural_space"] == {"effusion": 100}


@pytest.mark.skipif(not DICOM_99.is_dir(), reason="needs ../shared/data/dicom/chest_ct_99")
def test_default_model_finds_under_half_a_percent_of_clear_lungs_as_infection():
    """Issue 4's check: a non-COVID chest CT (clear lungs), the shipped default model."""
    from engine.inference import Predictor
    from engine.io import load

    v = load(DICOM_99)
    pred = Predictor(device="cpu", findings_model=False, covid_model=False, threads=2).predict(v)
    lungs = pred.lungs.lung
    infected = np.isin(pred.labels, (GGO, CONSOLIDATION)) & lungs
    fraction = infected.sum() / lungs.sum()
    assert lungs.sum() * v.geometry.voxel_volume_ml > 2000   # the lungs were found (about 4.5 L)
    assert fraction < 0.005, f"{100 * fraction:.2f} % of the lungs marked as infection"
    assert sum(pred.rules_removed["outside_lungs"].values()) > 0     # bowel and stomach went
    assert set(pred.rules_removed["vessel"]) == {"ggo", "consolidation"}  # the vessel rule ran and counted
    assert pred.scan_probabilities["effusion"] <= 0.10, pred.scan_probabilities
    # severity counts zones of at least 0.5 % involvement, the category needs 0.5 % of the lung: both 0 / negative
    from engine.inference.summary import findings_document, quantify_prediction
    q, notes = quantify_prediction(v, pred)
    doc = findings_document(pred, v, q, notes=notes)
    assert [s["total"] for s in doc["severity"]] == [0, 0]
    assert doc["rsna_category"]["category"] == "negative"
    assert doc["involvement_percent_of_lung"] < 0.5


def test_coarse_grid_is_a_max_pool_with_padding():
    from engine.inference.gate import _coarse_any
    rng = np.random.default_rng(0)
    m = rng.random((3, 130, 129)) > 0.97
    ref = np.pad(m, ((0, 0), (0, 2), (0, 3))).reshape(3, 33, 4, 33, 4).any(axis=(2, 4))
    assert np.array_equal(_coarse_any(m, 4), ref)
    assert np.array_equal(_coarse_any(m, 1), m)


def test_region_median_sorts_only_the_regions():
    from engine.inference.gate import _median_per_region
    lab = np.array([[0, 1, 1, 2], [2, 2, 0, 1]])
    hu = np.array([[9, 5, 1, 7], [3, 100, 0, 2]], float)
    assert _median_per_region(hu, lab, 2).tolist() == [0.0, 2.0, 7.0]
