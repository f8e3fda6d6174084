"""Normalisation, CLAHE, interval-gradient decomposition, resizing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.preprocessing import (clahe, hu_to_unit, resize_image, resize_labels, structure_texture,
                                  to_unit, uint8_to_unit)


def test_hu_window():
    hu = np.array([-2000, -1350, -600, 150, 3000], np.float32)
    assert hu_to_unit(hu) == pytest.approx([0, 0, 0.5, 1, 1])
    assert to_unit(np.array([0, 255], np.uint8)) == pytest.approx([0, 1])
    assert uint8_to_unit(np.array([51], np.uint8))[0] == pytest.approx(0.2)
    assert to_unit(np.array([-1000.0, 0.0]))[0] == pytest.approx(350 / 1500)


def test_clahe_stretches_low_contrast_and_keeps_order():
    rng = np.random.default_rng(0)
    img = (100 + rng.integers(0, 20, (64, 64))).astype(np.uint8)
    out = clahe(img, clip_limit=40.0)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.max() - out.min() > 0.8          # 20 grey levels spread over most of [0, 1]
    flat = img.ravel()
    lo, hi = np.argmin(flat), np.argmax(flat)
    assert out.ravel()[lo] < out.ravel()[hi]
    assert np.ptp(clahe(np.full((32, 32), 7, np.uint8))) == 0  # constant stays exactly constant


def test_structure_texture_sums_to_input_and_smooths_texture():
    rng = np.random.default_rng(1)
    img = np.zeros((64, 64), np.float32)
    img[:, 32:] = 0.8                                    # one strong edge (structure)
    img += 0.05 * (rng.random((64, 64)) > 0.5)           # fine texture
    s, t = structure_texture(img)
    assert np.allclose(s + t, img, atol=1e-5)
    assert np.abs(np.diff(s[:, :28], axis=1)).mean() < 0.5 * np.abs(np.diff(img[:, :28], axis=1)).mean()
    assert s[:, 40:].mean() - s[:, :24].mean() > 0.6     # the edge survives
    ts, tt = structure_texture(torch.from_numpy(img)[None, None])
    assert ts.shape == (1, 1, 64, 64)


def test_resize():
    lab = np.zeros((4, 4), np.uint8)
    lab[:2, :2] = 3
    big = resize_labels(lab, (8, 8))
    assert big.shape == (8, 8) and set(np.unique(big)) == {0, 3} and big[:4, :4].all()
    img = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    assert resize_image(img, (4, 4)).shape == (4, 4)
    assert resize_image(img, (8, 8)) == pytest.approx(img)
