"""The real main window, offscreen: open, scroll, window presets, overlays, crosshair."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from engine.display import PRESETS
from engine.types import Geometry, Volume

pytestmark = pytest.mark.gui

SMALL = (64, 128, 128)


@pytest.fixture
def window(make_window):
    return make_window(size=(1200, 800))


def open_phantom(window, qtbot, shape=SMALL):
    """Open the built-in phantom through the File menu's flow; fail fast on an error."""
    window.scan_io.open_phantom(shape)
    qtbot.waitUntil(lambda: bool(window.errors or (window.session.volume is not None and window.labels.name)),
                    timeout=60000)
    assert not window.errors
    return window


@pytest.fixture
def phantom_window(window, qtbot):
    return open_phantom(window, qtbot)


def pixel(view, zyx) -> QPoint:
    """Widget pixel of the centre of voxel ``zyx`` in ``view``."""
    scene = view.view_box.mapViewToScene(view.scene_point(zyx))
    return view.mapFromScene(scene)


def color_at(view, zyx) -> tuple[int, int, int]:
    img = view.grab().toImage()
    c = QColor(img.pixel(pixel(view, zyx)))
    return (c.red(), c.green(), c.blue())


def labelled_voxel(window, value):
    """A voxel of ``value`` away from the crosshair lines of the current cursor."""
    cz, cy, cx = window.session.cursor
    zz, yy, xx = np.nonzero(window.labels.array == value)
    far = (np.abs(yy - cy) > 4) & (np.abs(xx - cx) > 4)
    assert far.any(), f"no voxel of label {value} away from the crosshair"
    # take one in the middle of the blob along z (not on a thin edge)
    i = np.flatnonzero(far)[len(np.flatnonzero(far)) // 2]
    return int(zz[i]), int(yy[i]), int(xx[i])


def test_phantom_opens_with_labels_and_window(phantom_window):
    w = phantom_window
    vol = w.session.volume
    assert vol.shape == SMALL and vol.is_hu
    assert w.session.window == PRESETS["lung"]
    assert w.session.cursor == tuple(s // 2 for s in SMALL)
    assert w.labels.counts()[1:4].sum() > 0
    assert w.views.axial.index == SMALL[0] // 2
    assert w.views.coronal.index == SMALL[1] // 2
    assert w.views.axial.ct_item.image.dtype == np.float32
    assert w.views.axial.label_item.image.dtype == np.uint8
    assert w.window_level.actions["lung"].isChecked()
    assert w.label_panel.volume_labels[1].text().endswith("mL")


def test_overlay_colour_appears_and_vanishes_when_hidden(phantom_window, qtbot):
    w = phantom_window
    z, y, x = labelled_voxel(w, 1)
    w.session.set_cursor(z, w.session.cursor[1], w.session.cursor[2])
    view = w.views.axial
    assert view.index == z
    r, g, b = color_at(view, (z, y, x))
    assert r > b + 40 and g > b + 40, (r, g, b)  # yellow tint over grey
    lab_rect = view.label_item.mapRectToParent(view.label_item.boundingRect())
    assert lab_rect == view.ct_item.mapRectToParent(view.ct_item.boundingRect())
    w.label_panel.checks[1].click()
    assert not w.labels.is_visible(1)
    r, g, b = color_at(view, (z, y, x))
    assert abs(r - b) <= 3 and abs(g - b) <= 3, (r, g, b)  # plain grey CT
    w.label_panel.checks[1].click()
    r, g, b = color_at(view, (z, y, x))
    assert r > b + 40


def test_outline_mode_clears_blob_interior(phantom_window):
    w = phantom_window
    z, y, x = labelled_voxel(w, 1)
    w.session.set_cursor(z, w.session.cursor[1], w.session.cursor[2])
    lab = w.labels.array[z]
    inner = np.argwhere((lab == 1) & np.roll(lab == 1, 1, 0) & np.roll(lab == 1, -1, 0)
                        & np.roll(lab == 1, 1, 1) & np.roll(lab == 1, -1, 1))
    yy, xx = inner[len(inner) // 2]
    w.labels.set_outline(True)
    assert w.views.axial.label_item.image[yy, xx] == 0
    assert (w.views.axial.label_item.image == 1).sum() < (lab == 1).sum()
    w.labels.set_outline(False)
    assert w.views.axial.label_item.image[yy, xx] == 1


def test_crosshair_click_moves_all_views(phantom_window, qtbot):
    w = phantom_window
    axial = w.views.axial
    z = w.session.cursor[0]
    target = (z, 30, 90)
    qtbot.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, pos=pixel(axial, target))
    assert w.session.cursor == target
    assert w.views.coronal.index == 30 and w.views.sagittal.index == 90
    # coronal shows the vertical crosshair at x = 90: the line's cyan is on that column
    cor = w.views.coronal
    img = cor.grab().toImage()
    p = pixel(cor, (5, 30, 90))
    row = [QColor(img.pixel(p.x() + dx, p.y())) for dx in range(-2, 3)]
    cyan = [c.blue() - c.red() for c in row]
    assert max(cyan) > 60, cyan
    far = QColor(img.pixel(pixel(cor, (5, 30, 60))))
    assert abs(far.blue() - far.red()) < 5  # no line elsewhere on that row
    assert w.views.sagittal.hline.value() == pytest.approx(w.views.sagittal.scene_point((z, 30, 90)).y())


def test_scroll_with_keys_and_wheel(phantom_window, qtbot):
    w = phantom_window
    axial = w.views.axial
    z0 = w.session.cursor[0]
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key.Key_Down)
    assert w.session.cursor[0] == z0 + 1 and axial.index == z0 + 1
    qtbot.keyClick(axial, Qt.Key.Key_PageUp)
    assert w.session.cursor[0] == z0 - 9
    pos = QPointF(pixel(axial, w.session.cursor))
    wheel = QWheelEvent(pos, QPointF(axial.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, -240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    QApplication.sendEvent(axial.viewport(), wheel)
    assert w.session.cursor[0] == z0 - 7
    for _ in range(100):
        axial.step_slice(-1)
    assert w.session.cursor[0] == 0 and f"1 / {SMALL[0]}" in axial.captions.top_left.text()


def test_window_preset_key_changes_pixels(phantom_window, qtbot):
    w = phantom_window
    vol = w.session.volume
    z, y, x = w.session.cursor
    lung = np.argwhere(vol.array[z] < -800)
    lung = lung[np.abs(lung[:, 0] - y) + np.abs(lung[:, 1] - x) > 10]
    ly, lx = lung[len(lung) // 2]
    before = color_at(w.views.axial, (z, ly, lx))
    assert 40 < before[0] < 130  # lung window: lung parenchyma is dark grey, not black
    w.window_level.actions["mediastinum"].trigger()
    assert w.session.window == PRESETS["mediastinum"]
    assert w.views.axial.ct_item.levels == pytest.approx(PRESETS["mediastinum"].levels)
    assert w.window_level.widget.width_box.value() == 400
    assert color_at(w.views.axial, (z, ly, lx))[0] == 0  # black in the mediastinal window
    w.window_level.widget.level_box.setValue(-600)
    assert w.session.window.level == -600 and w.session.window.width == 400
    assert not w.window_level.actions["mediastinum"].isChecked()


def test_eight_bit_scan_gets_grey_window(window):
    arr = np.tile(np.arange(0, 256, 2, dtype=np.uint8), (3, 128, 1))
    vol = Volume(arr, Geometry(arr.shape, spacing_known=False), is_hu=False, format="png")
    window.scan_io.show_volume(vol)
    assert window.session.window.levels == (0.0, 255.0)
    assert not window.window_level.actions["lung"].isEnabled()
    window.session.apply_preset("lung")
    assert window.session.window.levels == (0.0, 255.0)
    assert window.label_panel.volume_labels[1].text() == "0 vox"
    assert "mm" not in window.views.axial.captions.top_left.text()
    assert "not to scale" in window.views.coronal.captions.top_left.text()
    rect = window.views.coronal.ct_item.mapRectToParent(window.views.coronal.ct_item.boundingRect())
    assert rect.height() / rect.width() == pytest.approx(0.75)


def test_error_keeps_previous_scan(phantom_window, qtbot, tmp_path):
    w = phantom_window
    before = w.session.volume
    bad = tmp_path / "not_a_scan.nii"
    bad.write_bytes(b"garbage" * 10)
    with qtbot.waitSignal(w.notices.error_shown, timeout=30000) as blocker:
        w.scan_io.open_path(bad)
    assert blocker.args[0]
    assert w.session.volume is before
    assert w.errors


def test_labels_of_another_grid_are_refused(phantom_window):
    from engine.errors import GeometryMismatchError

    with pytest.raises(GeometryMismatchError, match="shape"):
        phantom_window.labels.set_array(np.zeros((2, 3, 4), np.uint8))


def test_layout_toggle(phantom_window, qtbot):
    w = phantom_window
    w.view_actions.layout_actions["axial"].trigger()
    assert w.session.layout == "axial"
    assert w.views.axial.isVisible() and not w.views.coronal.isVisible()
    axial = w.views.axial
    image = axial.ct_item.mapRectToParent(axial.ct_item.boundingRect())

    def fitted():
        (x0, x1), (y0, y1) = axial.view_box.viewRange()
        inside = x0 <= image.left() + 1e-6 and x1 >= image.right() - 1e-6 and y0 <= image.top() + 1e-6 \
            and y1 >= image.bottom() - 1e-6
        tight = abs((x1 - x0) - image.width()) < 1e-3 or abs((y1 - y0) - image.height()) < 1e-3
        return inside and tight

    axial.view_box.scaleBy((0.5, 0.5))  # zoom in, then the layout change refits
    assert not fitted()
    w.session.set_layout("three")
    w.session.set_layout("axial")
    qtbot.waitUntil(fitted, timeout=3000)
    w.views.axial.toggle_single()
    assert w.session.layout == "three" and w.views.sagittal.isVisible()


def test_help_lists_shortcuts(window):
    rows = dict((what, keys) for keys, what in
                __import__("app.widgets.shortcuts", fromlist=["x"]).shortcut_rows(window.all_actions()))
    assert rows["Lung (W1500 L-600)"] == "F2"
    assert rows["Mediastinum (W400 L40)"] == "F3"
    assert "Reset zoom and pan" in rows
    dialog = window.show_shortcuts()
    assert dialog.table.rowCount() >= 12
    dialog.close()


def test_recent_files_use_the_test_settings(window, tmp_path):
    p = tmp_path / "scan.nii"
    p.write_bytes(b"")
    window.scan_io.recent.add(str(p))
    assert window.scan_io.recent.paths()[0] == str(p.resolve())
    assert (tmp_path / "settings.ini").exists()
    assert window.scan_io.recent_menu.isEnabled()
    assert window.scan_io.recent_menu.actions()[0].text() == str(p.resolve())


@pytest.mark.shared_data
@pytest.mark.slow
def test_open_dicom_series(window, qtbot, dicom_99):
    pytest.importorskip("engine.io")
    with qtbot.waitSignal(window.scan_io.volume_opened, timeout=60000):
        window.scan_io.open_path(dicom_99)
    vol = window.session.volume
    assert vol.shape == (99, 512, 512) and vol.is_hu
    assert window.views.axial.index == 49
    assert window.views.axial.ct_item.image.shape == (512, 512)
    # coronal pixels are 3 mm tall against ~0.7 mm wide: the image rect carries the aspect
    rect = window.views.coronal.ct_item.boundingRect()
    assert rect.height() / rect.width() == pytest.approx(99 / 512, rel=1e-6)
    assert window.views.coronal.ct_item.mapRectToParent(rect).height() == pytest.approx(99 * vol.spacing[0])
    assert window.scan_io.recent.paths()[0] == str(dicom_99.resolve())


def test_3d_view_is_lazy_and_shows_label_colours(phantom_window, qtbot):
    w = phantom_window
    assert w.view3d.view is None  # nothing of the 3D view exists until it is asked for
    w.view3d.action.setChecked(True)
    view = w.view3d.view
    assert view is not None and w.view3d.shown
    if not view.available:  # no OpenGL here: a message instead of a crash
        assert "OpenGL" in view.message.text()
        return
    qtbot.waitUntil(lambda: bool(getattr(w.view3d, "surfaces", None)), timeout=30000)
    assert set(w.view3d.surfaces) == {1, 2, 3}
    assert all(p.GetNumberOfPoints() > 0 for p in w.view3d.surfaces.values())

    def has_colour(img, rgb):
        arr = np.array([[QColor(img.pixel(x, y)).getRgb()[:3] for x in range(0, img.width(), 2)]
                        for y in range(0, img.height(), 2)])
        return (np.abs(arr - np.array(rgb)).sum(axis=2) < 150).sum()

    red = w.labels.table[2].color
    assert has_colour(view.image(), red) > 5
    w.labels.set_visible(2, False)
    assert not view.actors[2].GetVisibility()
    assert has_colour(view.image(), red) == 0
    # scrolling does not rebuild the surfaces
    before = w.view3d.surfaces
    w.views.axial.step_slice(3)
    assert not w.view3d._timer.isActive() and w.view3d.surfaces is before


def test_probe_shows_hu_and_coordinates_under_the_mouse(phantom_window, qtbot):
    w = phantom_window
    axial = w.views.axial
    z = w.session.cursor[0]
    target = (z, 40, 50)
    qtbot.mouseMove(axial.viewport(), pixel(axial, target))
    text = w.probe.label.text()
    value = int(w.session.volume.array[target])
    assert f"x 51  y 41  slice {z + 1} / {SMALL[0]}" in text  # counted from 1, as the captions
    assert f"Axial  {z + 1} / {SMALL[0]}" in axial.captions.top_left.text()
    assert f"{value} HU" in text
    wx, wy, wz = w.session.volume.geometry.index_to_world(target)
    assert f"{wx:.1f}, {wy:.1f}, {wz:.1f} mm" in text
    # scrolling under a still mouse: the probe reads the voxel now under it (QA pass: it kept the old slice's)
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key.Key_Up)
    z2 = w.session.cursor[0]
    assert z2 != z
    text = w.probe.label.text()
    assert f"slice {z2 + 1} / {SMALL[0]}" in text and f"{int(w.session.volume.array[z2, 40, 50])} HU" in text


def test_shift_drag_changes_window_and_ctrl_wheel_zooms(phantom_window, qtbot):
    w = phantom_window
    axial = w.views.axial
    vp = axial.viewport()
    start = pixel(axial, w.session.cursor) + QPoint(20, 20)
    before = w.session.window
    cursor = w.session.cursor
    shift, left = Qt.KeyboardModifier.ShiftModifier, Qt.MouseButton.LeftButton
    qtbot.mousePress(vp, left, shift, start)
    for i in range(1, 6):  # QTest.mouseMove cannot hold Shift: send the moves by hand
        p = QPointF(start + QPoint(10 * i, 0))
        QApplication.sendEvent(vp, QMouseEvent(QEvent.Type.MouseMove, p, QPointF(vp.mapToGlobal(p.toPoint())),
                                               Qt.MouseButton.NoButton, left, shift))
    qtbot.mouseRelease(vp, left, shift, start + QPoint(50, 0))
    assert w.session.window.width > before.width and w.session.window.level == before.level
    assert w.session.cursor == cursor  # a window drag does not move the crosshair
    assert w.window_level.widget.width_box.value() == pytest.approx(w.session.window.width, abs=0.5)

    full = axial.view_box.viewRange()
    pos = QPointF(start)
    wheel = QWheelEvent(pos, QPointF(axial.mapToGlobal(start)), QPoint(0, 0), QPoint(0, 480),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, wheel)
    zoomed = axial.view_box.viewRange()
    assert zoomed[0][1] - zoomed[0][0] < 0.9 * (full[0][1] - full[0][0])
    assert w.session.cursor == cursor  # Ctrl+wheel zooms instead of scrolling
    w.view_actions.reset_action.trigger()
    reset = axial.view_box.viewRange()
    assert reset[0][1] - reset[0][0] == pytest.approx(full[0][1] - full[0][0], rel=1e-3)


def test_crosshair_can_be_hidden_and_title_is_shown(phantom_window):
    w = phantom_window
    assert "phantom" in w.views.axial.captions.top_right.text().lower()
    w.view_actions.crosshair_action.trigger()
    assert not w.session.crosshair_visible
    assert not any(v.vline.isVisible() or v.hline.isVisible() for v in w.views)
    w.session.set_crosshair_visible(True)
    assert w.view_actions.crosshair_action.isChecked() and w.views.coronal.vline.isVisible()


def test_label_item_is_skipped_on_empty_slices(phantom_window):
    w = phantom_window
    per_slice = w.labels.array.reshape(SMALL[0], -1).any(axis=1)
    empty, full = int(np.argmin(per_slice)), int(np.argmax(per_slice))
    assert not per_slice[empty] and per_slice[full]
    w.session.set_cursor(empty, *w.session.cursor[1:])
    assert not w.views.axial.label_item.isVisible()
    w.session.set_cursor(full, *w.session.cursor[1:])
    assert w.views.axial.label_item.isVisible()
    np.testing.assert_array_equal(w.views.axial.label_item.image, w.labels.array[full])


def test_label_panel_colour_and_opacity(phantom_window, monkeypatch):
    from PySide6.QtWidgets import QColorDialog

    w = phantom_window
    z, y, x = labelled_voxel(w, 1)
    w.session.set_cursor(z, w.session.cursor[1], w.session.cursor[2])
    w.labels.set_opacity(1.0)
    assert w.label_panel.opacity.value() == 100
    monkeypatch.setattr(QColorDialog, "getColor", staticmethod(lambda *a, **k: QColor(0, 0, 255)))
    w.label_panel.pick_color(1)
    assert w.labels.table[1].color == (0, 0, 255)
    assert "rgb(0,0,255)" in w.label_panel.color_buttons[1].styleSheet()
    assert color_at(w.views.axial, (z, y, x)) == (0, 0, 255)  # opaque, new colour
    w.label_panel.opacity.setValue(0)
    assert w.labels.opacity == 0.0
    r, g, b = color_at(w.views.axial, (z, y, x))
    assert r == g == b  # overlay gone, plain CT
    w.label_panel.mode.setCurrentIndex(1)
    assert w.labels.outline and w.view_actions.outline_action.isChecked()


def test_empty_menus_are_hidden_without_extensions(window):
    assert window.flows == () and window.ai is None and window.editing is None and window.numbers is None
    visible = {k for k, m in window.menus.items() if m.menuAction().isVisible()}
    # the reading tools (ruler, ROI) and Esc are part of every window: Tools and Edit stay
    assert visible == {"file", "edit", "view", "tools", "help"}
    assert {a.text() for a in window.menus["tools"].actions()} >= {"Ruler", "Ellipse ROI"}


def test_closing_the_window_frees_the_scan(qtbot, tmp_path, monkeypatch):
    import gc
    import weakref

    from PySide6.QtCore import QCoreApplication, QEvent

    from app.flows.open_scan import load_phantom
    from app.main_window import MainWindow

    monkeypatch.setenv("LUNGLENS_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("LUNGLENS_DATA_DIR", str(tmp_path / "data"))

    def open_and_close():
        w = MainWindow(interactive_errors=False, flows=())
        w.show()
        vol, lab = load_phantom(SMALL)
        w.scan_io.show_volume(vol)
        w.labels.set_array(lab, "phantom")
        w.session.set_layout("axial")
        w.view3d.action.setChecked(True)
        qtbot.wait(20)
        refs = weakref.ref(vol), weakref.ref(w.labels.array.base if w.labels.array.base is not None
                                             else w.labels.array)
        w.close()
        w.deleteLater()
        return refs

    vol_ref, labels_ref = open_and_close()
    qtbot.wait(20)
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    assert vol_ref() is None and labels_ref() is None


def test_flow_docks_share_one_tab_group(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QDockWidget

    from app.main_window import MainWindow

    monkeypatch.setenv("LUNGLENS_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("LUNGLENS_DATA_DIR", str(tmp_path / "data"))
    w = MainWindow(interactive_errors=False, flows=("ai", "editing", "numbers"))
    qtbot.addWidget(w)
    assert w.flows == ("ai", "editing", "numbers")
    docks = {d.windowTitle(): d for d in w.findChildren(QDockWidget)}
    assert sorted(d.windowTitle() for d in w.tabifiedDockWidgets(docks["AI findings"])) == ["Editing", "Numbers"]
    assert w.tabifiedDockWidgets(w.label_dock) == []
    with pytest.raises(ValueError):
        MainWindow(interactive_errors=False, flows=("not_there",))


def test_3d_view_without_opengl_shows_a_message(phantom_window, monkeypatch):
    from app.views import view3d

    monkeypatch.setattr(view3d, "_offscreen_ok", False)
    w = phantom_window
    w.view3d.action.setChecked(True)
    view = w.view3d.view
    assert not view.available and "OpenGL" in view.message.text() and view.message.isVisible()
    w.view3d.rebuild()  # nothing to build, nothing raised
    w.labels.set_visible(1, False)
    assert w.views.axial.isVisible()


def _drag(vp, button, start, delta, steps=5):
    from PySide6.QtTest import QTest

    QTest.mousePress(vp, button, Qt.KeyboardModifier.NoModifier, start)
    for i in range(1, steps + 1):
        p = QPointF(start + QPoint(delta.x() * i // steps, delta.y() * i // steps))
        QApplication.sendEvent(vp, QMouseEvent(QEvent.Type.MouseMove, p, QPointF(vp.mapToGlobal(p.toPoint())),
                                               Qt.MouseButton.NoButton, button, Qt.KeyboardModifier.NoModifier))
    QTest.mouseRelease(vp, button, Qt.KeyboardModifier.NoModifier, start + delta)


def test_middle_drag_pans_and_right_drag_zooms(phantom_window, qtbot):
    w = phantom_window
    axial = w.views.axial
    vp = axial.viewport()
    cursor = w.session.cursor
    start = pixel(axial, cursor) + QPoint(10, 10)
    (x0, x1), (y0, y1) = axial.view_box.viewRange()
    _drag(vp, Qt.MouseButton.MiddleButton, start, QPoint(60, 0))
    (px0, px1), _ = axial.view_box.viewRange()
    assert px0 < x0 - 1 and px1 - px0 == pytest.approx(x1 - x0)  # moved, same scale
    qtbot.wait(QApplication.doubleClickInterval() + 50)  # else the next press reads as a double click
    _drag(vp, Qt.MouseButton.RightButton, start, QPoint(0, -60))
    _, (zy0, zy1) = axial.view_box.viewRange()
    assert zy1 - zy0 < 0.8 * (y1 - y0)  # zoomed in
    assert w.session.cursor == cursor  # neither gesture moves the crosshair


def test_the_3d_views_offscreen_probe_runs_in_the_background_once_a_scan_opens(make_window, qtbot, monkeypatch):
    """QA pass (GUI stalls): the first 3D view waited 1.1 s on the GUI thread for the offscreen OpenGL probe (a
    subprocess). It starts on a thread when a scan opens; the view then finds its answer."""
    from app.views import view3d

    monkeypatch.setattr(view3d, "_offscreen_ok", None)
    monkeypatch.setattr(view3d, "_probe_thread", None)
    w = make_window()
    assert view3d._probe_thread is None  # nothing before a scan
    w.scan_io.open_phantom((16, 48, 48))
    qtbot.waitUntil(lambda: view3d._probe_thread is not None, timeout=10000)
    view3d._probe_thread.join(60)
    assert isinstance(view3d._offscreen_ok, bool) and view3d.offscreen_rendering_available() is view3d._offscreen_ok


def test_probe_positions_of_a_tilted_series_are_marked_approximate():
    """QA pass: on a gantry-tilted series (shown stacked straight) the probe's mm were 15 mm off, unmarked."""
    from app.flows.probe import probe_text
    from engine.types import Geometry, Volume

    vol = Volume(np.zeros((4, 5, 6), np.int16), Geometry((4, 5, 6), spacing=(2.0, 0.8, 0.8)), is_hu=True,
                 meta={"tilted_step_mm": 2.2})
    assert "mm (LPS approx.: tilted series shown straight)" in probe_text(vol, (3, 2, 2))
    vol.meta.clear()
    assert "mm (LPS)" in probe_text(vol, (3, 2, 2))


def test_a_tilted_series_marks_its_slice_positions_and_cross_slice_rulers_approximate(make_window, qtbot):
    from engine.display import Plane
    from engine.types import Geometry, Volume

    w = make_window(flows=(), size=(1000, 700))
    vol = Volume(np.zeros((8, 32, 32), np.int16) - 1000, Geometry((8, 32, 32), spacing=(2.0, 0.8, 0.8)),
                 is_hu=True, meta={"tilted_step_mm": 2.2})
    w.scan_io.show_volume(vol, None)
    qtbot.wait(20)
    assert "(approx.: tilted series shown straight)" in w.views.axial.captions.top_left.text()
    m = w.reading.measurements.set("ruler", Plane.CORONAL, 10, (1.0, 5.0), (6.0, 5.0))
    assert m.text.startswith("10.0 mm (approx.") and "approx." not in \
        w.reading.measurements.set("ruler", Plane.AXIAL, 3, (1.0, 5.0), (6.0, 5.0)).text
