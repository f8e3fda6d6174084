"""Keys, reading tools and units in the real main window, offscreen, with real key and mouse events."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QKeySequence, QWheelEvent
from PySide6.QtWidgets import QAbstractSpinBox, QApplication

from engine.display import Plane, extract, pixel_spacing
from engine.types import Geometry, Volume

pytestmark = pytest.mark.gui

SHAPE = (40, 96, 112)
SPACING = (2.0, 0.6, 0.8)


def ct_volume(spacing_known=True):
    rng = np.random.default_rng(7)
    arr = rng.integers(-1000, 600, size=SHAPE).astype(np.int16)
    return Volume(arr, Geometry(SHAPE, SPACING if spacing_known else (1.0, 1.0, 1.0), spacing_known=spacing_known))


@pytest.fixture
def window(make_window):
    w = make_window(flows=("editing",))
    w.scan_io.show_volume(ct_volume())
    w.views.axial.setFocus()
    return w


def pixel(view, row, col) -> QPoint:
    """Widget pixel of display point ``(row, col)`` of ``view``."""
    return view.mapFromScene(view.view_box.mapViewToScene(view.display_point(row, col)))


def wheel(view, dy, modifiers=Qt.KeyboardModifier.NoModifier):
    pos = QPointF(view.width() / 2, view.height() / 2)
    ev = QWheelEvent(pos, QPointF(view.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, dy),
                     Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), ev)


def drag(qtbot, view, a: QPoint, b: QPoint):
    qtbot.wait(QApplication.doubleClickInterval() + 50)  # two drags in a row are not a double click
    vp = view.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=a)
    for t in (0.25, 0.5, 0.75, 1.0):
        qtbot.mouseMove(vp, QPoint(int(a.x() + t * (b.x() - a.x())), int(a.y() + t * (b.y() - a.y()))))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=b)


# -- keys ---------------------------------------------------------------------
def test_plus_minus_and_shift_wheel_change_the_brush_not_the_slice(window, qtbot):
    w = window
    s = w.editing.settings
    r0 = s.radius_mm
    axial = w.views.axial
    qtbot.keyClick(axial, Qt.Key.Key_Plus)
    assert s.radius_mm == pytest.approx(round(r0 * 1.25, 2))
    qtbot.keyClick(axial, Qt.Key.Key_Minus)
    qtbot.keyClick(axial, Qt.Key.Key_Minus)
    assert s.radius_mm < r0
    z = w.session.cursor[0]
    r1 = s.radius_mm
    wheel(axial, 120, Qt.KeyboardModifier.ShiftModifier)
    assert s.radius_mm == pytest.approx(round(r1 * 1.25, 2)) and w.session.cursor[0] == z
    wheel(axial, -120)  # plain wheel down: next slice, brush unchanged
    assert w.session.cursor[0] == z + 1 and s.radius_mm == pytest.approx(round(r1 * 1.25, 2))


def test_page_down_goes_the_way_of_the_wheel_and_the_help_says_so(window, qtbot):
    w = window
    axial = w.views.axial
    z = w.session.cursor[0]
    qtbot.keyClick(axial, Qt.Key.Key_PageDown)
    assert w.session.cursor[0] == z + 10 and axial.index == z + 10
    wheel(axial, -120)
    assert w.session.cursor[0] == z + 11  # wheel down: the same direction as Page Down
    qtbot.keyClick(axial, Qt.Key.Key_PageUp)
    assert w.session.cursor[0] == z + 1
    dialog = w.show_shortcuts()
    rows = {dialog.table.item(r, 0).text(): dialog.table.item(r, 1).text() for r in range(dialog.table.rowCount())}
    assert rows["Page Up / Page Down"].startswith("Ten slices back / forward")
    assert "wheel up / down" in rows["Page Up / Page Down"]
    assert rows["Esc"] == "Cancel / back to Navigate"
    by_action = {v: k for k, v in rows.items()}
    assert by_action["Larger brush"].split(", ")[0] == "+" and by_action["Smaller brush"].split(", ")[0] == "-"
    assert rows["R"] == "Ruler" and rows["O"] == "Ellipse ROI" and rows["Ctrl+M"].startswith("MIP")
    dialog.close()


def test_every_shortcut_is_in_a_menu_and_esc_is_bound_once(window):
    keys = [k.toString() for a in window.all_actions() for k in a.shortcuts()]
    assert keys.count("Esc") == 1
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    for k in ("+", "-", "R", "O", "Ctrl+M", "Ctrl+Shift+M", "Shift+R"):
        assert k in keys


def test_escape_cancels_the_drag_then_goes_back_to_navigate(window, qtbot):
    w = window
    axial = w.views.axial
    qtbot.keyClick(axial, Qt.Key.Key_R)
    assert w.views.tool is w.reading.tools["ruler"]
    vp = axial.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=pixel(axial, 20, 20))
    qtbot.mouseMove(vp, pixel(axial, 40, 60))
    assert w.reading.tools["ruler"].drawing and w.reading.measurements.get(Plane.AXIAL, "ruler") is not None
    qtbot.keyClick(axial, Qt.Key.Key_Escape)  # 1: the drag is dropped, the tool stays
    assert w.reading.measurements.get(Plane.AXIAL, "ruler") is None and w.views.tool is w.reading.tools["ruler"]
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=pixel(axial, 40, 60))
    qtbot.keyClick(axial, Qt.Key.Key_Escape)  # 2: back to the crosshair
    assert w.views.tool.name == "crosshair" and w.editing.navigate_action.isChecked()
    qtbot.keyClick(axial, Qt.Key.Key_B)
    assert w.views.tool.name == "brush"
    qtbot.keyClick(axial, Qt.Key.Key_Escape)
    assert w.views.tool.name == "crosshair"


def test_window_box_hands_the_keys_back_to_the_views(window, qtbot):
    w = window
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    box = w.window_level.widget.width_box
    assert box.focusPolicy() == Qt.FocusPolicy.ClickFocus  # never reached by Tab or a vanishing button
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton)
    assert box.hasFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, "700")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert w.session.window.width == 700
    assert QApplication.focusWidget() is w.views.axial
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_2)
    assert w.editing.settings.label == 2 and w.session.window.width == 700


def test_focus_that_would_fall_into_the_toolbar_goes_back_to_a_view(window, qtbot):
    """A Cancel button that disappears hands focus on; it must not land in a spin box."""
    w = window
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    button = w.progress.cancel_button
    button.show()
    button.setFocus()
    button.hide()  # what the progress panel does when a cancelled run ends
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None
                    and not isinstance(QApplication.focusWidget(), QAbstractSpinBox), timeout=2000)
    qtbot.waitUntil(lambda: QApplication.focusWidget() in list(w.views), timeout=2000)
    width = w.session.window.width
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_3)
    assert w.editing.settings.label == 3 and w.session.window.width == width


def test_probe_clears_on_a_new_open(window, qtbot):
    w = window
    axial = w.views.axial
    qtbot.mouseMove(axial.viewport(), pixel(axial, 30, 30))
    assert f"slice {w.session.cursor[0] + 1} / {SHAPE[0]}" in w.probe.label.text()
    w.scan_io.show_volume(ct_volume())
    assert w.probe.label.text() == ""


# -- reading tools ----------------------------------------------------------------
def test_ruler_measures_mm_on_a_known_spacing(window, qtbot):
    w = window
    axial = w.views.axial
    w.reading.set_tool("ruler")
    drag(qtbot, axial, pixel(axial, 10, 10), pixel(axial, 70, 90))
    m = w.reading.measurements.get(Plane.AXIAL, "ruler")
    sy, sx = SPACING[1], SPACING[2]
    assert m.p0 == pytest.approx((10, 10), abs=0.6) and m.p1 == pytest.approx((70, 90), abs=0.6)
    assert m.length == pytest.approx(np.hypot(60 * sy, 80 * sx), abs=1.0)
    assert m.text == f"{m.length:.1f} mm"
    overlay = w.reading.overlays[0]
    assert overlay.line.isVisible() and overlay.texts["ruler"].toPlainText() == m.text
    w.views.axial.step_slice(1)  # a measurement belongs to its slice
    assert not overlay.line.isVisible()


def test_ellipse_roi_mean_sd_area_match_numpy_on_the_same_pixels(window, qtbot):
    w = window
    cor = w.views.coronal
    w.reading.set_tool("roi")
    drag(qtbot, cor, pixel(cor, 8, 20), pixel(cor, 30, 80))
    m = w.reading.measurements.get(Plane.CORONAL, "ellipse")
    image = extract(w.session.volume.array, Plane.CORONAL, w.session.cursor[1]).astype(float)
    (r0, c0), (r1, c1) = m.p0, m.p1
    rr, cc = np.mgrid[:image.shape[0], :image.shape[1]]
    inside = ((rr - (r0 + r1) / 2) / (abs(r1 - r0) / 2)) ** 2 + ((cc - (c0 + c1) / 2) / (abs(c1 - c0) / 2)) ** 2 <= 1
    values = image[inside]
    assert m.stats.pixels == inside.sum() > 300
    assert m.stats.mean == pytest.approx(values.mean()) and m.stats.sd == pytest.approx(values.std(ddof=1))
    row_mm, col_mm = pixel_spacing(SPACING, Plane.CORONAL)
    assert m.stats.area == pytest.approx(inside.sum() * row_mm * col_mm)
    assert f"mean {values.mean():.1f} HU" in m.text and "mm²" in m.text


def test_mip_and_minip_slabs_in_all_three_views(window, qtbot):
    w = window
    vol = w.session.volume.array
    qtbot.keyClick(w.views.axial, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert w.session.slab.mode == "mip" and w.session.slab.thickness == 10.0
    z, y, x = w.session.cursor
    # axial: 10 mm / 2 mm = 5 slices centred on z; coronal: 10 / 0.6 = 17 rows; sagittal 10 / 0.8 = 12 (13 rounded)
    assert np.array_equal(w.views.axial.ct_item.image, vol[z - 2:z + 3].max(axis=0).astype(np.float32))
    assert np.array_equal(w.views.coronal.ct_item.image, vol[::-1, y - 8:y + 9, :].max(axis=1).astype(np.float32))
    n = int(round(10 / 0.8))
    start = x - (n - 1) // 2
    assert np.array_equal(w.views.sagittal.ct_item.image,
                          vol[::-1, :, start:start + n].max(axis=2).astype(np.float32))
    assert "MIP 10 mm, 5 slices" in w.views.axial.captions.top_left.text()  # what the slab holds
    assert "MIP 10.2 mm, 17 slices" in w.views.coronal.captions.top_left.text()  # 17 x 0.6 mm, not "10 mm"
    w.session.set_slab(mode="minip", thickness=4)
    # 4 mm / 2 mm = 2 slices: the one shown and the next
    assert np.array_equal(w.views.axial.ct_item.image, vol[z:z + 2].min(axis=0).astype(np.float32))
    assert "MinIP 4 mm, 2 slices" in w.views.axial.captions.top_left.text()
    qtbot.keyClick(w.views.axial, Qt.Key.Key_Down)  # scrolling keeps the slab
    assert np.array_equal(w.views.axial.ct_item.image, vol[z + 1:z + 3].min(axis=0).astype(np.float32))
    assert w.reading.thickness.value() == 4 and w.reading.slab_actions["minip"].isChecked()
    qtbot.keyClick(w.views.axial, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(w.views.axial.ct_item.image, vol[z + 1].astype(np.float32))


def test_a_spacing_less_8bit_stack_shows_no_mm_no_hu(make_window, qtbot, tmp_path):
    w = make_window(flows=("editing",))
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, size=(12, 64, 80)).astype(np.uint8)
    w.scan_io.show_volume(Volume(arr, Geometry(arr.shape, spacing_known=False), is_hu=False, format="png"))
    w.session.set_slab(mode="mip", thickness=3)
    for view in w.views:
        assert "mm" not in view.captions.top_left.text()
    assert "MIP 3 slices" in w.views.axial.captions.top_left.text()
    assert w.reading.thickness.suffix() == " slices"
    axial = w.views.axial
    w.reading.set_tool("ruler")
    drag(qtbot, axial, pixel(axial, 5, 5), pixel(axial, 5, 45))
    assert w.reading.measurements.get(Plane.AXIAL, "ruler").text.endswith(" px")
    # coronal: rows are slices, drawn wider than a pixel here; one "px" for both misled (QA pass)
    m = w.reading.measurements.set("ruler", Plane.CORONAL, 30, (2.0, 10.0), (9.0, 40.0))
    assert m.text == "7.0 slices x 30.0 px (no spacing)"
    w.reading.set_tool("roi")
    drag(qtbot, axial, pixel(axial, 10, 10), pixel(axial, 40, 50))
    text = w.reading.measurements.get(Plane.AXIAL, "ellipse").text
    assert "grey" in text and "HU" not in text and "mm" not in text and " px" in text
    qtbot.mouseMove(axial.viewport(), pixel(axial, 20, 20))
    assert "HU" not in w.probe.label.text() and "mm" not in w.probe.label.text()
    opts = w.editing.options
    assert opts.radius.suffix() == " vox" and opts.lo.suffix() == " grey" and opts.island.suffix() == " vox"
    assert opts.island.value() == 100  # 0.1 mL of 1 mm voxels
    opts.island.setValue(250)
    assert w.editing.settings.island_ml == pytest.approx(0.25)
    assert w.editing.settings.hu_range == (0.0, 255.0) and not opts.preset_combo.isEnabled()
    w.editing.settings.set_hu_range(100, 255)
    w.editing.set_tool("threshold")  # paints grey levels 100..255 of the 8-bit image
    drag(qtbot, axial, pixel(axial, 20, 10), pixel(axial, 20, 60))
    z = w.views.axial.index
    painted = w.labels.array[z] > 0
    assert painted.any() and (arr[z][painted] >= 100).all()
    assert f"+{int(painted.sum())} / -0 voxels" in opts.hand_edits.text() and "mL" not in opts.hand_edits.text()
    w.runner.cancel_all()
    w.runner.wait(5000)


def test_after_run_ai_cancel_the_digit_keys_reach_the_tools(make_window, qtbot, monkeypatch):
    """The reported trap: Cancel on Run AI left focus in the Window box, so `2` set W=2."""
    import time

    import torch

    from engine.inference import Predictor
    from engine.inference.reference import IntensityModel
    from engine.models.card import ModelCard
    from engine.models.registry import LoadedModel

    class Slow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = IntensityModel()

        def forward(self, x):
            time.sleep(0.15)
            return self.inner(x)

    w = make_window(flows=("ai", "editing"))
    w.scan_io.show_volume(ct_volume())
    card = ModelCard(name="slow_rules", task="segmentation", architecture="test", input_size=(96, 112),
                     extra={"multiple": 1})
    predictor = Predictor(LoadedModel(Slow().eval(), card, torch.device("cpu"), torch.float32), device="cpu",
                          findings_model=False, covid_model=False, batch_size=2, threads=1)
    monkeypatch.setattr(w.ai, "predictor", lambda key=None: predictor)
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    seen = []
    w.ai.proposal.slab_added.connect(seen.append)
    w.ai.run()
    qtbot.waitUntil(lambda: len(seen) >= 1 and w.progress.cancel_button.isVisible(), timeout=30000)
    with qtbot.waitSignal(w.ai.run_ended, timeout=30000):
        qtbot.mouseClick(w.progress.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.runner.active, timeout=30000)
    qtbot.waitUntil(lambda: QApplication.focusWidget() in list(w.views), timeout=3000)
    width = w.session.window.width
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_2)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_E)
    assert w.editing.settings.label == 2 and w.session.window.width == width
    assert w.views.tool.name == "eraser"
    w.runner.cancel_all()
    w.runner.wait(10000)


def test_3d_view_has_an_orientation_marker_and_the_lungs(make_window, qtbot, tmp_path):
    from PySide6.QtGui import QColor

    w = make_window(flows=("numbers",))  # the case finds the lungs
    w.scan_io.open_phantom((48, 128, 128))
    qtbot.waitUntil(lambda: w.case.lungs is not None or bool(w.errors), timeout=60000)
    assert not w.errors
    w.view3d.action.setChecked(True)
    view = w.view3d.view
    if not view.available:  # no OpenGL: the message of today, no crash
        assert "OpenGL" in view.message.text()
        return
    qtbot.waitUntil(lambda: w.view3d.lung_surface is not None and bool(w.view3d.surfaces), timeout=60000)
    assert w.view3d.lung_surface.GetNumberOfPoints() > 100
    assert view.lung_actor is not None and view.lung_actor.GetProperty().GetOpacity() < 0.3
    texts = {view.marker.GetXPlusFaceText(), view.marker.GetXMinusFaceText(), view.marker.GetYPlusFaceText(),
             view.marker.GetYMinusFaceText(), view.marker.GetZPlusFaceText(), view.marker.GetZMinusFaceText()}
    assert texts == {"L", "R", "P", "A", "S", "I"}
    # from the front the marker shows its A face (green) in the lower-left corner
    view.reset_camera()
    img = view.image()
    corner = [QColor(img.pixel(x, y)) for x in range(0, img.width() // 5) for y in range(img.height() * 4 // 5,
                                                                                           img.height())]
    assert sum(1 for c in corner if c.green() > 150 and c.red() < 150 and c.blue() < 150) > 20
    # the faint lungs brighten the scene where no finding is drawn
    w.labels.set_array(np.zeros(w.labels.shape, np.uint8), "none")
    qtbot.waitUntil(lambda: not w.view3d.surfaces, timeout=30000)
    view.reset_camera()
    img = view.image()  # away from the marker's corner: the lungs are what is light there
    arr = np.array([[QColor(img.pixel(x, y)).lightness() for x in range(img.width() // 4, img.width(), 3)]
                    for y in range(0, img.height() * 3 // 4, 3)])
    with_lungs = int((arr > 40).sum())
    view.set_lungs(None)
    img = view.image()
    arr = np.array([[QColor(img.pixel(x, y)).lightness() for x in range(img.width() // 4, img.width(), 3)]
                    for y in range(0, img.height() * 3 // 4, 3)])
    without = int((arr > 40).sum())  # only the box outline is left
    assert with_lungs > without + 300, (with_lungs, without)
    w.runner.cancel_all()
    w.runner.wait(5000)


def test_escape_rejects_a_proposal_first_then_leaves_the_tool(make_window, qtbot, tmp_path):
    from app.flows.ai import DEMO_MODEL

    w = make_window(flows=("ai", "editing"))
    w.scan_io.open_phantom((48, 128, 128))
    qtbot.waitUntil(lambda: bool(w.errors or (w.session.volume is not None and w.labels.name)), timeout=60000)
    qtbot.waitUntil(lambda: not w.runner.active, timeout=60000)
    before = w.labels.array.copy()
    axial = w.views.axial
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key.Key_B)
    w.ai.select_model(DEMO_MODEL)
    with qtbot.waitSignal(w.ai.proposal_ready, timeout=60000):
        w.ai.run()
    qtbot.keyClick(axial, Qt.Key.Key_Escape)  # 1: the proposal goes, the brush stays
    assert w.ai.proposal.state == "idle" and w.views.tool.name == "brush"
    assert np.array_equal(w.labels.array, before)
    qtbot.keyClick(axial, Qt.Key.Key_Escape)  # 2: back to Navigate
    assert w.views.tool.name == "crosshair"
    assert not w.keys.escape()  # 3: nothing left to do
    w.runner.cancel_all()
    w.runner.wait(10000)


def test_freehand_roi_follows_the_drawn_outline(window, qtbot):
    from engine.editing.ops import polygon_mask_2d

    w = window
    axial = w.views.axial
    qtbot.keyClick(axial, Qt.Key.Key_P)
    assert w.views.tool is w.reading.tools["freehand"]
    corners = [(20, 20), (20, 80), (60, 80), (60, 20), (20, 20)]  # a 40 x 60 pixel rectangle, drawn by hand
    vp = axial.viewport()
    qtbot.wait(QApplication.doubleClickInterval() + 50)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=pixel(axial, *corners[0]))
    for (r0, c0), (r1, c1) in zip(corners, corners[1:]):
        for t in np.linspace(0.1, 1.0, 10):
            qtbot.wait(12)  # pyqtgraph drops moves closer than 10 ms apart (its mouseRateLimit)
            qtbot.mouseMove(vp, pixel(axial, r0 + t * (r1 - r0), c0 + t * (c1 - c0)))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=pixel(axial, *corners[-1]))
    m = w.reading.measurements.get(Plane.AXIAL, "freehand")
    assert len(m.points) > 20
    image = extract(w.session.volume.array, Plane.AXIAL, w.session.cursor[0]).astype(float)
    inside = polygon_mask_2d(image.shape, np.array(m.points), outline=False)  # pixel centres inside, as the ellipse
    assert abs(int(inside.sum()) - 40 * 60) < 0.05 * 40 * 60  # the rectangle (its outline's pixels not added)
    assert inside[40, 50] and not inside[10, 50] and not inside[40, 90]
    assert m.stats.mean == pytest.approx(image[inside].mean()) and m.stats.sd == pytest.approx(image[inside].std(ddof=1))
    assert m.stats.area == pytest.approx(inside.sum() * SPACING[1] * SPACING[2])
    assert w.reading.overlays[0].outline.isVisible() and "mm²" in w.reading.overlays[0].texts["freehand"].toPlainText()


def test_a_freehand_circle_measures_the_area_inside_it():
    """QA pass: the outline's own pixels were counted: a 3-pixel circle read 58 % too large, a 20 x 20 square 441."""
    from engine.editing.ops import polygon_mask_2d

    t = np.linspace(0, 2 * np.pi, 61)
    for r in (3.0, 6.0, 15.0):
        circle = np.stack([30 + r * np.sin(t), 30 + r * np.cos(t)], axis=1)
        area = int(polygon_mask_2d((60, 60), circle, outline=False).sum())
        assert abs(area - np.pi * r * r) <= 0.12 * np.pi * r * r + 2, (r, area)
    square = np.array([(9.5, 9.5), (9.5, 29.5), (29.5, 29.5), (29.5, 9.5)])
    assert int(polygon_mask_2d((40, 40), square, outline=False).sum()) == 400
    assert int(polygon_mask_2d((40, 40), square).sum()) > 400  # a lasso still paints what was drawn


