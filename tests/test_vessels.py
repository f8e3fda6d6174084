"""The vessel rule removes tubes of vessel calibre and keeps blobs, wide patches and stacks."""

import numpy as np
import pytest
from scipy import ndimage

from engine.inference.vessels import MIN_SLICES, RULE, RULE_TEXT, remove_vessels, tube_voxels
from engine.labels import CONSOLIDATION, GGO
from engine.types import Geometry, Volume

LUNG_HU, BLOOD_HU = -850.0, 40.0


def _scene(spacing, tube_mm=2.5, blob_mm=3.0, patch_mm=9.0, axis=(1.0, 1.0, 0.5), size_mm=(90.0, 60.0, 60.0),
           is_hu=True, spacing_known=True):
    """Aerated lung with a tube, a sphere and a wide patch of blood density, all labelled consolidation.

    The image is blurred by a 0.7 mm Gaussian (a CT point spread) and carries 30 HU noise.
    """
    sz, sy, sx = spacing
    shape = tuple(int(round(m / s)) for m, s in zip(size_mm, spacing))
    z, y, x = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij")
    d = np.asarray(axis, float) / np.linalg.norm(axis)
    p = np.stack([z - 45.0, y - 30.0, x - 15.0], -1)
    along = p @ d
    tube = np.linalg.norm(p - along[..., None] * d, axis=-1) <= tube_mm
    blob = np.sqrt((z - 20.0) ** 2 + (y - 45.0) ** 2 + (x - 45.0) ** 2) <= blob_mm
    patch = np.sqrt(((z - 70.0) / 2.0) ** 2 + (y - 45.0) ** 2 + (x - 45.0) ** 2) <= patch_mm
    assert not (tube & blob).any() and not (tube & patch).any()
    img = np.full(shape, LUNG_HU)
    img[tube | blob | patch] = BLOOD_HU
    img = ndimage.gaussian_filter(img, [0.7 / s for s in spacing])
    img += np.random.default_rng(0).normal(0.0, 30.0, shape)
    if not is_hu:  # the lung window the models read: [-1350, 150] HU -> 0..255
        img = np.clip((img + 1350.0) / 1500.0 * 255.0, 0, 255).astype(np.uint8)
    else:
        img = img.astype(np.int16)
    labels = np.zeros(shape, np.uint8)
    labels[tube | blob | patch] = CONSOLIDATION
    vol = Volume(array=img, is_hu=is_hu, geometry=Geometry(shape=shape, spacing=spacing, spacing_known=spacing_known))
    return vol, labels, tube, blob, patch


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 0.6, 0.6), (1.5, 0.7, 0.7)])
@pytest.mark.parametrize("axis", [(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.5)])
def test_a_tube_through_the_lung_goes_and_a_blob_of_the_same_cross_section_stays(spacing, axis):
    vol, labels, tube, blob, patch = _scene(spacing, axis=axis)
    out, removed = remove_vessels(vol, labels)
    assert (out[tube] == 0).all()
    assert (out[blob] == CONSOLIDATION).all() and (out[patch] == CONSOLIDATION).all()
    assert removed == {"ggo": 0, "consolidation": int(tube.sum())}
    assert (labels[tube] == CONSOLIDATION).all()  # the input is not modified


def test_ggo_on_a_tube_goes_too_and_an_8bit_image_is_read_through_the_lung_window():
    vol, labels, tube, blob, patch = _scene((1.5, 0.7, 0.7), is_hu=False)
    labels[labels == CONSOLIDATION] = GGO
    out, removed = remove_vessels(vol, labels)
    assert removed == {"ggo": int(tube.sum()), "consolidation": 0}
    assert (out[blob] == GGO).all() and (out[patch] == GGO).all()


def test_wider_than_a_vessel_is_kept_even_when_tubular():
    # a 7 mm radius cylinder (14 mm across) is wider than any intrapulmonary vessel
    vol, labels, tube, _, _ = _scene((1.5, 0.7, 0.7), tube_mm=7.0, axis=(1.0, 0.0, 0.0))
    out, removed = remove_vessels(vol, labels)
    assert removed["consolidation"] == 0 and out is labels
    thin, thin_labels, _, _, _ = _scene((1.5, 0.7, 0.7), tube_mm=4.5, axis=(1.0, 0.0, 0.0))
    assert remove_vessels(thin, thin_labels)[1]["consolidation"] > 0  # 9 mm across: a vessel


