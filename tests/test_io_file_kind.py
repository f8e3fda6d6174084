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
