"""Reading-tool numbers without Qt: thick slabs, ruler lengths, ellipse ROI statistics."""

from __future__ import annotations

import numpy as np
import pytest

from engine.display import Plane, distance, ellipse_mask, extract, region_stats, slab_projection, slab_range


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(3)
    return rng.integers(-1000, 1000, size=(30, 40, 50)).astype(np.int16)


def test_slab_range_counts_slices_and_clips():
    assert slab_range(10, 30, 10.0, 2.0) == (8, 13)  # 5 slices centred on 10
    assert slab_range(10, 30, 10.0, 2.5) == (9, 13)  # 4 slices: one more after the centre
    assert slab_range(0, 30, 10.0, 1.0) == (0, 6)  # clipped at the first slice
    assert slab_range(29, 30, 10.0, 1.0) == (25, 30)
    assert slab_range(7, 30, 0.5, 2.0) == (7, 8)  # thinner than a slice: the slice itself


@pytest.mark.parametrize("plane", list(Plane))
@pytest.mark.parametrize("mode,fn", [("mip", np.max), ("minip", np.min)])
def test_slab_projection_is_the_numpy_extreme_over_the_slab(volume, plane, mode, fn):
    index, axis = 12, {Plane.AXIAL: 0, Plane.CORONAL: 1, Plane.SAGITTAL: 2}[plane]
    got = slab_projection(volume, plane, index, 7.0, 1.0, mode)  # 7 slices: 9..15
    sub = np.take(volume, np.arange(9, 16), axis=axis)
    want = fn(sub, axis=axis)
    if plane is not Plane.AXIAL:
        want = want[::-1]  # superior at the top, as extract() shows it
    assert got.shape == extract(volume, plane, index).shape and got.dtype == volume.dtype
    assert np.array_equal(got, want)


def test_one_slice_slab_is_the_slice(volume):
    assert np.array_equal(slab_projection(volume, "coronal", 5, 1.0, 2.0), extract(volume, "coronal", 5))
    with pytest.raises(IndexError):
        slab_projection(volume, "axial", 30, 10.0, 1.0)
    with pytest.raises(ValueError):
        slab_projection(volume, "axial", 3, 10.0, 1.0, "average")


def test_distance_uses_the_pixel_spacing():
    assert distance((0, 0), (3, 4)) == pytest.approx(5.0)
    assert distance((2, 1), (2 + 10, 1 + 20), (0.5, 0.75)) == pytest.approx(np.hypot(5.0, 15.0))


def test_ellipse_mask_and_stats_match_numpy():
    rng = np.random.default_rng(0)
    image = rng.normal(40, 12, size=(60, 80))
    p0, p1 = (10.0, 20.0), (30.0, 60.0)  # centre (20, 40), semi-axes 10 rows, 20 columns
    mask = ellipse_mask(image.shape, p0, p1)
    rr, cc = np.mgrid[:60, :80]
    want = ((rr - 20) / 10.0) ** 2 + ((cc - 40) / 20.0) ** 2 <= 1
    assert np.array_equal(mask, want)
    stats = region_stats(image, mask, (0.7, 0.7))
    values = image[want]
    assert stats.pixels == want.sum()
    assert stats.mean == pytest.approx(values.mean()) and stats.sd == pytest.approx(values.std(ddof=1))
    assert stats.area == pytest.approx(want.sum() * 0.49)
    assert abs(stats.area - np.pi * 7 * 14) < 0.05 * np.pi * 7 * 14  # close to the true ellipse
    assert region_stats(image, np.zeros_like(want)) is None


def test_a_coronal_region_away_from_the_filled_slices_is_not_said_to_hold_filled_voxels():
    """Review: NaN filled on axial slices 20-21; a coronal ROI over slices 0-3 holding air read 'may include
    filled NaN/inf voxels', because the fill value is -1024. Only a region that crosses a filled slice may."""
    from engine.display import Plane, extract
    from engine.display.reading import MAYBE_FILLED, filled_in_region

    vol = np.full((30, 8, 10), -1024.0, np.float32)
    meta = {"filled": {"slices": [20, 21], "values": [-1024.0], "index": None}}
    image = extract(vol, Plane.CORONAL, 4)  # rows run from slice 29 (top) to slice 0
    low = np.zeros(image.shape, bool)
    low[26:30, 2:6] = True  # slices 0-3
    assert filled_in_region(meta, Plane.CORONAL, 4, image, low) is None
    across = np.zeros(image.shape, bool)
    across[7:10, 2:6] = True  # slices 20-22
    assert filled_in_region(meta, Plane.CORONAL, 4, image, across) == MAYBE_FILLED
    assert filled_in_region(meta, Plane.SAGITTAL, 4, extract(vol, Plane.SAGITTAL, 4), low[:, :8]) is None


def test_tiny_value_ranges_keep_their_digits():
    """Review: a float image spanning 1e-6 got 5 decimals: a voxel of 5.9e-7 read "0.00000"."""
    from engine.display.window import value_decimals

    tiny = np.linspace(0, 1e-6, 64, dtype=np.float64).reshape(4, 4, 4)
    d = value_decimals(tiny)
    assert f"{5.9e-7:.{d}f}" != f"{0:.{d}f}" and d <= 12
    assert value_decimals(np.full((2, 2, 2), 3e-8)) >= 10  # constant: by its magnitude
    assert value_decimals(np.linspace(0, 1, 8).reshape(2, 2, 2)) == 3 and value_decimals(np.zeros((2, 2, 2))) == 5
    assert value_decimals(np.arange(8, dtype=np.int16).reshape(2, 2, 2)) == 0
