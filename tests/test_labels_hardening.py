"""Label maps that would lose voxels silently, lying headers and decompression bombs (issue 11).

Every input is built here; each test asserts a clean error with its message, or an exact load.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tracemalloc
import zlib

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from engine import io
from engine.errors import CorruptFileError, GeometryMismatchError, UnsupportedFormatError
from engine.types import Geometry, Volume


def _scan(tmp_path, shape=(4, 6, 5), spacing=(2.0, 0.7, 0.7)):
    geom = Geometry(shape=shape, spacing=spacing)
    return Volume(array=np.zeros(shape, np.int16), geometry=geom, source=str(tmp_path / "scan.nii.gz"),
                  format="nifti")


def _labels_nifti(path, data_zyx, geometry, slope=None, inter=None):
    img = nib.Nifti1Image(np.asarray(data_zyx).T.copy(), geometry.affine_ras())
    if slope is not None:
        img.header.set_slope_inter(slope, inter or 0.0)
    nib.save(img, str(path))
    return path


def _gzip_zeros(n: int, prefix: bytes = b"") -> bytes:
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    return comp.compress(prefix) + comp.compress(b"\0" * n) + comp.flush()


# -- values outside the label table ----------------------------------------------------------------

def test_values_outside_the_table_are_refused_and_counted(tmp_path):
    scan = _scan(tmp_path)
    data = np.zeros(scan.shape, np.uint8)
    data[0, :2, :3] = 7      # 6 voxels
    data[1, 0, :4] = 200     # 4 voxels
    data[2, 0, 0] = 2
    path = _labels_nifti(tmp_path / "l.nii.gz", data, scan.geometry)
    with pytest.raises(CorruptFileError, match=r"l.nii.gz holds 10 voxel\(s\) with values outside the label table "
                                               r"\(7: 6 voxels, 200: 4 voxels\)"):
        io.load_labels(path, reference=scan)
    mapped = io.load_labels(path, reference=scan, unknown="background")
    expected = np.zeros(scan.shape, np.uint8)
    expected[2, 0, 0] = 2
    assert np.array_equal(mapped, expected)
    assert np.array_equal(io.load_labels(path, reference=scan, unknown="keep"), data)


def test_cli_export_refuses_then_maps_only_when_asked(tmp_path):
    scan_path = tmp_path / "scan.nii.gz"
    geom = Geometry(shape=(4, 6, 5), spacing=(2.0, 0.7, 0.7))
    nib.save(nib.Nifti1Image(np.zeros((5, 6, 4), np.int16), geom.affine_ras()), str(scan_path))
    data = np.zeros((4, 6, 5), np.uint8)
    data[1, 1, 1] = 9
    data[2, 2, 2] = 1
    lab = _labels_nifti(tmp_path / "in.nii.gz", data, io.load(scan_path).geometry)
    cmd = [sys.executable, "-m", "engine", "export", str(scan_path), "--labels", str(lab), "--out",
           str(tmp_path / "o" / "out.seg.nrrd")]
    bad = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert bad.returncode == 2 and "1 voxel(s) with values outside the label table (9: 1 voxels)" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "o" / "out.seg.nrrd").exists()
    ok = subprocess.run(cmd + ["--map-unknown-labels"], capture_output=True, text=True, env=dict(os.environ),
                        timeout=120)
    assert ok.returncode == 0, ok.stderr
    back = io.load_labels(tmp_path / "o" / "out.seg.nrrd", reference=io.load(scan_path))
    assert int(back.sum()) == 1 and back[2, 2, 2] == 1


@pytest.mark.parametrize("slope, stored_value, outcome", [(3.0, 1, 3), (7.0, 1, None), (1.0, 2, 2)])
def test_nifti_label_scaling_is_applied_then_checked(tmp_path, slope, stored_value, outcome):
    scan = _scan(tmp_path)
    data = np.zeros(scan.shape, np.uint8)
    data[1, 2, 3] = stored_value
    path = _labels_nifti(tmp_path / "s.nii", data, scan.geometry, slope=slope)
    if outcome is None:
        with pytest.raises(CorruptFileError, match=r"\(7: 1 voxels\)"):
            io.load_labels(path, reference=scan)
    else:
        out = io.load_labels(path, reference=scan)
        assert out[1, 2, 3] == outcome and int(np.count_nonzero(out)) == 1


def test_rgb_png_labels_are_refused(tmp_path):
    folder = tmp_path / "labels"
    folder.mkdir()
    for k in range(4):
        rgb = np.zeros((6, 5, 3), np.uint8)
        rgb[2, 2] = (255, 255, 0)  # a yellow GGO pixel, drawn as colour
        Image.fromarray(rgb, "RGB").save(folder / f"slice_{k:04d}.png")
    with pytest.raises(UnsupportedFormatError, match="slice_0000.png is a colour image"):
        io.load_labels(folder, reference=_scan(tmp_path))


@pytest.mark.parametrize("factor", [1.01, 0.99, 1.001])
def test_label_grid_with_other_spacing_is_another_grid(tmp_path, factor):
    scan = _scan(tmp_path)
    other = Geometry(shape=scan.shape, spacing=tuple(s * factor for s in scan.spacing))
    path = _labels_nifti(tmp_path / "g.nii.gz", np.zeros(scan.shape, np.uint8), other)
    with pytest.raises(GeometryMismatchError, match="do not lie on the scan's voxel grid"):
        io.load_labels(path, reference=scan)
    same = _labels_nifti(tmp_path / "same.nii.gz", np.ones(scan.shape, np.uint8), scan.geometry)
    assert int(io.load_labels(same, reference=scan).sum()) == scan.array.size


# -- size guards and bombs -------------------------------------------------------------------------

def _peak(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def test_label_reader_has_the_scan_readers_size_guard(tmp_path):
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((1024, 1024, 1900))
    hdr.set_data_offset(352)
    path = tmp_path / "lab.nii.gz"
    path.write_bytes(gzip.compress(hdr.binaryblock + b"\0" * 4))
    with pytest.raises(CorruptFileError, match="lab.nii.gz is truncated or damaged"):
        io.load_labels(path, reference=Geometry(shape=(4, 4, 4)))
    peak = 0
    try:
        tracemalloc.start()
        io.load_labels(path)
    except CorruptFileError:
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 ** 2


def _nifti_bomb(path, n_bytes=200 * 1024 ** 2):
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((1024, 1024, n_bytes // (2 * 1024 * 1024)))
    hdr.set_data_offset(352)
    path.write_bytes(_gzip_zeros(n_bytes, hdr.binaryblock + b"\0" * 4))
    return path


def _nrrd_bomb(path, n_bytes=200 * 1024 ** 2):
    head = (f"NRRD0004\ntype: short\ndimension: 3\nsizes: 1024 1024 {n_bytes // (2 * 1024 * 1024)}\n"
            "encoding: gzip\nendian: little\n\n").encode()
    path.write_bytes(head + _gzip_zeros(n_bytes))
    return path


def _mha_bomb(path, n_bytes=200 * 1024 ** 2):
    head = (f"ObjectType = Image\nNDims = 3\nBinaryData = True\nCompressedData = True\n"
            f"DimSize = 1024 1024 {n_bytes // (2 * 1024 * 1024)}\nElementType = MET_SHORT\n"
            "ElementDataFile = LOCAL\n").encode()
    path.write_bytes(head + zlib.compress(b"\0" * n_bytes, 6))
    return path


@pytest.mark.parametrize("make, name", [(_nifti_bomb, "bomb.nii.gz"), (_nrrd_bomb, "bomb.nrrd"),
                                        (_mha_bomb, "bomb.mha")])
def test_decompression_bombs_are_refused_before_allocation(tmp_path, make, name):
    path = make(tmp_path / name)
    assert path.stat().st_size < 1024 ** 2
    box = {}

    def run():
        with pytest.raises(CorruptFileError, match=rf"{name}: the header declares 200 MB of voxels") as info:
            io.load(path)
        box["msg"] = str(info.value)
    assert _peak(run) < 20 * 1024 ** 2
    assert "does not expand it" in box["msg"]


def test_compressed_scan_of_plausible_ratio_still_loads(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(-1000, 400, (8, 16, 16)).astype(np.int16)
    img = sitk.GetImageFromArray(arr)
    sitk.WriteImage(img, str(tmp_path / "ok.nrrd"), True)
    sitk.WriteImage(img, str(tmp_path / "ok.mha"), True)
    for name in ("ok.nrrd", "ok.mha"):
        vol = io.load(tmp_path / name)
        assert vol.shape == arr.shape and np.array_equal(np.sort(vol.array, axis=None), np.sort(arr, axis=None))


# -- headers that lie --------------------------------------------------------------------------------

def test_mha_claiming_compression_over_raw_data_is_an_error(tmp_path):
    arr = (np.arange(4 * 8 * 8).reshape(4, 8, 8) % 300).astype(np.int16)
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "raw.mha"))
    data = (tmp_path / "raw.mha").read_bytes().replace(b"CompressedData = False", b"CompressedData = True")
    (tmp_path / "lie.mha").write_bytes(data)
    with pytest.raises(CorruptFileError, match=r"lie.mha: the header says the voxels are compressed "
                                               r"\(CompressedData = True\) but the data is not compressed"):
        io.load(tmp_path / "lie.mha")


def test_nrrd_claiming_gzip_over_raw_data_is_an_error(tmp_path):
    head = b"NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 4\nencoding: gzip\nendian: little\n\n"
    (tmp_path / "lie.nrrd").write_bytes(head + np.arange(64, dtype=np.int16).tobytes())
    with pytest.raises(CorruptFileError, match="encoding: gzip"):
        io.load(tmp_path / "lie.nrrd")


@pytest.mark.parametrize("header, name", [
    (b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 4\nencoding: raw\ndata file: /etc/passwd\n\n", "scan.nhdr"),
    (b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 4\nencoding: raw\ndatafile: ../secret.raw\n\n", "scan.nhdr"),
    (b"ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\nElementDataFile = /etc/passwd\n",
     "scan.mhd"),
    (b"ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\nElementDataFile = sub/x.raw\n",
     "scan.mhd"),
])
def test_detached_header_may_only_name_files_in_its_folder(tmp_path, header, name):
    (tmp_path / "secret.raw").write_bytes(bytes(64))
    (tmp_path / "case").mkdir()
    (tmp_path / "case" / "sub").mkdir()
    (tmp_path / "case" / "sub" / "x.raw").write_bytes(bytes(64))
    path = tmp_path / "case" / name
    path.write_bytes(header)
    with pytest.raises(CorruptFileError, match="outside its own folder"):
        io.load(path)


def test_detached_header_with_data_in_its_folder_loads_exactly(tmp_path):
    data = np.arange(64, dtype=np.uint8).reshape(4, 4, 4)
    (tmp_path / "x.raw").write_bytes(data.tobytes())
    (tmp_path / "scan.nhdr").write_bytes(b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n"
                                         b"data file: x.raw\n\n")
    vol = io.load(tmp_path / "scan.nhdr")
    assert sorted(vol.array.ravel().tolist()) == list(range(64))


@pytest.mark.parametrize("name", ["l.seg.nrrd"])
def test_segment_exports_refuse_values_they_cannot_store(tmp_path, name):
    scan = _scan(tmp_path)
    labels = np.zeros(scan.shape, np.uint8)
    labels[0, 0, :5] = 7
    labels[1, 1, 1] = 1
    with pytest.raises(CorruptFileError, match=r"5 voxel\(s\) with values outside the label table \(7: 5 voxels\)"):
        io.save_labels(labels, scan, tmp_path / "o" / name)
    assert not (tmp_path / "o" / name).exists()
    io.save_labels(labels, scan, tmp_path / "o" / "l.nii.gz")  # NIfTI keeps any value 0..255
    assert io.load_labels(tmp_path / "o" / "l.nii.gz", reference=scan, unknown="keep")[0, 0, 0] == 7
