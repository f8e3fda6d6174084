"""engine.io.file_kind: a file dropped over an open scan is its labels, a new scan, or a question."""

from __future__ import annotations

import nibabel as nib
import numpy as np

import dicom_factory as F
from engine import io
from engine.io.file_kind import ASK, LABELS, SCAN, label_or_scan
from engine.phantom import chest_ct


def test_label_maps_scans_and_segs_are_told_apart(tmp_path):
    ph = chest_ct(shape=(20, 48, 48), spacing=(5.0, 6.0, 6.0), seed=1)
    vol = ph.volume
    affine = vol.geometry.affine_ras()
    labels = io.save_labels(ph.labels, vol, tmp_path / "labels.nii.gz")
    assert label_or_scan(str(labels), vol) == ASK  # same grid, values 0..3: ask the user
    assert label_or_scan(str(io.save_labels(ph.labels, vol, tmp_path / "x.seg.nrrd")), vol) == LABELS
    ct = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(vol.array.transpose(2, 1, 0), affine), str(ct))
    assert label_or_scan(str(ct), vol) == SCAN  # hundreds of HU values: a scan
    other = tmp_path / "other_grid.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.uint8), np.eye(4)), str(other))
    assert label_or_scan(str(other), vol) == SCAN  # another grid
    assert label_or_scan(str(tmp_path), vol) == SCAN  # a folder is a series or a stack
    dcm = F.ct_series(tmp_path / "dicom", n=2, rows=8, cols=8)[0]
    assert label_or_scan(str(dcm), vol) == SCAN  # a DICOM image, not a SEG


def test_a_label_map_of_the_scans_size_off_its_grid_is_asked_not_opened_as_a_scan(tmp_path):
    """QA pass: a label NIfTI of the scan's size but shifted, or a one-hot 4D one, dropped on the window opened as a
    new grey scan and replaced the open one without a word. Now the user is asked; as labels each is refused
    with the reason (off the grid; several volumes)."""
    import pytest

    from engine.errors import CorruptFileError, GeometryMismatchError

    ph = chest_ct(shape=(20, 48, 48), spacing=(5.0, 6.0, 6.0), seed=1)
    vol = ph.volume
    affine = vol.geometry.affine_ras()
    shifted = affine.copy()
    shifted[:3, 3] += (30.0, 0.0, 0.0)
    moved = tmp_path / "moved.nii.gz"
    nib.save(nib.Nifti1Image(ph.labels.transpose(2, 1, 0).copy(), shifted), str(moved))
    assert label_or_scan(str(moved), vol) == ASK
    with pytest.raises(GeometryMismatchError):
        io.load_labels(moved, vol)
    onehot = np.stack([(ph.labels == v) for v in (1, 2, 3)], -1).transpose(2, 1, 0, 3).astype(np.uint8)
    four = tmp_path / "onehot.nii.gz"
    nib.save(nib.Nifti1Image(onehot.copy(), affine), str(four))
    assert label_or_scan(str(four), vol) == ASK
    with pytest.raises(CorruptFileError, match="holds 3 volumes"):
        io.load_labels(four, vol)
    ct = tmp_path / "ct_moved.nii.gz"  # CT values off the grid: a scan, as before
    nib.save(nib.Nifti1Image(vol.array.transpose(2, 1, 0).copy(), shifted), str(ct))
    assert label_or_scan(str(ct), vol) == SCAN


def test_a_crop_of_the_scans_grid_is_asked_not_opened_as_a_new_scan(tmp_path):
    """Review: a label map of the segmentation's extent only (3D Slicer's crop), which load_labels places on the
    scan, was sorted as a new scan when dropped on the window (another size went straight to SCAN)."""
    ph = chest_ct(shape=(20, 48, 48), spacing=(5.0, 6.0, 6.0), seed=1)
    vol = ph.volume
    affine = vol.geometry.affine_ras()
    corner = affine @ np.array([8, 4, 3, 1.0])  # RAS array index (x, y, z) of the crop's first voxel
    crop_affine = affine.copy()
    crop_affine[:3, 3] = corner[:3]
    part = ph.labels.transpose(2, 1, 0)[8:30, 4:40, 3:15].copy()
    crop = tmp_path / "crop.nii.gz"
    nib.save(nib.Nifti1Image(part, crop_affine), str(crop))
    placed = io.load_labels(crop, vol)
    assert placed.shape == vol.shape and np.array_equal(placed.transpose(2, 1, 0)[8:30, 4:40, 3:15], part)
    assert label_or_scan(str(crop), vol) == ASK
