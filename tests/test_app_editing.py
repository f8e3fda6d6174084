"""Label editing in the real main window, offscreen: mouse strokes with each tool, undo, Esc,
restore after a crash, the unsaved-edits guard and export."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox

from engine import io
from engine.editing import Journal, LabelEditor, ops, read_journal, scan_key, unsaved_journals
from engine.types import Geometry, Volume

pytestmark = pytest.mark.gui

SHAPE = (12, 96, 96)


def make_volume(tmp_path) -> Volume:
    """A small HU volume: body at 40 HU, a 'lung' box at -850 HU with a -500 HU patch."""
    hu = np.full(SHAPE, -1000, np.int16)
    hu[:, 8:88, 8:88] = 40
    hu[:, 20:76, 20:76] = -850
    hu[:, 30:50, 30:50] = -500
    g = Geometry(SHAPE, spacing=(2.0, 0.8, 0.8))
    return Volume(hu, g, source=str(tmp_path / "scan.nii.gz"), format="nifti")


@pytest.fixture
def window(make_window, qtbot, tmp_path):
    w = make_window(flows=("editing",), size=(1200, 800), data_dir="appdata")
    w.scan_io.show_volume(make_volume(tmp_path), None)
    w.session.set_cursor(6, 48, 48)
    w.session.set_layout("axial")
    qtbot.wait(50)
    yield w
    w.recovery._close_ok = True


def pixel(view, zyx) -> QPoint:
    scene = view.view_box.mapViewToScene(view.scene_point(zyx))
    return view.mapFromScene(scene)


def drag(view, points, qtbot, escape_before_release=False):
    """A real mouse drag through ``points`` (voxel (z, y, x)) on ``view``'s viewport."""
    vp = view.viewport()
    pts = [pixel(view, p) for p in points]
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pts[0])
    for p in pts[1:]:
        qtbot.wait(12)  # pyqtgraph drops moves closer than 10 ms (mouseRateLimit)
        QTest.mouseMove(vp, p)
    if escape_before_release:
        QTest.keyClick(view, Qt.Key.Key_Escape)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pts[-1])
    qtbot.wait(10)


def click(view, zyx, qtbot):
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pixel(view, zyx))
    qtbot.wait(10)


def color_at(view, zyx):
    c = QColor(view.grab().toImage().pixel(pixel(view, zyx)))
    return (c.red(), c.green(), c.blue())


