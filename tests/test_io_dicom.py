"""DICOM reading: sorting, rescale, series choice, warnings, multi-frame, compressed, real data."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid

import dicom_factory as F
from engine import io
from engine.errors import CancelledError, SeriesError
from engine.progress import CancelToken


def test_series_sorted_by_position_with_geometry(tmp_path):
    paths, expected = F.ct_series(tmp_path / "s", n=6, dz=2.5, z0=-50.0)
    vol = io.load(tmp_path / "s")
    assert vol.format == "dicom" and vol.is_hu and vol.array.dtype == np.int16
    assert np.array_equal(vol.array, expected)
    g = vol.geometry
    assert g.spacing == pytest.approx((2.5, 0.8, 0.7))
    assert g.origin == pytest.approx((-20.0, -30.0, -50.0))
    assert g.orientation_code() == "LPS"
    assert vol.warnings == []
    assert vol.meta["modality"] == "CT" and vol.meta["patient_id"] == "TEST001"
    uids = [pydicom.dcmread(p).SOPInstanceUID for p in paths]
    positions = [float(pydicom.dcmread(p).ImagePositionPatient[2]) for p in paths]
    assert vol.meta["sop_instance_uids"] == [u for _, u in sorted(zip(positions, uids))]
    assert vol.meta["series_instance_uid"] == pydicom.dcmread(paths[0]).SeriesInstanceUID


def test_single_file_opens_its_series(tmp_path):
    paths, expected = F.ct_series(tmp_path / "s", n=5)
    vol = io.load(paths[2])
    assert np.array_equal(vol.array, expected)


def test_fractional_rescale_gives_float32(tmp_path):
    _, expected = F.ct_series(tmp_path / "s", n=3, slope=0.5, intercept=-1000.0)
    vol = io.load(tmp_path / "s")
    assert vol.array.dtype == np.float32
    assert np.allclose(vol.array, (expected + 1024) * 0.5 - 1000.0)


def test_several_series_listed_and_default_is_axial_ct_with_most_slices(tmp_path):
    folder = tmp_path / "study"
    study = generate_uid()
    F.ct_series(folder, n=3, prefix="a", study_uid=study, description="small")
    big_paths, big = F.ct_series(folder, n=7, prefix="b", study_uid=study, description="big")
    F.ct_series(folder, n=9, prefix="c", study_uid=study, description="coronal",
                orientation=(1, 0, 0, 0, 0, -1))
    infos = io.list_series(folder)
    assert sorted(i.n_slices for i in infos) == [3, 7, 9]
    assert {i.orientation for i in infos} == {"axial", "coronal"}
    vol = io.load(folder)
    assert np.array_equal(vol.array, big)
    small = next(i for i in infos if i.description == "small")
    assert io.load(folder, series=small.uid).shape[0] == 3
    assert io.load(folder, series=small).shape[0] == 3  # a SeriesInfo is read without rescanning
    with pytest.raises(SeriesError, match="not in"):
        io.load(folder, series="1.2.3.4.nope")


def test_non_image_objects_are_ignored(tmp_path):
    _, expected = F.ct_series(tmp_path / "s", n=4)
    F.non_image(tmp_path / "s" / "report.dcm", "SR")
    F.non_image(tmp_path / "s" / "rois.dcm", "RTSTRUCT")
    (tmp_path / "s" / "notes.txt").write_text("hello")
    assert np.array_equal(io.load(tmp_path / "s").array, expected)


def test_missing_slice_warns(tmp_path):
    positions = [(0, 0, z) for z in (0, 2, 4, 8, 10)]
    _, expected = F.ct_series(tmp_path / "s", positions=positions)
    vol = io.load(tmp_path / "s")
    # the gap is never absorbed into the spacing: the missing slice at z=6 is filled with air
    assert vol.shape[0] == 6
    assert vol.spacing[0] == pytest.approx(2.0)
    assert any("1 slice(s) are missing" in w for w in vol.warnings)
    # named by the files and positions around the gap (img001 holds z = 4, img004 z = 8: ct_series shuffles)
    assert any("1 between img001.dcm at 4.0 mm and img004.dcm at 8.0 mm" in w for w in vol.warnings)
    assert np.array_equal(vol.array[[0, 1, 2, 4, 5]], expected)
    assert np.all(vol.array[3] == -1024)
    assert vol.meta["missing_slices"] == [3] and vol.meta["sop_instance_uids"][3] == ""


def test_uneven_gaps_warn(tmp_path):
    F.ct_series(tmp_path / "s", positions=[(0, 0, z) for z in (0, 2, 4.3, 6.2, 8)])
    assert any("Uneven" in w for w in io.load(tmp_path / "s").warnings)


def test_duplicate_positions_keep_first_and_warn(tmp_path):
    F.ct_series(tmp_path / "s", positions=[(0, 0, z) for z in (0, 2, 2, 4)])
    vol = io.load(tmp_path / "s")
    assert vol.shape[0] == 3
    assert any("repeat the position" in w for w in vol.warnings)
    assert vol.array[1, 0, 0] == 100 * 1 - 1024  # the first image at z=2 (instance 2)


def test_gantry_tilt_warns(tmp_path):
    shift = np.tan(np.radians(15)) * 2.0
    F.ct_series(tmp_path / "s", positions=[(0, k * shift, 2.0 * k) for k in range(4)])
    assert any("tilt" in w for w in io.load(tmp_path / "s").warnings)


def test_mixed_sizes_in_one_series_are_split(tmp_path):
    uid = generate_uid()
    _, expected = F.ct_series(tmp_path / "s", n=5, series_uid=uid)
    F.ct_series(tmp_path / "s", n=1, rows=6, cols=6, series_uid=uid, prefix="scout", z0=500)
    infos = io.list_series(tmp_path / "s")
    assert [i.n_slices for i in infos] == [5, 1]
    assert infos[1].uid == uid + "#2"
    assert np.array_equal(io.load(tmp_path / "s").array, expected)
    assert io.load(tmp_path / "s", series=uid + "#2").shape == (1, 6, 6)


def test_sagittal_series_is_canonicalised(tmp_path):
    # row direction -y (anterior), column direction -z (inferior), slices along +x
    _, stored = F.ct_series(tmp_path / "s", n=4, rows=5, cols=6, orientation=(0, -1, 0, 0, 0, -1))
    vol = io.load(tmp_path / "s")
    assert vol.geometry.orientation_code() == "LPS"
    assert vol.shape == (5, 6, 4)  # z <- rows (inferior), y <- columns (anterior), x <- slices
    hdr = sorted((pydicom.dcmread(p) for p in (tmp_path / "s").iterdir()),
                 key=lambda d: float(d.ImagePositionPatient[0]))
    for k, j, i in [(0, 0, 0), (3, 4, 5), (2, 1, 3)]:
        d = hdr[k]
        ipp = np.asarray(d.ImagePositionPatient, float)
        world = ipp + j * 0.8 * np.array([0, 0, -1.0]) + i * 0.7 * np.array([0, -1.0, 0])
        zyx = np.rint(vol.geometry.world_to_index(world)).astype(int)
        assert vol.array[tuple(zyx)] == stored[k, j, i]


def test_enhanced_multiframe(tmp_path):
    path, expected = F.enhanced_ct(tmp_path / "mf.dcm")
    vol = io.load(path)
    assert np.array_equal(vol.array, expected)
    assert vol.spacing == pytest.approx((3.0, 0.5, 0.6))
    assert vol.geometry.origin[2] == pytest.approx(10.0)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_transfer_syntaxes(tmp_path, syntax):
    paths, expected = F.ct_series(tmp_path / "s", n=3, rows=32, cols=32)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.compress(syntax)
        ds.save_as(p)
    assert pydicom.dcmread(paths[0]).file_meta.TransferSyntaxUID == syntax
    assert np.array_equal(io.load(tmp_path / "s").array, expected)


def test_signed_pixels(tmp_path):
    _, expected = F.ct_series(tmp_path / "s", n=2, signed=True, intercept=0.0)
    assert np.array_equal(io.load(tmp_path / "s").array, expected + 1024)


def test_cancel_and_progress(tmp_path):
    F.ct_series(tmp_path / "s", n=5)
    seen = []
    io.load(tmp_path / "s", progress=lambda f, m: seen.append(f))
    assert seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        io.load(tmp_path / "s", cancel=token)


def test_real_series_matches_simpleitk(dicom_99):
    import SimpleITK as sitk
    vol = io.load(dicom_99)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(dicom_99)))
    img = reader.Execute()
    ref = sitk.GetArrayViewFromImage(img)
    assert vol.shape == (99, 512, 512) and vol.array.dtype == np.int16
    assert vol.spacing == pytest.approx(img.GetSpacing()[::-1])
    assert vol.geometry.origin == pytest.approx(img.GetOrigin())
    assert np.array_equal(vol.array, ref)  # this series is already LPS: identical voxels
    assert vol.meta["modality"] == "CT" and len(vol.meta["sop_instance_uids"]) == 99


def test_values_beyond_int16_switch_to_float32(tmp_path):
    uid = generate_uid()
    for k, peak in enumerate((1000, 40000, 2000)):  # the second slice overflows int16 after rescale
        stored = np.full((4, 5), 100, dtype=np.uint16)
        stored[0, 0] = peak
        ds = F.ct_slice(rows=4, cols=5, position=(0, 0, 2.0 * k), stored=stored, series_uid=uid, instance=k + 1)
        ds.BitsStored, ds.HighBit = 16, 15
        ds.PixelData = stored.tobytes()
        F.write(ds, tmp_path / "s" / f"{k}.dcm")
    vol = io.load(tmp_path / "s")
    assert vol.array.dtype == np.float32
    assert list(vol.array[:, 0, 0]) == [1000 - 1024, 40000 - 1024, 2000 - 1024]
    assert np.all(vol.array[:, 1:, :] == 100 - 1024)


def test_decoders_installed_for_common_compressed_syntaxes():
    from pydicom import uid
    from pydicom.pixels import get_decoder
    for name in ("JPEGBaseline8Bit", "JPEGExtended12Bit", "JPEGLossless", "JPEGLosslessSV1", "JPEGLSLossless",
                 "JPEGLSNearLossless", "JPEG2000Lossless", "JPEG2000", "RLELossless"):
        assert get_decoder(getattr(uid, name)).is_available, name


def test_legacy_multiframe_with_grid_offsets(tmp_path):
    frames = np.stack([np.full((4, 5), 10 * f, np.uint16) for f in range(3)])
    ds = F.ct_slice(rows=4, cols=5, position=(1.0, 2.0, 30.0), stored=frames[0])
    ds.NumberOfFrames = 3
    ds.GridFrameOffsetVector = [0.0, -2.0, -4.0]  # frames go towards the feet
    ds.PixelData = frames.tobytes()
    path = F.write(ds, tmp_path / "legacy" / "mf.dcm")
    vol = io.load(path)
    assert vol.shape == (3, 4, 5) and vol.spacing[0] == pytest.approx(2.0)
    assert list(vol.array[:, 0, 0]) == [20 - 1024, 10 - 1024, 0 - 1024]  # ascending z
    assert vol.geometry.origin[2] == pytest.approx(26.0)


def test_missing_positions_fall_back_to_instance_number(tmp_path):
    paths, expected = F.ct_series(tmp_path / "s", n=4, dz=3.0)
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.ImagePositionPatient
        ds.save_as(p)
    vol = io.load(tmp_path / "s")
    assert np.array_equal(vol.array, expected)  # instance k + 1 holds slice k
    assert vol.spacing[0] == pytest.approx(2.0)  # SliceThickness of the factory
    assert any("InstanceNumber" in w for w in vol.warnings)
