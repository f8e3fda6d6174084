"""Bad input gets a clear engine.errors exception (never a third-party traceback), nothing huge is allocated."""

from __future__ import annotations

import gzip
import io as pyio
import os
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
import pydicom
from pydicom.uid import generate_uid

import dicom_factory as F
from engine import io
from engine.errors import CorruptFileError, LungLensError, SeriesError, UnsupportedFormatError

RNG = np.random.default_rng(1234)


def _nifti_bytes(data, gz=False):
    img = nib.Nifti1Image(data, np.eye(4))
    raw = img.to_bytes()
    return gzip.compress(raw) if gz else raw


def _png_bytes(shape=(32, 32)):
    buf = pyio.BytesIO()
    Image.fromarray(RNG.integers(0, 255, shape, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg_bytes():
    buf = pyio.BytesIO()
    Image.fromarray(RNG.integers(0, 255, (64, 64), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _nrrd_bytes(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 8, 8), np.int16)), str(tmp_path / "_t.nrrd"))
    data = (tmp_path / "_t.nrrd").read_bytes()
    (tmp_path / "_t.nrrd").unlink()
    return data


def _dicom_bytes(tmp_path):
    paths, _ = F.ct_series(tmp_path / "_d", n=1, rows=32, cols=32)
    data = paths[0].read_bytes()
    paths[0].unlink()
    (tmp_path / "_d").rmdir()
    return data


def _file(tmp_path, name, data):
    folder = tmp_path / "case"
    folder.mkdir(exist_ok=True)
    p = folder / name
    p.write_bytes(data)
    return p


# each builder: tmp_path -> path to load; the expected exception class
def zero(name):
    return lambda t: _file(t, name, b"")


def truncated_nifti(gz):
    def make(t):
        raw = _nifti_bytes(RNG.integers(-1000, 1000, (32, 32, 16)).astype(np.int16))
        cut = raw[: len(raw) // 2]
        return _file(t, "scan.nii.gz" if gz else "scan.nii", gzip.compress(cut)[:-8] if gz else cut)
    return make


def truncated(name, maker, frac=0.5):
    def make(t):
        data = maker(t)
        return _file(t, name, data[: int(len(data) * frac)])
    return make


def rand(name, n=4096):
    return lambda t: _file(t, name, RNG.integers(0, 256, n, dtype=np.uint8).tobytes())


def text_as(name):
    return lambda t: _file(t, name, b"this is a plain text note, not an image\n" * 20)


def absurd_nifti(t):
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((30000, 30000, 30000))
    return _file(t, "huge.nii", hdr.binaryblock + b"\0" * 4 + b"\0" * 1024)


def absurd_nifti_gz(t):  # under the 4 GiB guard, far more than 1 kB of gzip can expand to
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((1000, 1000, 900))
    return _file(t, "big.nii.gz", gzip.compress(hdr.binaryblock + b"\0" * 4 + b"\0" * 1024))


def absurd_nifti_small(t):  # under the 4 GiB guard but far more than the file holds
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((1000, 1000, 900))
    return _file(t, "big.nii", hdr.binaryblock + b"\0" * 4 + b"\0" * 1024)


def absurd_nrrd(t):
    head = b"NRRD0004\ntype: short\ndimension: 3\nsizes: 100000 100000 100000\nencoding: raw\nendian: little\n\n"
    return _file(t, "huge.nrrd", head + b"\0" * 100)


def absurd_mha(t):
    head = (b"ObjectType = Image\nNDims = 3\nDimSize = 90000 90000 90000\nElementType = MET_SHORT\n"
            b"ElementDataFile = LOCAL\n")
    return _file(t, "huge.mha", head + b"\0" * 100)


def absurd_dicom(t):
    ds = F.ct_slice(rows=8, cols=8)
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 200
    return F.write(ds, t / "case" / "huge.dcm")


def absurd_png(t):
    import struct
    import zlib
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 200000, 200000, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    return _file(t, "huge.png", data)


def all_nan_nifti(t):
    return _file(t, "nan.nii", _nifti_bytes(np.full((4, 4, 2), np.nan, np.float32)))


def rgb_nifti(t):
    rgb = np.zeros((4, 4, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    return _file(t, "rgb.nii", nib.Nifti1Image(rgb, np.eye(4)).to_bytes())


def only_non_image(t):
    F.non_image(t / "case" / "sr.dcm", "SR")
    F.non_image(t / "case" / "rt.dcm", "RTSTRUCT")
    return t / "case"


def single_sr(t):
    return F.non_image(t / "case" / "report.dcm", "SR")


def single_rtstruct(t):
    return F.non_image(t / "case" / "rois.dcm", "RTSTRUCT")


def unrelated_folder(t):
    for i in range(3):
        _file(t, f"notes{i}.txt", b"hello")
    _file(t, "data.csv", b"a,b\n1,2\n")
    return t / "case"


def empty_folder(t):
    (t / "case").mkdir()
    return t / "case"


def missing_path(t):
    return t / "does" / "not" / "exist.nii.gz"


def series_slice_truncated(t):
    paths, _ = F.ct_series(t / "case", n=4, rows=32, cols=32)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) - 700])
    return t / "case"


def stack_mixed_sizes(t):
    (t / "case").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(t / "case" / "1.png")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(t / "case" / "2.png")
    return t / "case"


def mhd_missing_raw(t):
    head = (b"ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\n"
            b"ElementDataFile = gone.raw\n")
    return _file(t, "scan.mhd", head)


def corrupt_gzip_middle(t):
    data = bytearray(gzip.compress(_nifti_bytes(RNG.integers(0, 1000, (32, 32, 8)).astype(np.int16))))
    for i in range(200, min(len(data) - 10, 400)):
        data[i] ^= 0x5A
    return _file(t, "garbled.nii.gz", bytes(data))


def negative_dim_nifti(t):
    raw = bytearray(_nifti_bytes(np.zeros((4, 4, 4), np.int16)))
    raw[42:44] = (-4).to_bytes(2, "little", signed=True)  # dim[1]
    return _file(t, "neg.nii", bytes(raw))


def dicom_without_pixels(t):
    ds = F.ct_slice()
    del ds.PixelData
    return F.write(ds, t / "case" / "nopix.dcm")


CASES = {
    "zero-byte .nii": (zero("a.nii"), CorruptFileError),
    "zero-byte .nii.gz": (zero("a.nii.gz"), CorruptFileError),
    "zero-byte .dcm": (zero("a.dcm"), CorruptFileError),
    "zero-byte .nrrd": (zero("a.nrrd"), CorruptFileError),
    "zero-byte .mha": (zero("a.mha"), CorruptFileError),
    "zero-byte .png": (zero("a.png"), CorruptFileError),
    "zero-byte .jpg": (zero("a.jpg"), CorruptFileError),
    "truncated .nii": (truncated_nifti(False), CorruptFileError),
    "truncated .nii.gz": (truncated_nifti(True), CorruptFileError),
    "truncated .dcm": (truncated("a.dcm", _dicom_bytes, 0.6), CorruptFileError),
    "truncated .dcm header": (truncated("a.dcm", _dicom_bytes, 0.2), CorruptFileError),
    "truncated .nrrd": (truncated("a.nrrd", _nrrd_bytes, 0.9), CorruptFileError),
    "truncated .png": (truncated("a.png", lambda t: _png_bytes(), 0.5), CorruptFileError),
    "truncated .jpg": (truncated("a.jpg", lambda t: _jpeg_bytes(), 0.3), CorruptFileError),
    "random bytes .nii": (rand("r.nii"), CorruptFileError),
    "random bytes .nii.gz": (rand("r.nii.gz"), CorruptFileError),
    "random bytes .dcm": (rand("r.dcm"), CorruptFileError),
    "random bytes .nrrd": (rand("r.nrrd"), CorruptFileError),
    "random bytes no extension": (rand("blob"), UnsupportedFormatError),
    "text named .nii.gz": (text_as("scan.nii.gz"), CorruptFileError),
    "text named .png": (text_as("slice.png"), CorruptFileError),
    "text named .xyz": (text_as("scan.xyz"), UnsupportedFormatError),
    "absurd NIfTI dims": (absurd_nifti, CorruptFileError),
    "NIfTI dims beyond file": (absurd_nifti_small, CorruptFileError),
    "NIfTI.gz dims beyond file": (absurd_nifti_gz, CorruptFileError),
    "negative NIfTI dim": (negative_dim_nifti, CorruptFileError),
    "absurd NRRD dims": (absurd_nrrd, CorruptFileError),
    "absurd MHA dims": (absurd_mha, CorruptFileError),
    "absurd DICOM dims": (absurd_dicom, CorruptFileError),
    "absurd PNG dims": (absurd_png, CorruptFileError),
    "all-NaN NIfTI": (all_nan_nifti, CorruptFileError),
    "RGB NIfTI": (rgb_nifti, UnsupportedFormatError),
    "gzip garbled mid-stream": (corrupt_gzip_middle, CorruptFileError),
    "folder of SR + RTSTRUCT": (only_non_image, SeriesError),
    "single SR file": (single_sr, SeriesError),
    "single RTSTRUCT file": (single_rtstruct, SeriesError),
    "DICOM without pixel data": (dicom_without_pixels, CorruptFileError),
    "folder of unrelated files": (unrelated_folder, UnsupportedFormatError),
    "empty folder": (empty_folder, UnsupportedFormatError),
    "path does not exist": (missing_path, LungLensError),
    "series with a truncated slice": (series_slice_truncated, CorruptFileError),
    "stack of different sizes": (stack_mixed_sizes, UnsupportedFormatError),
    "MHD with missing raw file": (mhd_missing_raw, CorruptFileError),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_malformed_input_raises_readable_error(tmp_path, case):
    build, expected = CASES[case]
    path = build(tmp_path)
    tracemalloc.start()
    try:
        with pytest.raises(expected) as info:
            io.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert isinstance(info.value, LungLensError)
    assert 20 < len(message) < 700 and "Traceback" not in message and "\n" not in message
    names = {path.name} | ({p.name for p in path.iterdir()} if path.is_dir() else set())
    assert any(n in message for n in names) or str(path) in message
    assert peak < 200 * 1024 ** 2, f"{case}: allocated {peak / 1e6:.0f} MB"


def test_at_least_25_malformed_cases():
    assert len(CASES) >= 25


def test_unknown_series_in_mixed_folder(tmp_path):
    F.ct_series(tmp_path / "mixed", n=3, prefix="a")
    F.ct_series(tmp_path / "mixed", n=2, prefix="b")
    assert len(io.list_series(tmp_path / "mixed")) == 2
    with pytest.raises(SeriesError, match="Available"):
        io.load(tmp_path / "mixed", series="9.9.9")


def test_unreadable_file(tmp_path):
    p = tmp_path / "secret.nii"
    p.write_bytes(_nifti_bytes(np.zeros((2, 2, 2), np.int16)))
    os.chmod(p, 0)
    try:
        if os.access(p, os.R_OK):
            pytest.skip("running as root: chmod does not prevent reading")
        with pytest.raises(LungLensError, match="Permission denied"):
            io.load(p)
    finally:
        os.chmod(p, 0o644)


def test_bad_label_inputs(tmp_path):
    scan = io.load(_file(tmp_path, "s.nii", _nifti_bytes(np.zeros((4, 4, 2), np.int16))))
    frac = tmp_path / "frac.nii"
    frac.write_bytes(_nifti_bytes(np.full((4, 4, 2), 0.5, np.float32)))
    with pytest.raises(CorruptFileError, match="not a label map"):
        io.load_labels(frac, reference=scan)
    with pytest.raises(LungLensError):
        io.load_labels(tmp_path / "nope.nii.gz", reference=scan)


def test_warnings_not_errors_for_recoverable_series(tmp_path):
    F.ct_series(tmp_path / "gap", positions=[(0, 0, z) for z in (0, 2, 6, 8)])
    F.ct_series(tmp_path / "dup", positions=[(0, 0, z) for z in (0, 2, 2, 4)])
    assert io.load(tmp_path / "gap").warnings and io.load(tmp_path / "dup").warnings


def test_monochrome1_images_are_inverted_and_said(tmp_path):
    """A MONOCHROME1 image that is not CT (its lowest value is meant white) reads as its MONOCHROME2 twin,
    with a notice; read as stored it would show (and be segmented) inverted, without a sign."""
    _, _ = F.ct_series(tmp_path / "m1", modality="OT", intercept=0.0, photometric="MONOCHROME1")
    twin_dir = tmp_path / "m2"
    rows, cols = 12, 10
    jj, ii = np.mgrid[0:rows, 0:cols]
    series, study = generate_uid(), generate_uid()
    for k in range(6):  # the same images stored the usual way: 4095 - value (12 bits stored)
        ds = F.ct_slice(position=(-20.0, -30.0, -50.0 + 2.5 * k), stored=4095 - (100 * k + 10 * jj + ii),
                        modality="OT", intercept=0.0, instance=k + 1, series_uid=series, study_uid=study)
        F.write(ds, twin_dir / f"t{k}.dcm")
    inverted, twin = io.load(tmp_path / "m1"), io.load(twin_dir)
    assert not inverted.is_hu and inverted.shape == twin.shape == (6, rows, cols)
    assert np.array_equal(inverted.array, twin.array)
    assert int(inverted.array.max()) == 4095 and int(inverted.array.min()) == 4095 - 619
    assert any("MONOCHROME1" in w for w in inverted.warnings)
    assert not any("MONOCHROME1" in w for w in twin.warnings)


def test_monochrome1_ct_keeps_its_hounsfield_units(tmp_path):
    """CT values are Hounsfield units whatever the display convention: the same voxels as the MONOCHROME2
    twin, nothing to say. (A guard: the previous code passed it too.)"""
    series, study = generate_uid(), generate_uid()
    F.ct_series(tmp_path / "m1", photometric="MONOCHROME1", series_uid=series, study_uid=study)
    F.ct_series(tmp_path / "m2", series_uid=series, study_uid=study)
    m1, m2 = io.load(tmp_path / "m1"), io.load(tmp_path / "m2")
    assert m1.is_hu and np.array_equal(m1.array, m2.array) and int(m1.array.min()) == -1024
    assert not any("MONOCHROME1" in w for w in m1.warnings)


def test_monochrome1_signed_and_unused_bits(tmp_path):
    """Signed stored values invert to -1 - s; bits above BitsStored (old files keep overlays there) are not
    part of the value, inverted or not."""
    signed = np.array([[-5, 0], [7, 100]], dtype=np.int16)
    ds = F.ct_slice(rows=2, cols=2, stored=signed,
                    modality="OT", intercept=0.0, signed=True, photometric="MONOCHROME1")
    F.write(ds, tmp_path / "s" / "a.dcm")
    got = io.load(tmp_path / "s" / "a.dcm").array[0]
    assert np.array_equal(np.sort(got.ravel()), np.sort((-1 - signed).ravel()))
    overlay = np.array([[0, 4095], [1 << 12, (1 << 12) | 100]], dtype=np.uint16)  # bit 12 set: not the value
    for photometric, expected in (("MONOCHROME2", [0, 4095, 0, 100]), ("MONOCHROME1", [4095, 0, 4095, 3995])):
        ds = F.ct_slice(rows=2, cols=2, stored=overlay, modality="OT", intercept=0.0, photometric=photometric)
        F.write(ds, tmp_path / photometric / "a.dcm")
        got = io.load(tmp_path / photometric / "a.dcm").array[0]
        assert sorted(got.ravel().tolist()) == sorted(expected), photometric


def test_enhanced_ct_rescale_is_named_from_its_functional_groups(tmp_path):
    """The no-air notice names the rescale the frames carry (an Enhanced CT keeps it in its functional groups)."""
    path, _ = F.enhanced_ct(tmp_path / "e.dcm")
    ds = pydicom.dcmread(path)
    stored = ds.pixel_array.astype(np.int32) + 1200  # every value shifted above -400 HU: no air left
    ds.PixelData = stored.astype(np.int16).tobytes()
    ds.save_as(path)
    notes = [w for w in io.load(path).warnings if "no air" in w]
    item = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    assert len(notes) == 1 and f"RescaleIntercept {float(item.RescaleIntercept):g}" in notes[0]
    assert "gives no RescaleIntercept" not in notes[0]


def test_palette_colour_image_is_refused(tmp_path):
    F.ct_series(tmp_path / "pal", modality="OT", photometric="PALETTE COLOR")
    with pytest.raises(UnsupportedFormatError, match="colour-palette"):
        io.load(tmp_path / "pal")


def test_values_without_air_are_said_at_open(tmp_path):
    """A CT exported without its rescale intercept (air stored as 0), or an MR in a NIfTI file: the values are
    read as HU but hold no air, so the image shows white or grey in the lung window. The file says so when it
    opens (the AI also refuses it, but only when asked); a real CT says nothing."""
    rows = cols = 64
    jj, ii = np.mgrid[0:rows, 0:cols]
    body = (jj - 32) ** 2 + (ii - 32) ** 2 < 28 ** 2
    lungs = ((jj - 32) ** 2 + (ii - 20) ** 2 < 64) | ((jj - 32) ** 2 + (ii - 44) ** 2 < 64)
    stored = np.where(body, 1064, 24) - np.where(lungs, 900, 0)  # air -1000 HU, tissue +40, lung -860
    series, study = generate_uid(), generate_uid()
    for k in range(4):
        for name, intercept in (("ok", -1024.0), ("raw", None)):
            ds = F.ct_slice(rows=rows, cols=cols, position=(0, 0, 2.5 * k), stored=stored - (24 if intercept is None else 0),
                            series_uid=series + (".1" if name == "raw" else ""), study_uid=study, instance=k + 1)
            if intercept is None:
                del ds.RescaleIntercept, ds.RescaleSlope
            F.write(ds, tmp_path / name / f"{k}.dcm")
    ok, raw = io.load(tmp_path / "ok"), io.load(tmp_path / "raw")
    assert int(ok.array.min()) == -1000 and not any("no air" in w for w in ok.warnings)
    assert int(raw.array.min()) == 0
    note = [w for w in raw.warnings if "no air" in w]
    assert len(note) == 1 and "no RescaleIntercept" in note[0] and "(0 to 1040)" in note[0]

    mr = (np.where(body, 400, 0) + np.where(lungs, -300, 0)).astype(np.int16)  # an MR-like scale: background 0
    nib.save(nib.Nifti1Image(np.repeat(mr.T[:, :, None], 4, axis=2), np.diag([0.8, 0.8, 2.5, 1])), tmp_path / "mr.nii.gz")
    ct = np.where(body, 40, -1000) + np.where(lungs, -900, 0)
    nib.save(nib.Nifti1Image(np.repeat(ct.astype(np.int16).T[:, :, None], 4, axis=2), np.diag([0.8, 0.8, 2.5, 1])),
             tmp_path / "ct.nii.gz")
    assert any("no air" in w and "NIfTI" in w for w in io.load(tmp_path / "mr.nii.gz").warnings)
    assert not any("no air" in w for w in io.load(tmp_path / "ct.nii.gz").warnings)


def test_a_gap_in_a_stack_numbering_is_said(tmp_path):
    """Files missing from a numbered PNG stack put the slices either side next to each other: said when it opens
    (which files); a complete stack, and the real radiopaedia stacks' numbering, say nothing."""
    from engine.io.images import numbering_gap_note

    img = (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8)
    for folder, numbers in (("gap", [1, 2, 3, 4, 5, 6, 9, 10, 11, 14]), ("whole", range(1, 11))):
        (tmp_path / folder).mkdir()
        for n in numbers:
            Image.fromarray(img).save(tmp_path / folder / f"{n}.png")
    gap = io.load(tmp_path / "gap")
    notes = [w for w in gap.warnings if "missing from the stack" in w]
    assert gap.shape[0] == 10 and len(notes) == 1
    assert "About 4 file(s)" in notes[0] and "between 6.png and 9.png" in notes[0] and "between 11.png and 14.png" in notes[0]
    assert not any("missing from the stack" in w for w in io.load(tmp_path / "whole").warnings)
    assert numbering_gap_note([Path(f"{n}.png") for n in (10000, 10001, 10002)]) is None
    assert numbering_gap_note([Path(f"a{n}.jpg") for n in (0, 2, 4, 8)]) is not None  # step 2, one skipped
    assert numbering_gap_note([Path(f"img{n}.png") for n in (0, 2, 4, 6)]) is None  # every other slice: a step
