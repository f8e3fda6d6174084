"""Undo/redo of LabelEditor: exact arrays, strokes as one step, rollback, byte budget, hand-edit tracking."""

from __future__ import annotations

import numpy as np
import pytest

from engine.editing import History, LabelEditor, ops
from engine.editing.history import Delta
from engine.types import Geometry


def make_editor(shape=(4, 16, 16), **kw) -> LabelEditor:
    return LabelEditor(np.zeros(shape, np.uint8), Geometry(shape, spacing=(2.0, 1.0, 1.0)), **kw)


def disk(ed: LabelEditor, z, y, x, r=2.0):
    return ops.brush_segment(ed.shape, ed.spacing, (z, y, x), (z, y, x), r)


def test_delta_roundtrip_and_compact():
    before = np.zeros((3, 50, 50), np.uint8)
    after = before.copy()
    after[1, 10:13, 20:22] = 2
    d = Delta.between(before, after)
    assert d.box == (1, 2, 10, 13, 20, 22) and d.count == 6
    assert d.nbytes < 100
    x = before.copy()
    d.apply(x)
    np.testing.assert_array_equal(x, after)
    d.apply(x, forward=False)
    np.testing.assert_array_equal(x, before)
    assert Delta.between(before, before) is None


def test_undo_redo_sequence_restores_exact_arrays():
    ed = make_editor()
    states = [ed.labels.copy()]
    ed.paint(disk(ed, 1, 5, 5), 1, name="Brush GGO")
    states.append(ed.labels.copy())
    ed.paint(disk(ed, 1, 6, 6, 3.0), 2, name="Brush Consolidation")
    states.append(ed.labels.copy())
    ed.paint(disk(ed, 1, 6, 6, 1.0), 0, name="Eraser")
    states.append(ed.labels.copy())
    assert len(np.unique(states[2])) == 3
    assert ed.history.undo_name == "Eraser"
    for k in (2, 1, 0):
        ed.undo()
        np.testing.assert_array_equal(ed.labels, states[k])
    assert ed.undo() is None
    assert ed.redo() == "Brush GGO"
    np.testing.assert_array_equal(ed.labels, states[1])
    assert ed.redo() == "Brush Consolidation"
    np.testing.assert_array_equal(ed.labels, states[2])
    # a new step clears the redo stack
    ed.paint(disk(ed, 2, 10, 10), 3, name="Brush Effusion")
    assert not ed.history.can_redo and ed.redo() is None
    ed.undo()
    np.testing.assert_array_equal(ed.labels, states[2])


def test_stroke_is_one_step_and_notifies_boxes():
    ed = make_editor()
    boxes = []
    ed.changed.append(boxes.append)
    with ed.stroke("Brush GGO") as s:
        for x in range(2, 14, 3):
            s.paint(ops.brush_segment(ed.shape, ed.spacing, (1, 8, x), (1, 8, x + 3), 1.0), 1)
    assert len(ed.history) == 1 and ed.history.undo_name == "Brush GGO"
    assert len(boxes) == 4
    painted = ed.labels.copy()
    assert painted[1, 8, 2:16].all() and painted.sum() > 14
    ed.undo()
    assert not ed.labels.any()
    assert boxes[-1][0] == slice(1, 2)
    ed.redo()
    np.testing.assert_array_equal(ed.labels, painted)


def test_overlapping_stroke_undo_restores_original_values():
    ed = make_editor()
    ed.labels[1, 4:12, 4:12] = 2
    ed2 = LabelEditor(ed.labels.copy(), ed.geometry)
    original = ed2.labels.copy()
    with ed2.stroke("Brush GGO") as s:
        s.paint(disk(ed2, 1, 6, 6, 3), 1)
        s.paint(disk(ed2, 1, 7, 7, 3), 3)   # repaints voxels this stroke already changed
        s.paint(disk(ed2, 1, 7, 7, 1), 0)
    ed2.undo()
    np.testing.assert_array_equal(ed2.labels, original)


def test_exception_and_cancel_roll_back():
    ed = make_editor()
    ed.paint(disk(ed, 1, 5, 5), 1, name="Brush GGO")
    before = ed.labels.copy()
    with pytest.raises(ZeroDivisionError):
        with ed.stroke("Brush Consolidation") as s:
            s.paint(disk(ed, 1, 5, 8, 3), 2)
            assert (ed.labels == 2).any()  # painted live
            1 / 0
    np.testing.assert_array_equal(ed.labels, before)
    assert len(ed.history) == 1 and not ed.stroke_active
    s = ed.stroke("Brush Effusion")
    s.paint(disk(ed, 2, 5, 8, 3), 3)
    assert ed.cancel_stroke()
    np.testing.assert_array_equal(ed.labels, before)
    assert len(ed.history) == 1
    # an empty stroke makes no step
    with ed.stroke("nothing") as s:
        s.paint(disk(ed, 1, 5, 5), 1)  # already 1 everywhere there
    assert len(ed.history) == 1