def test_brush_stroke_paints_and_ctrl_z_restores(window, qtbot, tmp_path):
    w, ed = window, window.editing.editor
    view = w.views.axial
    w.editing.settings.set_radius_mm(2.0)
    w.editing.set_tool("brush")
    before = color_at(view, (6, 40, 30))
    drag(view, [(6, 40, 20), (6, 40, 45), (6, 40, 70)], qtbot)  # fast: 25 voxels between events
    painted = ed.labels[6, 40]
    assert painted[20:71].all() and (painted[20:71] == 1).all()      # no gap
    assert ed.labels[6, 40 - 3].sum() == 0 and ed.labels[5].sum() == 0  # 2 mm = 2.5 voxels, one slice
    assert np.array_equal(w.labels.array, ed.labels)
    assert w.editing.undo_action.text() == "&Undo Brush GGO"
    view.grab().save(str(tmp_path / "brush.png"))
    after = color_at(view, (6, 40, 30))
    assert after != before and after[0] > after[2]  # yellow over grey
    QTest.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not ed.labels.any() and not w.labels.array.any()
    assert color_at(view, (6, 40, 30)) == before
    assert w.editing.redo_action.text() == "&Redo Brush GGO"
    QTest.keyClick(view, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert (ed.labels[6, 40, 20:71] == 1).all()


def test_brush_outline_follows_the_mouse_with_the_brush_size(window, qtbot):
    w = window
    view = w.views.axial
    w.editing.settings.set_radius_mm(4.0)
    w.editing.set_tool("brush")
    QTest.mouseMove(view.viewport(), pixel(view, (6, 30, 30)))
    qtbot.wait(20)
    QTest.mouseMove(view.viewport(), pixel(view, (6, 50, 40)))
    item = w.editing.outline.items[view]
    qtbot.waitUntil(item.isVisible, timeout=2000)
    rect = item.rect()
    assert rect.width() == pytest.approx(8.0)  # mm: view coordinates are millimetres
    centre = view.scene_point((6, 50, 40))
    assert abs(rect.center().x() - centre.x()) < 1.0 and abs(rect.center().y() - centre.y()) < 1.0
    w.editing.set_tool(None)
    assert not item.isVisible()
    qtbot.wait(20)
    QTest.mouseMove(view.viewport(), pixel(view, (6, 30, 30)))
    qtbot.wait(20)
    assert not item.isVisible()


def test_undo_budget_comes_from_settings(window):
    from app.state.preferences import UNDO_BUDGET_KEY, UNDO_MIN_STEPS_KEY
    assert window.editing.editor.history.max_bytes == 512 * 2 ** 20
    window.settings.setValue(UNDO_BUDGET_KEY, 1.5)
    window.settings.setValue(UNDO_MIN_STEPS_KEY, 3)
    h = window.editing.new_history()
    assert h.max_bytes == int(1.5 * 2 ** 20) and h.min_steps == 3


def test_brush_on_the_coronal_view_paints_that_slice(window, qtbot):
    w, ed = window, window.editing.editor
    w.session.set_layout("coronal")
    qtbot.wait(30)
    view = w.views.coronal
    w.editing.settings.set_radius_mm(1.0)
    w.editing.set_tool("brush")
    y = w.session.cursor[1]
    drag(view, [(3, y, 20), (3, y, 70)], qtbot)
    painted = np.argwhere(ed.labels)
    assert painted.size and set(painted[:, 1]) == {y}          # only the coronal slice
    assert (ed.labels[3, y, 20:71] == 1).all() and not ed.labels[1, y].any()


def test_unwritable_journal_is_reported_once_and_editing_goes_on(window, qtbot, tmp_path, monkeypatch):
    w = window
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    monkeypatch.setenv("LUNGLENS_DATA_DIR", str(blocker))  # journals/<key>/ cannot be created
    w.scan_io.show_volume(w.session.volume)
    ed = w.editing.editor
    w.editing.set_tool("brush")
    drag(w.views.axial, [(6, 40, 20), (6, 40, 60)], qtbot)
    drag(w.views.axial, [(6, 50, 20), (6, 50, 60)], qtbot)
    assert ed.labels[6, 40, 30] == 1 and ed.labels[6, 50, 30] == 1 and len(ed.history) == 2
    assert len([e for e in w.errors if "journal" in e]) == 1


def test_escape_cancels_a_stroke_while_drawing(window, qtbot):
    w, ed = window, window.editing.editor
    w.editing.set_tool("brush")
    drag(w.views.axial, [(6, 30, 20), (6, 30, 60)], qtbot, escape_before_release=True)
    assert not ed.labels.any() and len(ed.history) == 0


def test_label_keys_eraser_sphere_and_size_keys(window, qtbot):
    w, ed = window, window.editing.editor
    view = w.views.axial
    view.setFocus()
    QTest.keyClick(view, Qt.Key.Key_2)
    assert w.editing.settings.label == 2
    QTest.keyClick(view, Qt.Key.Key_B, Qt.KeyboardModifier.ShiftModifier)
    assert w.views.tool.name == "brush3d"
    w.editing.settings.set_radius_mm(3.0)
    QTest.keyClick(view, Qt.Key.Key_BracketRight)
    assert w.editing.settings.radius_mm == pytest.approx(3.75)
    QTest.keyClick(view, Qt.Key.Key_BracketLeft)
    assert w.editing.settings.radius_mm == pytest.approx(3.0)
    click(view, (6, 48, 48), qtbot)
    assert ed.labels[4:9, 48, 48].tolist() == [0, 2, 2, 2, 0]  # 3 mm sphere: z spacing 2 mm
    assert w.editing.undo_action.text() == "&Undo 3D brush Consolidation"
    QTest.keyClick(view, Qt.Key.Key_E)
    w.editing.settings.set_radius_mm(1.0)
    click(view, (6, 48, 48), qtbot)
    assert ed.labels[6, 48, 48] == 0 and ed.labels[5, 48, 48] == 2
    assert w.editing.undo_action.text() == "&Undo Eraser"


def test_hidden_labels_are_not_changed_by_the_editing_tools(window, qtbot):
    """QA pass: with GGO hidden, one eraser stroke removed 1 169 GGO voxels the annotator could not see."""
    w, ed = window, window.editing.editor
    view = w.views.axial
    ggo = np.zeros(SHAPE, np.uint8)
    ggo[6, 40:56, 40:56] = 1
    ggo[6, 44:52, 60:70] = 3
    ed.apply_ai_result(ggo)
    w.labels.set_visible(1, False)  # GGO hidden, effusion shown
    w.editing.set_tool("eraser")
    w.editing.settings.set_radius_mm(12.0)
    click(view, (6, 48, 56), qtbot)  # over both
    assert (ed.labels[6] == 1).sum() == 16 * 16  # the hidden GGO untouched
    assert not (ed.labels == 3).any()  # the shown effusion erased
    w.editing.set_tool("brush")
    w.editing.settings.set_label(2)
    click(view, (6, 48, 48), qtbot)  # consolidation over the hidden GGO: not over it
    assert (ed.labels[6] == 1).sum() == 16 * 16 and not (ed.labels == 2)[6, 40:56, 40:56].any()
    assert (ed.labels == 2).any()  # painted around it
    w.labels.set_visible(1, True)
    click(view, (6, 48, 48), qtbot)  # shown again: the brush paints over it as before
    assert ed.labels[6, 48, 48] == 2


def test_threshold_brush_paints_only_in_range(window, qtbot):
    w, ed = window, window.editing.editor
    w.editing.set_tool("threshold")
    w.editing.settings.apply_preset("ggo")   # -800..-300 HU: only the -500 HU patch
    w.editing.settings.set_radius_mm(12.0)
    click(w.views.axial, (6, 50, 50), qtbot)
    painted = ed.labels[6] == 1
    assert painted.any()
    assert painted[30:50, 30:50].sum() == painted.sum()  # nothing outside the patch
    assert painted[40, 40] and not painted[52, 52]


def test_lasso_and_fill_tools(window, qtbot):
    w, ed = window, window.editing.editor
    view = w.views.axial
    w.editing.set_tool("lasso")
    w.editing.settings.set_label(3)
    corners = [(6, 20, 20), (6, 20, 60), (6, 60, 60), (6, 60, 20)]
    drag(view, corners, qtbot)
    m = ed.labels[6] == 3
    assert m[22:58, 22:58].all() and not m[:18].any() and not m[:, 62:].any()
    assert 38 * 38 <= m.sum() <= 42 * 42
    # 2D fill inside a ring, then 3D fill
    ring = np.zeros(SHAPE, np.uint8)
    ring[:, 70:80, 70:80] = 1
    ring[:, 72:78, 72:78] = 0
    ed.apply_labels(np.maximum(ed.labels, ring), "ring")
    w.editing.settings.set_label(2)
    w.editing.set_tool("fill")
    click(view, (6, 75, 75), qtbot)
    assert (ed.labels[6, 72:78, 72:78] == 2).all() and (ed.labels[5, 72:78, 72:78] == 0).all()
    assert ed.labels[6, 70, 70] == 1
    w.editing.set_tool("fill3d")
    w.editing.settings.set_label(3)
    with qtbot.waitSignal(w.editing.computed, timeout=10000):  # on a worker
        click(view, (6, 71, 71), qtbot)   # the ring (label 1) through all slices becomes 3
    assert (ed.labels[:, 70, 70] == 3).all() and (ed.labels[:, 79, 75] == 3).all()
    assert ed.labels[6, 75, 75] == 2
    # undo every step back to empty
    while w.editing.undo():
        pass
    assert not ed.labels.any() and not w.labels.array.any()


def test_commands_islands_largest_and_fill_between(window, qtbot):
    w, ed = window, window.editing.editor
    start = np.zeros(SHAPE, np.uint8)
    start[2, 30:40, 30:40] = 1
    start[8, 30:40, 30:40] = 1
    start[5, 80, 80] = 1          # a one-voxel island
    ed.apply_labels(start, "setup")
    w.editing.settings.set_label(1)
    w.editing.settings.set_island_ml(0.005)   # 5 voxels of 1.28 uL... larger than 1 voxel
    with qtbot.waitSignal(w.editing.computed, timeout=10000):  # computed on a worker, then applied
        w.editing.remove_islands()
    assert ed.labels[5, 80, 80] == 0 and "Removed 1 voxels in small islands" in w.statusBar().currentMessage()
    with qtbot.waitSignal(w.editing.computed, timeout=10000):  # planned on a worker
        w.editing.fill_between()
    assert w.editing.pending_fill.voxels == 5 * 100   # the cursor (z=6) is inside the 2..8 gap: a preview
    assert not ed.labels[3:8].any()
    w.views.axial.setFocus()
    qtbot.keyClick(w.views.axial, Qt.Key.Key_Return)  # Enter applies it
    assert (ed.labels[2:9, 30:40, 30:40] == 1).all()
    assert w.editing.undo_action.text() == "&Undo Fill between slices"
    stripe = ed.labels.copy()
    stripe[0, 90, :] = 1          # 96 voxels, smaller than the 700-voxel block
    ed.apply_labels(stripe, "stripe")
    with qtbot.waitSignal(w.editing.computed, timeout=10000):
        w.editing.keep_largest()
    assert f"Removed {SHAPE[2]} voxels in pieces outside" in w.statusBar().currentMessage()
    assert ed.labels[0, 90].sum() == 0 and (ed.labels[2:9, 30:40, 30:40] == 1).all()


def test_hand_edit_tracking_and_ai_result(window, qtbot):
    w, ed = window, window.editing.editor
    ai = np.zeros(SHAPE, np.uint8)
    ai[6, 30:40, 30:40] = 1
    ed.apply_ai_result(ai)
    assert np.array_equal(w.labels.array, ai)
    assert w.editing.undo_action.text() == "&Undo AI segmentation"
    w.editing.set_tool("eraser")
    w.editing.settings.set_radius_mm(4.0)
    click(w.views.axial, (6, 35, 35), qtbot)
    removed = int((ai != 0).sum() - (ed.labels != 0).sum())
    assert removed > 20 and ed.person_changes() == {1: (0, removed)}
    ml = removed * 0.8 * 0.8 * 2.0 / 1000
    assert ed.person_changes_ml()["ggo"]["removed_ml"] == pytest.approx(ml)
    assert w.editing.options.hand_edits.text() == f"Ground-glass opacity: +0.00 / -{ml:.2f} mL"
    assert np.array_equal(ed.person_mask(), ai != ed.labels)


def test_crash_restore_offered_and_identical(window, qtbot, tmp_path):
    w = window
    vol = w.session.volume
    # an earlier session of this scan died with two committed strokes and an open one
    j = Journal.for_scan(vol.source, vol.geometry)
    crashed = LabelEditor(np.zeros(SHAPE, np.uint8), vol.geometry, journal=j, source=vol.source)
    crashed.paint(ops.brush_segment(SHAPE, vol.spacing, (6, 30, 30), (6, 30, 60), 2.0), 1, name="Brush GGO")
    crashed.paint(ops.brush_segment(SHAPE, vol.spacing, (7, 50, 30), (7, 50, 60), 2.0), 2, name="Brush C")
    expected = crashed.labels.copy()
    s = crashed.stroke("never committed")
    s.paint(ops.brush_segment(SHAPE, vol.spacing, (8, 50, 30), (8, 50, 60), 2.0), 3)
    j.close()
    assert unsaved_journals(scan_key(vol.source, vol.geometry)) == [j.path]
    # an old session that was exported (nothing unsaved) is tidied away, a recent one is kept
    old_saved = Journal.for_scan(vol.source, vol.geometry)
    ed_saved = LabelEditor(np.zeros(SHAPE, np.uint8), vol.geometry, journal=old_saved)
    ed_saved.paint(ops.brush_segment(SHAPE, vol.spacing, (1, 5, 5), (1, 5, 5), 1.0), 1)
    ed_saved.mark_saved()
    old_saved.close()
    os.utime(old_saved.path, (time.time() - 7200, time.time() - 7200))
    w.scan_io.show_volume(vol)  # as if the scan was opened again
    assert not old_saved.path.exists() and j.path.exists()
    box = w.recovery.restore_prompt
    assert box is not None and box.isVisible() and not box.isModal()
    restore = next(b for b in box.buttons() if b.text() == "Restore")
    restore.click()
    ed = w.editing.editor
    assert np.array_equal(ed.labels, expected) and np.array_equal(w.labels.array, expected)
    assert ed.history.undo_name == "Brush C" and ed.dirty
    w.editing.undo()
    assert not (ed.labels == 2).any()


def test_fill_between_only_the_gap_around_the_shown_slice():
    from engine.editing.commands import fill_between_slices
    lab = np.zeros((12, 8, 8), np.uint8)
    for z in (1, 4, 10):
        lab[z, 2:5, 2:5] = 1
    ed = LabelEditor(lab, Geometry(lab.shape))
    assert fill_between_slices(ed, 1, at=7) == 5 * 9          # only 4..10
    assert ed.labels[5:10, 2:5, 2:5].all() and not ed.labels[2:4].any()
    ed.undo()
    assert fill_between_slices(ed, 1, at=4) == (2 + 5) * 9    # on a labelled slice: every gap
    assert ed.history.undo_name == "Fill between slices"


def test_edited_mask_name():
    from app.flows.export import edited_mask_name
    assert edited_mask_name("/a/labels.nii.gz").name == "labels_edited.nii.gz"
    assert edited_mask_name("/a/x.seg.nrrd").name == "x_edited.seg.nrrd"
    assert edited_mask_name("/a/pngs").name == "pngs_edited"


def test_startup_offers_to_open_and_restore_a_crashed_scan(qtbot, tmp_path, monkeypatch):
    import nibabel as nib
    monkeypatch.setenv("LUNGLENS_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("LUNGLENS_DATA_DIR", str(tmp_path / "appdata"))
    path = tmp_path / "crashed.nii.gz"
    nib.save(nib.Nifti1Image(np.full((40, 30, 6), -700, np.int16), np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    vol = io.load(path)
    crashed = LabelEditor(np.zeros(vol.shape, np.uint8), vol.geometry, source=vol.source,
                          journal=Journal.for_scan(vol.source, vol.geometry))
    crashed.paint(ops.brush_segment(vol.shape, vol.spacing, (3, 10, 5), (3, 10, 25), 2.0), 2, name="Brush C")
    expected = crashed.labels.copy()
    crashed.journal.close()
    from app.main_window import MainWindow

    w = MainWindow(interactive_errors=False, flows=("editing",))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.recovery.startup_prompt is not None, timeout=5000)
    box = w.recovery.startup_prompt
    assert "crashed.nii.gz" in box.text() and not box.isModal()
    next(b for b in box.buttons() if b.text() == "Open and restore").click()
    qtbot.waitUntil(lambda: w.editing.editor is not None and w.editing.editor.labels.any(), timeout=30000)
    assert np.array_equal(w.editing.editor.labels, expected) and np.array_equal(w.labels.array, expected)
    assert w.recovery.restore_prompt is None and w.recovery.has_unsaved_edits
    w.recovery._close_ok = True
    w.runner.wait(5000)


def test_unsaved_guard_on_quit_and_export(window, qtbot, tmp_path):
    w, ed = window, window.editing.editor
    w.editing.set_tool("brush")
    drag(w.views.axial, [(6, 40, 20), (6, 40, 60)], qtbot)
    assert w.recovery.has_unsaved_edits
    assert not w.close()          # asks first
    box = w.recovery.unsaved_prompt
    assert box is not None and w.isVisible()
    # asked again (a second close, or an open while the question is up): one question, for the newest action
    w.scan_io.open_phantom((16, 32, 32))
    assert not box.isVisible() and "open" in w.recovery.unsaved_prompt.text()
    assert not w.close()
    box = w.recovery.unsaved_prompt
    asked = [m for m in w.findChildren(QMessageBox) if m.isVisible()]
    assert asked == [box] and "quit" in box.text()
    cancel = next(b for b in box.buttons() if box.buttonRole(b) == box.ButtonRole.RejectRole)
    cancel.click()
    assert w.isVisible() and w.recovery.has_unsaved_edits
    # export through the worker; the journal is then marked saved
    out = tmp_path / "labels.nii.gz"
    with qtbot.waitSignal(w.export.exported, timeout=20000):
        w.export.export_to(out, edited_mask_path=tmp_path / "edited.nii.gz")
    assert not w.recovery.has_unsaved_edits
    vol = w.session.volume
    assert np.array_equal(io.load_labels(out, reference=vol.geometry), ed.labels)
    assert np.array_equal(io.load_labels(tmp_path / "edited.nii.gz", reference=vol.geometry), ed.labels != 0)
    assert unsaved_journals(scan_key(vol.source, vol.geometry)) == []
    # opening another scan (or other labels) with new unsaved edits asks too
    drag(w.views.axial, [(6, 60, 20), (6, 60, 60)], qtbot)
    w.scan_io.open_labels(out)
    box = w.recovery.unsaved_prompt
    assert box is not None and "open other labels" in box.text()
    next(b for b in box.buttons() if box.buttonRole(b) == box.ButtonRole.RejectRole).click()
    assert w.recovery.has_unsaved_edits
    w.scan_io.open_phantom((16, 32, 32))
    box = w.recovery.unsaved_prompt
    assert box is not None
    assert w.session.volume is vol
    discard = next(b for b in box.buttons() if b.text() == "Discard edits")
    discard.click()
    qtbot.waitUntil(lambda: bool(w.errors) or w.session.volume is not vol, timeout=30000)
    assert not w.errors and w.session.volume.shape == (16, 32, 32)
    assert w.editing.editor.shape == (16, 32, 32) and not w.recovery.has_unsaved_edits
    assert unsaved_journals(scan_key(vol.source, vol.geometry)) == []  # discarded once the phantom replaced them


def test_discard_then_a_failed_open_keeps_the_edits(window, qtbot, tmp_path):
    """"Discard edits" lets an open go ahead; when that open fails (or is cancelled) the edits are still on
    screen: they stay unsaved, with their journal, and the user is told (they used to be marked saved, their
    journal deleted, and the window then closed without asking)."""
    w, ed = window, window.editing.editor
    w.editing.set_tool("brush")
    drag(w.views.axial, [(6, 40, 20), (6, 40, 60)], qtbot)
    painted = ed.labels.copy()
    vol = w.session.volume
    assert painted.any() and w.recovery.has_unsaved_edits
    import nibabel as nib
    bad = tmp_path / "damaged.nii"  # another scan whose data is cut short: the open fails after the question
    nib.save(nib.Nifti1Image(np.full((64, 64, 20), -700, np.int16), np.diag([0.8, 0.8, 2.0, 1.0])), str(bad))
    bad.write_bytes(bad.read_bytes()[:4000])
    w.scan_io.open_path(bad)
    qtbot.waitUntil(lambda: w.recovery.unsaved_prompt is not None, timeout=30000)
    discard = next(b for b in w.recovery.unsaved_prompt.buttons() if b.text() == "Discard edits")
    with qtbot.waitSignal(w.scan_io.open_failed, timeout=30000):
        discard.click()
    assert w.session.volume is vol and w.editing.editor is ed and np.array_equal(ed.labels, painted)
    assert w.recovery.has_unsaved_edits and ed.journal.path.exists()
    assert read_journal(ed.journal.path).unsaved  # held by this window: offered once it ends
    assert any("were not discarded" in t for t in w.notices.warnings)
    assert not w.close() and w.recovery.unsaved_prompt is not None  # closing asks again


def test_a_restore_sets_aside_edits_made_since_the_scan_opened(window, qtbot):
    """Restoring a crashed session's edits replaces the labels; strokes made since the scan opened (the
    prompt does not block the window) are kept in their journal and said, not deleted."""
    w = window
    vol = w.session.volume
    j = Journal.for_scan(vol.source, vol.geometry)
    crashed = LabelEditor(np.zeros(SHAPE, np.uint8), vol.geometry, journal=j, source=vol.source)
    crashed.paint(ops.brush_segment(SHAPE, vol.spacing, (6, 30, 30), (6, 30, 60), 2.0), 1, name="Brush GGO")
    expected = crashed.labels.copy()
    j.close()
    w.scan_io.show_volume(vol)  # opened again: the restore is offered
    box = w.recovery.restore_prompt
    w.editing.set_tool("brush")
    drag(w.views.axial, [(6, 70, 20), (6, 70, 60)], qtbot)  # painted while the question waits
    newer = w.editing.editor
    stroke = newer.labels.copy()
    assert stroke.any() and newer.dirty
    next(b for b in box.buttons() if b.text() == "Restore").click()
    assert np.array_equal(w.editing.editor.labels, expected)
    assert any("set aside by the restore, not lost" in t for t in w.notices.warnings)
    assert newer.journal.path.exists() and newer.journal.path in unsaved_journals(scan_key(vol.source, vol.geometry))
    assert np.array_equal(LabelEditor.from_journal(newer.journal.path).labels, stroke)


def test_edits_made_while_another_scan_opens_are_said(window, qtbot, tmp_path):
    """The unsaved-edits guard asks when an open starts; strokes made while the scan loads are replaced when
    it arrives: their journal is kept and a notice says where they are."""
    w = window
    w.editing.set_tool("brush")
    drag(w.views.axial, [(6, 40, 20), (6, 40, 60)], qtbot)
    old = w.editing.editor
    w.scan_io.show_volume(make_volume(tmp_path / "b"))  # the loaded scan arrives
    assert w.editing.editor is not old and old.journal.path.exists()
    assert any("made while this scan was opening" in t for t in w.notices.warnings)


def test_options_panel_mirrors_settings(qtbot):
    from app.widgets.tool_options import OptionsPanel
    from app.state.tool_settings import ToolSettings

    s = ToolSettings()
    panel = OptionsPanel(s)
    qtbot.addWidget(panel)
    s.set_label(3)
    s.set_radius_mm(7.5)
    s.apply_preset("consolidation")
    assert panel.label_combo.currentData() == 3 and panel.radius.value() == 7.5
    assert (panel.lo.value(), panel.hi.value()) == (-300, 100)
    assert panel.preset_combo.currentData() == "consolidation"
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("label"))
    panel.over_combo.setCurrentIndex(panel.over_combo.findData(2))
    assert (s.mode, s.over_label) == ("label", 2) and panel.over_combo.isEnabled()
    panel.radius.setValue(100.0)        # clamped by the spin box range
    assert s.radius_mm == 60.0
    panel.set_hand_edits({"ggo": {"added_ml": 1.25, "removed_ml": 0.5},
                          "effusion": {"added_ml": 0.0, "removed_ml": 0.0}})
    assert panel.hand_edits.text() == "Ground-glass opacity: +1.25 / -0.50 mL"
    with pytest.raises(ValueError):
        s.set_label(9)


def test_ctrl_z_during_a_stroke_takes_back_that_stroke_only(window, qtbot):
    """QA pass: Ctrl+Z while the mouse still held a brush stroke cancelled it and also undid the stroke before it
    (171 voxels, redo-able only until the next edit)."""
    w, ed = window, window.editing.editor
    w.editing.set_tool("brush")
    drag(w.views.axial, [(6, 40, 20), (6, 40, 60)], qtbot)
    first = ed.labels.copy()
    assert first.any() and len(ed.history) == 1
    vp = w.views.axial.viewport()
    a, b = pixel(w.views.axial, (6, 60, 20)), pixel(w.views.axial, (6, 60, 60))
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    qtbot.wait(12)
    QTest.mouseMove(vp, b)
    assert ed.stroke_active and not np.array_equal(ed.labels, first)
    w.views.axial.setFocus()
    QTest.keyClick(w.views.axial, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)
    assert np.array_equal(ed.labels, first) and len(ed.history) == 1  # the first stroke stays


def test_a_stroke_held_while_another_scan_opens_is_dropped_and_said(window, qtbot, tmp_path):
    """QA pass: a brush stroke held while another scan finished opening went on painting the previous scan's
    (now hidden) labels, at the new scan's coordinates, without a word. It ends at the switch, dropped and said."""
    w, old = window, window.editing.editor
    w.editing.set_tool("brush")
    vp = w.views.axial.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pixel(w.views.axial, (6, 40, 20)))
    qtbot.wait(12)
    QTest.mouseMove(vp, pixel(w.views.axial, (6, 40, 40)))
    assert old.stroke_active and old.labels.any()
    w.scan_io.show_volume(make_volume(tmp_path / "other"), None)
    new = w.editing.editor
    assert new is not old and not old.stroke_active and not old.labels.any()  # the old scan keeps nothing of it
    QTest.mouseMove(vp, pixel(w.views.axial, (6, 60, 60)))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pixel(w.views.axial, (6, 60, 60)))
    assert not old.labels.any() and not new.labels.any()
    assert any("The stroke being drawn was dropped" in t for t in w.notices.warnings)