def test_roi_on_a_slab_view_says_it_measures_one_slice_and_small_values_keep_their_decimals(window, qtbot):
    w = window
    w.session.set_slab(mode="mip", thickness=10)
    z = w.session.cursor[0]
    m = w.reading.measurements.set("ellipse", Plane.AXIAL, z, (20, 20), (30, 30))
    assert f"of slice {z + 1} alone, not the MIP shown" in m.text
    w.session.set_slab(mode="", thickness=10)
    from app.state.measurements import Measurements
    from engine.display import RegionStats
    stats = RegionStats(pixels=4, area=1.0, mean=0.0347, sd=0.0145, minimum=0.01, maximum=0.06)
    assert Measurements.stats_text(stats, False, True, decimals=4).startswith("mean 0.0347 grey  SD 0.0145")


def test_values_and_windows_are_shown_to_the_precision_of_the_data(window, qtbot):
    """QA pass: a float image of 0..1 read "0 HU" at 0.317 and its window "W 1 L 0"; a scan of values up to
    60 000 opened with W 59406 while the boxes stopped at 10 000 (one step then applied W 10000); 8-bit data's
    level 127.5 read 128, and a typed width then applied L 128. A doubted HU scale reads "HU?" in the probe, as
    the ROI says."""
    from app.flows.probe import probe_text
    from engine.display import window_text

    w = window
    boxes = (w.window_level.widget.width_box, w.window_level.widget.level_box)
    rng = np.random.default_rng(3)
    small = Volume(rng.random(SHAPE).astype(np.float32), Geometry(SHAPE, SPACING), is_hu=True,
                   meta={"hu_scale_doubtful": True})
    w.scan_io.show_volume(small)
    wl = w.session.window
    assert w.session.value_decimals == 3 and wl.width < 1.0
    v = float(small.array[5, 6, 7])
    assert f"{v:.3f} HU?" in probe_text(small, (5, 6, 7), decimals=w.session.value_decimals)
    assert w.views.axial.captions.bottom_left.text() == window_text(wl, 3) == f"W {wl.width:.3f}  L {wl.level:.3f}"
    assert [round(b.value(), 3) for b in boxes] == [round(wl.width, 3), round(wl.level, 3)]
    wide = Volume(rng.integers(0, 60000, size=SHAPE).astype(np.int32), Geometry(SHAPE, SPACING), is_hu=True,
                  meta={"hu_scale_doubtful": True})
    w.scan_io.show_volume(wide)
    wl = w.session.window
    assert wl.width > 10000 and [b.value() for b in boxes] == [round(wl.width), round(wl.level)]
    boxes[1].stepDown()  # one step of the level: the width stays what it was
    assert w.session.window.width == pytest.approx(round(wl.width)) and w.session.window.level < wl.level
    grey = Volume(rng.integers(0, 256, size=SHAPE).astype(np.uint8), Geometry(SHAPE, SPACING), is_hu=False)
    w.scan_io.show_volume(grey)
    assert w.session.window.level == 127.5 and boxes[1].value() == 127.5
    assert w.views.axial.captions.bottom_left.text() == "W 255.0  L 127.5"
    boxes[0].setValue(200)
    assert (w.session.window.width, w.session.window.level) == (200, 127.5)