def test_faint_tubes_are_not_vessels():
    # a tube at -650 HU (below the -500 HU a vessel's core reaches) stays: it is not blood
    vol, labels, tube, _, _ = _scene((1.5, 0.7, 0.7))
    img = vol.array.astype(np.float32)
    img[tube] = -650.0
    faint = Volume(array=img.astype(np.int16), is_hu=True, geometry=vol.geometry)
    out, removed = remove_vessels(faint, labels)
    assert removed["consolidation"] == 0


def test_no_spacing_or_too_few_slices_leaves_the_labels_alone():
    vol, labels, tube, _, _ = _scene((1.5, 0.7, 0.7), spacing_known=False)
    out, removed = remove_vessels(vol, labels)
    assert out is labels and removed == {"ggo": 0, "consolidation": 0}
    vol, labels, tube, _, _ = _scene((1.5, 0.7, 0.7))
    few = Volume(array=vol.array[:MIN_SLICES - 1].copy(), is_hu=True,
                 geometry=Geometry(shape=(MIN_SLICES - 1,) + vol.shape[1:], spacing=vol.geometry.spacing))
    out, removed = remove_vessels(few, labels[:MIN_SLICES - 1])
    assert removed == {"ggo": 0, "consolidation": 0}


def test_in_plane_form_removes_a_line_and_keeps_a_disc_on_one_slice():
    vol, labels, tube, blob, patch = _scene((1.0, 0.7, 0.7), axis=(0.0, 0.0, 1.0), blob_mm=4.0)
    z = 45  # the slice through the tube's axis (it runs along x there) and no blob
    z_blob = 20
    for zz, what in ((z, tube), (z_blob, blob)):
        one = Volume(array=vol.array[zz:zz + 1].copy(), is_hu=True,
                     geometry=Geometry(shape=(1,) + vol.shape[1:], spacing=vol.geometry.spacing))
        lab = labels[zz:zz + 1].copy()
        out, removed = remove_vessels(one, lab, min_slices=1)
        if what is tube:
            assert removed["consolidation"] == int(tube[zz].sum()) and not (out == CONSOLIDATION).any()
        else:
            assert removed["consolidation"] == 0 and (out[0][blob[zz]] == CONSOLIDATION).all()


def test_tube_voxels_need_a_bright_elongated_round_structure():
    vol, _, tube, blob, _ = _scene((1.0, 1.0, 1.0), axis=(0.0, 0.0, 1.0))
    img = np.clip(vol.array.astype(np.float32), -1000, 200)
    t = tube_voxels(img, (1.0, 1.0, 1.0), 2.5 / np.sqrt(2))
    axis_line = tube & (ndimage.distance_transform_edt(tube) >= 2)
    assert t[axis_line].mean() > 0.9            # the tube's axis answers
    centre = (20, 45, 45)
    assert not t[centre]                         # the blob's centre does not
    assert not t[5, 5, 5]                        # nor aerated lung


def test_the_rule_is_stated_for_findings_json():
    text = RULE_TEXT[RULE]
    assert RULE == "vessel" and "5 mm" in text and "Hessian" in text
    from engine.inference.summary import rules_document
    from engine.inference.result import Prediction
    geom = Geometry(shape=(8, 4, 4), spacing=(1.0, 1.0, 1.0))
    pred = Prediction(labels=np.zeros((8, 4, 4), np.uint8), probabilities=None,
                      slice_probabilities=np.zeros((8, 3), np.float32), scan_probabilities={}, covid_probability=None,
                      segmented=np.ones(8, bool), geometry=geom, models={}, timings={}, device="cpu",
                      rules_removed={RULE: {"ggo": 0, "consolidation": 1000}})
    doc = rules_document(pred)
    assert doc["vessel"]["rule"] == text
    assert doc["vessel"]["removed"] == {"consolidation": {"voxels": 1000, "volume_ml": 1.0}}


def test_tube_voxels_at_chosen_voxels_equal_the_full_computation():
    vol, _, tube, blob, _ = _scene((3.0, 0.6, 0.6), axis=(1.0, 1.0, 0.5))
    img = np.clip(vol.array.astype(np.float32), -1000, 200)
    full = tube_voxels(img, (3.0, 0.6, 0.6), 1.8)
    where = tube | blob
    part = tube_voxels(img, (3.0, 0.6, 0.6), 1.8, where)
    assert np.array_equal(part, full & where) and part[tube].mean() > 0.3  # the axis half of the tube