def test_paint_modes_and_threshold_through_editor():
    shape = (1, 1, 6)
    hu = np.array([[[-900, -600, -400, -100, 20, 500]]], np.int16)
    ed = LabelEditor(np.array([[[0, 0, 2, 2, 0, 0]]], np.uint8), Geometry(shape), intensities=hu)
    row = ops.Region((slice(0, 1), slice(0, 1), slice(0, 6)), np.ones(shape, bool))
    ed.paint(row, 1, mode="background", hu_range=(-800, -300))
    assert ed.labels.ravel().tolist() == [0, 1, 2, 2, 0, 0]
    ed.paint(row, 3, mode="label", over_label=2)
    assert ed.labels.ravel().tolist() == [0, 1, 3, 3, 0, 0]
    ed.undo()
    ed.undo()
    assert ed.labels.ravel().tolist() == [0, 0, 2, 2, 0, 0]


def test_byte_budget_evicts_oldest_but_keeps_min_steps():
    ed = make_editor(shape=(8, 64, 64), history=History(max_bytes=2000, min_steps=3))
    first = ed.labels.copy()
    for z in range(8):
        with ed.stroke(f"step {z}") as s:
            s.paint(ops.Region((slice(z, z + 1), slice(0, 64), slice(0, 64)), np.ones((1, 64, 64), bool)), 1)
    # each step stores 4096 old + 4096 new values: over budget, so only min_steps remain
    assert len(ed.history) == 3
    assert ed.history.evicted == 5
    assert [s.name for s in ed.history.undo_steps] == ["step 5", "step 6", "step 7"]
    while ed.undo():
        pass
    assert ed.labels[:5].all() and not ed.labels[5:].any()
    assert not np.array_equal(ed.labels, first)
    # a generous budget keeps everything, and memory is reported in bytes
    h = History(max_bytes=10 ** 9, min_steps=1)
    ed2 = make_editor(shape=(8, 64, 64), history=h)
    for z in range(8):
        ed2.paint(ops.Region((slice(z, z + 1), slice(0, 64), slice(0, 64)), np.ones((1, 64, 64), bool)), 1)
    assert len(h) == 8 and 8 * 8192 < h.nbytes < 8 * 9000
    h.set_budget(20000)
    assert len(h) == 2 and h.nbytes <= 20000


def test_is_done_follows_undo_redo_eviction_and_a_lost_redo():
    """Whether a step is in effect (the app credits an AI accept's models with it): done, undone, redone,
    evicted from the undo stack (still in effect, no longer undoable), dropped from the redo stack (not)."""
    ed = make_editor(shape=(8, 64, 64), history=History(max_bytes=2000, min_steps=2))
    whole = ops.Region((slice(0, 1), slice(0, 64), slice(0, 64)), np.ones((1, 64, 64), bool))
    ai = ed.apply_ai_result(np.ones(ed.shape, np.uint8))
    assert ai is not None and ed.history.is_done(ai.id)
    ed.undo()
    assert not ed.history.is_done(ai.id)
    ed.redo()
    assert ed.history.is_done(ai.id)
    for z in range(3):  # over budget: the AI step is evicted, still in effect
        ed.paint(ops.Region((slice(z, z + 1), slice(0, 64), slice(0, 64)), np.ones((1, 64, 64), bool)), 2)
    assert ai.id not in [s.id for s in ed.history.undo_steps] and ed.history.evicted >= 1
    assert ed.history.is_done(ai.id)
    other = ed.apply_ai_result(np.zeros(ed.shape, np.uint8))
    ed.undo()
    ed.paint(whole, 3)  # the undone AI step is lost from the redo stack: never in effect again
    assert other is not None and not ed.history.is_done(other.id) and ed.history.is_done(ai.id)
    ed.history.clear()
    assert not ed.history.is_done(ai.id)


