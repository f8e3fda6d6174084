"""app.state: the session and the label layer (a facade over the engine editor) announce every change and keep counts exact."""

from __future__ import annotations

import numpy as np
import pytest

from app.state.label_layer import LabelLayer
from app.state.session import Session
from engine.display import GREY_8BIT, PRESETS, WindowLevel
from engine.errors import GeometryMismatchError
from engine.types import Geometry, Volume


def volume(shape=(4, 6, 8), is_hu=True):
    arr = np.zeros(shape, dtype=np.int16 if is_hu else np.uint8)
    return Volume(arr, Geometry(shape), is_hu=is_hu)


def record(signal):
    out = []
    signal.connect(lambda *a: out.append(a[0] if a else None))
    return out


def test_session_cursor_is_clamped_and_announced():
    s = Session()
    cursors = record(s.cursor_changed)
    s.set_volume(volume())
    assert s.cursor == (2, 3, 4) and cursors[-1] == (2, 3, 4)
    s.set_cursor(10.2, -3, 5.6)
    assert s.cursor == (3, 0, 6)
    n = len(cursors)
    s.set_cursor(3, 0, 6)
    assert len(cursors) == n  # no change, no signal
    s.step_cursor(0, -5)
    assert s.cursor == (0, 0, 6)


def test_session_window_and_presets():
    s = Session()
    windows = record(s.window_changed)
    s.set_volume(volume())
    s.apply_preset("bone")
    assert s.window == PRESETS["bone"] and windows[-1] == PRESETS["bone"]
    s.set_window(WindowLevel(100, 20))
    assert s.window.levels == (-30.0, 70.0)
    s.set_volume(volume(is_hu=False))
    assert s.window == GREY_8BIT
    s.apply_preset("lung")
    assert s.window == GREY_8BIT
    with pytest.raises(ValueError):
        s.set_layout("quad")


def test_label_write_returns_old_values_and_updates_counts():
    lab = LabelLayer()
    lab.reset((4, 6, 8))
    changes = record(lab.changed)
    assert lab.counts()[0] == 4 * 6 * 8
    old = lab.write((1, 3, 0, 2, 0, 4), np.full((2, 2, 4), 2, np.uint8))
    assert (old == 0).all()
    assert changes[-1] == (1, 3, 0, 2, 0, 4)
    assert lab.counts()[2] == 16 and lab.counts()[0] == 192 - 16
    old = lab.write((2, 3, 0, 1, 0, 1), np.array([[[3]]], np.uint8))
    assert old[0, 0, 0] == 2
    np.testing.assert_array_equal(lab.counts()[:4], np.bincount(lab.array.ravel(), minlength=4)[:4])
    with pytest.raises(ValueError):
        lab.write((0, 1, 0, 1, 0, 1), np.zeros((2, 2, 2), np.uint8))


def test_label_set_array_checks_shape_and_appearance_signals():
    lab = LabelLayer()
    lab.reset((2, 3, 4))
    with pytest.raises(GeometryMismatchError):
        lab.set_array(np.zeros((2, 3, 5), np.uint8))
    appearance = record(lab.appearance_changed)
    lab.set_array(np.ones((2, 3, 4), np.uint8), "x")
    assert lab.counts()[1] == 24 and lab.name == "x"
    lab.set_visible(1, False)
    assert lab.lut[1, 3] == 0 and not lab.is_visible(1)
    lab.set_visible(1, True)
    lab.set_opacity(1.0)
    assert lab.lut[1, 3] == 255
    lab.set_color(1, (1, 2, 3))
    assert tuple(lab.lut[1, :3]) == (1, 2, 3) and lab.table[1].color == (1, 2, 3)
    lab.set_outline(True)
    assert lab.outline
    assert len(appearance) == 5


def test_single_slice_scan_shows_axial_only_until_a_volume_comes():
    s = Session()
    layouts = record(s.layout_changed)
    s.set_volume(volume((1, 6, 8)))
    assert s.layout == "axial" and layouts == ["axial"]
    s.set_volume(volume((4, 6, 8)))
    assert s.layout == "three"
    s.set_layout("coronal")
    s.set_volume(volume((1, 6, 8)))
    assert s.layout == "coronal"  # a layout the user chose is kept
    s.set_volume(volume((4, 6, 8)))
    assert s.layout == "coronal"


def test_outlines_are_opaque_unless_opacity_is_zero():
    lab = LabelLayer()
    lab.set_opacity(0.3)
    assert lab.lut[1, 3] == round(0.3 * 255)
    lab.set_outline(True)
    assert lab.lut[1, 3] == 255 and lab.lut[0, 3] == 0
    lab.set_opacity(0.0)
    assert lab.lut[1, 3] == 0
    lab.set_opacity(0.5)
    lab.set_outline(False)
    assert lab.lut[1, 3] == 128
