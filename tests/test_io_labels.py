"""save_labels / load_labels: round trips, alignment with SimpleITK, atomic writes, source guard."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

import dicom_factory as F
from engine import io
from engine.errors import (GeometryMismatchError, LungLensError, OverwriteError, SeriesError,
                           UnsupportedFormatError)
from engine.types import Geometry

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _labels(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 4, size=shape).astype(np.uint8)


@pytest.fixture
def dicom_volume(tmp_path):
    F.ct_series(tmp_path / "scan", n=5, rows=12, cols=10)
    return io.load(tmp_path / "scan")


@pytest.fixture
def nifti_volume(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(6, 5, 4)
    affine = np.array([[0, 0, 2.0, -10], [0.8, 0, 0, 20], [0, 0.7, 0, 5], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "scan.nii.gz"))
    return io.load(tmp_path / "scan.nii.gz")


@pytest.fixture
def nrrd_volume(tmp_path):
    img = sitk.GetImageFromArray(np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5) - 1000)
    img.SetSpacing((0.6, 0.7, 2.5))
    img.SetOrigin((3.0, -4.0, 50.0))
    img.SetDirection((-1.0, 0, 0, 0, 1.0, 0, 0, 0, -1.0))  # needs flips to become canonical
    sitk.WriteImage(img, str(tmp_path / "scan.nrrd"))
    return io.load(tmp_path / "scan.nrrd")


@pytest.fixture
def png_volume(tmp_path):
    from PIL import Image
    (tmp_path / "stack").mkdir()
    for n in range(4):
        Image.fromarray(np.full((6, 7), 10 * n, np.uint8)).save(tmp_path / "stack" / f"im{n + 1}.png")
    return io.load(tmp_path / "stack")


FILE_FORMATS = ["labels.nii.gz", "labels.nii", "labels.nrrd", "labels.mha", "labels.seg.nrrd", "labels_png"]


@pytest.mark.parametrize("name", FILE_FORMATS)
@pytest.mark.parametrize("volume_fixture", ["dicom_volume", "nifti_volume", "nrrd_volume", "png_volume"])
def test_round_trip_identical_voxels_and_geometry(tmp_path, request, name, volume_fixture):
    vol = request.getfixturevalue(volume_fixture)
    labels = _labels(vol.shape)
    out = io.save_labels(labels, vol, tmp_path / "out" / name)
    back = io.load_labels(out, reference=vol)
    assert back.dtype == np.uint8 and np.array_equal(back, labels)
    if not name.endswith("png"):
        again = io.load(out)
        assert again.geometry.same_grid(vol.geometry, tol=1e-4)
        assert np.array_equal(again.array, labels)


def test_png_folder_layout(tmp_path, dicom_volume):
    labels = _labels(dicom_volume.shape)
    out = io.save_labels(labels, dicom_volume.geometry, tmp_path / "pngs")
    files = sorted(p.name for p in out.iterdir())
    assert files[:2] == ["labels.json", "slice_0000.png"] and len(files) == dicom_volume.shape[0] + 1
    # written again over our own export: allowed, atomic
    io.save_labels(np.zeros_like(labels), dicom_volume.geometry, out)
    assert not io.load_labels(out, reference=dicom_volume.geometry).any()


def test_png_labels_of_a_stack_follow_its_file_order(tmp_path, png_volume):
    """Label file N belongs to source file N (file 1 = the top slice), and the folder round-trips."""
    import json

    from PIL import Image
    labels = _labels(png_volume.shape, seed=7)
    out = io.save_labels(labels, png_volume, tmp_path / "stack_labels")
    files = sorted(out.glob("slice_*.png"))
    assert len(files) == 4 == len(png_volume.meta["image_files"])
    for n, f in enumerate(files):  # canonical z of source file n + 1 is N - 1 - n
        assert np.array_equal(np.asarray(Image.open(f)), labels[3 - n])
    assert json.loads((out / "labels.json").read_text())["z_order"] == "descending"
    assert np.array_equal(io.load_labels(out, reference=png_volume), labels)
    (out / "labels.json").unlink()  # without the sidecar a stack's labels are still read in file order
    assert np.array_equal(io.load_labels(out, reference=png_volume), labels)
    # a scan of another kind keeps the canonical order
    plain = io.save_labels(labels, png_volume.geometry, tmp_path / "plain")
    assert np.array_equal(np.asarray(Image.open(plain / "slice_0000.png")), labels[0])
    assert np.array_equal(io.load_labels(plain, reference=png_volume), labels)


def test_nifti_labels_align_with_scan_in_world(tmp_path, nifti_volume):
    labels = np.zeros(nifti_volume.shape, np.uint8)
    labels[1, 2, 3] = 2
    out = io.save_labels(labels, nifti_volume, tmp_path / "l.nii.gz")
    img = nib.load(str(out))
    ijk = np.argwhere(np.asarray(img.dataobj) == 2)[0]
    world_lps = LPS[:3, :3] @ (img.affine @ np.r_[ijk, 1])[:3]
    assert np.allclose(world_lps, nifti_volume.geometry.index_to_world((1, 2, 3)))
    assert img.header.get_intent()[0] == "label"


def test_saved_labels_have_the_affine_simpleitk_computes(tmp_path, dicom_99):
    vol = io.load(dicom_99)
    labels = np.zeros(vol.shape, np.uint8)
    labels[10, 100, 300] = 1  # a marker voxel where the scan has a known value
    out = io.save_labels(labels, vol, tmp_path / "chest.nii.gz")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(dicom_99)))
    img = reader.Execute()
    # RAS affine built from SimpleITK's direction/spacing/origin
    d = np.asarray(img.GetDirection()).reshape(3, 3)
    sitk_affine = np.eye(4)
    sitk_affine[:3, :3] = d * np.asarray(img.GetSpacing())[None, :]
    sitk_affine[:3, 3] = img.GetOrigin()
    sitk_affine = LPS @ sitk_affine
    nii = nib.load(str(out))
    # compare the world positions of the 8 corners (allowing for axis flips)
    shape = np.asarray(nii.shape)
    corners = np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)])
    world_nii = (nii.affine @ np.c_[corners, np.ones(8)].T).T[:, :3]
    world_sitk = (sitk_affine @ np.c_[corners, np.ones(8)].T).T[:, :3]
    assert {tuple(np.round(w, 2)) for w in world_nii} == {tuple(np.round(w, 2)) for w in world_sitk}
    assert np.allclose(nii.affine, sitk_affine, atol=1e-3)
    # content: the marker lands on the same scan voxel in SimpleITK's physical space
    ijk = np.argwhere(np.asarray(nii.dataobj) == 1)[0]
    world = LPS[:3, :3] @ (nii.affine @ np.r_[ijk, 1])[:3]
    idx = img.TransformPhysicalPointToIndex(tuple(world))
    assert img[idx] == vol.array[10, 100, 300]


def test_refuses_to_overwrite_source(tmp_path, dicom_volume, nifti_volume):
    with pytest.raises(OverwriteError):
        io.save_labels(np.zeros(nifti_volume.shape, np.uint8), nifti_volume, nifti_volume.source)
    with pytest.raises(OverwriteError):
        io.save_labels(np.zeros(dicom_volume.shape, np.uint8), dicom_volume,
                       tmp_path / "scan" / "labels.nii.gz")
    assert not (tmp_path / "scan" / "labels.nii.gz").exists()


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path, nifti_volume, monkeypatch):
    target = tmp_path / "keep.nii.gz"
    io.save_labels(np.ones(nifti_volume.shape, np.uint8), nifti_volume, target)
    before = target.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(Exception, match="disk full"):
        io.save_labels(np.zeros(nifti_volume.shape, np.uint8), nifti_volume, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["keep.nii.gz", "scan.nii.gz"]


def test_geometry_mismatch(tmp_path, nifti_volume, dicom_volume):
    out = io.save_labels(np.zeros(nifti_volume.shape, np.uint8), nifti_volume, tmp_path / "a.nii.gz")
    with pytest.raises(GeometryMismatchError):
        io.load_labels(out, reference=dicom_volume)
    shifted = Geometry(shape=nifti_volume.shape, spacing=nifti_volume.spacing,
                       origin=tuple(np.asarray(nifti_volume.geometry.origin) + 5.0),
                       direction=nifti_volume.geometry.direction)
    with pytest.raises(GeometryMismatchError):
        io.load_labels(out, reference=shifted)
    with pytest.raises(GeometryMismatchError):
        io.save_labels(np.zeros((2, 2, 2), np.uint8), nifti_volume, tmp_path / "b.nii.gz")


def test_unknown_label_extension(tmp_path, nifti_volume):
    with pytest.raises(UnsupportedFormatError):
        io.save_labels(np.zeros(nifti_volume.shape, np.uint8), nifti_volume, tmp_path / "x.xyz")


def test_seg_nrrd_has_slicer_segment_names_and_colours(tmp_path, nifti_volume):
    import nrrd
    from engine.labels import DEFAULT_TABLE
    labels = np.zeros(nifti_volume.shape, np.uint8)
    labels[2:4, 1:3, 0:2] = 3
    out = io.save_labels(labels, nifti_volume, tmp_path / "f.seg.nrrd")
    header = nrrd.read_header(str(out))
    assert header["space"] == "left-posterior-superior"
    names = {header[f"Segment{n}_Name"]: n for n in range(3)}
    assert set(names) == {lab.name for lab in DEFAULT_TABLE}
    n = names["Pleural effusion"]
    assert header[f"Segment{n}_LabelValue"] == "3" and header[f"Segment{n}_Layer"] == "0"
    assert header[f"Segment{n}_Extent"] == "0 1 1 2 2 3"  # i0 i1 j0 j1 k0 k1
    r, g, b = (float(c) for c in header[f"Segment{n}_Color"].split())
    assert (round(r * 255), round(g * 255), round(b * 255)) == DEFAULT_TABLE[3].color
    assert "SCT^60046008^" in header[f"Segment{n}_Tags"]
    # world alignment: the file's space origin/directions put the voxel where the scan has it
    data, _ = nrrd.read(str(out), index_order="C")
    k, j, i = np.argwhere(data == 3)[0]
    world = np.asarray(header["space origin"]) + np.asarray(header["space directions"]).T @ [i, j, k]
    assert np.allclose(world, nifti_volume.geometry.index_to_world(np.argwhere(labels == 3)[0]))


def _dicom_seg_round_trip(volume, path):
    labels = np.zeros(volume.shape, np.uint8)
    labels[1, 2:5, 3:6] = 1
    labels[-1, 4:6, 1:4] = 2
    labels[2, 0, 0] = 3
    io.save_labels(labels, volume, path)
    assert np.array_equal(io.load_labels(path, reference=volume), labels)
    return labels


def test_dicom_seg_round_trip_and_references(tmp_path, dicom_volume):
    import highdicom as hd
    import pydicom
    labels = _dicom_seg_round_trip(dicom_volume, tmp_path / "seg.dcm")
    ds = pydicom.dcmread(tmp_path / "seg.dcm")
    assert ds.Modality == "SEG"
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == dicom_volume.meta["series_instance_uid"]
    assert ds.FrameOfReferenceUID == dicom_volume.meta["frame_of_reference_uid"]
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["Ground-glass opacity", "Consolidation",
                                                            "Pleural effusion"]
    assert ds.SegmentSequence[2].SegmentedPropertyTypeCodeSequence[0].CodeValue == "60046008"
    # recommended display colours (CIELab) round-trip to the label table's RGB (yellow, red, green)
    from engine.labels import DEFAULT_TABLE
    shown = [hd.color.CIELabColor.from_dicom_value(tuple(s.RecommendedDisplayCIELabValue)).to_rgb()
             for s in ds.SegmentSequence]
    wanted = [lab.color for lab in DEFAULT_TABLE if lab.value]
    assert all(max(abs(a - b) for a, b in zip(got, want)) <= 1 for got, want in zip(shown, wanted)), shown
    # independent check with highdicom: the frame for source image k holds labels[k] (identity layout)
    seg = hd.seg.Segmentation.from_dataset(ds)
    uid = dicom_volume.meta["sop_instance_uids"][1]
    frame = seg.get_pixels_by_source_instance([uid], combine_segments=True)[0]
    assert np.array_equal(frame, labels[1])


def test_dicom_seg_for_reoriented_and_multiframe_sources(tmp_path):
    F.ct_series(tmp_path / "sag", n=4, rows=5, cols=6, orientation=(0, -1, 0, 0, 0, -1))
    _dicom_seg_round_trip(io.load(tmp_path / "sag"), tmp_path / "sag_seg.dcm")
    path, _ = F.enhanced_ct(tmp_path / "mf" / "mf.dcm")
    _dicom_seg_round_trip(io.load(path), tmp_path / "mf_seg.dcm")


def test_dicom_seg_needs_dicom_source_and_matching_series(tmp_path, nifti_volume, dicom_volume):
    with pytest.raises(UnsupportedFormatError, match="DICOM SEG"):
        io.save_labels(np.zeros(nifti_volume.shape, np.uint8), nifti_volume, tmp_path / "x.dcm")
    _dicom_seg_round_trip(dicom_volume, tmp_path / "seg.dcm")
    F.ct_series(tmp_path / "other", n=5, rows=12, cols=10)
    with pytest.raises(GeometryMismatchError, match="another series"):
        io.load_labels(tmp_path / "seg.dcm", reference=io.load(tmp_path / "other"))
    with pytest.raises(LungLensError):
        io.load_labels(tmp_path / "seg.dcm", reference=nifti_volume)
    # a SEG is not a scan
    with pytest.raises(SeriesError):
        io.load(tmp_path / "seg.dcm")


def test_png_labels_sidecar_geometry_is_checked(tmp_path, dicom_volume):
    out = io.save_labels(np.zeros(dicom_volume.shape, np.uint8), dicom_volume, tmp_path / "pngs")
    same_shape_other_grid = Geometry(shape=dicom_volume.shape, spacing=(9.0, 9.0, 9.0))
    with pytest.raises(GeometryMismatchError):
        io.load_labels(out, reference=same_shape_other_grid)
    (out / "labels.json").unlink()  # without the sidecar the reference grid is reused
    assert io.load_labels(out, reference=same_shape_other_grid).shape == dicom_volume.shape


def test_labels_in_the_scans_source_layout_are_accepted(tmp_path, nifti_volume):
    """A label file another tool wrote in the scan's own (non-canonical) layout lines up too."""
    from engine.io.orientation import SourceOrientation
    labels = _labels(nifti_volume.shape, seed=5)
    plan = SourceOrientation.from_dict(nifti_volume.meta["source_orientation"])
    assert not plan.is_identity
    source_labels = plan.to_source(labels)
    scan_affine = nib.load(nifti_volume.source).affine
    nib.save(nib.Nifti1Image(source_labels.T.astype(np.uint8), scan_affine), str(tmp_path / "other_tool.nii.gz"))
    assert np.array_equal(io.load_labels(tmp_path / "other_tool.nii.gz", reference=nifti_volume), labels)


