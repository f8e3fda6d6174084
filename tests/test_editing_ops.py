"""engine.editing.ops on small arrays with exact expected results."""

from __future__ import annotations

import time

import numpy as np
import pytest

from engine.editing import ops
from engine.errors import DataError


def full(region: ops.Region, shape) -> np.ndarray:
    return region.to_full(shape)


# ---------------------------------------------------------------- brushes
def test_disk_brush_isotropic_exact():
    shape = (3, 11, 11)
    r = ops.brush_segment(shape, (1, 1, 1), (1, 5, 5), (1, 5, 5), 2.0)
    zz, yy, xx = np.mgrid[:3, :11, :11]
    expected = (zz == 1) & ((yy - 5) ** 2 + (xx - 5) ** 2 <= 4)
    np.testing.assert_array_equal(full(r, shape), expected)
    assert r.count == 13


def test_disk_brush_anisotropic_is_ellipse_in_voxels():
    # x spacing 2 mm: a 4 mm radius reaches 2 voxels along x, 4 along y
    shape = (1, 11, 11)
    r = ops.brush_segment(shape, (1.0, 1.0, 2.0), (0, 5, 5), (0, 5, 5), 4.0)
    m = full(r, shape)[0]
    assert m[5, 1:10].tolist() == [False, False, True, True, True, True, True, False, False]
    assert m[1:10, 5].all() and not m[0, 5] and not m[10, 5]
    yy, xx = np.mgrid[:11, :11]
    np.testing.assert_array_equal(m, ((yy - 5) * 1.0) ** 2 + ((xx - 5) * 2.0) ** 2 <= 16)


def test_disk_brush_on_coronal_plane_stays_on_its_slice():
    shape = (9, 9, 9)
    r = ops.brush_segment(shape, (1, 1, 1), (4, 3.2, 4), (4, 3.2, 4), 1.0, plane_axis=1)
    m = full(r, shape)
    assert m[:, 3, :].sum() == 5 and m.sum() == 5


def test_sphere_brush_3d():
    shape = (9, 9, 9)
    r = ops.brush_segment(shape, (1, 1, 1), (4, 4, 4), (4, 4, 4), 1.0, plane_axis=None)
    assert r.count == 7  # centre + 6 face neighbours
    r2 = ops.brush_segment(shape, (2, 1, 1), (4, 4, 4), (4, 4, 4), 1.5, plane_axis=None)
    m = full(r2, shape)
    assert not m[3, 4, 4] and not m[5, 4, 4]  # 2 mm away along z
    assert m[4, 3, 4] and m[4, 4, 5]


def test_fast_move_leaves_no_gap():
    shape = (1, 20, 100)
    # two events 80 voxels apart with a 1 mm brush: every column between must be painted
    r = ops.brush_segment(shape, (1, 1, 1), (0, 10, 10), (0, 10, 90), 1.0)
    m = full(r, shape)[0]
    assert m[10, 10:91].all()
    assert m[9, 10:91].all() and m[11, 10:91].all()
    assert not m[8].any() and not m[12].any()
    assert m.sum() == 81 * 3 + 2  # capsule: 3 rows + the two end caps


def test_stroke_union_and_tiny_brush_paints_nearest_voxel():
    shape = (1, 10, 10)
    r = ops.brush_stroke(shape, (1, 1, 1), [(0, 2.2, 2.4)], 0.1)
    np.testing.assert_array_equal(np.argwhere(full(r, shape)), [[0, 2, 2]])
    r = ops.brush_stroke(shape, (1, 1, 1), [(0, 1, 1), (0, 1, 5), (0, 5, 5)], 0.0)
    m = full(r, shape)[0]
    assert m[1, 1:6].all() and m[1:6, 5].all() and m.sum() == 9