def _crashed_session(vol, how=None):
    """Edits of ``vol`` journaled by a session that then died (its lock freed); returns the labels it had."""
    from app.state.label_layer import open_with

    crashed = LabelEditor(np.zeros(vol.shape, np.uint8), vol.geometry, source=vol.source,
                          journal=Journal.for_scan(vol.source, vol.geometry, open_with(vol)))
    crashed.paint(ops.brush_segment(vol.shape, vol.spacing, (1, 10, 5), (1, 10, 25), 2.0), 2, name="Brush C")
    crashed.journal.close()
    return crashed.labels.copy(), crashed.journal.path


def _startup_window(qtbot, tmp_path, monkeypatch, click="Open and restore", opens=True):
    from app.main_window import MainWindow

    w = MainWindow(interactive_errors=False, flows=("editing",))
    qtbot.addWidget(w)
    w.show()
    if click:
        qtbot.waitUntil(lambda: w.recovery.startup_prompt is not None, timeout=5000)
        next(b for b in w.recovery.startup_prompt.buttons() if b.text() == click).click()
        qtbot.waitUntil(lambda: (w.session.volume is not None or not opens) and not w.runner.active, timeout=30000)
        qtbot.wait(50)
    return w


@pytest.fixture
def app_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("LUNGLENS_SETTINGS", str(tmp_path / "settings.ini"))
    monkeypatch.setenv("LUNGLENS_DATA_DIR", str(tmp_path / "appdata"))
    return tmp_path