def test_unwritable_target_is_a_readable_error(tmp_path, nifti_volume):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(LungLensError, match="Could not create"):
        io.save_labels(np.zeros(nifti_volume.shape, np.uint8), nifti_volume, tmp_path / "afile" / "sub" / "l.nii")


def test_a_failed_write_names_the_target_and_the_reason_not_the_temporary_file(tmp_path, nifti_volume, monkeypatch):
    """A full disk (or a read-only folder) while writing: the message names the file the user chose, its folder
    and the system's reason; the temporary file it was writing is not mentioned, and not left behind."""
    import errno

    from engine.io import labels_io

    def full(fmt, arr, geometry, volume, tmp, *rest):
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    monkeypatch.setattr(labels_io, "_write_file", full)
    with pytest.raises(LungLensError) as err:
        io.save_labels(np.zeros(nifti_volume.shape, np.uint8), nifti_volume, tmp_path / "labels.nii.gz")
    assert str(err.value) == f"Could not write labels.nii.gz in {tmp_path}: No space left on device."
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lunglens-tmp")]


def _edits(shape):
    edited = np.zeros(shape, bool)
    edited[1, 1:4, 2:5] = True   # painted over a finding
    edited[-1, 0, :2] = True     # erased to background
    return edited


def test_seg_nrrd_keeps_which_voxels_a_person_edited(tmp_path, nifti_volume):
    import nrrd

    from engine.io.seg_nrrd import read_seg_nrrd_edited, write_seg_nrrd
    from engine.labels import DEFAULT_TABLE
    labels = np.zeros(nifti_volume.shape, np.uint8)
    labels[1, 2:5, 3:6] = 1
    labels[2, 0, 0] = 3
    edited = _edits(labels.shape)
    path = tmp_path / "x.seg.nrrd"
    write_seg_nrrd(labels, nifti_volume.geometry, path, DEFAULT_TABLE, edited=edited)
    # the labels read back unchanged (the provenance segment is not a finding) ...
    assert np.array_equal(io.load_labels(path, reference=nifti_volume), labels)
    # ... and the edited voxels come back on the same canonical grid
    assert np.array_equal(read_seg_nrrd_edited(path), edited)
    header = nrrd.read_header(str(path))
    assert header["kinds"][0] == "list" and list(header["sizes"][:1]) == [2]
    names = [header[k] for k in header if k.endswith("_Name")]
    assert "Edited by a person (LungLens)" in names
    write_seg_nrrd(labels, nifti_volume.geometry, path, DEFAULT_TABLE)
    assert read_seg_nrrd_edited(path) is None  # a file without provenance does not claim any