def test_ai_result_is_one_step_and_resets_person_tracking():
    shape = (2, 10, 10)
    ed = LabelEditor(np.zeros(shape, np.uint8), Geometry(shape, spacing=(10.0, 10.0, 10.0)))  # 1 mL voxels
    ed.paint(disk(ed, 0, 1, 1, 0.0), 1, name="Brush GGO")
    assert ed.person_changes() == {1: (1, 0)}
    ai = np.zeros(shape, np.uint8)
    ai[1, 2:5, 2:5] = 1   # 9 voxels GGO
    ai[0, 8, 8] = 2
    ed.apply_ai_result(ai)
    assert ed.history.undo_name == "AI segmentation" and len(ed.history) == 2
    np.testing.assert_array_equal(ed.labels, ai)
    assert ed.person_changes() == {} and not ed.person_mask().any()
    # hand edits after the AI result
    ed.paint(ops.Region((slice(1, 2), slice(2, 3), slice(2, 5)), np.ones((1, 1, 3), bool)), 0, name="Eraser")
    ed.paint(ops.Region((slice(0, 1), slice(0, 1), slice(5, 7)), np.ones((1, 1, 2), bool)), 2, name="Brush")
    assert ed.person_changes() == {1: (0, 3), 2: (2, 0)}
    ml = ed.person_changes_ml()
    assert ml["ggo"] == {"added_ml": 0.0, "removed_ml": 3.0}
    assert ml["consolidation"]["added_ml"] == 2.0
    assert ed.person_mask().sum() == 5
    ed.undo()
    assert ed.person_changes() == {1: (0, 3)}
    ed.undo()
    ed.undo()  # undo the AI step: back to the hand-painted voxel, reference back to empty
    assert ed.labels.sum() == 1 and ed.person_changes() == {1: (1, 0)}
    ed.redo()
    np.testing.assert_array_equal(ed.labels, ai)
    assert ed.person_changes() == {}


def test_reference_handed_to_a_worker_does_not_change_when_the_editor_moves_on():
    """reference_copy hands out the reference without copying it (Ctrl+S of a large scan); the editor copies it
    before it changes it, so what a worker compares with stays what it was when the export began."""
    shape = (2, 10, 10)
    ed = make_editor(shape)
    assert ed.reference_copy() is None  # no AI result yet: an all-zero reference
    first = np.zeros(shape, np.uint8)
    first[0, 2:5, 2:5] = 1
    ed.apply_ai_result(first)
    lent = ed.reference_copy()
    np.testing.assert_array_equal(lent, first)
    with pytest.raises(ValueError):
        lent[0, 0, 0] = 2  # read-only
    second = first.copy()
    second[1, 6:9, 6:9] = 2
    ed.apply_ai_result(second)  # the reference changes...
    np.testing.assert_array_equal(lent, first)  # ...not the array handed out
    np.testing.assert_array_equal(ed.reference_copy(), second)
    ed.paint(disk(ed, 1, 1, 1, 0.0), 1, name="Brush")
    assert ed.person_changes() == {1: (1, 0)} and ed.person_mask().sum() == 1
    again = ed.reference_copy()
    ed.undo()
    ed.undo()  # undoing the second AI step restores the first reference, in the editor only
    np.testing.assert_array_equal(again, second)
    np.testing.assert_array_equal(ed.reference_copy(), first)
    np.testing.assert_array_equal(ed.labels, first)
    assert ed.person_changes() == {} and not ed.person_mask().any()


def test_loaded_labels_are_not_person_edits_and_nested_stroke_refused():
    lab = np.zeros((1, 4, 4), np.uint8)
    lab[0, 0, 0] = 3
    ed = LabelEditor(lab, Geometry(lab.shape))
    assert ed.person_changes() == {} and not ed.person_mask().any()
    s = ed.stroke("a")
    with pytest.raises(RuntimeError):
        ed.stroke("b")
    s.commit()
    with pytest.raises(ValueError):
        LabelEditor(np.zeros((2, 2), np.uint8))


def test_apply_box_and_load_kind():
    shape = (2, 6, 6)
    ed = LabelEditor(np.zeros(shape, np.uint8), Geometry(shape))
    block = np.full((1, 2, 2), 2, np.uint8)
    box = (slice(1, 2), slice(1, 3), slice(1, 3))
    ed.apply_box(box, block, "Partial AI", kind="ai")
    assert ed.labels[box].tolist() == block.tolist() and ed.person_changes() == {}
    ed.apply_box(box, np.zeros_like(block), "Clear")
    assert ed.person_changes() == {2: (0, 4)}
    ed.undo()
    ed.undo()
    assert not ed.labels.any() and ed.person_changes() == {}
    loaded = np.ones(shape, np.uint8)
    ed.apply_labels(loaded, "Open labels", kind="load")
    assert ed.person_changes() == {} and ed.history.undo_name == "Open labels"