def test_brush_clipped_at_volume_edge():
    shape = (1, 5, 5)
    r = ops.brush_segment(shape, (1, 1, 1), (0, 0, 0), (0, 0, 0), 1.0)
    np.testing.assert_array_equal(np.argwhere(full(r, shape)), [[0, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert ops.brush_segment(shape, (1, 1, 1), (0, -10, -10), (0, -10, -10), 1.0).empty


# ---------------------------------------------------------------- polygon
def test_polygon_square_includes_outline():
    m = ops.polygon_mask_2d((6, 6), np.array([[1, 1], [1, 4], [4, 4], [4, 1]]))
    expected = np.zeros((6, 6), bool)
    expected[1:5, 1:5] = True
    np.testing.assert_array_equal(m, expected)


def test_polygon_concave_even_odd():
    # a "U": the notch between the arms stays empty
    v = np.array([[0, 0], [9, 0], [9, 9], [0, 9], [0, 6], [6, 6], [6, 3], [0, 3]], float)
    m = ops.polygon_mask_2d((10, 10), v)
    assert m[8, 1:9].all()           # bottom bar
    assert m[2, 1] and m[2, 8]       # both arms
    assert not m[2, 4] and not m[4, 5]  # the notch
    notch = np.zeros((10, 10), bool)
    notch[0:6, 4:6] = True
    np.testing.assert_array_equal(m, ~notch)


def test_polygon_region_on_sagittal_slice():
    shape = (8, 8, 8)
    r = ops.polygon_region(shape, np.array([[1, 1], [1, 3], [3, 3], [3, 1]]), plane_axis=2, index=5)
    m = full(r, shape)
    assert m.sum() == 9 and m[1:4, 1:4, 5].all()


# ---------------------------------------------------------------- flood fill
def test_flood_fill_2d_and_3d():
    lab = np.zeros((3, 6, 6), np.uint8)
    lab[:, 1:5, 1] = 1
    lab[:, 1, 1:5] = 1
    lab[:, 4, 1:5] = 1
    lab[:, 1:5, 4] = 1     # a ring of 1 on every slice; inside is 0 (2x2)
    lab[1, 0, 0] = 1
    r2 = ops.flood_fill(lab, (1, 2, 2), plane_axis=0)
    m = full(r2, lab.shape)
    assert m.sum() == 4 and m[1, 2:4, 2:4].all()
    r3 = ops.flood_fill(lab, (1, 2, 2), plane_axis=None)
    assert r3.count == 12
    ring = ops.flood_fill(lab, (0, 1, 1))
    assert ring.count == 3 * 12  # the ring on each slice is connected through z; (1,0,0) only diagonal
    ring26 = ops.flood_fill(lab, (0, 1, 1), connectivity=3)
    assert ring26.count == 3 * 12 + 1


def test_flood_fill_grows_beyond_first_box():
    lab = np.zeros((4, 200, 200), np.uint8)
    lab[1:3, 10:190, 10:190] = 2
    r = ops.flood_fill(lab, (1, 100, 100))
    assert r.count == 2 * 180 * 180
    assert r.box == (slice(1, 3), slice(10, 190), slice(10, 190))
    with pytest.raises(DataError):
        ops.flood_fill(lab, (1, 100, 100), max_voxels=1000)


def test_flood_fill_3d_50ml_under_a_second():
    # a 50 mL ball at 0.7 x 0.7 x 1 mm in a 300 x 512 x 512 volume
    shape = (300, 512, 512)
    lab = np.zeros(shape, np.uint8)
    sp = (1.0, 0.7, 0.7)
    r_mm = (50_000 * 3 / (4 * np.pi)) ** (1 / 3)
    ball = ops.brush_segment(shape, sp, (150, 256, 256), (150, 256, 256), r_mm, plane_axis=None)
    lab[ball.box][ball.mask] = 1
    t = time.perf_counter()
    r = ops.flood_fill(lab, (150, 256, 256))
    dt = time.perf_counter() - t
    assert r.count == ball.count
    assert abs(r.count * 0.49 / 1000 - 50) < 1
    assert dt < 1.0


# ---------------------------------------------------------------- filters
def test_threshold_and_paint_over_filters():
    lab = np.array([[[0, 1, 2, 0]]], np.uint8)
    hu = np.array([[[-900, -500, -100, 30]]], np.int16)
    region = ops.Region((slice(0, 1), slice(0, 1), slice(0, 4)), np.ones((1, 1, 4), bool))
    lo, hi = ops.THRESHOLD_PRESETS["ggo"]
    assert ops.restrict_to_range(region, hu, lo, hi).mask.tolist() == [[[False, True, False, False]]]
    lo, hi = ops.THRESHOLD_PRESETS["effusion"]
    assert ops.restrict_to_range(region, hu, lo, hi).mask.tolist() == [[[False, False, False, True]]]
    assert ops.restrict_paint_over(region, lab, "background").mask.tolist() == [[[True, False, False, True]]]
    assert ops.restrict_paint_over(region, lab, "label", 2).mask.tolist() == [[[False, False, True, False]]]
    assert ops.restrict_paint_over(region, lab, "everything").count == 4
    with pytest.raises(ValueError):
        ops.restrict_paint_over(region, lab, "nonsense")


# ---------------------------------------------------------------- components
def test_small_islands_and_largest_component():
    lab = np.zeros((1, 10, 10), np.uint8)
    lab[0, 0:4, 0:4] = 1   # 16 voxels
    lab[0, 6:8, 6:8] = 1   # 4 voxels
    lab[0, 9, 0] = 1       # 1 voxel
    lab[0, 9, 9] = 2       # other label, untouched
    small = full(ops.small_islands(lab, 1, 5), lab.shape)
    assert small.sum() == 5 and small[0, 6:8, 6:8].all() and small[0, 9, 0]
    small2 = full(ops.small_islands(lab, 1, 4), lab.shape)
    assert small2.sum() == 1 and small2[0, 9, 0]
    outside = full(ops.outside_largest_component(lab, 1), lab.shape)
    np.testing.assert_array_equal(outside, small)
    assert ops.small_islands(lab, 3, 10).empty


# ---------------------------------------------------------------- fill between slices
def test_interpolate_identical_squares_fills_gap():
    lab = np.zeros((5, 10, 10), np.uint8)
    lab[0, 2:6, 2:6] = 1
    lab[4, 2:6, 2:6] = 1
    r = ops.interpolate_between_slices(lab, 1, 0, 4)
    m = full(r, lab.shape)
    expected = np.zeros_like(m)
    expected[1:4, 2:6, 2:6] = True
    np.testing.assert_array_equal(m, expected)


def test_interpolate_grows_between_small_and_large_disk():
    lab = np.zeros((5, 21, 21), np.uint8)
    yy, xx = np.mgrid[:21, :21]
    lab[0][(yy - 10) ** 2 + (xx - 10) ** 2 <= 4] = 1
    lab[4][(yy - 10) ** 2 + (xx - 10) ** 2 <= 64] = 1
    m = full(ops.interpolate_between_slices(lab, 1, 0, 4), lab.shape)
    areas = m.sum(axis=(1, 2))
    assert areas[0] == 0 and areas[4] == 0
    assert lab[0].sum() < areas[1] < areas[2] < areas[3] < lab[4].sum()
    assert m[2, 10, 10] and not m[2, 10, 17]  # radius about 5 in the middle
    assert m[2, 10, 15]
    assert ops.labelled_slices(lab, 1) == [0, 4]


def test_interpolate_needs_both_slices():
    lab = np.zeros((5, 10, 10), np.uint8)
    lab[0, 2:6, 2:6] = 1
    with pytest.raises(DataError, match="Slice 4"):
        ops.interpolate_between_slices(lab, 1, 0, 4)
    assert ops.interpolate_between_slices(lab, 1, 0, 1).empty