def test_dicom_seg_keeps_which_voxels_a_person_edited(tmp_path, dicom_volume):
    import highdicom as hd
    import pydicom
    from engine.io.dicom_seg import read_dicom_seg_edited, write_dicom_seg
    from engine.labels import DEFAULT_TABLE
    labels = np.zeros(dicom_volume.shape, np.uint8)
    labels[1, 2:5, 3:6] = 1
    labels[-1, 4:6, 1:4] = 2
    edited = _edits(labels.shape)
    path = tmp_path / "seg.dcm"
    write_dicom_seg(labels, dicom_volume, path, DEFAULT_TABLE, edited=edited)
    assert np.array_equal(io.load_labels(path, reference=dicom_volume), labels)
    assert np.array_equal(read_dicom_seg_edited(path, dicom_volume), edited)
    ds = pydicom.dcmread(path)
    last = ds.SegmentSequence[-1]
    assert last.SegmentLabel == "Edited by a person (LungLens)" and last.SegmentAlgorithmType == "MANUAL"
    assert len(ds.SegmentSequence) == 4
    assert hd.seg.Segmentation.from_dataset(ds).segmentation_type.value == "BINARY"
    write_dicom_seg(labels, dicom_volume, path, DEFAULT_TABLE)
    assert read_dicom_seg_edited(path, dicom_volume) is None
    # review: every finding erased by a person: only the provenance segment holds voxels, and the SEG was refused
    # as 'made on other images'; it opens as empty labels that a person edited
    write_dicom_seg(np.zeros_like(labels), dicom_volume, path, DEFAULT_TABLE, edited=edited)
    assert not io.load_labels(path, reference=dicom_volume).any()
    assert np.array_equal(read_dicom_seg_edited(path, dicom_volume), edited)


