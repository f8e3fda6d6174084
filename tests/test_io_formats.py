"""NRRD/MHA (SimpleITK) and PNG/JPG slices and stacks; format detection."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from engine import io


def _sitk_image(arr, spacing=(0.7, 0.8, 2.0), origin=(5.0, -3.0, 40.0), direction=None):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(tuple(np.asarray(direction, float).ravel()))
    return img


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd"])
@pytest.mark.parametrize("direction", [None, np.diag([-1.0, 1.0, -1.0])])
def test_sitk_formats_keep_world_positions(tmp_path, suffix, direction):
    arr = np.random.default_rng(2).permutation(4 * 5 * 6).reshape(4, 5, 6).astype(np.int16) - 900
    img = _sitk_image(arr, direction=direction)
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(img, str(path))
    vol = io.load(path)
    assert vol.format == suffix[1:] and vol.array.dtype == np.int16 and vol.is_hu
    assert vol.geometry.orientation_code() == "LPS"
    for value in arr.ravel()[[0, 17, 119]]:
        k, j, i = np.argwhere(arr == value)[0]
        world = img.TransformIndexToPhysicalPoint((int(i), int(j), int(k)))
        zyx = np.argwhere(vol.array == value)[0]
        assert np.allclose(vol.geometry.index_to_world(zyx), world)


def test_nrrd_float_with_nan(tmp_path):
    arr = np.full((2, 3, 4), -500.5, dtype=np.float32)
    arr[0, 0, 0] = np.nan
    sitk.WriteImage(_sitk_image(arr), str(tmp_path / "f.nrrd"))
    vol = io.load(tmp_path / "f.nrrd")
    assert vol.array.dtype == np.float32 and np.all(np.isfinite(vol.array))
    assert vol.warnings


def test_single_png_is_one_grey_slice(tmp_path):
    rgb = np.zeros((7, 9, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    Image.fromarray(rgb).save(tmp_path / "a.png")
    vol = io.load(tmp_path / "a.png")
    assert vol.shape == (1, 7, 9) and vol.array.dtype == np.uint8 and not vol.is_hu
    assert vol.array[0, 0, 0] == round(0.299 * 255)  # luminance of pure red
    assert vol.geometry.spacing_known is False


def test_stack_is_ordered_by_number_in_name(tmp_path):
    folder = tmp_path / "stack"
    folder.mkdir()
    for n in (1, 2, 10, 11, 100):
        Image.fromarray(np.full((5, 6), n, dtype=np.uint8)).save(folder / f"a{n}.png")
    (folder / "README.txt").write_text("not an image")
    vol = io.load(folder)
    assert vol.format == "png" and vol.shape == (5, 5, 6)
    assert list(vol.array[::-1, 0, 0]) == [1, 2, 10, 11, 100]  # file 1 is the top slice (highest z)
    assert vol.geometry.spacing_known is False


def test_stack_of_jpegs(tmp_path):
    folder = tmp_path / "jpg"
    folder.mkdir()
    for n in range(3):
        Image.fromarray(np.full((8, 8), 40 * n + 20, dtype=np.uint8)).save(folder / f"{n + 1}.jpeg", quality=95)
    vol = io.load(folder)
    assert vol.format == "jpeg"
    assert np.allclose(vol.array[::-1, 4, 4], [20, 60, 100], atol=2)


def test_real_radiopaedia_stack(shared_data):
    folder = shared_data / "radiopaedia_covid_stacks" / "case_74867"
    if not folder.is_dir():
        pytest.skip("case_74867 not available")
    vol = io.load(folder)
    names = sorted((p.name for p in folder.glob("*.jpeg")), key=lambda n: int(n.split(".")[0]))
    assert vol.shape[0] == len(names)
    second = np.asarray(Image.open(folder / names[1]).convert("L"))
    assert np.array_equal(vol.array[-2], second)  # file 1 (the lung apex) is the top slice
    assert vol.meta["image_files"][9].endswith("/10.jpeg")


def _numbered_stack(folder, numbers=(1, 2, 10)):
    folder.mkdir()
    for n in numbers:
        Image.fromarray(np.full((4, 5), n, dtype=np.uint8)).save(folder / f"{n}.png")
    return folder


def test_stack_first_file_is_the_top_slice(tmp_path):
    """Exported axial stacks run head -> feet: file "1" is the most superior slice (highest z)."""
    vol = io.load(_numbered_stack(tmp_path / "stack"))
    assert vol.shape == (3, 4, 5)
    assert list(vol.array[:, 0, 0]) == [10, 2, 1]  # numeric, not lexical ("10" < "2") order, reversed
    assert vol.geometry.orientation_code() == "LPS"
    z = {int(vol.array[k, 0, 0]): vol.geometry.index_to_world((k, 0, 0))[2] for k in range(3)}
    assert z[1] > z[2] > z[10]
    assert [p.rsplit("/", 1)[-1] for p in vol.meta["image_files"]] == ["1.png", "2.png", "10.png"]
    plan = vol.meta["source_orientation"]
    assert plan["axes"] == [0, 1, 2] and plan["flips"] == [True, False, False]


def test_stack_exported_feet_first(tmp_path):
    from engine.io.images import image_files, read_image_stack
    folder = _numbered_stack(tmp_path / "stack")
    vol = read_image_stack(image_files(folder), folder, first_slice="inferior")
    assert list(vol.array[:, 0, 0]) == [1, 2, 10]
    assert vol.geometry.index_to_world((2, 0, 0))[2] > vol.geometry.index_to_world((0, 0, 0))[2]
    with pytest.raises(ValueError):
        read_image_stack(image_files(folder), folder, first_slice="up")
    # io.load (and the app's reader process, the CLI's --stack-order) take it too; the notice says which end
    # the first file was taken as, since upper and lower lung zones depend on it
    feet = io.load(folder, first_slice="inferior")
    head = io.open_isolated(folder)
    assert list(feet.array[:, 0, 0]) == [1, 2, 10] and list(head.array[:, 0, 0]) == [10, 2, 1]
    assert list(io.open_isolated(folder, first_slice="inferior").array[:, 0, 0]) == [1, 2, 10]
    assert ("Image stack: the files carry no positions; the first, 1.png, is taken as the top (head end) slice. "
            "Upper and lower lung zones depend on it: if the stack runs the other way, reopen it feet first."
            ) in head.warnings
    assert any("1.png, is taken as the bottom (feet end) slice" in w and w.endswith("reopen it head first.")
               for w in feet.warnings)


def test_content_wins_over_extension(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "x.png").rename(tmp_path / "looks_like.nii")
    assert io.detect_format(tmp_path / "looks_like.nii") == "png"
    assert io.load(tmp_path / "looks_like.nii").shape == (1, 4, 4)


def test_detect_format_names(tmp_path):
    import nibabel as nib

    import dicom_factory as F
    from engine.types import Geometry
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), str(tmp_path / "a.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 2, 2), np.int16)), str(tmp_path / "b.mha"))
    F.ct_series(tmp_path / "dcm", n=2)
    g = Geometry(shape=(2, 3, 4))
    io.save_labels(np.zeros(g.shape, np.uint8), g, tmp_path / "l.seg.nrrd")
    io.save_labels(np.zeros(g.shape, np.uint8), g, tmp_path / "pngs")
    found = {name: io.detect_format(tmp_path / name) for name in ("a.nii.gz", "b.mha", "dcm", "l.seg.nrrd", "pngs")}
    assert found == {"a.nii.gz": "nifti", "b.mha": "mha", "dcm": "dicom", "l.seg.nrrd": "seg-nrrd",
                     "pngs": "png-labels"}
    assert io.detect_format(next((tmp_path / "dcm").iterdir())) == "dicom"


def test_large_stack_threaded_decode_keeps_order_errors_and_cancel(tmp_path):
    from engine.errors import CancelledError, UnsupportedFormatError
    from engine.progress import CancelToken
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(30):
        Image.fromarray(np.full((6, 5), n * 7, dtype=np.uint8)).save(folder / f"s{n}.png")
    vol = io.load(folder)
    assert list(vol.array[::-1, 2, 2]) == [n * 7 for n in range(30)]
    token = CancelToken()

    def progress(fraction, message):
        if fraction > 0.2:
            token.cancel()
    with pytest.raises(CancelledError):
        io.load(folder, progress=progress, cancel=token)
    Image.fromarray(np.zeros((7, 5), np.uint8)).save(folder / "s17.png")
    with pytest.raises(UnsupportedFormatError, match="s17.png is 5x7"):
        io.load(folder)


def _nrrd(tmp_path, name, header):
    import nrrd

    data = np.full((16, 16, 6), -1000, np.int16)  # (x, y, z), pynrrd's order
    data[3:13, 3:13] = 40
    path = tmp_path / name
    nrrd.write(str(path), data, header)
    return path


def test_nrrd_space_units_in_metres_are_converted_and_said(tmp_path):
    path = _nrrd(tmp_path, "m.nrrd", {"space": "left-posterior-superior", "space directions": np.diag([0.8, 0.8, 2.0]) * 1e-3,
                                      "space origin": [0.01, 0.0, 0.0], "space units": ["m", "m", "m"]})
    vol = io.load(path)
    np.testing.assert_allclose(vol.geometry.spacing, (2.0, 0.8, 0.8), rtol=1e-6)
    np.testing.assert_allclose(vol.geometry.origin[0], 10.0, rtol=1e-6)  # the origin too: 0.01 m = 10 mm
    assert any("lengths in m; converted to millimetres (voxels 0.8x0.8x2 mm)" in w for w in vol.warnings)


@pytest.mark.parametrize("header,said", [({"spacings": [0.8, 0.8, 2.0]}, "it gives no space"),
                                         ({"space": "scanner-xyz", "space directions": np.diag([0.8, 0.8, 2.0])},
                                          "its space is 'scanner-xyz'")])
def test_nrrd_without_patient_axes_is_said(tmp_path, header, said):
    vol = io.load(_nrrd(tmp_path, "s.nrrd", header))
    assert any("does not say where the patient's sides are" in w and said in w for w in vol.warnings)
    lps = io.load(_nrrd(tmp_path, "lps.nrrd", {"space": "left-posterior-superior",
                                               "space directions": np.diag([0.8, 0.8, 2.0])}))
    assert not any("patient's sides" in w for w in lps.warnings)


def test_nrrd_with_an_axis_of_no_length_is_a_clear_error(tmp_path):
    from engine.errors import CorruptFileError

    with pytest.raises(CorruptFileError, match="gives axis 3 a length of 0 mm"):
        io.load(_nrrd(tmp_path, "z.nrrd", {"space": "left-posterior-superior",
                                           "space directions": np.diag([0.8, 0.8, 0.0])}))


def _slice_png(k):
    a = np.full((16, 16), 20, np.uint8)
    a[4:12, 4:12] = 10 * k + 30
    return Image.fromarray(a)


def _bodies(vol):
    return [int(vol.array[z, 8, 8]) for z in range(vol.shape[0])]


def test_a_stack_keeps_one_kind_of_file_one_name_pattern_and_one_file_per_number(tmp_path):
    folder = tmp_path / "stack"
    folder.mkdir()
    for k in range(6):
        _slice_png(k).save(folder / f"slice_{k + 1}.png")
        _slice_png(k).save(folder / f"slice_{k + 1}.jpg", quality=95)  # the same slices, exported twice
    _slice_png(0).save(folder / "slice_01.png")  # a zero-padded copy of slice_1.png: the same number
    _slice_png(9).save(folder / "cover.png")  # no number
    _slice_png(9).save(folder / "other_1.png")  # another stack's name
    _slice_png(9).save(folder / "other_2.png")
    vol = io.load(folder)
    assert vol.shape[0] == 6
    assert _bodies(vol) == [80, 70, 60, 50, 40, 30]  # file 1 is the top slice; nothing doubled, nothing foreign
    said = " ".join(vol.warnings)
    assert "6 file(s) of another type next to the PNG stack were left out" in said
    assert "1 file(s) without a slice number were left out of the stack (cover.png)" in said
    assert "2 file(s) named unlike the stack's 7 were left out (other_1.png, other_2.png)" in said
    assert "1 file(s) carry the number of another file and were left out (slice_1.png repeats slice_01.png)" in said


def test_a_16_bit_stack_is_mapped_to_8_bits_with_one_scale_for_every_slice(tmp_path):
    folder = tmp_path / "wide"
    folder.mkdir()
    for k, (air, body) in enumerate([(24, 1524), (24, 1100), (24, 224)]):  # the last: lung only, max 224
        a = np.full((16, 16), air, np.uint16)
        a[4:12, 4:12] = body
        Image.fromarray(a).save(folder / f"im{k + 1:03d}.png")
    vol = io.load(folder)
    scale = 255.0 / (1524 - 24)
    want = [round((b - 24) * scale) for b in (224, 1100, 1524)]  # canonical order: the last file at the bottom
    assert _bodies(vol) == want and int(vol.array[0, 0, 0]) == 0
    assert any("values 24 to 1524" in w and "one scale, the same for every slice" in w for w in vol.warnings)


def test_a_multi_page_tiff_is_read_page_by_page(tmp_path):
    pages = [_slice_png(k) for k in range(5)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    vol = io.load(tmp_path / "stack.tif")
    assert vol.shape[0] == 5 and _bodies(vol) == [70, 60, 50, 40, 30]
    assert any("holds 5 pages, read as 5 slices" in w for w in vol.warnings)


def test_jpeg_slices_with_an_exif_orientation_are_turned_as_viewers_show_them_and_said(tmp_path):
    folder = tmp_path / "exif"
    folder.mkdir()
    for k in range(3):
        a = np.full((16, 20), 20, np.uint8)
        a[1, 1] = 250  # a marker in the top left corner as stored
        exif = Image.Exif()
        exif[0x0112] = 3  # rotate 180 degrees
        Image.fromarray(a).save(folder / f"a{k + 1}.jpg", exif=exif, quality=95)
    vol = io.load(folder)
    assert vol.shape == (3, 16, 20)
    corner = np.unravel_index(int(np.argmax(vol.array[0])), vol.array[0].shape)
    assert tuple(int(v) for v in corner) == (14, 18)  # shown turned: bottom right
    assert sum("EXIF orientation" in w for w in vol.warnings) == 1


def test_a_stack_whose_names_end_in_a_constant_number_is_counted_by_the_number_that_varies(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    for k in (1, 2, 10):  # not zero-padded: name order would put 10 before 2
        _slice_png(k).save(folder / f"lung_{k}_512.png")
    vol = io.load(folder)
    assert vol.shape[0] == 3 and _bodies(vol) == [130, 50, 40]  # lung_1 on top, lung_10 at the bottom
    assert not any("left out" in w for w in vol.warnings)
    one = io.load(folder / "lung_2_512.png")  # one file opens its stack
    assert one.shape[0] == 3 and _bodies(one) == [130, 50, 40]


def test_a_16_bit_multi_page_tiff_is_mapped_with_one_scale(tmp_path):
    pages = []
    for body in (3000, 2000, 1000):
        a = np.full((16, 16), 0, np.uint16)
        a[4:12, 4:12] = body
        pages.append(Image.fromarray(a))
    pages[0].save(tmp_path / "wide.tif", save_all=True, append_images=pages[1:])
    vol = io.load(tmp_path / "wide.tif")
    assert _bodies(vol) == [85, 170, 255]  # one scale: 0..3000 -> 0..255 (the last page at the bottom)
