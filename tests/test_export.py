"""Export of labels over their scan: every format round-trips to identical voxels; CLI and journal."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

import dicom_factory as F
from engine import io
from engine.cli import main
from engine.editing import Journal, LabelEditor, journal_path, ops, scan_key
from engine.editing.export import export_labels
from engine.errors import OverwriteError


@pytest.fixture
def nifti_scan(tmp_path):
    data = np.arange(6 * 5 * 4, dtype=np.int16).reshape(4, 5, 6) - 500
    affine = np.array([[0, 0, 2.0, -10], [0.8, 0, 0, 20], [0, 0.7, 0, 5], [0, 0, 0, 1]])
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.fixture
def dicom_scan(tmp_path):
    F.ct_series(tmp_path / "dicom", n=5, rows=12, cols=10)
    return tmp_path / "dicom"


def _labels(shape, seed=1):
    lab = np.random.default_rng(seed).integers(0, 4, size=shape).astype(np.uint8)
    lab[0] = 0
    return lab


@pytest.mark.parametrize("name", ["out.nii.gz", "out.nii", "out.nrrd", "out.seg.nrrd", "out.mha", "out_png"])
def test_cli_export_round_trip_every_format(tmp_path, nifti_scan, name, capsys):
    if name.endswith(".seg.nrrd"):
        pytest.importorskip("engine.io.seg_nrrd", reason="the .seg.nrrd writer is not in this build yet")
    vol = io.load(nifti_scan)
    labels = _labels(vol.shape)
    src = io.save_labels(labels, vol, tmp_path / "in.nii.gz")
    out = tmp_path / "exports" / name
    assert main(["export", str(nifti_scan), "--labels", str(src), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    np.testing.assert_array_equal(io.load_labels(out, reference=vol), labels)


def test_dicom_seg_round_trip_and_refused_for_nifti(tmp_path, dicom_scan, nifti_scan, capsys):
    pytest.importorskip("engine.io.dicom_seg", reason="the DICOM SEG writer is not in this build yet")
    vol = io.load(dicom_scan)
    labels = _labels(vol.shape, seed=3)
    src = io.save_labels(labels, vol, tmp_path / "in.nii.gz")
    out = tmp_path / "seg.dcm"
    assert main(["export", str(dicom_scan), "--labels", str(src), "--out", str(out)]) == 0
    np.testing.assert_array_equal(io.load_labels(out, reference=vol), labels)
    # a NIfTI scan has no DICOM images to reference
    nvol = io.load(nifti_scan)
    nsrc = io.save_labels(_labels(nvol.shape), nvol, tmp_path / "n.nii.gz")
    capsys.readouterr()
    assert main(["export", str(nifti_scan), "--labels", str(nsrc), "--out", str(tmp_path / "x.dcm")]) == 2
    assert "DICOM SEG" in capsys.readouterr().err


def test_source_scan_is_never_overwritten(tmp_path, nifti_scan, capsys):
    before = nifti_scan.read_bytes()
    vol = io.load(nifti_scan)
    src = io.save_labels(_labels(vol.shape), vol, tmp_path / "in.nii.gz")
    assert main(["export", str(nifti_scan), "--labels", str(src), "--out", str(nifti_scan)]) == 2
    assert "error:" in capsys.readouterr().err
    assert nifti_scan.read_bytes() == before
    with pytest.raises(OverwriteError):
        export_labels(_labels(vol.shape), vol, tmp_path / "a.nii.gz", edited_mask=np.zeros(vol.shape, bool),
                      edited_mask_path=tmp_path / "a.nii.gz")


def test_edited_mask_from_ai_labels(tmp_path, nifti_scan, capsys):
    vol = io.load(nifti_scan)
    ai = _labels(vol.shape, seed=5)
    edited = ai.copy()
    edited[2, 1:3, 1:4] = 3
    a = io.save_labels(ai, vol, tmp_path / "ai.nii.gz")
    e = io.save_labels(edited, vol, tmp_path / "edited.nii.gz")
    rc = main(["export", str(nifti_scan), "--labels", str(e), "--ai-labels", str(a), "--out",
               str(tmp_path / "o.nrrd"), "--edited-mask", str(tmp_path / "mask.nii.gz"), "--json"])
    assert rc == 0
    mask = io.load_labels(tmp_path / "mask.nii.gz", reference=vol)
    np.testing.assert_array_equal(mask, (edited != ai).astype(np.uint8))
    assert main(["export", str(nifti_scan), "--labels", str(e), "--out", str(tmp_path / "p.nii.gz"),
                 "--edited-mask", str(tmp_path / "m2.nii.gz")]) == 2
    assert "--ai-labels" in capsys.readouterr().err


def test_export_from_journal_marks_it_saved(tmp_path, nifti_scan, monkeypatch):
    monkeypatch.setenv("LUNGLENS_DATA_DIR", str(tmp_path / "appdata"))
    vol = io.load(nifti_scan)
    key = scan_key(vol.source, vol.geometry)
    ed = LabelEditor(np.zeros(vol.shape, np.uint8), vol.geometry, journal=Journal(journal_path(key)),
                     source=vol.source)
    ai = np.zeros(vol.shape, np.uint8)
    ai[1, 1:4, 1:4] = 1
    ed.apply_ai_result(ai)
    ed.paint(ops.brush_segment(vol.shape, vol.spacing, (2, 2, 2), (2, 2, 2), 0.1), 2, name="Brush")
    expected, expected_mask = ed.labels.copy(), ed.person_mask()
    ed.journal.close()
    assert expected_mask.sum() == 1
    out = tmp_path / "rec.nii.gz"
    assert main(["export", str(nifti_scan), "--from-journal", "--out", str(out),
                 "--edited-mask", str(tmp_path / "rec_mask.nii.gz")]) == 0
    np.testing.assert_array_equal(io.load_labels(out, reference=vol), expected)
    np.testing.assert_array_equal(io.load_labels(tmp_path / "rec_mask.nii.gz", reference=vol), expected_mask)
    from engine.editing import has_unsaved_edits
    assert not has_unsaved_edits(journal_path(key))


def test_export_from_journal_to_seg_nrrd_embeds_who_edited(tmp_path, nifti_scan, monkeypatch):
    monkeypatch.setenv("LUNGLENS_DATA_DIR", str(tmp_path / "appdata"))
    vol = io.load(nifti_scan)
    key = scan_key(vol.source, vol.geometry)
    ed = LabelEditor(np.zeros(vol.shape, np.uint8), vol.geometry, journal=Journal(journal_path(key)),
                     source=vol.source)
    ai = np.zeros(vol.shape, np.uint8)
    ai[1, 1:4, 1:4] = 1
    ed.apply_ai_result(ai)
    ed.paint(ops.brush_segment(vol.shape, vol.spacing, (2, 2, 2), (2, 2, 2), 0.1), 2, name="Brush")
    expected, expected_mask = ed.labels.copy(), ed.person_mask()
    ed.journal.close()
    out = tmp_path / "rec.seg.nrrd"
    assert main(["export", str(nifti_scan), "--from-journal", "--out", str(out)]) == 0
    np.testing.assert_array_equal(io.load_labels(out, reference=vol), expected)
    np.testing.assert_array_equal(io.load_edited(out), expected_mask)
    # a format that cannot embed it says nothing; the separate mask file stays the way there
    io.save_labels(expected, vol, tmp_path / "plain.nii.gz", edited=expected_mask)
    assert io.load_edited(tmp_path / "plain.nii.gz") is None


def test_dicom_seg_export_embeds_who_edited(tmp_path, dicom_scan):
    vol = io.load(dicom_scan)
    labels = np.zeros(vol.shape, np.uint8)
    labels[1:3, 2:6, 2:6] = 1
    edited = np.zeros(vol.shape, bool)
    edited[2, 2:4, 2:4] = True
    edited[4, 0, 0] = True  # an erased voxel (background now)
    out = export_labels(labels, vol, tmp_path / "seg.dcm", edited=edited)[0]
    np.testing.assert_array_equal(io.load_labels(out, reference=vol), labels)
    np.testing.assert_array_equal(io.load_edited(out, vol), edited)
    ed = LabelEditor(io.load_labels(out, reference=vol), vol.geometry)
    ed.adopt_person_edits(io.load_edited(out, vol))
    np.testing.assert_array_equal(ed.person_mask(), edited)


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_dicom_series_exports_round_trip(tmp_path, dicom_99):
    vol = io.load(dicom_99)
    a = vol.array
    labels = np.zeros(vol.shape, np.uint8)
    labels[(a > -800) & (a < -300)] = 1
    labels[(a > -100) & (a < 50)] = 2
    labels[:, :10] = 0
    assert (labels == 1).sum() > 1000 and (labels == 2).sum() > 1000
    for name in ("seg.dcm", "seg.seg.nrrd"):
        out = export_labels(labels, vol, tmp_path / name)[0]
        np.testing.assert_array_equal(io.load_labels(out, reference=vol), labels)


def test_itksnap_label_descriptions_beside_a_nifti_export(tmp_path, nifti_scan, capsys):
    from engine.io.itksnap import read_label_descriptions
    from engine.labels import DEFAULT_TABLE

    vol = io.load(nifti_scan)
    src = io.save_labels(_labels(vol.shape), vol, tmp_path / "in.nii.gz")
    out = tmp_path / "labels.nii.gz"
    assert main(["export", str(nifti_scan), "--labels", str(src), "--out", str(out), "--itksnap-labels"]) == 0
    desc = tmp_path / "labels.label.txt"
    assert f"wrote {desc}" in capsys.readouterr().out
    table = read_label_descriptions(desc)
    assert table[0][0] == "Clear Label"
    assert {v: (name, rgb) for v, (name, rgb) in table.items() if v} == {
        lab.value: (lab.name, lab.color) for lab in DEFAULT_TABLE if lab.value}
    assert "ITK-SnAP Label Description File" in desc.read_text()