def test_a_sleeve_of_ggo_around_a_vessel_goes_and_a_halo_around_a_nodule_stays():
    # the vessel (+40 HU) is left unlabelled; GGO is drawn as the haze 0-2 mm around it
    spacing = (1.5, 0.7, 0.7)
    vol, labels, tube, blob, patch = _scene(spacing, tube_mm=2.5, blob_mm=4.0, axis=(1.0, 0.0, 0.0))
    sampling = spacing

    def shell(mask):
        return ~mask & (ndimage.distance_transform_edt(~mask, sampling=sampling) <= 2.0)

    sleeve = shell(tube) & ~ndimage.binary_dilation(blob | patch, iterations=3)
    halo = shell(blob)
    labels = np.zeros_like(labels)
    labels[sleeve] = GGO
    labels[halo] = GGO                     # a nodule with a ground-glass halo
    labels[patch] = CONSOLIDATION
    out, removed = remove_vessels(vol, labels)
    assert removed == {"ggo": int(sleeve.sum()), "consolidation": 0}
    assert (out[halo] == GGO).all() and (out[patch] == CONSOLIDATION).all()


def test_in_place_removal_equals_the_copy_and_edits_the_given_map():
    vol, labels, tube, blob, patch = _scene((1.5, 0.7, 0.7))
    labels[0, :3, :3] = 3                                          # an effusion voxel: not a tested finding
    ref, removed = remove_vessels(vol, labels)
    assert ref is not labels and removed["consolidation"] == int(tube.sum())
    own = labels.copy()
    got, removed_own = remove_vessels(vol, own, in_place=True)
    assert got is own and removed_own == removed
    assert np.array_equal(got, ref) and got[0, 0, 0] == 3


def test_value_box_equals_the_box_of_the_mask():
    from engine.anatomy.boxes import bounding_box, value_box
    rng = np.random.default_rng(4)
    labels = np.zeros((40, 30, 50), np.uint8)
    for _ in range(6):
        z, y, x = rng.integers(0, 36), rng.integers(0, 26), rng.integers(0, 46)
        labels[z:z + 4, y:y + 4, x:x + 4] = rng.integers(1, 4)
    for values in ((1,), (2,), (3,), (1, 2), (1, 2, 3), (7,)):
        assert value_box(labels, values) == bounding_box(np.isin(labels, values)), values
    assert value_box(labels, (7,)) is None


def test_filling_all_planes_at_once_equals_filling_each_plane_alone():
    from engine.inference.vessels import _filled
    rng = np.random.default_rng(7)
    for t in range(120):
        shape = tuple(int(v) for v in rng.integers(1, 24, 3))
        region = rng.random(shape) < rng.uniform(0.2, 0.95)
        if t % 2:
            region = ndimage.binary_opening(region)
        want = region.copy()
        for axis in range(3):
            if region.shape[axis] < 3:
                continue
            planes, target = np.moveaxis(region, axis, 0), np.moveaxis(want, axis, 0)
            for k in range(planes.shape[0]):
                target[k] |= ndimage.binary_fill_holes(planes[k])
        assert np.array_equal(_filled(region), want), shape
    ring = np.zeros((5, 9, 9), bool)
    ring[:, 2:7, 2:7] = True
    ring[:, 4, 4] = False                                      # a hole in every axial plane
    assert _filled(ring)[:, 4, 4].all()


def test_hessian_on_the_lines_through_the_tested_voxels_equals_the_whole_filter():
    """The vessel test filters only the image lines through the voxels it tests (vessels._Lines): the same
    float32 values, bit for bit, as scipy's gaussian_filter over the whole crop, for every Hessian order,
    2D and 3D, anisotropic scales, sparse and dense voxel sets."""
    from scipy import ndimage

    from engine.inference.vessels import _Lines

    rng = np.random.default_rng(7)
    for trial in range(24):
        nd = 2 if trial % 4 == 0 else 3
        shape = tuple(int(x) for x in rng.integers(2, 24, nd))
        img = (rng.random(shape, dtype=np.float32) * 1200 - 1000).astype(np.float32)
        where = rng.random(shape) < (0.02, 0.2, 0.9)[trial % 3]
        where.flat[int(rng.integers(where.size))] = True
        sig = [float(x) for x in rng.uniform(0.5, 4.0, nd)]
        lines = _Lines(img, sig, where)
        for i in range(nd):
            for j in range(i, nd):
                order = [0] * nd
                order[i] += 1
                order[j] += 1
                want = ndimage.gaussian_filter(img, sig, order=order, mode="nearest")[where]
                got = lines.derivative(order)
                assert got.dtype == np.float32 and np.array_equal(got, want), (shape, order)
