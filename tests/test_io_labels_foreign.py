"""Label files made by other tools (3D Slicer, highdicom): a segment that is none of the findings, overlapping
findings, values no segment describes, a SEG made on other images, several volumes. Each is refused with the
reason, never turned silently into a finding or into nothing (QA pass of the sixth session)."""

from __future__ import annotations

import warnings

import nibabel as nib
import nrrd
import numpy as np
import pytest

import dicom_factory as F
from engine import io
from engine.errors import CorruptFileError, GeometryMismatchError


@pytest.fixture
def scan(tmp_path):
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])
    nib.save(nib.Nifti1Image(np.zeros((16, 12, 6), np.int16), affine), str(tmp_path / "scan.nii.gz"))
    return io.load(tmp_path / "scan.nii.gz")


def _seg_nrrd(path, vol, layers, segments):
    """A Slicer-style file: ``layers`` (canonical z, y, x uint8 arrays), ``segments`` (name, layer, value, tags),
    on the scan's grid (the space of LungLens' own file, C order = canonical)."""
    base = io.save_labels(np.zeros(vol.shape, np.uint8), vol, path.with_name("base.seg.nrrd"))
    _, header = nrrd.read(str(base), index_order="C")
    header = {k: v for k, v in header.items() if not k.startswith("Segment") and k not in ("sizes", "dimension")}
    if len(layers) > 1:  # Slicer's 4D layout: the list axis first in the file (the fastest; last in C order)
        data = np.stack(layers, -1)
        header["space directions"] = np.vstack([np.full((1, 3), np.nan), header["space directions"]])
        header["kinds"] = ["list"] + ["domain"] * 3
    else:
        data = layers[0]
    for n, (name, layer, value, tags) in enumerate(segments):
        header.update({f"Segment{n}_ID": f"s{n}", f"Segment{n}_Name": name, f"Segment{n}_Layer": str(layer),
                       f"Segment{n}_LabelValue": str(value), f"Segment{n}_Tags": tags})
    nrrd.write(str(path), np.ascontiguousarray(data), header, index_order="C")
    return path


def test_seg_nrrd_segments_that_are_no_finding_overlap_or_are_undescribed_are_refused(tmp_path, scan):
    shape = scan.shape
    a = np.zeros(shape, np.uint8)
    a[1:3, 2:5, 2:5] = 1
    a[4, 6:9, 1:3] = 2
    lung = np.zeros(shape, np.uint8)
    lung[:, 1:10, 1:5] = 1
    # named and valued like LungLens': opens as written
    ok = _seg_nrrd(tmp_path / "ok.seg.nrrd", scan, [a], [("Ground-glass opacity", 0, 1, ""), ("Consolidation", 0, 2, "")])
    assert np.array_equal(io.load_labels(ok, scan), a)
    # an unnamed Slicer segment ("Segment_1") keeps its label value
    generic = _seg_nrrd(tmp_path / "generic.seg.nrrd", scan, [a], [("Segment_1", 0, 1, ""), ("Segment_2", 0, 2, "")])
    assert np.array_equal(io.load_labels(generic, scan), a)
    # review: two unnamed segments with value 1 in two layers (Slicer counts each layer from 1) opened as one
    # finding without a word; which finding each is cannot be told, so the file is refused
    b = np.zeros(shape, np.uint8)
    b[2:4, 4:8, 4:6] = 1
    layered = _seg_nrrd(tmp_path / "layered.seg.nrrd", scan, [(a == 1).astype(np.uint8), b],
                        [("Segment_1", 0, 1, ""), ("Segment_2", 1, 1, "")])
    with pytest.raises(CorruptFileError, match="'Segment_1' and 'Segment_2' both have label value 1"):
        io.load_labels(layered, scan)
    # a "Lung" segment of value 1 in a second layer was read as GGO
    with_lung = _seg_nrrd(tmp_path / "lung.seg.nrrd", scan, [a, lung],
                          [("Ground-glass opacity", 0, 1, ""), ("Consolidation", 0, 2, ""), ("Lung", 1, 1, "")])
    with pytest.raises(CorruptFileError, match=r"segments outside the label table: 'Lung' \(\d[\d,]* voxels\)"):
        io.load_labels(with_lung, scan)
    assert np.array_equal(io.load_labels(with_lung, scan, unknown="background"), a)  # when asked: left out
    nodule = _seg_nrrd(tmp_path / "nodule.seg.nrrd", scan, [a], [("Nodule", 0, 1, ""), ("Consolidation", 0, 2, "")])
    with pytest.raises(CorruptFileError, match="'Nodule'"):
        io.load_labels(nodule, scan)
    # GGO and consolidation drawn over each other in two layers: which wins depended on the segment order
    over = np.zeros(shape, np.uint8)
    over[1:3, 3:6, 3:5] = 1  # overlaps the GGO block
    for order in ([("Ground-glass opacity", 0, 1, ""), ("Consolidation", 1, 1, "")],
                  [("Consolidation", 1, 1, ""), ("Ground-glass opacity", 0, 1, "")]):
        both = _seg_nrrd(tmp_path / "over.seg.nrrd", scan, [np.where(a == 1, 1, 0).astype(np.uint8), over], order)
        with pytest.raises(CorruptFileError, match=r"overlap \(Ground-glass opacity and Consolidation in \d+ voxels\)"):
            io.load_labels(both, scan)
    # a value no segment describes was dropped to background without a word
    stray = a.copy()
    stray[5, 1, 1] = 6
    undescribed = _seg_nrrd(tmp_path / "stray.seg.nrrd", scan, [stray],
                            [("Ground-glass opacity", 0, 1, ""), ("Consolidation", 0, 2, "")])
    with pytest.raises(CorruptFileError, match="value 6 of layer 0, which no segment describes"):
        io.load_labels(undescribed, scan)
    # LungLens' own file with its provenance layer still opens
    own = io.save_labels(a, scan, tmp_path / "own.seg.nrrd", edited=a == 2)
    assert np.array_equal(io.load_labels(own, scan), a)


