"""engine.io.orientation: permutations/flips to canonical LPS keep every voxel's world position."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.io.orientation import SourceOrientation, canonicalize, plan_orientation
from engine.types import Geometry


def _signed_permutations():
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            d = np.zeros((3, 3))
            for col, row in enumerate(perm):
                d[row, col] = signs[col]
            yield d


@pytest.mark.parametrize("direction", list(_signed_permutations()))
def test_canonical_keeps_world_positions(direction):
    shape = (4, 5, 6)
    src = Geometry(shape=shape, spacing=(3.0, 2.0, 1.5), origin=(10.0, -20.0, 30.0), direction=direction)
    data = np.arange(np.prod(shape), dtype=np.int32).reshape(shape)
    arr, geom, plan = canonicalize(data, src)
    assert geom.orientation_code() == "LPS"
    assert np.allclose(geom.direction_matrix, np.eye(3))
    assert arr.flags.c_contiguous
    # every voxel value sits at the same world point before and after
    for value in (0, 7, 33, data.size - 1):
        src_idx = np.argwhere(data == value)[0]
        dst_idx = np.argwhere(arr == value)[0]
        assert np.allclose(src.index_to_world(src_idx), geom.index_to_world(dst_idx))
    assert np.array_equal(plan.to_source(arr), data)
    assert plan.to_dict() == SourceOrientation.from_dict(plan.to_dict()).to_dict()


@pytest.mark.parametrize("direction", [np.eye(3), np.diag([-1.0, -1.0, 1.0]), np.array([[0, 0, 1.0],
                                                                                        [1.0, 0, 0],
                                                                                        [0, -1.0, 0]])])
def test_place_slabs_equals_whole_array(direction):
    shape = (7, 3, 5)
    src = Geometry(shape=shape, direction=direction)
    data = np.random.default_rng(0).integers(-1000, 1000, size=shape).astype(np.int16)
    plan = plan_orientation(src)
    out = np.empty(plan.canonical_shape, dtype=np.int16)
    for k0 in range(0, shape[0], 3):
        plan.place(out, data[k0:k0 + 3], k0)
    assert np.array_equal(out, plan.from_source(data))


def test_oblique_direction_is_kept_exactly():
    a = np.radians(10)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    src = Geometry(shape=(2, 3, 4), direction=rot @ np.diag([-1.0, 1.0, 1.0]))
    data = np.arange(24).reshape(2, 3, 4)
    arr, geom, _ = canonicalize(data, src)
    assert np.allclose(geom.direction_matrix, rot)
    for value in (0, 5, 23):
        assert np.allclose(src.index_to_world(np.argwhere(data == value)[0]),
                           geom.index_to_world(np.argwhere(arr == value)[0]))