def test_open_and_restore_reopens_a_feet_first_stack_feet_first(qtbot, app_dirs, monkeypatch):
    """Review: a stack open feet first when the window died was reopened head first at "Open and restore": no
    labels, no word, and the same offer at every start. The journal now records how the scan was opened."""
    from PIL import Image

    folder = app_dirs / "stack"
    folder.mkdir()
    for k in range(6):
        Image.fromarray(np.full((40, 40), 20 + 30 * k, np.uint8)).save(folder / f"{k:03d}.png")
    vol = io.load(folder, first_slice="inferior")
    expected, _ = _crashed_session(vol)
    w = _startup_window(qtbot, app_dirs, monkeypatch)
    assert w.session.volume.meta["stack_first_slice"] == "inferior"
    qtbot.waitUntil(lambda: w.labels.editor is not None and w.labels.editor.labels.any(), timeout=10000)
    assert np.array_equal(w.labels.editor.labels, expected)
    w.recovery._close_ok = True


def test_a_scan_replaced_by_another_grid_is_said_and_its_edits_kept_aside(qtbot, app_dirs, monkeypatch):
    """QA pass: the scan file was replaced by one of 44 slices (40 when edited): "Open and restore" restored
    nothing, said nothing, and offered the same at every start."""
    import nibabel as nib

    path = app_dirs / "scan_d.nii.gz"
    nib.save(nib.Nifti1Image(np.full((40, 30, 6), -700, np.int16), np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    _, journal = _crashed_session(io.load(path))
    nib.save(nib.Nifti1Image(np.full((40, 30, 8), -700, np.int16), np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    w = _startup_window(qtbot, app_dirs, monkeypatch)
    assert not w.labels.editor.labels.any()
    said = [e for e in w.notices.errors if "could not be restored" in e]
    assert len(said) == 1 and "(6, 30, 40)" in said[0] and "(8, 30, 40)" in said[0]
    kept = journal.with_name(journal.name + ".unplaced")
    assert kept.is_file() and not journal.exists() and str(kept) in said[0]
    w.recovery._close_ok = True
    w.close()
    again = _startup_window(qtbot, app_dirs, monkeypatch, click=None)
    qtbot.wait(300)
    assert again.recovery.startup_prompt is None  # not offered again
    again.recovery._close_ok = True


def test_a_restore_onto_a_changed_scan_file_warns(qtbot, app_dirs, monkeypatch):
    """QA pass: the scan file was rewritten with other values on the same grid: its edits were restored onto it
    with "Unsaved edits restored." and no warning."""
    import nibabel as nib

    path = app_dirs / "scan_e.nii.gz"
    nib.save(nib.Nifti1Image(np.full((40, 30, 6), -700, np.int16), np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    expected, _ = _crashed_session(io.load(path))
    nib.save(nib.Nifti1Image(np.full((40, 30, 6), 40, np.int16), np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    w = _startup_window(qtbot, app_dirs, monkeypatch)
    qtbot.waitUntil(lambda: w.labels.editor.labels.any(), timeout=10000)
    assert np.array_equal(w.labels.editor.labels, expected)
    assert any("scan_e.nii.gz changed on disk after these edits were made" in t for t in w.notices.warnings)
    w.recovery._close_ok = True


def test_the_edits_of_a_moved_scan_are_offered_when_it_opens_from_its_new_place(qtbot, app_dirs, monkeypatch):
    """QA pass: a scan renamed (or moved) after a crash never got its edits back: the journal is keyed by the
    path, nothing was offered at start-up (the file was gone) nor when it opened from its new place."""
    import nibabel as nib

    path = app_dirs / "scan_c.nii.gz"
    nib.save(nib.Nifti1Image(np.full((40, 30, 6), -700, np.int16), np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    expected, _ = _crashed_session(io.load(path))
    moved = path.rename(app_dirs / "scan_c_moved.nii.gz")
    w = _startup_window(qtbot, app_dirs, monkeypatch, click=None)
    w.scan_io.open_path(str(moved))
    qtbot.waitUntil(lambda: w.recovery.restore_prompt is not None, timeout=30000)
    box = w.recovery.restore_prompt
    assert f"made on {path}, which is no longer there" in box.text()
    next(b for b in box.buttons() if b.text() == "Restore").click()
    assert np.array_equal(w.labels.editor.labels, expected)
    w.recovery._close_ok = True


def test_labels_saved_under_a_name_without_suffix_say_they_are_png_slices(window, qtbot, tmp_path):
    """QA pass: 'noext' became a folder of PNG slices with "Exported labels to …/noext" and no word of the format."""
    w = window
    w.editing.set_tool("brush")
    drag(w.views.axial, [(6, 40, 20), (6, 40, 60)], qtbot)
    with qtbot.waitSignal(w.export.exported, timeout=20000):
        w.export.export_to(tmp_path / "noext")
    assert (tmp_path / "noext").is_dir() and "(PNG slices, a folder" in w.statusBar().currentMessage()


def test_a_failed_open_and_restore_leaves_the_edits_for_next_time(qtbot, app_dirs, monkeypatch):
    """Review: "Open and restore" of a scan that failed to open left the restore pending; the next scan opened
    (another one) was taken as the wrong grid, and the first scan's edits were set aside for good."""
    import nibabel as nib

    path = app_dirs / "scan_a.nii.gz"
    nib.save(nib.Nifti1Image(np.full((40, 30, 6), -700, np.int16), np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    _, journal = _crashed_session(io.load(path))
    good = path.read_bytes()
    path.write_bytes(good[:len(good) // 2])  # damaged now: the open fails
    w = _startup_window(qtbot, app_dirs, monkeypatch, opens=False)
    assert w.session.volume is None and w.notices.errors  # the open failed, and said so
    other = app_dirs / "scan_b.nii.gz"
    nib.save(nib.Nifti1Image(np.full((40, 30, 8), -700, np.int16), np.diag([0.8, 0.8, 2.0, 1.0])), str(other))
    w.scan_io.open_path(str(other))
    qtbot.waitUntil(lambda: w.session.volume is not None and not w.runner.active, timeout=30000)
    qtbot.wait(50)
    assert journal.is_file() and not any("could not be restored" in e for e in w.notices.errors)
    path.write_bytes(good)
    w.scan_io.open_path(str(path))
    qtbot.waitUntil(lambda: w.recovery.restore_prompt is not None, timeout=30000)  # offered when it opens
    w.recovery._close_ok = True


def test_edits_of_several_gone_scans_with_this_grid_are_not_put_on_it(qtbot, app_dirs, monkeypatch):
    """Review: two scans with unsaved edits gone from their place, one grid: opening a third scan offered one
    of them ('Discard removes all 2' deleted both). Which scan they belong to cannot be told: none is offered."""
    import nibabel as nib

    journals = []
    for name in ("patient_a.nii.gz", "patient_b.nii.gz", "patient_c.nii.gz"):
        nib.save(nib.Nifti1Image(np.full((40, 30, 6), -700, np.int16), np.eye(4)), str(app_dirs / name))
    for name in ("patient_a.nii.gz", "patient_b.nii.gz"):
        journals.append(_crashed_session(io.load(app_dirs / name))[1])
        (app_dirs / name).unlink()
    w = _startup_window(qtbot, app_dirs, monkeypatch, click=None)
    w.scan_io.open_path(str(app_dirs / "patient_c.nii.gz"))
    qtbot.waitUntil(lambda: w.session.volume is not None and not w.runner.active, timeout=30000)
    qtbot.wait(50)
    assert w.recovery.restore_prompt is None and all(j.is_file() for j in journals)
    assert any("2 sets of unsaved edits" in t for t in w.notices.warnings)
    w.recovery._close_ok = True


def test_a_save_that_ends_after_other_labels_opened_does_not_become_the_ctrl_s_target(window, qtbot, tmp_path):
    """Review: Ctrl+S's export still running when a colleague's labels were opened stored its file as the
    target again when it ended: the next Ctrl+S wrote the colleague's labels over it without a dialog."""
    w = window
    w.editing.set_tool("brush")
    drag(w.views.axial, [(6, 40, 20), (6, 40, 60)], qtbot)
    with qtbot.waitSignal(w.export.exported, timeout=20000):
        w.export.export_to(tmp_path / "mine.nii.gz")
        w.labels.set_array(np.zeros(w.labels.editor.shape, np.uint8), "colleague.nii.gz")  # before the result
        w.export.forget_target()
    assert w.export.save_targets == {}


def test_a_command_computed_on_a_worker_changes_nothing_when_the_labels_changed_meanwhile(window, qtbot):
    """QA pass (GUI stalls): a 3D fill of a lung took 1.1-1.5 s and 'remove small islands' 0.6-0.9 s on the GUI
    thread of a 300-slice scan. They are computed on a worker now and applied only to the labels they were
    computed from: an edit made meanwhile wins, and the user is told."""
    w, ed = window, window.editing.editor
    start = np.zeros(SHAPE, np.uint8)
    start[5, 80, 80] = 1          # a one-voxel island
    start[2, 30:40, 30:40] = 1
    ed.apply_labels(start, "setup")
    w.editing.settings.set_label(1)
    w.editing.settings.set_island_ml(0.005)
    w.editing.remove_islands()
    assert w.editing.computing == "Removing small islands"
    w.editing.keep_largest()  # one at a time
    assert "is still being computed" in w.statusBar().currentMessage()
    ed.paint(ops.Region((slice(7, 8), slice(0, 2), slice(0, 2)), np.ones((1, 2, 2), bool)), 2)  # meanwhile
    qtbot.waitUntil(lambda: w.editing.computing is None, timeout=10000)
    assert ed.labels[5, 80, 80] == 1 and ed.labels[7, 0, 0] == 2  # nothing was changed by the stale result
    assert any("the labels changed while it was computed" in t for t in w.notices.warnings)
    with qtbot.waitSignal(w.editing.computed, timeout=10000):
        w.editing.remove_islands()
    assert ed.labels[5, 80, 80] == 0 and w.editing.undo_action.text().startswith("&Undo Remove islands")


def test_choosing_an_editing_tool_brings_its_options_forward(make_window, qtbot):
    """QA pass: the Editing options (size, paint-over mode, HU range) stayed behind the AI findings tab."""
    w = make_window(flows=None, size=(1200, 800))
    assert w.tabifiedDockWidgets(w.editing.dock)  # the right-hand panels share one tabbed area
    w.tabifiedDockWidgets(w.editing.dock)[0].raise_()
    qtbot.wait(20)
    assert w.editing.dock.visibleRegion().isEmpty()  # behind another tab
    w.views.axial.setFocus()
    QTest.keyClick(w.views.axial, Qt.Key.Key_B)
    qtbot.wait(20)
    assert w.views.tool.name == "brush" and not w.editing.dock.visibleRegion().isEmpty()


def test_h_hides_every_label_and_shows_again_those_shown_before(window, qtbot):
    w, view = window, window.views.axial
    w.labels.set_visible(3, False)  # effusion hidden by hand
    view.setFocus()
    QTest.keyClick(view, Qt.Key.Key_H)
    assert not w.labels.any_visible and not w.view_actions.labels_action.isChecked()
    QTest.keyClick(view, Qt.Key.Key_H)
    assert w.labels.is_visible(1) and w.labels.is_visible(2) and not w.labels.is_visible(3)
    assert w.view_actions.labels_action.isChecked()
    assert "H" in [k.toString() for k in w.view_actions.labels_action.shortcuts()]
    # after H, ticking one label shows that one only (its mirror must not show the others again: review)
    QTest.keyClick(view, Qt.Key.Key_H)
    w.labels.set_visible(1, True)
    assert w.labels.is_visible(1) and not w.labels.is_visible(2) and not w.labels.is_visible(3)
    # unticking down to none by hand, H shows again the last one shown
    w.labels.set_visible(1, False)
    QTest.keyClick(view, Qt.Key.Key_H)
    assert w.labels.is_visible(1) and not w.labels.is_visible(2)


def test_fill_clicked_on_a_hidden_label_changes_nothing_and_says_why(window, qtbot):
    w, ed = window, window.editing.editor
    ggo = np.zeros(SHAPE, np.uint8)
    ggo[6, 40:56, 40:56] = 1
    ed.apply_ai_result(ggo)
    w.labels.set_visible(1, False)
    w.editing.set_tool("fill")
    w.editing.settings.set_label(2)
    before = ed.labels.copy()
    click(w.views.axial, (6, 48, 48), qtbot)
    assert np.array_equal(ed.labels, before)
    assert any("holds Ground-glass opacity, which is hidden" in e for e in w.notices.errors)
