"""NIfTI reading: orientation, scaling, dtypes, 2D/4D, non-finite voxels, progress and cancel."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from engine import io
from engine.errors import CancelledError
from engine.progress import CancelToken

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _save(tmp_path, data_xyz, affine, name="scan.nii.gz", slope=None, inter=None, dtype=None):
    img = nib.Nifti1Image(data_xyz, affine, dtype=dtype)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    path = tmp_path / name
    nib.save(img, str(path))
    return path


def _ras_world(affine, ijk):
    return (affine @ np.r_[ijk, 1.0])[:3]


@pytest.mark.parametrize("affine", [
    np.diag([0.7, 0.8, 2.5, 1.0]),                      # RAS+: x -> right, y -> anterior
    np.diag([-0.7, -0.8, 2.5, 1.0]),                    # LPS already
    np.array([[0, 0, -2.0, 5], [0.7, 0, 0, -3], [0, -0.8, 0, 40], [0, 0, 0, 1]]),  # permuted, sagittal-ish
])
@pytest.mark.parametrize("name", ["scan.nii", "scan.nii.gz"])
def test_orientation_and_world_positions(tmp_path, affine, name):
    rng = np.random.default_rng(1)
    data = rng.permutation(6 * 5 * 4).reshape(6, 5, 4).astype(np.int16) - 500
    affine = affine.copy()
    affine[:3, 3] += (11.0, -7.0, 3.0)
    vol = io.load(_save(tmp_path, data, affine, name))
    assert vol.format == "nifti" and vol.array.dtype == np.int16 and vol.is_hu
    assert vol.geometry.orientation_code() == "LPS"
    for value in data.ravel()[[0, 7, 50, 119]]:
        ijk = np.argwhere(data == value)[0]
        zyx = np.argwhere(vol.array == value)[0]
        world_lps = LPS[:3, :3] @ _ras_world(affine, ijk)
        assert np.allclose(vol.geometry.index_to_world(zyx), world_lps, atol=1e-4)
    assert sorted(vol.array.ravel()) == sorted(data.ravel())


def test_slope_applied_and_dtype(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    vol = io.load(_save(tmp_path, data, np.eye(4), slope=2.0, inter=-1024.0))
    assert vol.array.dtype == np.int16
    assert vol.array.min() == -1024 and vol.array.max() == 2 * 23 - 1024
    vol = io.load(_save(tmp_path, data, np.eye(4), "half.nii", slope=0.5, inter=0.0))
    assert vol.array.dtype == np.float32
    assert vol.array.max() == pytest.approx(11.5)


def test_float_integral_becomes_int16_and_fractional_stays_float(tmp_path):
    data = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 1000)
    assert io.load(_save(tmp_path, data, np.eye(4), "int.nii")).array.dtype == np.int16
    vol = io.load(_save(tmp_path, data + 0.25, np.eye(4), "frac.nii"))
    assert vol.array.dtype == np.float32 and vol.array.min() == pytest.approx(-999.75)


def test_uint8_is_not_hu(tmp_path):
    data = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    vol = io.load(_save(tmp_path, data, np.eye(4), "u8.nii"))
    assert vol.array.dtype == np.uint8 and not vol.is_hu


def test_4d_gives_first_volume_with_warning(tmp_path):
    data = np.zeros((4, 3, 2, 3), dtype=np.int16)
    data[..., 0] = 7
    data[..., 1:] = 9
    vol = io.load(_save(tmp_path, data, np.eye(4), "four.nii.gz"))
    assert vol.shape == (2, 3, 4)
    assert np.all(vol.array == 7)
    assert any("first volume" in w for w in vol.warnings)


def test_2d_is_one_slice(tmp_path):
    data = np.arange(12, dtype=np.int16).reshape(4, 3)
    vol = io.load(_save(tmp_path, data, np.diag([-1.0, -1.0, 1.0, 1.0]), "two.nii"))
    assert vol.shape == (1, 3, 4)
    assert vol.array[0, 2, 3] == data[3, 2]


def test_nan_and_inf_are_replaced_with_warning(tmp_path):
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 10.5
    data[0, 0, 0] = np.nan
    data[1, 1, 1] = np.inf
    data[1, 2, 1] = -np.inf
    vol = io.load(_save(tmp_path, data, np.diag([-1.0, -1.0, 1.0, 1.0]), "nan.nii"))
    assert np.all(np.isfinite(vol.array))
    assert vol.array[0, 0, 0] == pytest.approx(-9.5)  # lowest finite (voxel 0 was NaN)
    assert vol.array[1, 1, 1] == pytest.approx(12.5)   # highest finite
    assert vol.array[1, 2, 1] == pytest.approx(-9.5)
    assert any("NaN or infinite, on axial slices 1-2 (of 4)" in w for w in vol.warnings), vol.warnings


def test_progress_and_cancel(tmp_path):
    data = np.zeros((64, 64, 40), dtype=np.int16)
    path = _save(tmp_path, data, np.eye(4), "p.nii")
    seen = []
    io.load(path, progress=lambda f, m: seen.append(f))
    assert seen and seen[-1] == pytest.approx(1.0) and seen == sorted(seen)
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        io.load(path, cancel=token)


def test_multi_member_gzip(tmp_path):
    import gzip
    data = np.arange(40 * 30 * 20, dtype=np.int16).reshape(40, 30, 20) - 3000
    raw = nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0])).to_bytes()
    cut = len(raw) // 3
    (tmp_path / "multi.nii.gz").write_bytes(gzip.compress(raw[:cut]) + gzip.compress(raw[cut:]))
    vol = io.load(tmp_path / "multi.nii.gz")
    assert np.array_equal(vol.array, data.T)


def test_cancel_midway_stops_the_reader_thread(tmp_path):
    import threading
    data = np.zeros((256, 256, 120), dtype=np.int16)  # 4 slabs of 8 MB
    path = _save(tmp_path, data, np.eye(4), "big.nii.gz")
    token = CancelToken()
    calls = []

    def progress(fraction, message):
        calls.append(fraction)
        token.cancel()
    with pytest.raises(CancelledError):
        io.load(path, progress=progress, cancel=token)
    assert 0 < max(calls) < 1
    assert not any(t.name == "lunglens-io-prefetch" for t in threading.enumerate())


def _body(n=6):
    """(x, y, z) int16 HU: air with a 10 x 10 body of soft tissue, enough for the intensity checks."""
    a = np.full((16, 16, n), -1000, np.int16)
    a[3:13, 3:13, :] = 40
    return a


@pytest.mark.parametrize("unit,scale", [("meter", 1e-3), ("micron", 1e3)])
def test_lengths_in_metres_or_microns_are_converted_to_mm_and_said(tmp_path, unit, scale):
    affine = np.diag([-0.8 * scale, -0.8 * scale, 2.0 * scale, 1.0])
    img = nib.Nifti1Image(_body(), affine)
    img.header.set_xyzt_units(unit)
    nib.save(img, str(tmp_path / "s.nii.gz"))
    vol = io.load(tmp_path / "s.nii.gz")
    np.testing.assert_allclose(vol.geometry.spacing, (2.0, 0.8, 0.8), rtol=1e-5)
    assert vol.geometry.voxel_volume_ml == pytest.approx(0.00128, rel=1e-5)
    assert any(f"lengths in {unit}; converted to millimetres" in w for w in vol.warnings)


def test_a_wrong_unit_field_over_millimetre_sizes_is_not_applied_and_said(tmp_path):
    img = nib.Nifti1Image(_body(), np.diag([-0.8, -0.8, 2.0, 1.0]))
    img.header.set_xyzt_units("meter")  # the numbers are millimetres: 800 mm voxels would be no CT
    nib.save(img, str(tmp_path / "s.nii.gz"))
    vol = io.load(tmp_path / "s.nii.gz")
    np.testing.assert_allclose(vol.geometry.spacing, (2.0, 0.8, 0.8), rtol=1e-5)
    assert any("were read as millimetres" in w for w in vol.warnings)


def test_implausible_voxel_sizes_are_said(tmp_path):
    vol = io.load(_save(tmp_path, _body(), np.diag([-80.0, -80.0, 200.0, 1.0])))
    assert any("which no chest CT has" in w for w in vol.warnings)
    assert not any("no chest CT" in w for w in io.load(_save(tmp_path, _body(), LPS, "ok.nii.gz")).warnings)


def test_a_header_without_orientation_is_said(tmp_path):
    nib.save(nib.Nifti1Image(_body(), np.diag([-0.8, -0.8, 2.0, 1.0])), str(tmp_path / "s.nii"))
    raw = bytearray((tmp_path / "s.nii").read_bytes())
    raw[252:256] = np.zeros(2, np.int16).tobytes()  # qform_code, sform_code: 0 (ANALYZE style)
    (tmp_path / "s.nii").write_bytes(bytes(raw))
    assert int(nib.load(str(tmp_path / "s.nii")).header["sform_code"]) == 0
    vol = io.load(tmp_path / "s.nii")
    assert any("does not give the patient's orientation" in w for w in vol.warnings)


def test_negative_voxel_sizes_of_the_qform_are_said(tmp_path):
    affine = np.diag([-0.8, -0.8, 2.0, 1.0])
    img = nib.Nifti1Image(_body(), affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(None, code=0)
    path = tmp_path / "s.nii"
    nib.save(img, str(path))
    raw = bytearray(path.read_bytes())
    raw[80:84] = np.float32(-0.8).tobytes()  # pixdim[1]: invalid, nibabel makes it positive on load
    path.write_bytes(bytes(raw))
    vol = io.load(path)
    assert any("voxel sizes are negative (-0.8" in w for w in vol.warnings)


def test_a_sheared_affine_is_said_and_volumes_count_the_distance_between_slice_planes(tmp_path):
    tilt = np.radians(20.0)
    affine = np.diag([-0.8, -0.8, 2.0, 1.0])
    affine[1, 2] = 2.0 * np.tan(tilt)  # each slice shifted along y: a gantry tilt of 20 degrees
    vol = io.load(_save(tmp_path, _body(), affine))
    assert any("stacked at 20.0 degrees off perpendicular" in w for w in vol.warnings)
    # 0.8 x 0.8 mm pixels, slice planes 2 mm apart: 1.28 mm^3, not 0.8 * 0.8 * 2 / cos(20 deg)
    assert vol.geometry.voxel_volume_ml == pytest.approx(0.00128, rel=1e-4)
    straight = io.load(_save(tmp_path, _body(), np.diag([-0.8, -0.8, 2.0, 1.0]), "straight.nii.gz"))
    assert not any("off perpendicular" in w for w in straight.warnings)
    assert straight.geometry.voxel_volume_ml == pytest.approx(0.00128, rel=1e-6)
