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


def test_a_slice_without_lung_keeps_no_ggo_or_consolidation(phantom, lungs):
    """The 3D margin does not reach onto a slice without lung (it kept the liver and stomach under the bases
    of the radiopaedia stacks, where 10 mm is 10 slices); effusion may go on into the costophrenic recess
    below the base only when the spacing is known."""
    zs = np.flatnonzero(lungs.lung.any(axis=(1, 2)))
    base = int(zs.min())                                      # slice index grows towards the head
    ys, xs = np.nonzero(lungs.lung[base])
    labels = np.zeros_like(phantom.labels)
    labels[base - 1, ys.min():ys.max() + 1, xs.min():xs.max() + 1] = CONSOLIDATION   # 4 mm under the lung
    labels[base - 2, ys.min():ys.max() + 1, xs.min():xs.max() + 1] = GGO             # 8 mm under it
    n = int((labels > 0).sum())
    g = lung_gate(phantom.volume, labels, lungs)
    assert g.labels.sum() == 0
    assert g.removed_by_rule["outside_lungs"] == {"ggo": n // 2, "consolidation": n // 2}
    # the phantom's effusion goes on below the lung base (its recess): kept with known spacing
    eff = np.where(phantom.labels == EFFUSION, EFFUSION, 0).astype(np.uint8)
    below = int((eff[:base] > 0).sum())
    assert below >= 10
    known = lung_gate(phantom.volume, eff, lungs)
    assert (known.labels[:base] == EFFUSION).sum() == below
    # the same images as a stack without spacing: no finding at all on a slice without lung
    geo = phantom.volume.geometry
    stack = Volume(phantom.volume.array, Geometry(geo.shape, spacing=(1.0, 1.0, 1.0), spacing_known=False),
                   is_hu=True)
    both = np.where(labels > 0, labels, eff).astype(np.uint8)
    g = lung_gate(stack, both, lungs)
    assert not g.labels[~g.lung_slices].any()
    # above the base the effusion stays (and its 3-voxel fragment too: no spacing, no size rule)
    assert (g.labels[base:] == EFFUSION).sum() == (known.labels[base:] == EFFUSION).sum() + 3
    torch = pytest.importorskip("torch")
    from engine.inference.gate_torch import lung_gate_torch
    _same_gate(lung_gate_torch(stack, torch.from_numpy(both), lungs), g)   # the device path: the same rule


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
    from engine.inference.gate_parts import _coarse_any
    rng = np.random.default_rng(0)
    m = rng.random((3, 130, 129)) > 0.97
    ref = np.pad(m, ((0, 0), (0, 2), (0, 3))).reshape(3, 33, 4, 33, 4).any(axis=(2, 4))
    assert np.array_equal(_coarse_any(m, 4), ref)
    assert np.array_equal(_coarse_any(m, 1), m)


def test_region_median_sorts_only_the_regions():
    from engine.inference.gate_parts import _median_per_region
    lab = np.array([[0, 1, 1, 2], [2, 2, 0, 1]])
    hu = np.array([[9, 5, 1, 7], [3, 100, 0, 2]], float)
    assert _median_per_region(hu, lab, 2).tolist() == [0.0, 2.0, 7.0]


# -- the linear rewrite (issue 15): boxes, slabs, cropped distance, cc3d regions -----------------


def test_bounding_box_and_slabs():
    from engine.anatomy.boxes import bounding_box, z_slabs
    m = np.zeros((6, 5, 7), np.uint8)
    assert bounding_box(m) is None
    m[2, 1, 3] = 2
    m[4, 3, 5] = 1
    assert bounding_box(m) == (slice(2, 5), slice(1, 4), slice(3, 6))
    assert bounding_box(m > 0) == bounding_box(m)
    # 35 voxels per slice: 100 bytes hold 2 slices; a slab never has fewer than one slice
    assert list(z_slabs((6, 5, 7), budget=100)) == [slice(0, 2), slice(2, 4), slice(4, 6)]
    assert list(z_slabs((3, 5, 7), budget=1)) == [slice(0, 1), slice(1, 2), slice(2, 3)]
    assert list(z_slabs((3, 5, 7), itemsize=4, budget=280)) == [slice(0, 2), slice(2, 3)]


@pytest.mark.parametrize("f", [2, 3, 4, 8])
def test_coarse_grid_reads_words_of_f_columns(f):
    from engine.inference.gate_parts import _coarse_any
    rng = np.random.default_rng(f)
    for shape in ((2, 64, 64), (3, 70, 61)):
        m = rng.random(shape) > 0.95
        py, px = (-shape[1]) % f, (-shape[2]) % f
        ref = np.pad(m, ((0, 0), (0, py), (0, px))).reshape(shape[0], (shape[1] + py) // f, f,
                                                           (shape[2] + px) // f, f).any(axis=(2, 4))
        assert np.array_equal(_coarse_any(m, f), ref)
        view = m[:, :, 1:]                                      # not contiguous: read through a copy
        assert np.array_equal(_coarse_any(view, f), _coarse_any(np.ascontiguousarray(view), f))
        assert _coarse_any(view, f).sum() > 0


def test_min_voxels_is_the_floating_point_threshold():
    from engine.inference.gate_parts import _min_voxels
    assert _min_voxels(2.0, 0.001) == 2000
    assert _min_voxels(2.0, 0.5) == 4
    for v in (1 / 3, 0.0007, 0.4 * 0.7 * 0.7 / 1000 * 1000, 0.00049, 2.5):
        t = _min_voxels(2.0, v)
        assert t * v >= 2.0 and (t == 0 or (t - 1) * v < 2.0)


def test_cropped_distance_matches_the_whole_grid(phantom, lungs):
    from engine.inference.gate_parts import _coarse_any, _distance_masks, _lung_cells, _paste
    f = 1
    lung_slices = lungs.lung.any(axis=(1, 2))
    cells = _lung_cells(lungs, lung_slices, f)
    box, masks = _distance_masks(cells, lungs.shape, phantom.volume, f, (10.0, 20.0, 60.0))
    env = envelope([_coarse_any(lungs.left, f), _coarse_any(lungs.right, f)])
    sz, sy, sx = phantom.volume.geometry.spacing
    dist = ndimage.distance_transform_edt(~env, sampling=(sz, sy, sx))
    whole = tuple(slice(0, n) for n in env.shape)
    assert box != whole                                      # it was cropped (64 slices of 4 mm)
    for m, mm in zip(masks, (10.0, 20.0, 60.0)):
        assert np.array_equal(_paste(m, box, whole), dist <= mm)
    assert (dist <= 60.0).sum() > (dist <= 10.0).sum() > env.sum()


def test_posterior_rows_use_the_nearest_lung_slice_the_lower_on_a_tie():
    from engine.inference.gate_parts import _posterior_rows
    g = Geometry((8, 20, 10), spacing=(2.0, 1.0, 1.0))
    right = np.zeros((8, 20, 10), bool)
    right[2, 4:8, 2:4] = True                                # rows 4..7: posterior from 4 + 0.25 * 3 = 4.75
    right[6, 10:18, 2:4] = True                              # rows 10..17: from 10 + 0.25 * 7 = 11.75
    rows = _posterior_rows((right.any(axis=2),), Volume(np.zeros((8, 20, 10), np.int16), g), slice(0, 20))
    first = [int(np.argmax(r)) for r in rows]
    # slices 0-3 use slice 2, 5-7 slice 6; slice 4 is 2 from both and takes the lower (as argmin did)
    assert first == [5, 5, 5, 5, 5, 12, 12, 12]
    assert rows.sum(axis=1).tolist() == [15] * 5 + [8] * 3
    part = _posterior_rows((right.any(axis=2),), Volume(np.zeros((8, 20, 10), np.int16), g), slice(3, 13))
    assert np.array_equal(part, rows[:, 3:13])
    flipped = Geometry((8, 20, 10), spacing=(2.0, 1.0, 1.0), direction=((1, 0, 0), (0, -1, 0), (0, 0, 1)))
    rows_f = _posterior_rows((right.any(axis=2),), Volume(np.zeros((8, 20, 10), np.int16), flipped), slice(0, 20))
    # anterior is now the high rows: kept rows are those <= 7 - 0.75 = 6.25 on slice 2's side
    assert rows_f[0].tolist() == [True] * 7 + [False] * 13


def test_slab_size_does_not_change_the_gate(phantom, lungs, monkeypatch):
    from engine.anatomy import boxes
    labels = phantom.labels.copy()
    labels[:5, 40:70, 40:90] = CONSOLIDATION                 # below the lungs
    labels[30, 5:15, 5:30] = EFFUSION                         # far from them
    ref = lung_gate(phantom.volume, labels, lungs)
    monkeypatch.setattr(boxes, "SLAB_BYTES", 1)             # one slice per slab
    one = lung_gate(phantom.volume, labels, lungs)
    assert np.array_equal(one.labels, ref.labels) and one.removed_by_rule == ref.removed_by_rule
    assert np.array_equal(one.lungs.zones, ref.lungs.zones) and one.lungs.extents == ref.lungs.extents
    base = lung_gate(phantom.volume, phantom.labels, lungs).removed_by_rule   # 3 edge voxels of the phantom
    assert ref.removed_by_rule["outside_lungs"]["consolidation"] == 5 * 30 * 50 + base["outside_lungs"]["consolidation"]
    assert ref.removed_by_rule["outside_pleural_space"]["effusion"] == 10 * 25


def test_filled_lungs_keep_the_left_lung_where_the_masks_overlap():
    from engine.anatomy import LungMasks, unite_findings
    g = Geometry((2, 6, 8), spacing=(1.0, 1.0, 1.0))
    left = np.zeros((2, 6, 8), bool)
    right = np.zeros((2, 6, 8), bool)
    left[:, 1:5, 5:7] = True
    right[:, 1:5, 1:3] = True
    good = LungMasks.from_masks(left, right, g)
    overlapping = LungMasks(left=left, right=right | left, zones=good.zones, extents=good.extents)
    labels = np.zeros((2, 6, 8), np.uint8)
    labels[0, 2, 3] = GGO                                     # outside both, on the right side (column 3)
    labels[0, 2, 4] = CONSOLIDATION                           # outside both, on the left side (column 4)
    labels[1, 2, 1] = EFFUSION                                # inside the right lung: leaves it
    for lungs in (good, overlapping):
        u = unite_findings(lungs, labels, g)
        assert u.right[0, 2, 3] and u.left[0, 2, 4] and not u.right[1, 2, 1]
        assert not (u.left & u.right).any()
        assert u.zone_voxels[1:7].sum() == 16 + 16 + 2 - 1


# -- the torch path (CUDA in Run AI; tested here on the CPU against the numpy path) --------------


def _same_gate(a, b) -> None:
    assert np.array_equal(a.labels, b.labels) and a.labels.dtype == b.labels.dtype
    assert np.array_equal(a.lung_slices, b.lung_slices)
    assert repr(a.removed_by_rule) == repr(b.removed_by_rule) and repr(a.removed_voxels) == repr(b.removed_voxels)
    assert (a.lungs is None) == (b.lungs is None)
    if a.lungs is not None:
        for k in ("left", "right", "zones", "zone_voxels"):
            x, y = getattr(a.lungs, k), getattr(b.lungs, k)
            assert np.array_equal(x, y) and x.dtype == y.dtype, k
        assert a.lungs.extents == b.lungs.extents and a.lungs.method == b.lungs.method


def test_torch_gate_equals_the_numpy_gate(phantom, lungs):
    torch = pytest.importorskip("torch")
    from engine.inference.gate_torch import lung_gate_torch
    rng = np.random.default_rng(7)
    labels = phantom.labels.copy()
    for _ in range(30):                                       # findings anywhere, as a model marks them
        z, y, x = rng.integers(0, 60), rng.integers(0, 120), rng.integers(0, 120)
        labels[z:z + rng.integers(1, 6), y:y + rng.integers(2, 20), x:x + rng.integers(2, 20)] = rng.integers(1, 4)
    ref = lung_gate(phantom.volume, labels, lungs)
    assert all(ref.removed_by_rule[r] for r in ("outside_lungs", "outside_pleural_space", "not_dependent", "apex",
                                                "not_fluid_density"))   # every rule had work to do
    _same_gate(lung_gate_torch(phantom.volume, torch.from_numpy(labels), lungs), ref)
    _same_gate(lung_gate_torch(phantom.volume, labels, lungs, device="cpu"), ref)
    _same_gate(lung_gate_torch(phantom.volume, labels, None), lung_gate(phantom.volume, labels, None))
    # a CPU tensor handed to lung_gate is read as numpy
    _same_gate(lung_gate(phantom.volume, torch.from_numpy(labels), lungs), ref)


def test_torch_cross_dilation_and_pooling_match_scipy_and_numpy():
    torch = pytest.importorskip("torch")
    from engine.inference.gate_parts import _coarse_any
    from engine.inference.gate_torch import _dilate_cross, _pool, _up
    rng = np.random.default_rng(1)
    m = rng.random((3, 37, 41)) > 0.97
    m[0, 0, 0] = m[1, -1, -1] = True                          # at the border: zero outside the image
    ref = np.stack([ndimage.binary_dilation(s, iterations=2) for s in m])
    assert np.array_equal(_dilate_cross(torch.from_numpy(m), 2).numpy(), ref)
    for f in (1, 3, 4):
        cells = _pool(torch.from_numpy(m), f).numpy()
        assert np.array_equal(cells, _coarse_any(m, f))
        up = _up(torch.from_numpy(cells), f, m.shape).numpy()
        assert up.shape == m.shape and np.array_equal(up[:, ::f, ::f], cells)


def test_torch_windowed_distance_equals_scipy_within_the_reach():
    torch = pytest.importorskip("torch")
    from engine.inference.gate_torch import _squared_distance
    rng = np.random.default_rng(0)
    compared = 0
    for sampling in ((1.0, 2.8, 2.8), (3.0, 2.5, 2.5), (1.25, 3.12, 2.8), (5.0, 0.7, 1.0)):
        env = rng.random((18, 30, 26)) > 0.995
        env[9, 15, 13] = True
        dist = ndimage.distance_transform_edt(~env, sampling=sampling)
        mine = np.sqrt(_squared_distance(torch.from_numpy(env), sampling, 20.0).numpy())
        near = dist <= 20.0
        assert np.array_equal(mine[near], dist[near])          # the same float64 values, not just close
        assert (mine[~near] > 20.0).all()
        compared += int(near.sum())
    assert compared > 10000


def test_distance_masks_from_the_feature_transform_equal_scipys_distances():
    from engine.inference.gate_parts import _within
    rng = np.random.default_rng(3)
    for sampling in ((1.0, 2.8, 2.8), (3.0, 2.72, 2.72), (1e6, 1.25, 3.12)):
        outside = rng.random((12, 40, 33)) > 0.004
        outside[6, 20, 16] = False
        dist = ndimage.distance_transform_edt(outside, sampling=sampling)
        masks = _within(outside, sampling, (10.0, 20.0, 60.0))
        for m, mm in zip(masks, (10.0, 20.0, 60.0)):
            assert np.array_equal(m, dist <= mm)
        assert masks[0].sum() < masks[1].sum() <= masks[2].sum()


def test_gate_on_cuda_equals_the_numpy_gate(phantom, lungs):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    labels = phantom.labels.copy()
    labels[:5, 40:70, 40:90] = CONSOLIDATION
    labels[30, 5:15, 5:30] = EFFUSION
    ref = lung_gate(phantom.volume, labels, lungs)
    _same_gate(lung_gate(phantom.volume, labels, lungs, device="cuda"), ref)
    _same_gate(lung_gate(phantom.volume, torch.from_numpy(labels).cuda(), lungs), ref)


def _eager_zones(left: np.ndarray, right: np.ndarray, g: Geometry) -> np.ndarray:
    """The zone code of every voxel as the module states it, voxel by voxel class (the eager formulation)."""
    from engine.anatomy.zones import LEFT, RIGHT, zone_tables
    nz, ny, nx = left.shape
    extents, cols = {}, {}
    for name, side, mask in (("right", RIGHT, right), ("left", LEFT, left)):
        ks = np.flatnonzero(mask.any(axis=(1, 2)))
        extents[name] = (int(ks[0]), int(ks[-1])) if ks.size else None
        if mask.any():
            cols[side] = float(np.average(np.arange(nx), weights=mask.sum(axis=(0, 1))))
    outside, rc, lc = zone_tables(extents, cols, nz, nx, g)
    return np.where(left, lc[:, None, None], np.where(right, rc[:, None, None], outside[:, None, :])).astype(np.uint8)


def test_zones_are_made_on_first_use_and_by_box_with_the_same_values(phantom, lungs):
    from engine.anatomy import LungMasks
    g = phantom.volume.geometry
    fresh = LungMasks.from_masks(lungs.left, lungs.right, g)
    assert "_zones" not in fresh.__dict__ or fresh.__dict__["_zones"] is None  # not made yet
    box = (slice(10, 40), slice(20, 90), slice(5, 120))
    want = _eager_zones(lungs.left, lungs.right & ~lungs.left, g)
    assert np.array_equal(fresh.zones_in(box), want[box])
    assert fresh.__dict__.get("_zones") is None                             # a box does not make the whole array
    assert np.array_equal(fresh.zones, want) and fresh.zones is fresh.zones  # made once, then kept
    assert set(np.unique(want)) <= set(range(1, 13)) and (want <= 6).any() and (want >= 7).any()
    assert np.array_equal(fresh.zones_in(box), want[box])
    assert fresh.zone_voxels[1:7].sum() == int((lungs.left | lungs.right).sum())


def test_gate_filling_its_own_lungs_in_place_equals_the_copy(phantom, lungs):
    from engine.anatomy import LungMasks
    labels = phantom.labels.copy()
    labels[:5, 40:70, 40:90] = CONSOLIDATION                 # below the lungs: removed
    labels[20, 30:40, 20:30] = GGO                            # near the pleura: filled into a lung
    before = lungs.left.copy(), lungs.right.copy()
    ref = lung_gate(phantom.volume, labels, lungs)
    left, right = lungs.left.copy(), lungs.right.copy()
    own = LungMasks.from_masks(left, right, phantom.volume.geometry)
    got = lung_gate(phantom.volume, labels, own, own_lungs=True)
    assert got.lungs.left is own.left and got.lungs.right is own.right   # no full-size copy was made
    assert np.array_equal(got.labels, ref.labels) and got.removed_by_rule == ref.removed_by_rule
    for a in ("left", "right", "zones"):
        assert np.array_equal(getattr(got.lungs, a), getattr(ref.lungs, a)), a
    assert np.array_equal(got.lungs.zone_voxels, ref.lungs.zone_voxels) and got.lungs.extents == ref.lungs.extents
    assert not np.array_equal(ref.lungs.left | ref.lungs.right, lungs.left | lungs.right)  # something was filled
    assert np.array_equal(lungs.left, before[0]) and np.array_equal(lungs.right, before[1])  # not own: copied


def test_device_gate_on_torch_cpu_equals_the_numpy_gate_with_and_without_kept_distances(phantom, monkeypatch):
    """The device gate (here on torch's CPU) uses the lung distances kept with the lungs when they
    exist (made when the scan opened) and computes its own otherwise: the same result either way."""
    from engine.anatomy import lung_masks
    from engine.inference import gate
    from engine.inference.gate_torch import lung_gate_torch
    labels = phantom.labels.copy()
    labels[:5, 40:70, 40:90] = CONSOLIDATION
    labels[30, 5:15, 5:30] = EFFUSION
    fresh = lung_masks(phantom.volume)
    ref = lung_gate(phantom.volume, labels, lung_masks(phantom.volume))
    _same_gate(lung_gate_torch(phantom.volume, labels, fresh, device="cpu"), ref)
    margins = (gate.LUNG_MARGIN_MM, gate.EFFUSION_MARGIN_MM, gate.EFFUSION_REACH_MM)
    assert gate.kept_prep(phantom.volume, fresh, margins) is None
    made = gate.prepare_gate(phantom.volume, fresh)
    assert not made.masks[0].flags.writeable  # shared by every gate run on these lungs
    import engine.inference.gate_torch as gt
    monkeypatch.setattr(gt, "_distance_masks_t", None)  # not called: a call would raise
    _same_gate(lung_gate_torch(phantom.volume, labels, fresh, device="cpu"), ref)


@pytest.mark.shared_data
def test_the_app_way_reads_an_8bit_stack_as_predict_does(shared_data):
    """The app hands Run AI the rules' lungs it found when the scan opened; on 8-bit lung-window images the
    reading unites them with the lung model, as `engine predict` does when it finds the lungs itself. The
    two readings are the same bytes (before, the app's skipped the model: other lungs, other labels), and the
    caller's lungs are not changed."""
    from engine import io
    from engine.anatomy import lung_masks
    from engine.inference import Predictor

    v = io.load(shared_data / "radiopaedia_covid_stacks" / "case_74724")  # 45 slices (a part finds no lungs)
    p = Predictor(device="cpu", findings_model=False, keep_probabilities=False)
    own = p.predict(v)
    given = lung_masks(v)
    before = given.label_map()
    app = p.predict(v, lungs=given)
    assert own.lungs.method == app.lungs.method == "model+intensity-rules"
    assert np.array_equal(own.labels, app.labels) and np.array_equal(own.lungs.label_map(), app.lungs.label_map())
    assert np.array_equal(own.slice_probabilities, app.slice_probabilities)
    assert np.array_equal(given.label_map(), before) and given.method == "intensity-rules"
    assert (own.labels > 0).sum() > 1000  # a real reading was compared