@pytest.mark.parametrize("affine", [np.diag([0.8, 0.7, 2.0, 1.0]),  # RAS: x and y run the other way from LPS
                                    np.array([[0, 0, 2.0, -10], [0.8, 0, 0, 20], [0, 0.7, 0, 5], [0, 0, 0, 1]])])
def test_nifti_labels_of_a_nifti_scan_are_written_on_the_scans_own_grid(tmp_path, affine):
    """QA pass: the labels of a RAS or axis-swapped NIfTI scan were written in LungLens' LPS order with another
    affine: aligned in space, but not voxel for voxel (nnU-Net's dataset check, or anyone pairing the arrays,
    saw them mirrored). They now have the scan file's shape, affine and voxel order; they read back the same."""
    data = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "scan.nii.gz"))
    vol = io.load(tmp_path / "scan.nii.gz")
    source = np.zeros(data.shape, np.uint8)  # labels as the scan file lays its voxels out
    source[1, 2, 3] = 1
    source[4, 0, 1] = 3
    labels = _canonical(source, vol)
    for name in ("labels.nii.gz", "labels.nrrd", "labels.mha"):
        out = io.save_labels(labels, vol, tmp_path / name)
        assert np.array_equal(io.load_labels(out, vol), labels), name
    img = nib.load(tmp_path / "labels.nii.gz")
    assert img.shape == data.shape and np.allclose(img.affine, affine, atol=1e-4)
    assert np.array_equal(np.asarray(img.dataobj), source)


def _canonical(source_xyz: np.ndarray, vol) -> np.ndarray:
    """``source_xyz`` (NIfTI i, j, k order) in the canonical (z, y, x) order of ``vol``."""
    from engine.io.orientation import SourceOrientation

    plan = SourceOrientation.from_dict(vol.meta["source_orientation"])
    return plan.from_source(np.ascontiguousarray(source_xyz.T))
