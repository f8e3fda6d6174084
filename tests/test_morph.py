"""The slice-based cross morphology equals scipy's binary morphology byte for byte."""

import numpy as np
import pytest
from scipy import ndimage

from engine.anatomy import morph


def _structure(axes):
    s = np.zeros((3, 3, 3), dtype=bool)
    s[1, 1, 1] = True
    for ax in axes:
        for d in (0, 2):
            idx = [1, 1, 1]
            idx[ax] = d
            s[tuple(idx)] = True
    return s


SHAPES = [(7, 19, 23), (1, 12, 9), (4, 1, 6), (2, 2, 2), (30, 40, 33)]


@pytest.mark.parametrize("axes", [morph.IN_PLANE, morph.ALL_AXES, (0,)])
@pytest.mark.parametrize("iterations", [1, 2, 3])
def test_cross_morphology_equals_scipy(axes, iterations):
    rng = np.random.default_rng(iterations * 10 + len(axes))
    s = _structure(axes)
    for shape in SHAPES:
        for density in (0.3, 0.7, 0.95):
            m = rng.random(shape) < density
            for ours, theirs in ((morph.erode, ndimage.binary_erosion), (morph.dilate, ndimage.binary_dilation),
                                 (morph.opening, ndimage.binary_opening), (morph.closing, ndimage.binary_closing)):
                got = ours(m, axes, iterations)
                want = theirs(m, structure=s, iterations=iterations)
                assert got.dtype == bool and got.shape == m.shape
                assert np.array_equal(got, want), (ours.__name__, shape, density)


def test_the_input_is_not_edited():
    m = np.zeros((3, 8, 8), dtype=bool)
    m[:, 2:6, 2:6] = True
    before = m.copy()
    out = morph.erode(m)
    assert np.array_equal(m, before)
    assert out.sum() == 3 * 4 and out[1, 3:5, 3:5].all()  # the 4x4 squares shrink to 2x2
    assert morph.dilate(m).sum() == 3 * (36 - 4)  # 6x6 minus its four corners


def test_iterations_below_one_are_refused():
    """scipy reads iterations < 1 as "until nothing changes"; these functions do not offer it."""
    with pytest.raises(ValueError):
        morph.erode(np.ones((2, 3, 3), dtype=bool), iterations=0)
