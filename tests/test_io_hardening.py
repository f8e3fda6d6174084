"""Headers that disagree with their pixels, hangs and stuck opens (issue 11): every case is built here.

Each case asserts one of three outcomes: a clean :class:`LungLensError` whose message
names the file and the reason, a warning in ``volume.warnings`` (which ``engine info``
prints), or a volume loaded exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from pydicom.encaps import encapsulate

import dicom_factory as F
from engine import io
from engine.errors import CancelledError, CorruptFileError, LungLensError, SeriesError, UnsupportedFormatError
from engine.progress import CancelToken


def _series(tmp_path, n=5, **kw):
    paths, expected = F.ct_series(tmp_path / "s", n=n, shuffle=False, **kw)
    return tmp_path / "s", paths, expected


def _edit(path, **changes):
    import pydicom
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path)


# -- positions and orientations ------------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_position_is_named_and_never_reorders(tmp_path, bad):
    folder, paths, expected = _series(tmp_path)
    _edit(paths[2], ImagePositionPatient=[-20.0, bad, -45.0])
    vol = io.load(folder)
    assert vol.shape[0] == 5 and vol.spacing[0] == pytest.approx(2.5)
    assert np.array_equal(vol.array[[0, 1, 3, 4]], expected[[0, 1, 3, 4]])  # order kept
    assert np.all(vol.array[2] == -1024)
    assert any("img002.dcm" in w and "not a finite position" in w for w in vol.warnings)


def test_all_positions_nan_is_an_error(tmp_path):
    folder, paths, _ = _series(tmp_path, n=3)
    for p in paths:
        _edit(p, ImagePositionPatient=[float("nan"), 0.0, 0.0])
    with pytest.raises(CorruptFileError, match="not a finite position"):
        io.load(folder)


@pytest.mark.parametrize("iop", [[0, 0, 0, 0, 0, 0], [1, 0, 0, 1, 0, 0], [3, 0, 0, 0, 1, 0]])
def test_degenerate_orientation_is_an_error(tmp_path, iop):
    folder, paths, _ = _series(tmp_path, n=3)
    for p in paths:
        _edit(p, ImageOrientationPatient=[float(v) for v in iop])
    with pytest.raises(CorruptFileError, match="perpendicular unit vectors"):
        io.load(folder)


# -- pixel data length ---------------------------------------------------------------------------

@pytest.mark.parametrize("changes", [dict(Rows=1, Columns=512), dict(Rows=512, Columns=511),
                                     dict(BitsAllocated=8, BitsStored=8, HighBit=7)],
                         ids=["1x512", "sheared 512x511", "8-bit read of 16-bit"])
def test_pixel_length_must_match_header(tmp_path, changes):
    ds = F.ct_slice(rows=512, cols=512, stored=np.full((512, 512), 1000))
    path = F.write(ds, tmp_path / "c" / "one.dcm")
    _edit(path, **changes)
    with pytest.raises(CorruptFileError, match=r"one.dcm: its pixel data has 524288 bytes"):
        io.load(path)


@pytest.mark.parametrize("frames", [2 ** 31, 20_000_000])
def test_absurd_frame_count_is_refused_before_any_frame_work(tmp_path, frames):
    ds = F.ct_slice(rows=4, cols=4)
    ds.NumberOfFrames = frames
    path = F.write(ds, tmp_path / "c" / "mf.dcm")
    t0 = time.perf_counter()
    with pytest.raises(CorruptFileError, match="frames"):
        io.load(path)
    assert time.perf_counter() - t0 < 5.0


# -- sign and codestream -------------------------------------------------------------------------

def test_wrong_pixel_representation_signed_label_on_unsigned_data_warns(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "s"
    F.ct_series(folder, n=3, rows=32, cols=32)
    for i, p in enumerate(sorted(folder.iterdir())):  # 12-bit unsigned data with bone (>= 2048 stored)
        stored = rng.integers(0, 3500, (32, 32)).astype(np.uint16)
        _edit(p, PixelData=stored.tobytes(), PixelRepresentation=1)
    vol = io.load(folder)
    assert vol.array.min() < -2000  # what the header asks for: the sign bit makes bone far below air
    assert any("not plausible Hounsfield units" in w and "PixelRepresentation" in w and "unsigned" in w
               for w in vol.warnings)


def test_wrong_pixel_representation_unsigned_label_on_signed_data_warns(tmp_path):
    folder = tmp_path / "s"
    hu = np.linspace(-1000, 400, 16 * 16).reshape(16, 16).astype(np.int16)
    F.ct_series(folder, n=3, rows=16, cols=16)
    for p in folder.iterdir():
        _edit(p, PixelData=hu.tobytes(), RescaleIntercept=0, BitsStored=16, HighBit=15, PixelRepresentation=0)
    vol = io.load(folder)
    assert vol.array.max() > 30000
    assert any("not plausible Hounsfield units" in w and "above 30000" in w for w in vol.warnings)


def test_plausible_ct_with_padding_gives_no_sign_warning(tmp_path):
    folder = tmp_path / "s"
    stored = np.full((16, 16), 1024, np.int16)
    stored[:4] = -2000  # outside the field of view: one constant
    stored[4:6] = 24  # air inside it (-1000 HU), as every CT shows
    F.ct_series(folder, n=3, rows=16, cols=16)
    for p in folder.iterdir():
        _edit(p, PixelData=stored.tobytes(), BitsStored=16, HighBit=15, PixelRepresentation=1)
    vol = io.load(folder)
    assert not any("Hounsfield" in w for w in vol.warnings)


@pytest.mark.parametrize("ts, stream, found", [
    ("1.2.840.10008.1.2.4.50", b"\xff\x4f\xff\x51" + b"\0" * 60, "JPEG 2000 codestream"),
    ("1.2.840.10008.1.2.4.90", b"\xff\xd8\xff\xc0\x00\x04\x08\x00" + b"\0" * 60, "JPEG Baseline codestream"),
    ("1.2.840.10008.1.2.4.80", b"\xff\xd8\xff\xc3\x00\x04\x08\x00" + b"\0" * 60, "JPEG Lossless codestream"),
    ("1.2.840.10008.1.2.5", b"\xff\xd8\xff\xc0" + b"\0" * 80, "not an RLE segment table"),
], ids=["j2k labelled baseline", "jpeg labelled j2k", "lossless labelled JPEG-LS", "jpeg labelled RLE"])
def test_transfer_syntax_must_match_codestream(tmp_path, ts, stream, found):
    ds = F.ct_slice(rows=8, cols=8)
    ds.file_meta.TransferSyntaxUID = ts
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "c" / "enc.dcm"
    path.parent.mkdir()
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(CorruptFileError, match=f"enc.dcm: the transfer syntax says .* but the pixel data is (a )?{found}"):
        io.load(path)


# -- slices that do not belong ---------------------------------------------------------------------

def test_slice_with_other_pixel_spacing_is_split_off_and_named(tmp_path):
    folder, paths, expected = _series(tmp_path)
    _edit(paths[2], PixelSpacing=[0.9, 0.9])
    infos = io.list_series(folder)
    assert sorted(i.n_slices for i in infos) == [1, 4]
    vol = io.load(folder)
    assert vol.shape[0] == 5 and vol.spacing == pytest.approx((2.5, 0.8, 0.7))
    assert np.array_equal(vol.array[[0, 1, 3, 4]], expected[[0, 1, 3, 4]]) and np.all(vol.array[2] == -1024)
    assert any("img002.dcm" in w and "pixel spacing (0.9, 0.9) instead of (0.8, 0.7)" in w for w in vol.warnings)
    assert any("1 slice(s) are missing" in w for w in vol.warnings)


def test_slice_with_other_orientation_is_split_off_and_named_in_words(tmp_path):
    """A coronal image inside an axial series: the notice says "coronal instead of axial slices" (not two
    tuples of direction cosines), and the series list tells the two parts apart by their orientation."""
    from app.widgets.series_dialog import series_row

    folder, paths, _ = _series(tmp_path)
    _edit(paths[2], ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    infos = io.list_series(folder)
    rows = sorted(series_row(i)[-1] for i in infos)
    assert rows == ["10 x 12", "10 x 12, coronal"]
    vol = io.load(folder)
    note = [w for w in vol.warnings if "split off" in w]
    assert len(note) == 1 and "img002.dcm (coronal instead of axial slices): listed as a separate series" in note[0]
    assert "(1.0, 0.0" not in note[0]


def test_slice_with_other_size_is_split_off_and_named(tmp_path):
    folder, paths, expected = _series(tmp_path)
    F.write(F.ct_slice(rows=12, cols=11, position=(-20.0, -30.0, -45.0), series_uid=str(
        __import__("pydicom").dcmread(paths[0]).SeriesInstanceUID), instance=3), paths[2])
    vol = io.load(folder)
    assert vol.shape[0] == 5 and np.all(vol.array[2] == -1024)
    assert any("img002.dcm" in w and "size 12x11 instead of 12x10" in w for w in vol.warnings)


@pytest.mark.parametrize("damage, reason", [
    ("zero", "empty file (0 bytes)"), ("nopixels", "no pixel data"), ("header", "not a readable DICOM file"),
    ("cut", "no pixel data (truncated file?)")])
def test_skipped_slice_is_named_and_gap_keeps_true_spacing(tmp_path, damage, reason):
    folder, paths, expected = _series(tmp_path, n=10, dz=2.0)
    if damage == "zero":
        paths[4].write_bytes(b"")
    elif damage == "nopixels":
        _edit(paths[4], PixelData=None)
    else:
        paths[4].write_bytes(paths[4].read_bytes()[:100 if damage == "header" else 400])
    vol = io.load(folder)
    assert vol.spacing[0] == pytest.approx(2.0)  # not 2.111: the gap is not absorbed
    assert vol.shape[0] == 10 and np.all(vol.array[4] == -1024)
    assert np.array_equal(vol.array[[0, 1, 2, 3, 5, 6, 7, 8, 9]], expected[[0, 1, 2, 3, 5, 6, 7, 8, 9]])
    assert any("img004.dcm" in w and reason in w for w in vol.warnings)
    assert any("1 slice(s) are missing" in w for w in vol.warnings)
    # and the CLI prints both
    out = subprocess.run([sys.executable, "-m", "engine", "info", str(folder)], capture_output=True, text=True,
                         env=dict(os.environ), timeout=120)
    assert out.returncode == 0 and "img004.dcm" in out.stdout and "missing" in out.stdout


def test_gap_that_is_not_whole_slices_is_refused(tmp_path):
    F.ct_series(tmp_path / "s", positions=[(0, 0, z) for z in (0, 2, 4, 9, 11)])
    with pytest.raises(SeriesError, match="not a whole number of missing slices"):
        io.load(tmp_path / "s")


def test_missing_slice_round_trips_through_dicom_seg(tmp_path):
    folder, paths, _ = _series(tmp_path, n=6, dz=2.0)
    paths[3].unlink()
    vol = io.load(folder)
    labels = np.zeros(vol.shape, np.uint8)
    labels[1, 2:5, 2:5] = 1
    labels[4, 3:6, 3:6] = 3
    out = io.save_labels(labels, vol, tmp_path / "seg.dcm")
    back = io.load_labels(out, reference=vol)
    assert np.array_equal(back, labels)


# -- hangs -------------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_fifo_in_folder_is_never_opened(tmp_path):
    folder, _, expected = _series(tmp_path, n=3)
    os.mkfifo(folder / "pipe.dcm")
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("vol", io.load(folder)), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "load blocked on a FIFO"
    assert np.array_equal(result["vol"].array, expected)
    with pytest.raises(UnsupportedFormatError, match="named pipe"):
        io.load(folder / "pipe.dcm")


def test_path_over_os_limit_is_a_clean_error(tmp_path):
    with pytest.raises(LungLensError, match="too long"):
        io.load(tmp_path / ("x" * 300) / "scan.nii.gz")
    with pytest.raises(LungLensError, match="too long"):
        io.load("/" + "/".join(["d" * 200] * 30))


@pytest.mark.parametrize("arg", ["", "   "])
def test_empty_path_is_an_error_not_the_current_folder(arg):
    with pytest.raises(LungLensError, match="No path was given"):
        io.load(arg)
    out = subprocess.run([sys.executable, "-m", "engine", "info", arg], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.startswith("error: No path was given") and "Traceback" not in out.stderr


# -- cancellable open in a child process -----------------------------------------------------------

def stuck_reader(path, progress, cancel):  # a library call that never returns and never checks a token
    progress(0.1, "stuck")
    time.sleep(600)


def test_open_isolated_returns_the_same_volume(tmp_path):
    folder, paths, expected = _series(tmp_path, n=4)
    paths[2].unlink()
    seen = []
    vol = io.open_isolated(folder, progress=lambda f, m: seen.append(f))
    direct = io.load(folder)
    assert np.array_equal(vol.array, direct.array) and vol.array.dtype == direct.array.dtype
    assert vol.geometry == direct.geometry and vol.warnings == direct.warnings
    assert vol.meta["sop_instance_uids"] == direct.meta["sop_instance_uids"]
    assert seen and max(seen) == pytest.approx(1.0)


def test_open_isolated_passes_errors_with_their_class(tmp_path):
    (tmp_path / "a.nii").write_bytes(b"")
    with pytest.raises(CorruptFileError, match="a.nii is empty"):
        io.open_isolated(tmp_path / "a.nii")


def test_cancel_ends_a_stuck_open_within_one_second():
    from engine.io.isolated import run_isolated
    token = CancelToken()
    started = threading.Event()
    outcome = {}

    def work():
        try:
            run_isolated(stuck_reader, "stuck.nii", progress=lambda f, m: started.set(), cancel=token)
        except CancelledError:
            outcome["t"] = time.perf_counter()
    t = threading.Thread(target=work)
    t.start()
    assert started.wait(60), "the child never reported progress"
    t0 = time.perf_counter()
    token.cancel()
    t.join(10)
    assert "t" in outcome and outcome["t"] - t0 < 1.0


def test_dicom_seg_of_series_with_empty_sop_class_says_why(tmp_path):
    folder, paths, _ = _series(tmp_path, n=3)
    for p in paths:
        _edit(p, SOPClassUID="")
    vol = io.load(folder)
    labels = np.zeros(vol.shape, np.uint8)
    labels[1, 2, 2] = 1
    io.save_labels(labels, vol, tmp_path / "o" / "l.nii.gz")
    with pytest.raises(UnsupportedFormatError, match="empty SOPClassUID or SOPInstanceUID"):
        io.save_labels(labels, vol, tmp_path / "o" / "l_seg.dcm")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["l.nii.gz"]  # no temp left behind
    out = subprocess.run([sys.executable, "-m", "engine", "export", str(folder), "--labels",
                          str(tmp_path / "o" / "l.nii.gz"), "--out", str(tmp_path / "o" / "l_seg.dcm")],
                         capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("error: DICOM SEG cannot be written for this scan")


def _bad_ds_value(tmp_path):
    ds = F.ct_slice(rows=8, cols=8)
    path = F.write(ds, tmp_path / "c" / "bad.dcm")
    data = path.read_bytes().replace(b"0.8\\0.7", b"x.8\\0?7")  # PixelSpacing no longer a number
    path.write_bytes(data)
    _edit(path, Rows=9)  # and a header that does not describe the pixels
    return path


def _truncated_pixels(tmp_path):
    ds = F.ct_slice(rows=64, cols=64)
    path = F.write(ds, tmp_path / "c" / "cut.dcm")
    path.write_bytes(path.read_bytes()[:-3000])
    return path


def _nan_series(tmp_path):
    folder, paths, _ = _series(tmp_path, n=4)
    _edit(paths[1], ImagePositionPatient=[float("nan"), 0.0, 0.0])
    return folder


@pytest.mark.parametrize("make, outcome", [(_bad_ds_value, "error"), (_truncated_pixels, "error"),
                                           (_nan_series, "warning")], ids=["bad DS + rows", "cut pixels", "NaN"])
def test_cli_prints_one_clean_line_no_library_noise(tmp_path, make, outcome):
    path = make(tmp_path)
    out = subprocess.run([sys.executable, "-m", "engine", "info", str(path)], capture_output=True, text=True,
                         env=dict(os.environ), timeout=120)
    if outcome == "error":
        assert out.returncode == 2 and out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    else:
        assert out.returncode == 0 and out.stderr == "" and "warning:" in out.stdout
    assert "Traceback" not in out.stderr and "UserWarning" not in out.stderr


def test_two_patients_without_series_uid_are_never_one_volume(tmp_path):
    """An anonymiser that drops SeriesInstanceUID (or a shared one): the two patients' slices interleaved
    in space were one volume that alternated between them slice by slice."""
    folder = tmp_path / "s"
    _, expected = F.ct_series(folder, n=4, dz=2.0, z0=0.0, shuffle=False, prefix="a")
    paths_b, _ = F.ct_series(folder, n=4, dz=2.0, z0=1.0, shuffle=False, prefix="b")
    for p in folder.glob("*.dcm"):
        _edit(p, SeriesInstanceUID=None)
    for p in paths_b:
        _edit(p, PatientID="OTHER", FrameOfReferenceUID="1.2.3.4")
    infos = io.list_series(folder)
    assert len(infos) == 2 and sorted(i.n_files for i in infos) == [4, 4]
    vol = io.load(folder)
    assert vol.shape[0] == 4 and vol.spacing[0] == pytest.approx(2.0)
    assert np.array_equal(vol.array, expected)  # one patient's slices only
    note = [w for w in vol.warnings if "split off" in w]
    assert len(note) == 1 and "another patient (a different Patient ID)" in note[0]
    assert "never mixed into one volume" in note[0] and "slices are missing" not in note[0]


def test_an_image_without_rescale_among_images_with_one_takes_the_series_value_and_is_named(tmp_path):
    folder, paths, expected = _series(tmp_path)
    _edit(paths[2], RescaleIntercept=None)  # read as intercept 0 it was 1024 HU too bright
    vol = io.load(folder)
    assert np.array_equal(vol.array, expected)
    assert any("1 image(s) give no valid rescale" in w and "img002.dcm" in w and "RescaleIntercept -1024" in w
               for w in vol.warnings)


def test_a_zero_rescale_slope_in_every_image_is_said(tmp_path):
    folder, paths, expected = _series(tmp_path)
    for p in paths:
        _edit(p, RescaleSlope=0)
    vol = io.load(folder)
    assert np.array_equal(vol.array, expected)  # read with slope 1
    assert any("Every image gives RescaleSlope 0" in w for w in vol.warnings)


def test_an_image_without_position_among_positioned_ones_is_left_out_not_the_positions(tmp_path):
    folder, paths, expected = _series(tmp_path, n=6, dz=1.25)
    _edit(paths[3], ImagePositionPatient=None)  # the others' positions were all dropped: order by number
    vol = io.load(folder)
    assert vol.shape[0] == 6 and vol.spacing[0] == pytest.approx(1.25)
    keep = [0, 1, 2, 4, 5]
    assert np.array_equal(vol.array[keep], expected[keep]) and np.all(vol.array[3] == -1024)
    assert any("1 image(s) were left out because they give no ImagePositionPatient" in w and "img003.dcm" in w
               for w in vol.warnings)


def test_no_positions_at_all_says_which_end_was_taken_for_the_feet(tmp_path):
    folder, paths, _ = _series(tmp_path)
    for p in paths:
        _edit(p, ImagePositionPatient=None)
    vol = io.load(folder)
    assert any("image 1 at the feet end" in w and "image 5 at the head end" in w for w in vol.warnings)


def test_a_slice_off_the_line_of_the_others_is_named(tmp_path):
    folder, paths, expected = _series(tmp_path, n=8)
    import pydicom

    pos = [float(v) for v in pydicom.dcmread(paths[4]).ImagePositionPatient]
    _edit(paths[4], ImagePositionPatient=[pos[0] - 20.0, pos[1], pos[2]])
    vol = io.load(folder)
    assert np.array_equal(vol.array, expected)
    note = [w for w in vol.warnings if "sideways off the line" in w]
    assert len(note) == 1 and note[0].startswith("1 slice(s) lie up to 20 mm") and "img004.dcm" in note[0]
    clean, _, _ = _series(tmp_path / "clean", n=8)
    assert not any("sideways" in w for w in io.load(clean).warnings)


def test_gantry_tilt_spacing_is_the_distance_between_slice_planes(tmp_path):
    tilt = np.radians(25.0)
    positions = [(-20.0, -30.0 + 2.0 * k * np.tan(tilt), -50.0 + 2.0 * k) for k in range(6)]
    folder, _, _ = _series(tmp_path, n=6, positions=positions)
    vol = io.load(folder)
    assert vol.spacing[0] == pytest.approx(2.0, rel=1e-6)  # not 2 / cos(25 deg) = 2.207
    assert vol.geometry.voxel_volume_ml == pytest.approx(2.0 * 0.8 * 0.7 / 1000, rel=1e-6)
    assert any("Gantry tilt of about 25.0 degrees" in w and "2 mm between slice planes" in w for w in vol.warnings)
    assert not any("sideways off the line" in w for w in vol.warnings)  # a tilt is a straight line


def _enhanced(tmp_path, edit):
    import pydicom

    path, expected = F.enhanced_ct(tmp_path / "e.dcm", n=6, descending=False)
    ds = pydicom.dcmread(path)
    edit(ds)
    ds.save_as(path)
    return path, expected


def test_enhanced_ct_with_pixel_spacing_in_the_frames_only(tmp_path):
    def per_frame_spacing(ds):
        pm = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence
        del ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence
        for item in ds.PerFrameFunctionalGroupsSequence:
            item.PixelMeasuresSequence = pm
    path, expected = _enhanced(tmp_path, per_frame_spacing)
    vol = io.load(path)
    assert vol.spacing[1:] == pytest.approx((0.5, 0.6)) and vol.geometry.spacing_known  # 1 mm was assumed
    assert np.array_equal(vol.array, expected)
    assert not any("no pixel spacing" in w for w in vol.warnings)


def test_enhanced_ct_frames_in_another_plane_are_left_out_and_said(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    def two_planes(ds):
        for item in list(ds.PerFrameFunctionalGroupsSequence)[4:]:
            po = Dataset()
            po.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal
            item.PlaneOrientationSequence = Sequence([po])
    path, expected = _enhanced(tmp_path, two_planes)
    vol = io.load(path)
    assert vol.shape[0] == 4 and np.array_equal(vol.array, expected[:4])
    assert any("2 frame(s) lie in another plane than the first frame and were left out (e.dcm frame 5, e.dcm frame 6)"
               in w for w in vol.warnings)


def test_a_series_whose_slice_spacing_changes_is_not_called_damaged(tmp_path):
    """1 mm, then 2 mm slices: a spacing change or every other slice missing (the headers cannot tell); said as
    such, not "slices missing, copy the series again". The finer grid holds the images at their positions."""
    zs = [0, 1, 2, 3, 4, 5, 7, 9, 11, 13]
    folder, _, expected = _series(tmp_path, n=len(zs), positions=[(-20.0, -30.0, float(z)) for z in zs])
    vol = io.load(folder)
    assert vol.shape[0] == 14 and vol.spacing[0] == pytest.approx(1.0)
    for k, z in enumerate(zs):  # each image at its own position; air between the 2 mm ones
        assert np.array_equal(vol.array[z], expected[k])
    assert vol.meta["missing_slices"] == [6, 8, 10, 12]
    said = " ".join(vol.warnings)
    assert "From img005.dcm at 5.0 mm to img009.dcm at 13.0 mm the slices are 2 mm apart, not 1 mm" in said
    assert "or every other slice is missing" in said and "Copy the series again" not in said
    # the thicker part the majority: the grid is still the finest gap, every image at its position
    zs = [0, 1, 2] + [2 + 2 * k for k in range(1, 9)]
    folder, _, expected = _series(tmp_path / "b", n=len(zs), positions=[(-20.0, -30.0, float(z)) for z in zs])
    vol = io.load(folder)
    assert vol.spacing[0] == pytest.approx(1.0) and all(np.array_equal(vol.array[z], expected[k])
                                                       for k, z in enumerate(zs))
    assert not any("Uneven slice gaps" in w for w in vol.warnings)


def test_a_few_positions_among_many_images_without_keep_the_instance_order(tmp_path):
    folder, paths, _ = _series(tmp_path, n=6)
    for p in paths[1:]:
        _edit(p, ImagePositionPatient=None)
    vol = io.load(folder)
    assert vol.shape[0] == 6  # not the one image with a position
    assert any(w.startswith("5 of the 6 images give no ImagePositionPatient") for w in vol.warnings)


def test_a_slice_far_off_in_a_short_series_is_no_gantry_tilt(tmp_path):
    folder, _, _ = _series(tmp_path, n=3, positions=[(0.0, 0.0, 0.0), (-20.0, -30.0, 2.5), (-20.0, -30.0, 5.0)])
    vol = io.load(folder)
    assert not any("Gantry tilt" in w for w in vol.warnings)
    assert any("more than any gantry tilt" in w for w in vol.warnings)


def test_labels_saved_over_a_tilted_series_before_the_spacing_fix_still_open(tmp_path):
    from dataclasses import replace

    from engine.io.labels_io import load_labels, save_labels
    from engine.types import Volume

    tilt = np.radians(25.0)
    positions = [(-20.0, -30.0 + 2.0 * k * np.tan(tilt), -50.0 + 2.0 * k) for k in range(6)]
    folder, _, _ = _series(tmp_path, n=6, positions=positions)
    vol = io.load(folder)
    assert vol.meta["tilted_step_mm"] == pytest.approx(2.0 / np.cos(tilt), rel=1e-6)
    labels = np.zeros(vol.shape, np.uint8)
    labels[2:4, 3:6, 3:6] = 1
    g = vol.geometry
    before = replace(g, spacing=(vol.meta["tilted_step_mm"],) + tuple(g.spacing[1:]))  # the spacing of before
    save_labels(labels, Volume(array=vol.array, geometry=before, is_hu=True), tmp_path / "old.nii.gz")
    assert np.array_equal(load_labels(tmp_path / "old.nii.gz", vol), labels)
    other = replace(g, spacing=(3.0,) + tuple(g.spacing[1:]))  # any other spacing is still another grid
    save_labels(labels, Volume(array=vol.array, geometry=other, is_hu=True), tmp_path / "other.nii.gz")
    from engine.errors import GeometryMismatchError
    with pytest.raises(GeometryMismatchError):
        load_labels(tmp_path / "other.nii.gz", vol)


def test_a_dicom_seg_refuses_labels_on_missing_slices_instead_of_dropping_them(tmp_path):
    from engine.errors import DataError
    from engine.io.labels_io import save_labels

    zs = [0.0, 2.5, 5.0, 10.0, 12.5]  # one slice missing at 7.5 mm: shown as air, no source image
    folder, _, _ = _series(tmp_path, n=len(zs), positions=[(-20.0, -30.0, z) for z in zs])
    vol = io.load(folder)
    assert vol.meta["missing_slices"] == [3]
    labels = np.zeros(vol.shape, np.uint8)
    labels[1, 2:5, 2:5] = 1
    save_labels(labels, vol, tmp_path / "ok.dcm")  # labels on images only: stored
    labels[3, 2:4, 2:4] = 2  # painted on the missing slice
    with pytest.raises(DataError, match="4 labelled voxels lie on 1 slice"):
        save_labels(labels, vol, tmp_path / "lost.dcm")
    assert not (tmp_path / "lost.dcm").exists()


def test_no_positions_names_the_end_of_image_1_from_the_slice_normal(tmp_path):
    folder, paths, _ = _series(tmp_path, orientation=(1, 0, 0, 0, -1, 0))  # rows posterior to anterior: normal down
    for p in paths:
        _edit(p, ImagePositionPatient=None)
    vol = io.load(folder)
    assert any("image 1 at the head end" in w and "image 5 at the feet end" in w for w in vol.warnings)
    # the volume agrees: image k holds 100 * (k - 1) + ... - 1024, and image 1 is the top (head) canonical slice
    assert int(vol.array[-1].min()) == -1024 and int(vol.array[0].min()) == 400 - 1024