def test_voxels_filled_for_nan_are_said_where_they_are_shown(window, qtbot, tmp_path):
    """QA pass: inside a block of NaN voxels (the reader set them to -1024 and said so in Notices) the probe read
    "-1024 HU", an ROI "mean -1024.0 HU SD 0.0" and the slice nothing. The axial caption of such a slice, the
    probe on a filled value and an ROI over one now say so; other slices do not."""
    import nibabel as nib

    from app.flows.probe import probe_text
    from engine import io

    w = window
    arr = np.full((64, 64, 12), -700.0, np.float32)
    arr[:, :, :4] = 40.0
    arr[20:30, 20:30, 6] = np.nan
    nib.save(nib.Nifti1Image(arr, np.diag([0.8, 0.8, 2.0, 1.0])), str(tmp_path / "nan.nii"))
    vol = io.load(tmp_path / "nan.nii")
    assert vol.meta["filled"]["slices"] and len(vol.meta["filled"]["slices"]) == 1
    z = vol.meta["filled"]["slices"][0]
    w.scan_io.show_volume(vol)
    flat = vol.meta["filled"]["index"]
    assert flat.size == 100
    hit = tuple(int(i) for i in np.unravel_index(int(flat[55]), vol.shape))
    assert hit[0] == z and "(a NaN/inf voxel, filled: not image data)" in probe_text(vol, hit)
    same_value = (z, 2, 2)  # the same value (-700, the lowest) on the same slice, but image data
    assert vol.array[same_value] == vol.array[hit] and "filled" not in probe_text(vol, same_value)
    assert "filled" not in probe_text(vol, (z + 2, *hit[1:]))
    w.session.set_cursor(*hit)
    assert "NaN/inf voxels filled on this slice" in w.views.axial.captions.top_left.text()
    w.session.set_cursor(z + 2, *hit[1:])
    assert "filled" not in w.views.axial.captions.top_left.text()
    row, col = hit[1], hit[2]  # axial display point of the filled voxel
    m = w.reading.measurements.set("ellipse", Plane.AXIAL, z, (row - 2, col - 2), (row + 2, col + 2))
    assert m.text.endswith("includes filled NaN/inf voxels: not image data (see Notices)"), m.text
    m = w.reading.measurements.set("ellipse", Plane.AXIAL, z, (2, 2), (6, 6))
    assert "filled" not in m.text


def test_a_long_slice_caption_does_not_cover_the_orientation_letter(make_window, qtbot):
    """QA pass: in a narrow sagittal view of a stack without spacing the caption "spacing unknown: not to scale"
    covered the "S" at the top edge; the letter now moves right of it."""
    w = make_window(flows=("editing",), size=(900, 600))
    arr = np.random.default_rng(2).integers(0, 256, size=(12, 64, 80)).astype(np.uint8)
    w.scan_io.show_volume(Volume(arr, Geometry(arr.shape, spacing_known=False), is_hu=False, format="png"))
    qtbot.wait(50)
    reach = 0
    for view in (w.views.axial, w.views.coronal, w.views.sagittal):
        c = view.captions
        corner = c.top_left.mapRectToScene(c.top_left.rect())
        letter = c.letters["top"].mapRectToScene(c.letters["top"].rect())
        assert c.letters["top"].text() and not corner.intersects(letter), (view.plane, corner, letter)
        assert view.viewport().rect().contains(view.mapFromScene(letter.center()))  # still in the view
        reach += corner.right() > view.viewport().rect().center().x()
    assert reach >= 1  # at this size the coronal and sagittal captions reach the middle, where the letter was