def test_undo_folders_of_ended_sessions_are_removed_and_live_ones_kept(tmp_path, monkeypatch):
    """A session that ended without cleaning up (the app's quick exit skips the finalizers, a
    crash) leaves its undo steps on disk; the next start removes them, never a running one's."""
    import os
    import subprocess
    import sys
    import time

    from engine.editing import history as H
    monkeypatch.setattr(H, "spill_root", lambda: str(tmp_path))
    h = History()
    own = h._spill_folder()
    assert own.parent == tmp_path and own.name.startswith(f"{H.SPILL_PREFIX}{os.getpid()}-")
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f"{H.SPILL_PREFIX}{int(ended.stdout)}-abc"
    old_style, new_style = tmp_path / f"{H.SPILL_PREFIX}zz9x", tmp_path / f"{H.SPILL_PREFIX}qq1y"
    other = tmp_path / "someone-else"
    for d in (dead, old_style, new_style, other):
        d.mkdir()
        (d / "step.npz").write_bytes(b"x")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(old_style, (day_ago, day_ago))
    removed = H.clean_stale_spills()
    assert sorted(removed) == sorted([dead, old_style])
    assert own.is_dir() and new_style.is_dir() and other.is_dir() and not dead.exists()


def test_undo_during_a_stroke_takes_back_that_stroke_only():
    """QA pass: Ctrl+Z while a brush stroke was held cancelled the stroke and also undid the stroke before it."""
    ed = make_editor(shape=(4, 32, 32))
    ed.paint(ops.Region((slice(0, 1), slice(0, 32), slice(0, 32)), np.ones((1, 32, 32), bool)), 1)
    done = ed.labels.copy()
    stroke = ed.stroke("Brush GGO")
    stroke.__enter__()
    stroke.paint(disk(ed, 2, 10, 10), 2)
    assert ed.labels[2, 10, 10] == 2
    assert ed.undo() == "Brush GGO"
    assert np.array_equal(ed.labels, done) and len(ed.history) == 1  # the earlier step is still there
    assert ed.undo() is not None and not ed.labels.any()


def test_an_undo_step_that_cannot_go_to_disk_leaves_the_edit_done_and_journaled(tmp_path, monkeypatch):
    """QA pass (temporary folder full): moving undo steps to disk raised out of the commit ('mmap length is
    greater than file size'): the stroke stayed on screen but was not marked unsaved nor journaled, and the
    window closed without asking. Now the step stays in memory and the history says why."""
    from engine.editing import Journal, read_journal
    from engine.editing import history as H

    not_a_folder = tmp_path / "tmpfile"
    not_a_folder.write_bytes(b"")
    monkeypatch.setattr(H, "spill_root", lambda: str(not_a_folder))
    monkeypatch.setenv("LUNGLENS_DATA_DIR", str(tmp_path / "appdata"))
    shape = (4, 16, 16)
    ed = LabelEditor(np.zeros(shape, np.uint8), Geometry(shape), history=History(max_bytes=200, min_steps=3),
                     journal=Journal(tmp_path / "j.journal"))
    ed.mark_saved()
    for k in range(3):
        ed.paint(disk(ed, k, 8, 8, r=5.0), 1)
    assert ed.dirty and ed.version == 3 and len(ed.history) == 3 and ed.history.spilled == 0
    assert "could not be moved to disk" in ed.history.spill_error and str(not_a_folder) in ed.history.spill_error
    assert ed.labels[:3].any() and read_journal(ed.journal.path).recovered_steps == 3
    for _ in range(3):
        assert ed.undo()
    assert not ed.labels.any()


def test_undoing_back_to_the_saved_labels_leaves_nothing_unsaved(tmp_path, monkeypatch):
    """QA pass: edit then undo everything, or save, edit and undo that edit: the labels equal what was saved (or
    the start), yet closing asked to export and a crash would have offered to restore them."""
    from engine.editing import Journal, has_unsaved_edits

    monkeypatch.setenv("LUNGLENS_DATA_DIR", str(tmp_path / "appdata"))
    shape = (4, 16, 16)
    ed = LabelEditor(np.zeros(shape, np.uint8), Geometry(shape), journal=Journal(tmp_path / "j.journal"))
    ed.paint(disk(ed, 1, 8, 8), 1)
    assert ed.dirty
    ed.undo()
    assert not ed.dirty and not has_unsaved_edits(ed.journal.path)  # back at the start
    ed.redo()
    assert ed.dirty and has_unsaved_edits(ed.journal.path)
    ed.mark_saved()
    ed.paint(disk(ed, 2, 8, 8), 2)
    ed.undo()
    assert not ed.dirty and not has_unsaved_edits(ed.journal.path)  # back at the saved labels
    ed.undo()
    assert ed.dirty and has_unsaved_edits(ed.journal.path)  # before them: unsaved
    ed.redo()
    assert not ed.dirty
    # the replay of the journal agrees
    ed.journal.close()
    assert not LabelEditor.from_journal(ed.journal.path).dirty
    # steps dropped to stay in budget: undoing all that is left is not the start
    small = LabelEditor(np.zeros(shape, np.uint8), Geometry(shape), history=History(max_bytes=1, min_steps=1))
    for z in range(3):
        small.paint(disk(small, z, 8, 8), 1)
    assert small.history.evicted == 2
    small.undo()
    assert small.dirty and small.labels.any()
