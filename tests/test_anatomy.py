"""engine.anatomy: the lungs found once, their sides in patient space, the 'engine lungs' command."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from engine.anatomy import LEFT_LUNG, RIGHT_LUNG, LungMasks, lung_masks
from engine.anatomy.lungs import _air_threshold
from engine.cli import main
from engine.phantom import chest_ct
from engine.types import Geometry, Volume


@pytest.fixture(scope="module")
def phantom():
    return chest_ct(shape=(48, 128, 128), spacing=(5.0, 2.8, 2.8), seed=4)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def test_label_map_gives_right_one_and_left_two_in_patient_space(phantom):
    lungs = lung_masks(phantom.volume)
    lab = lungs.label_map()
    assert lab.dtype == np.uint8 and set(np.unique(lab)) == {0, RIGHT_LUNG, LEFT_LUNG}
    assert dice(lab == RIGHT_LUNG, phantom.lung_right) > 0.9 and dice(lab == LEFT_LUNG, phantom.lung_left) > 0.9
    # the same patient stored with x running to the patient's right (RAS-like columns): the
    # image is mirrored, the sides are not
    g = phantom.volume.geometry
    d = g.direction_matrix.copy()
    d[:, 0] *= -1
    far = g.index_to_world((0, 0, g.shape[2] - 1))
    flipped = Volume(np.ascontiguousarray(phantom.volume.array[:, :, ::-1]),
                     Geometry(shape=g.shape, spacing=g.spacing, origin=tuple(far), direction=tuple(map(tuple, d))),
                     is_hu=True)
    lab2 = lung_masks(flipped).label_map()
    assert dice(lab2[:, :, ::-1] == RIGHT_LUNG, phantom.lung_right) > 0.9
    back = LungMasks.from_label_map(lab, g)
    assert np.array_equal(back.label_map(), lab)


def test_soft_tissue_window_threshold_stays_under_fat():
    # a W400/L40 image: clipped lung at 0, fat (-100 HU) at 38, muscle at 128
    values = np.r_[np.zeros(3000), np.full(2000, 38.0), np.full(5000, 128.0)].astype(np.float32)
    thr = _air_threshold(values)
    assert 0 < thr < 38
    # a lung window keeps Otsu's threshold between lung (90) and tissue (220)
    lung_window = np.r_[np.full(3000, 90.0), np.full(7000, 220.0)].astype(np.float32)
    assert 90 <= _air_threshold(lung_window) < 220


def test_lungs_command_writes_right_and_left_on_the_scan_grid(phantom, tmp_path, capsys):
    src = tmp_path / "chest.nii.gz"
    v = phantom.volume
    nib.save(nib.Nifti1Image(v.array.transpose(2, 1, 0), v.geometry.affine_ras()), src)
    out = tmp_path / "lungs.nii.gz"
    assert main(["lungs", str(src), "--out", str(out)]) == 0
    assert "right lung" in capsys.readouterr().out
    img = nib.load(out)
    assert np.allclose(img.affine, v.geometry.affine_ras(), atol=1e-4)
    lab = np.asarray(img.dataobj).transpose(2, 1, 0)
    assert dice(lab == 1, phantom.lung_right) > 0.9 and dice(lab == 2, phantom.lung_left) > 0.9
    # RAS: +x points to the patient's right, so the right lung has the larger x
    data = np.asarray(img.dataobj)
    x_right, x_left = ((img.affine @ np.r_[np.argwhere(data == v).mean(0), 1])[0] for v in (1, 2))
    assert x_right > x_left
    empty = tmp_path / "water.nii.gz"
    nib.save(nib.Nifti1Image(np.full((64, 64, 12), 30, np.int16), np.diag([1.0, 1.0, 2.0, 1.0])), empty)
    assert main(["lungs", str(empty), "--out", str(tmp_path / "x.nii.gz")]) == 2
    assert "No lungs found" in capsys.readouterr().err


def test_single_thin_hu_slice_finds_its_lungs(phantom):
    # one 1.25 mm slice holds about 25 mL of lung at most: the 30 mL volume floor is replaced by 10 cm2
    k = phantom.volume.shape[0] // 2
    g = phantom.volume.geometry
    one = Volume(np.ascontiguousarray(phantom.volume.array[k:k + 1]),
                 Geometry(shape=(1,) + g.shape[1:], spacing=(1.25,) + tuple(g.spacing[1:])), is_hu=True)
    lab = lung_masks(one).label_map()[0]
    assert dice(lab == RIGHT_LUNG, phantom.lung_right[k]) > 0.9 and dice(lab == LEFT_LUNG, phantom.lung_left[k]) > 0.9


def test_a_small_part_of_the_lung_model_apart_from_both_lungs_is_not_lung(phantom):
    """radiopaedia 74724 (feet first): the lung model marks the gas of the bowel under the left hemidiaphragm;
    united with the rules lungs as a part of neither, it became lung, and 'consolidation' in the bowel walls was
    kept. A part that touches neither rules lung is lung only when it is a lung the rules missed whole."""
    from engine.anatomy.lungs import unite_lung_model

    v = phantom.volume
    rules = lung_masks(v)
    z = int(np.flatnonzero(rules.lung.any(axis=(1, 2)))[len(np.flatnonzero(rules.lung.any(axis=(1, 2)))) // 2])
    body = v.array[z] > -200
    far = ndimage.distance_transform_edt(~rules.lung[z]) > 6
    ys, xs = np.nonzero(body & far)
    blob = np.zeros(v.shape, bool)
    blob[z - 1:z + 2, ys[0]:ys[0] + 4, xs[0]:xs[0] + 4] = body[ys[0]:ys[0] + 4, xs[0]:xs[0] + 4]
    assert blob.any() and not (blob & rules.lung).any()
    united = unite_lung_model(rules, rules.lung | blob, v)
    assert not (united.lung & blob).any() and np.array_equal(united.lung, rules.lung)
    # a lung the rules missed whole (here: the right one taken away) is still taken from the model
    no_right = LungMasks.from_masks(rules.left, np.zeros(v.shape, bool), v.geometry)
    got = unite_lung_model(no_right, rules.lung, v)
    assert dice(got.right, rules.right) > 0.99 and np.array_equal(got.left, rules.left)
