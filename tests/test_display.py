"""engine.display: presets, slice extraction as views, screen<->voxel mapping, outlines, LUTs."""

from __future__ import annotations

import numpy as np
import pytest

from engine.display import GREY_8BIT, PLANES, PRESETS, Plane, WindowLevel, default_window, display_shape, \
    edge_letters, extract, label_counts, label_lut, outline, pixel_spacing, preset, to_display, to_voxel
from engine.labels import DEFAULT_TABLE


def test_presets_and_levels():
    assert preset("lung").levels == (-1350.0, 150.0)
    assert PRESETS["mediastinum"].levels == (-160.0, 240.0)
    assert default_window(True) is PRESETS["lung"]
    assert default_window(False).levels == (0.0, 255.0) == GREY_8BIT.levels
    with pytest.raises(ValueError):
        WindowLevel(0, 10)
    with pytest.raises(KeyError, match="unknown window preset"):
        preset("brain")
    dragged = PRESETS["lung"].dragged(-2000, 100)
    assert dragged.width == 1.0 and dragged.level == -500.0


def test_extract_returns_oriented_views_without_copy():
    a = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    ax = extract(a, Plane.AXIAL, 2)
    co = extract(a, "coronal", 3)
    sa = extract(a, Plane.SAGITTAL, 1)
    for s in (ax, co, sa):
        assert np.shares_memory(s, a)
    np.testing.assert_array_equal(ax, a[2])
    # coronal and sagittal: superior (high z) on the top row
    assert co.shape == (4, 6) and co[0, 0] == a[3, 3, 0] and co[-1, 0] == a[0, 3, 0]
    assert sa.shape == (4, 5) and sa[0, 4] == a[3, 4, 1]
    with pytest.raises(IndexError):
        extract(a, Plane.AXIAL, 4)


@pytest.mark.parametrize("plane", PLANES)
def test_voxel_display_round_trip(plane):
    shape = (7, 9, 11)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1000, size=shape)
    for _ in range(20):
        zyx = tuple(int(rng.integers(0, n)) for n in shape)
        idx, row, col = to_display(plane, zyx, shape)
        assert extract(a, plane, idx)[int(row), int(col)] == a[zyx]
        assert to_voxel(plane, idx, row, col, shape) == tuple(float(v) for v in zyx)
    assert display_shape(shape, plane) == extract(a, plane, 0).shape


def test_pixel_spacing_and_letters():
    sp = (3.0, 0.7, 0.8)
    assert pixel_spacing(sp, "axial") == (0.7, 0.8)
    assert pixel_spacing(sp, "coronal") == (3.0, 0.8)
    assert pixel_spacing(sp, "sagittal") == (3.0, 0.7)
    assert edge_letters("axial") == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    assert edge_letters("coronal") == {"top": "S", "bottom": "I", "left": "R", "right": "L"}
    assert edge_letters("sagittal") == {"top": "S", "bottom": "I", "left": "A", "right": "P"}


def test_outline_keeps_only_boundaries():
    lab = np.zeros((9, 9), dtype=np.uint8)
    lab[2:7, 2:7] = 2
    out = outline(lab)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    assert out[2, 4] == 2 and out[4, 2] == 2 and out[6, 6] == 2
    assert out[4, 4] == 0 and out[3, 3] == 0
    assert (out > 0).sum() == 16  # perimeter of a 5x5 square
    assert out[0, 0] == 0  # background stays background even on the image edge
    full = np.ones((4, 4), dtype=np.uint8)
    assert outline(full)[1, 1] == 0 and outline(full)[0, 1] == 1


def test_label_lut_and_counts():
    lut = label_lut(DEFAULT_TABLE, opacity=0.5, hidden=[2])
    assert lut.shape == (256, 4) and lut.dtype == np.uint8
    assert tuple(lut[0]) == (0, 0, 0, 0)
    assert tuple(lut[1]) == (*DEFAULT_TABLE[1].color, 128)
    assert lut[2, 3] == 0 and lut[3, 3] == 128
    lab = np.zeros((2, 3, 4), dtype=np.uint8)
    lab[0, :, :2] = 1
    lab[1, 0, 0] = 3
    c = label_counts(lab)
    assert c[0] == 17 and c[1] == 6 and c[3] == 1 and c.sum() == lab.size
    with pytest.raises(TypeError):
        label_counts(lab.astype(np.int16))


def test_downsample_labels_thins_fine_axes_first():
    from engine.display import downsample_labels

    lab = np.zeros((30, 200, 200), dtype=np.uint8)
    lab[10:20, 50:150, 50:150] = 2
    small, sp = downsample_labels(lab, (3.0, 0.75, 0.75), max_voxels=30 * 50 * 50)
    assert small.size <= 30 * 50 * 50 and small.flags.c_contiguous
    assert small.shape[0] == 30 and sp[0] == 3.0  # thick slices kept
    assert sp[1] == sp[2] == 3.0
    assert (small == 2).sum() * np.prod(sp) == pytest.approx((lab == 2).sum() * 3.0 * 0.75 * 0.75, rel=0.05)
    same, sp1 = downsample_labels(lab, (1, 1, 1), max_voxels=10 ** 9)
    assert same.shape == lab.shape and sp1 == (1.0, 1.0, 1.0)


def test_display_spacing_for_unknown_spacing_is_not_flat():
    from engine.display import display_spacing

    assert display_spacing((75, 630, 630), (3.0, 0.6, 0.6), True) == (3.0, 0.6, 0.6)
    sz, sy, sx = display_spacing((75, 630, 630), (1.0, 1.0, 1.0), False)
    assert (sy, sx) == (1.0, 1.0) and 75 * sz == pytest.approx(0.75 * 630)
    assert display_spacing((900, 512, 512), (1.0, 1.0, 1.0), False)[0] == 1.0  # never squeezed


@pytest.mark.parametrize("top", [0, 3, 16, 17, 255])
def test_label_counts_match_bincount(top):
    rng = np.random.default_rng(top)
    lab = rng.integers(0, top + 1, size=(7, 33, 35), dtype=np.uint8)
    np.testing.assert_array_equal(label_counts(lab), np.bincount(lab.ravel(), minlength=256))
    np.testing.assert_array_equal(label_counts(lab[:, ::-1, 3:]),
                                  np.bincount(lab[:, ::-1, 3:].ravel(), minlength=256))
    assert label_counts(np.zeros((0, 2, 2), np.uint8)).sum() == 0