def test_a_4d_nifti_label_map_is_refused_not_cut_to_its_first_volume(tmp_path, scan):
    onehot = np.zeros(scan.shape[::-1] + (3,), np.uint8)
    onehot[2, 3, 1, 1] = 1
    nib.save(nib.Nifti1Image(onehot, scan.geometry.affine_ras()), str(tmp_path / "onehot.nii.gz"))
    with pytest.raises(CorruptFileError, match="holds 3 volumes"):
        io.load_labels(tmp_path / "onehot.nii.gz", scan)


def _highdicom_seg(path, sources, masks, named):
    """A SEG as another tool writes it: segments ``named`` ((label, SNOMED code, meaning)), masks (n, r, c, k)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    cat = hd.sr.CodedConcept("49755003", "SCT", "Morphologically abnormal structure")
    alg = hd.AlgorithmIdentificationSequence(name="Other", version="1", family=codes.cid7162.ArtificialIntelligence)
    descs = [hd.seg.SegmentDescription(segment_number=n + 1, segment_label=label, segmented_property_category=cat,
                                       segmented_property_type=hd.sr.CodedConcept(code, "SCT", meaning),
                                       algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                                       algorithm_identification=alg)
             for n, (label, code, meaning) in enumerate(named)]
    seg = hd.seg.Segmentation(source_images=sources, pixel_array=masks, segmentation_type="BINARY",
                              segment_descriptions=descs, series_instance_uid=hd.UID(), series_number=9,
                              sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Other",
                              manufacturer_model_name="Other", software_versions="1", device_serial_number="1")
    seg.save_as(path)
    return path


def test_dicom_seg_segments_that_are_no_finding_overlap_or_lie_elsewhere_are_refused(tmp_path):
    import pydicom

    warnings.simplefilter("ignore")
    paths, _ = F.ct_series(tmp_path / "scan", n=5, rows=12, cols=10, shuffle=False)
    vol = io.load(tmp_path / "scan")
    sources = sorted((pydicom.dcmread(p) for p in paths), key=lambda d: float(d.ImagePositionPatient[2]))
    ggo = np.zeros((5, 12, 10), bool)
    ggo[1:3, 2:6, 2:6] = True
    con = np.zeros_like(ggo)
    con[2:4, 4:8, 4:8] = True  # overlaps the GGO on slice 2
    lung = np.zeros_like(ggo)
    lung[:, 1:11, 1:9] = True
    GGO, CON, LUNG = (("GGO", "45227007", "Ground glass opacity"), ("Consolidation", "95436008", "Consolidation"),
                      ("Lung", "39607008", "Lung structure"))
    fine = _highdicom_seg(tmp_path / "fine.dcm", sources, np.stack([ggo, con & ~ggo], -1).astype(np.uint8), [GGO, CON])
    got = io.load_labels(fine, vol)
    assert int((got == 1).sum()) == int(ggo.sum()) and int((got == 2).sum()) == int((con & ~ggo).sum())
    lung_first = _highdicom_seg(tmp_path / "lung.dcm", sources, np.stack([lung & ~ggo, ggo], -1).astype(np.uint8),
                                [LUNG, GGO])
    with pytest.raises(CorruptFileError, match="segments outside the label table: 'Lung'"):
        io.load_labels(lung_first, vol)
    assert int((io.load_labels(lung_first, vol, unknown="background") == 1).sum()) == int(ggo.sum())
    only_lung = _highdicom_seg(tmp_path / "only_lung.dcm", sources, lung[..., None].astype(np.uint8), [LUNG])
    assert not io.load_labels(only_lung, vol, unknown="background").any()  # left out when asked: no findings
    overlapping = _highdicom_seg(tmp_path / "over.dcm", sources, np.stack([ggo, con], -1).astype(np.uint8), [GGO, CON])
    with pytest.raises(CorruptFileError, match=r"overlap \(Ground-glass opacity and Consolidation in \d+ voxels\)"):
        io.load_labels(overlapping, vol)
    # made on other images of the same frame of reference, no series named: it opened empty
    F.ct_series(tmp_path / "other", n=5, rows=12, cols=10, shuffle=False)
    others = sorted((pydicom.dcmread(p) for p in (tmp_path / "other").iterdir()),
                    key=lambda d: float(d.ImagePositionPatient[2]))
    for d in others:
        d.FrameOfReferenceUID = sources[0].FrameOfReferenceUID
        d.StudyInstanceUID = sources[0].StudyInstanceUID
    elsewhere = _highdicom_seg(tmp_path / "elsewhere.dcm", others, ggo[..., None].astype(np.uint8), [GGO])
    ds = pydicom.dcmread(elsewhere)
    del ds.ReferencedSeriesSequence
    ds.save_as(elsewhere)
    with pytest.raises(GeometryMismatchError, match="none of its segmentation frames lies on the open scan"):
        io.load_labels(elsewhere, vol)


def test_a_crop_of_the_scans_grid_is_placed_on_it(tmp_path, scan):
    """3D Slicer saves a segmentation's extent only: a crop of the scan's grid (same spacing and direction, a
    whole-voxel offset) was refused with "Open the scan they were made for"; it is now padded onto the grid. Half a
    voxel off, it is still refused."""
    from dataclasses import replace

    from engine.errors import GeometryMismatchError

    g = scan.geometry
    sub = np.zeros((3, 5, 4), np.uint8)
    sub[1, 2:4, 1:3] = 2
    sub[0, 0, 0] = 1
    crop = replace(g, shape=sub.shape, origin=tuple(g.index_to_world((2, 4, 7))))
    for name in ("crop.seg.nrrd", "crop.nii.gz"):
        path = io.save_labels(sub, crop, tmp_path / name)
        got = io.load_labels(path, scan)
        want = np.zeros(scan.shape, np.uint8)
        want[2:5, 4:9, 7:11] = sub
        assert np.array_equal(got, want), name
    half = replace(crop, origin=tuple(g.index_to_world((2, 4, 7.5))))
    with pytest.raises(GeometryMismatchError):
        io.load_labels(io.save_labels(sub, half, tmp_path / "half.seg.nrrd"), scan)
    outside = replace(crop, origin=tuple(g.index_to_world((4, 4, 7))))  # 3 slices from slice 4 of 6: past the end
    with pytest.raises(GeometryMismatchError):
        io.load_labels(io.save_labels(sub, outside, tmp_path / "outside.seg.nrrd"), scan)


def test_an_itksnap_label_description_file_beside_a_nifti_names_its_values(tmp_path, scan):
    """ITK-SNAP numbers labels its own way: with its labels.label.txt saying 1 is consolidation and 2 GGO, the
    classes opened swapped. The descriptions now rename them; a described label that is no finding is refused."""
    from engine.io.itksnap import label_descriptions_path, write_label_descriptions

    theirs = np.zeros(scan.shape, np.uint8)
    theirs[1, 2:4, 2:4] = 1  # their 1: consolidation
    theirs[3, 5:7, 5:7] = 2  # their 2: GGO
    path = io.save_labels(theirs, scan, tmp_path / "snap.nii.gz")
    head = "# ITK-SnAP Label Description File\n    0     0    0    0        0  0  0    \"Clear Label\"\n"
    label_descriptions_path(path).write_text(head + '    1   255    0    0        1  1  1    "Consolidation"\n'
                                                    '    2   255  220    0        1  1  1    "GGO"\n')
    got = io.load_labels(path, scan)
    assert np.array_equal(got == 2, theirs == 1) and np.array_equal(got == 1, theirs == 2)
    label_descriptions_path(path).write_text(head + '    1   255    0    0        1  1  1    "Lung"\n'
                                                    '    2   255  220    0        1  1  1    "Ground glass opacity"\n')
    with pytest.raises(CorruptFileError, match="name labels outside the label table, or do not name values it holds: 1 'Lung'"):
        io.load_labels(path, scan)
    assert np.array_equal(io.load_labels(path, scan, unknown="background"), np.where(theirs == 2, 1, 0))
    # LungLens' own descriptions change nothing
    write_label_descriptions(label_descriptions_path(path))
    assert np.array_equal(io.load_labels(path, scan), theirs)
    # review: a value the descriptions leave out took LungLens' meaning silently (their 2 became consolidation,
    # beside their 1 'Consolidation': two labels merged into one finding); now it is refused by value
    label_descriptions_path(path).write_text(head + '    1   255    0    0        1  1  1    "Consolidation"\n')
    with pytest.raises(CorruptFileError, match=r"do not name values it holds: 2 \(not described, 4 voxels\)"):
        io.load_labels(path, scan)
    assert np.array_equal(io.load_labels(path, scan, unknown="background"), np.where(theirs == 1, 2, 0))


def test_a_nifti_whose_qform_and_sform_disagree_says_so(tmp_path):
    """LungLens (like nibabel) uses the sform; ITK-based tools use the qform: with both set and different, the
    same file sits mirrored between them, which the notice now says."""
    img = nib.Nifti1Image(np.zeros((8, 8, 4), np.int16), np.diag([0.8, 0.8, 2.5, 1.0]))
    img.set_qform(np.diag([-0.8, 0.8, 2.5, 1.0]), code=1)
    img.set_sform(np.diag([0.8, 0.8, 2.5, 1.0]), code=2)
    nib.save(img, str(tmp_path / "both.nii.gz"))
    notes = [w for w in io.load(tmp_path / "both.nii.gz").warnings if "disagree" in w]
    assert len(notes) == 1 and "LungLens uses the sform" in notes[0] and "mirrored" in notes[0]
    img.set_qform(np.diag([0.8, 0.8, 2.5, 1.0]), code=1)
    nib.save(img, str(tmp_path / "same.nii.gz"))
    assert not any("disagree" in w for w in io.load(tmp_path / "same.nii.gz").warnings)


@pytest.mark.parametrize("sform_code", [1, 2])
def test_labels_of_a_nifti_whose_forms_disagree_sit_on_the_scan_in_itk_too(tmp_path, sform_code):
    """Review (SimpleITK 2.5 / ITK 5.4): ITK reads a rigid scanner-anatomical sform (code 1) as LungLens does, so
    the warning's 'ITK ... shows it mirrored' was wrong there; with another sform code ITK reads the qform, and
    the label file (qform = sform) then sat mirrored against the scan in ITK. The labels now carry the scan's
    qform and sform: ITK places both alike."""
    import SimpleITK as sitk

    q = np.diag([0.7, 0.8, 2.0, 1.0])
    q[:3, 3] = [-5, 7, 11]
    sf = np.diag([-0.7, 0.8, 2.0, 1.0])
    sf[:3, 3] = [5, 7, 11]
    img = nib.Nifti1Image(np.full((20, 24, 16), -1000, np.int16), None)
    img.header.set_qform(q, code=1)
    img.header.set_sform(sf, code=sform_code)
    scan_path = tmp_path / "scan.nii.gz"
    nib.save(img, str(scan_path))
    scan = io.load(scan_path)
    (note,) = [w for w in scan.warnings if "disagree" in w]
    assert ("as nibabel and ITK-based tools" in note) == (sform_code == 1)
    labels = np.zeros(scan.shape, np.uint8)
    labels[:, :, :3] = 1
    out = io.save_labels(labels, scan, tmp_path / "labels.nii.gz")
    a, b = sitk.ReadImage(str(scan_path)), sitk.ReadImage(str(out))
    assert np.allclose(a.GetOrigin(), b.GetOrigin()) and np.allclose(a.GetDirection(), b.GetDirection())
    assert np.array_equal(io.load_labels(out, scan), labels)
