"""Lung masks from HU / intensity rules, sides in patient space, zones, model hook."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import DataError
from engine.labels import CONSOLIDATION
from engine.phantom import chest_ct
from engine.quantification import LungMasks, lung_masks
from engine.types import Geometry, Volume

SMALL = dict(shape=(64, 128, 128), spacing=(4.0, 2.8, 2.8))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.fixture(scope="module")
def ph():
    return chest_ct(**SMALL)


@pytest.fixture(scope="module")
def found(ph):
    return lung_masks(ph.volume)


def test_hu_rules_match_phantom_lungs(ph, found):
    assert found.method == "hu-rules"
    assert dice(found.left, ph.lung_left) > 0.97
    assert dice(found.right, ph.lung_right) > 0.97
    # trachea is not lung: the top slices' central air column stays out
    nz, ny, nx = ph.volume.shape
    assert not found.lung[-4:, ny // 2 - 6: ny // 2 + 4, nx // 2 - 3: nx // 2 + 3].any()


def test_sides_follow_patient_space_not_array_columns(ph, found):
    """The same patient stored with x flipped (x index towards patient right, RAS-like)."""
    g = ph.volume.geometry
    d = g.direction_matrix.copy()
    d[:, 0] *= -1  # the i axis now points to the patient's right
    origin = g.index_to_world((0, 0, g.shape[2] - 1))
    flipped = Volume(array=ph.volume.array[:, :, ::-1].copy(),
                     geometry=Geometry(shape=g.shape, spacing=g.spacing, origin=tuple(origin), direction=d),
                     is_hu=True, format="phantom")
    assert flipped.geometry.orientation_code() == "RPS"
    m = lung_masks(flipped)
    assert np.array_equal(m.left, found.left[:, :, ::-1])
    assert np.array_equal(m.right, found.right[:, :, ::-1])
    # left lung sits at low x index now
    _, _, lx = np.nonzero(m.left)
    assert lx.mean() < g.shape[2] / 2


def test_zones_by_height(ph, found):
    z = found.zones
    for side, codes in (("right", (1, 2, 3)), ("left", (4, 5, 6))):
        mask = found.right if side == "right" else found.left
        k_of = {c: np.nonzero((z == c) & mask)[0] for c in codes}
        upper, middle, lower = (k_of[c] for c in codes)
        assert upper.min() > middle.max() and middle.min() > lower.max()  # k grows superior
        k0, k1 = found.extents[side]
        height = k1 - k0 + 1
        assert abs((upper.max() - upper.min() + 1) - height / 3) <= 1
    assert set(np.unique(z[found.lung])) <= set(range(1, 7))
    assert set(np.unique(z[~found.lung])) <= set(range(7, 13))
    assert found.zone_voxels[1:7].sum() == np.count_nonzero(found.lung)


def test_findings_united(ph):
    m = lung_masks(ph.volume, labels=ph.labels)
    cons = ph.labels == CONSOLIDATION
    assert m.lung[cons].all()
    assert not m.lung[ph.labels == 3].any()


def test_model_mask_hook(ph, found):
    model = ph.lung_mask.copy()
    model[:, :, : ph.volume.shape[2] // 2] = False  # a model that only sees the left lung
    m = lung_masks(ph.volume, model_mask=model)
    assert m.method == "model+hu-rules"
    assert dice(m.left, ph.lung_left) > 0.97 and dice(m.right, ph.lung_right) > 0.97


def test_intensity_rules_on_8bit(ph):
    a = ph.volume.array.astype(np.float32)
    img = np.clip((a + 1350) / 1500 * 255, 0, 255).astype(np.uint8)  # lung window
    g = Geometry(shape=img.shape, spacing_known=False)
    m = lung_masks(Volume(array=img, geometry=g, is_hu=False, format="png"))
    assert m.method == "intensity-rules"
    assert dice(m.left, ph.lung_left) > 0.9 and dice(m.right, ph.lung_right) > 0.9


def test_no_lungs_raises():
    g = Geometry(shape=(8, 64, 64), spacing=(2.0, 2.0, 2.0))
    with pytest.raises(DataError):
        lung_masks(Volume(array=np.full(g.shape, 40, np.int16), geometry=g))


def test_from_masks_rejects_wrong_shape(ph):
    with pytest.raises(DataError):
        LungMasks.from_masks(ph.lung_left[:-1], ph.lung_right[:-1], ph.volume.geometry)


@pytest.mark.slow
def test_real_dicom_two_lungs(dicom_99):
    from engine.io import load
    vol = load(dicom_99)
    m = lung_masks(vol)
    vox = vol.geometry.voxel_volume_ml
    left, right = m.left.sum() * vox, m.right.sum() * vox
    assert 800 < left < 4500 and 800 < right < 5000, (left, right)
    _, _, lx = np.nonzero(m.left)
    _, _, rx = np.nonzero(m.right)
    assert lx.mean() > rx.mean()  # canonical LPS: patient left at high x


def test_single_8bit_slice(ph):
    """A lone PNG slice (shape (1, y, x), no spacing): both lungs, sides by the default LPS grid."""
    k = int(np.argmax(ph.lung_mask.sum(axis=(1, 2))))
    a = ph.volume.array[k:k + 1].astype(np.float32)
    img = np.clip((a + 1350) / 1500 * 255, 0, 255).astype(np.uint8)
    m = lung_masks(Volume(array=img, geometry=Geometry(shape=img.shape, spacing_known=False), is_hu=False))
    assert dice(m.left, ph.lung_left[k:k + 1]) > 0.9 and dice(m.right, ph.lung_right[k:k + 1]) > 0.9


def test_components_are_numbered_as_scipy_numbers_them():
    """The lung search orders its air components by size, ties by number: connected-components-3d
    must number them as scipy.ndimage.label does (raster order of the first voxel)."""
    from scipy import ndimage

    from engine.anatomy.lungs import _label6
    rng = np.random.default_rng(3)
    for shape, fill in (((20, 40, 50), 0.3), ((7, 64, 9), 0.5), ((1, 30, 30), 0.45)):
        mask = rng.random(shape) < fill
        ours, n = _label6(mask)
        ref, m = ndimage.label(mask)
        assert n == m > 10
        assert np.array_equal(ours, ref)
