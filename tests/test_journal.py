"""Crash-safe journal: replay, torn records, undo/redo, saved marks, and a SIGKILL-ed child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.editing import (Journal, LabelEditor, has_unsaved_edits, journal_path, ops, read_journal, recover,
                            scan_key, session_journals, unsaved_journals)
from engine.editing.journal import JournalInUse, data_dir, journal_in_use
from engine.editing.journals import tidy_journals
from engine.errors import CorruptFileError, DataError
from engine.types import Geometry

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LUNGLENS_DATA_DIR", str(tmp_path / "appdata"))
    return tmp_path / "appdata"


def scripted_edits(ed: LabelEditor, n: int) -> None:
    """Deterministic edits shared by the tests and the child process."""
    for k in range(n):
        with ed.stroke(f"Brush {k}") as s:
            y = 4 + 3 * (k % 8)
            s.paint(ops.brush_segment(ed.shape, ed.spacing, (k % 6, y, 3), (k % 6, y, 25), 1.5), 1 + k % 3)


def test_locations_follow_env_and_never_sit_beside_the_scan(data_home, tmp_path):
    g = Geometry((2, 3, 4), spacing=(1.0, 0.5, 0.5))
    key = scan_key(tmp_path / "scan.nii.gz", g)
    assert key == scan_key(str(tmp_path / "scan.nii.gz"), g)
    assert key != scan_key(tmp_path / "scan.nii.gz", Geometry((2, 3, 4)))
    assert journal_path(key).parent == data_home / "journals" / key
    assert journal_path(key) != journal_path(key)  # one file per session
    assert data_dir() == data_home
    assert tmp_path / "appdata" in journal_path(key).parents


def test_new_session_leaves_earlier_unsaved_journal_alone(data_home):
    shape = (6, 32, 32)
    g = Geometry(shape)
    key = scan_key("/data/scan.nii.gz", g)
    first = LabelEditor(np.zeros(shape, np.uint8), g, journal=Journal.for_scan("/data/scan.nii.gz", g))
    scripted_edits(first, 2)
    first_labels = first.labels.copy()
    first.journal.close()
    assert unsaved_journals(key) == [first.journal.path]
    second = LabelEditor(np.zeros(shape, np.uint8), g, journal=Journal.for_scan("/data/scan.nii.gz", g))
    second.paint(ops.Region((slice(0, 1), slice(0, 1), slice(0, 1)), np.ones((1, 1, 1), bool)), 3)
    second.mark_saved()
    assert set(session_journals(key)) == {first.journal.path, second.journal.path}
    assert unsaved_journals(key) == [first.journal.path]
    np.testing.assert_array_equal(recover(key), first_labels)
    first.journal.discard()
    with pytest.raises(DataError):
        recover(key)


def test_replay_matches_every_committed_state(data_home):
    shape = (6, 32, 32)
    g = Geometry(shape)
    j = Journal.for_scan("/nonexistent/scan.nii", g)
    ed = LabelEditor(np.zeros(shape, np.uint8), g, journal=j, source="/nonexistent/scan.nii")
    assert not j.path.exists()  # nothing written before the first step
    scripted_edits(ed, 5)
    np.testing.assert_array_equal(recover(j.path), ed.labels)
    ed.undo()
    ed.undo()
    np.testing.assert_array_equal(recover(j.path), ed.labels)
    ed.redo()
    ai = ed.labels.copy()
    ai[3, 10:20, 10:20] = 2
    ed.apply_ai_result(ai)
    scripted_edits(ed, 2)
    expected = ed.labels.copy()
    np.testing.assert_array_equal(recover(j.path), expected)
    assert has_unsaved_edits(j.path)
    j.close()
    ed.journal = None  # the crashed session's editor stops writing
    # the restored editor has the same labels, history names and hand-edit counts
    ed2 = LabelEditor.from_journal(j.path)
    np.testing.assert_array_equal(ed2.labels, expected)
    assert [s.name for s in ed2.history.undo_steps] == [s.name for s in ed.history.undo_steps]
    assert ed2.person_changes() == ed.person_changes()
    assert ed2.dirty
    ed2.undo()
    ed.undo()
    np.testing.assert_array_equal(ed2.labels, ed.labels)
    np.testing.assert_array_equal(recover(j.path), ed2.labels)


def test_restore_with_a_small_undo_budget_is_still_exact(data_home):
    from engine.editing import History
    shape = (6, 32, 32)
    j = Journal(data_home / "journals" / "b.journal")
    ed = LabelEditor(np.zeros(shape, np.uint8), Geometry(shape), journal=j)
    scripted_edits(ed, 6)
    for _ in range(4):
        ed.undo()
    expected = ed.labels.copy()
    j.close()
    ed2 = LabelEditor.from_journal(j.path, history=History(max_bytes=1, min_steps=1))
    np.testing.assert_array_equal(ed2.labels, expected)
    assert len(ed2.history) == 1 and ed2.history.can_redo


def test_initial_labels_are_journaled_and_saved_mark(data_home):
    shape = (2, 8, 8)
    start = np.zeros(shape, np.uint8)
    start[0, 1:3, 1:3] = 3
    j = Journal(data_home / "journals" / "x.journal")
    ed = LabelEditor(start.copy(), Geometry(shape), journal=j)
    assert j.started and not has_unsaved_edits(j.path)  # non-empty start stored at once, nothing unsaved
    ed.paint(ops.Region((slice(1, 2), slice(0, 2), slice(0, 2)), np.ones((1, 2, 2), bool)), 1)
    rep = read_journal(j.path)
    np.testing.assert_array_equal(rep.initial, start)
    np.testing.assert_array_equal(LabelEditor.replay(rep).labels, ed.labels)  # the one replay
    assert rep.unsaved
    ed.mark_saved("/tmp/out.nii.gz")
    assert not has_unsaved_edits(j.path) and not ed.dirty
    ed.undo()
    assert has_unsaved_edits(j.path)
    j.discard()
    assert not j.path.exists() and not has_unsaved_edits(j.path)


def test_torn_or_damaged_last_record_is_ignored(data_home):
    shape = (6, 32, 32)
    j = Journal(data_home / "journals" / "t.journal")
    ed = LabelEditor(np.zeros(shape, np.uint8), Geometry(shape), journal=j)
    scripted_edits(ed, 3)
    after_three = ed.labels.copy()
    with ed.stroke("Brush last") as s:
        s.paint(ops.brush_segment(shape, (1, 1, 1), (5, 30, 0), (5, 30, 31), 1.0), 2)
    assert not np.array_equal(ed.labels, after_three)
    j.close()
    data = j.path.read_bytes()
    np.testing.assert_array_equal(recover(j.path), ed.labels)
    # the process died while writing the last record: it is cut short
    j.path.write_bytes(data[:-7])
    np.testing.assert_array_equal(recover(j.path), after_three)
    # a flipped byte in the last record: its checksum fails, it is dropped
    corrupted = bytearray(data)
    corrupted[-3] ^= 0xFF
    j.path.write_bytes(bytes(corrupted))
    np.testing.assert_array_equal(recover(j.path), after_three)
    # nothing readable: a user-readable error, and no restore offered
    j.path.write_bytes(b"not a journal")
    with pytest.raises(CorruptFileError):
        recover(j.path)
    assert not has_unsaved_edits(j.path)


CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from engine.editing import Journal, LabelEditor, ops
    from engine.types import Geometry
    shape = (6, 32, 32)
    ed = LabelEditor(np.zeros(shape, np.uint8), Geometry(shape), journal=Journal({path!r}))
    for k in range(1, 1000):
        if k == 4:
            ed.undo()
            print("undo", flush=True)
        stroke = ed.stroke(f"Brush {{k}}")
        y = 4 + 3 * (k % 8)
        stroke.paint(ops.brush_segment(shape, (1, 1, 1), (k % 6, y, 3), (k % 6, y, 25), 1.5), 1 + k % 3)
        stroke.commit()
        print("committed", k, flush=True)
        if k == 6:
            s = ed.stroke("open stroke")   # painted but never committed when the kill comes
            s.paint(ops.Region((slice(0, 6), slice(0, 32), slice(0, 32)), np.ones(shape, bool)), 3)
            print("stroke open", flush=True)
            time.sleep(60)
""")


def test_kill_mid_session_restores_last_committed_step(data_home, tmp_path):
    path = data_home / "journals" / "kill.journal"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(path=str(path)))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    lines = []
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line.strip())
            if line.startswith("stroke open"):
                # the child is alive and holds its journal: another window may neither take nor delete it
                assert journal_in_use(path)
                with pytest.raises(JournalInUse, match="another LungLens window"):
                    LabelEditor.from_journal(path)
                Journal(path).discard()
                assert path.is_file()
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not journal_in_use(path)  # the OS dropped the dead session's lock
    assert lines[-2] == "committed 6"
    # expected: strokes 1..6 with stroke 3 undone before stroke 4; the open stroke is absent
    shape = (6, 32, 32)
    ed = LabelEditor(np.zeros(shape, np.uint8), Geometry(shape))
    for k in range(1, 7):
        if k == 4:
            ed.undo()
        y = 4 + 3 * (k % 8)
        ed.paint(ops.brush_segment(shape, (1, 1, 1), (k % 6, y, 3), (k % 6, y, 25), 1.5), 1 + k % 3)
    restored = recover(path)
    assert restored.dtype == np.uint8 and restored.any()
    np.testing.assert_array_equal(restored, ed.labels)
    assert has_unsaved_edits(path)


def test_a_journal_another_window_is_writing_is_not_offered_discarded_or_tidied(data_home):
    """Two windows on one scan: the second was offered the first's live journal (restoring it made both write
    one file, one window's records over the other's), its Discard deleted it, and tidying deleted an idle
    window's saved journal (its next edits then went nowhere). A journal a running session holds is none of
    those now; once that session ends (closed or killed) it is offered as before."""
    from engine.editing import all_unsaved_journals

    shape = (2, 8, 8)
    g = Geometry(shape)
    key = scan_key("/scans/a.nii.gz", g)
    one = ops.Region((slice(0, 1), slice(0, 1), slice(0, 1)), np.ones((1, 1, 1), bool))
    live = LabelEditor(np.zeros(shape, np.uint8), g, source="/scans/a.nii.gz",
                       journal=Journal.for_scan("/scans/a.nii.gz", g))
    live.paint(one, 1)
    path = live.journal.path
    assert journal_in_use(path) and has_unsaved_edits(path)
    assert unsaved_journals(key) == [] and all_unsaved_journals() == []
    with pytest.raises(JournalInUse):
        LabelEditor.from_journal(path)
    Journal(path).discard()
    live.mark_saved()
    os.utime(path, (1, 1))  # idle for hours, saved
    assert tidy_journals(key, keep=set(), min_age_s=0) == [] and path.is_file()
    live.paint(one, 2)  # the idle window edits again: journaled
    assert read_journal(path).unsaved
    live.journal.close()  # the window closed (or died): its unsaved edits are offered
    assert not journal_in_use(path) and unsaved_journals(key) == [path] and all_unsaved_journals() == [path]
    restored = LabelEditor.from_journal(path)
    assert restored.labels[0, 0, 0] == 2 and journal_in_use(path)  # the restoring window holds it now
    restored.journal.discard()
    assert not path.exists() and not path.with_name(path.name + ".lock").exists()
    stray = path.with_name("gone.journal.lock")  # a lock file left by a journal set aside or closed elsewhere
    stray.write_bytes(b"")
    tidy_journals(key, keep=set())
    assert not stray.exists()


def test_all_unsaved_journals_and_their_sources(data_home):
    from engine.editing import all_unsaved_journals, journal_source
    assert all_unsaved_journals() == []
    shape = (2, 8, 8)
    paths = []
    for name in ("a.nii.gz", "b.nii.gz"):
        g = Geometry(shape)
        ed = LabelEditor(np.zeros(shape, np.uint8), g, source=f"/scans/{name}",
                         journal=Journal.for_scan(f"/scans/{name}", g))
        ed.paint(ops.Region((slice(0, 1), slice(0, 1), slice(0, 1)), np.ones((1, 1, 1), bool)), 1)
        ed.journal.close()
        paths.append(ed.journal.path)
    os.utime(paths[0], (1, 1))  # the first is older
    assert all_unsaved_journals() == [paths[1], paths[0]]
    assert journal_source(paths[0]) == "/scans/a.nii.gz"
    j = Journal(paths[1])
    j.resume()
    j.mark_saved()
    j.close()
    assert all_unsaved_journals() == [paths[0]]
    paths[0].write_bytes(b"garbage")
    assert all_unsaved_journals() == [] and journal_source(paths[0]) is None


def _edited_file_labels(shape=(4, 24, 24)):
    """Labels as opened from a .seg.nrrd with provenance: a person painted one block and erased another."""
    labels = np.zeros(shape, np.uint8)
    labels[1:3, 2:10, 2:10] = 1          # AI GGO, untouched
    labels[1:3, 12:16, 12:16] = 2        # painted by a person
    edited = np.zeros(shape, bool)
    edited[1:3, 12:16, 12:16] = True
    edited[0, 18:22, 18:22] = True       # erased by a person (now background)
    return labels, edited


@pytest.mark.parametrize("started_at_open", [True, False])
def test_provenance_adopted_from_a_file_survives_a_restore(data_home, started_at_open):
    labels, edited = _edited_file_labels()
    path = data_home / "j.lljournal"
    if started_at_open:  # non-empty labels: the journal starts when the editor is made
        ed = LabelEditor(labels.copy(), journal=Journal(path))
        assert ed.journal.started
    else:  # journal started lazily, at the first edit
        ed = LabelEditor(labels.copy())
        ed.journal = Journal(path)
    ed.adopt_person_edits(edited)
    np.testing.assert_array_equal(ed.person_mask(), edited)
    assert read_journal(path).unsaved is False if started_at_open else not path.exists()
    with ed.stroke("Brush") as s:   # one more hand edit, then the app dies without saving
        s.paint(ops.brush_segment(ed.shape, ed.spacing, (3, 4, 4), (3, 4, 8), 1.0), 3)
    want_mask = ed.person_mask().copy()
    assert want_mask.sum() > edited.sum()
    rep = read_journal(path)
    assert rep.unsaved and rep.recovered_steps == 1
    back = LabelEditor.replay(rep)
    np.testing.assert_array_equal(back.labels, ed.labels)
    np.testing.assert_array_equal(back.person_mask(), want_mask)
    assert back.person_changes() == ed.person_changes()
    back.undo()                     # the hand edit goes; the file's provenance stays
    np.testing.assert_array_equal(back.person_mask(), edited)


def test_a_journal_with_only_adopted_provenance_holds_no_unsaved_edits(data_home):
    labels, edited = _edited_file_labels()
    path = data_home / "j2.lljournal"
    ed = LabelEditor(labels.copy(), journal=Journal(path))
    ed.adopt_person_edits(edited)
    ed.journal.close()
    rep = read_journal(path)
    assert [k for k, _ in rep.entries] == ["baseline"] and not rep.unsaved
    assert not has_unsaved_edits(path)
    np.testing.assert_array_equal(LabelEditor.replay(rep).person_mask(), edited)


def test_a_journal_that_cannot_be_written_says_what_to_do(data_home, tmp_path, monkeypatch):
    """QA pass: on a read-only data folder the message said 'Free disk space'."""
    import errno

    shape = (2, 8, 8)
    one = ops.Region((slice(0, 1), slice(0, 1), slice(0, 1)), np.ones((1, 1, 1), bool))
    blocked = tmp_path / "a_file"
    blocked.write_bytes(b"")
    ed = LabelEditor(np.zeros(shape, np.uint8), Geometry(shape), journal=Journal(blocked / "j.journal"))
    ed.paint(one, 1)
    assert ed.labels[0, 0, 0] == 1 and "Make " in ed.journal_error and "writable" in ed.journal_error
    assert "Free disk space" not in ed.journal_error

    def full(self, header, payload=b""):
        raise OSError(errno.ENOSPC, "No space left on device")

    ed = LabelEditor(np.zeros(shape, np.uint8), Geometry(shape), journal=Journal(tmp_path / "j.journal"))
    monkeypatch.setattr(Journal, "_write", full)
    ed.paint(one, 1)
    assert "Free disk space and export your labels" in ed.journal_error


def test_a_restore_of_a_journal_discarded_meanwhile_fails_and_creates_nothing(data_home, tmp_path):
    """Review: window B read and replayed a journal, window A discarded it, then B's resume ("ab") created an
    empty file without an 'open' record and journaled B's next edits there: unrestorable, reported as damaged."""
    shape = (2, 8, 8)
    one = ops.Region((slice(0, 1), slice(0, 1), slice(0, 1)), np.ones((1, 1, 1), bool))
    ed = LabelEditor(np.zeros(shape, np.uint8), Geometry(shape), journal=Journal(tmp_path / "gone.journal"))
    ed.paint(one, 1)
    ed.journal.close()
    Journal(ed.journal.path).discard()
    with pytest.raises(CorruptFileError, match="another LungLens window discarded it"):
        LabelEditor.from_journal(ed.journal.path)
    assert not ed.journal.path.exists() and not journal_in_use(ed.journal.path)


def test_the_stamp_of_a_folder_sees_series_in_subfolders(tmp_path):
    """Review: a DICOM study folder with its series in subfolders stamped [0, 0, 0] before and after a slice was
    rewritten: the 'changed on disk' warning never came."""
    from engine.editing import source_stamp

    series = tmp_path / "study" / "series1"
    series.mkdir(parents=True)
    (series / "a.dcm").write_bytes(b"x" * 10)
    before = source_stamp(tmp_path / "study")
    (series / "a.dcm").write_bytes(b"y" * 12)
    assert before[0] == 1 and source_stamp(tmp_path / "study") != before
    assert source_stamp(tmp_path / "nothing") is None


def test_the_journals_on_disk_are_judged_from_their_records_without_reading_voxels(data_home, monkeypatch):
    """has_unsaved_edits and journal_problems (start-up, scan open: the GUI thread) outline a journal's records;
    reading every journal whole froze the window 0.8-1.6 s with three crashed 300-slice sessions on disk."""
    from engine.editing import journal as journal_module
    from engine.editing.journals import journal_problems, outline_journal

    shape = (6, 32, 32)
    g = Geometry(shape)
    cases = []
    for k, (edits, undos, save) in enumerate([(3, 0, False), (2, 0, True), (2, 1, False), (0, 0, False)]):
        start = np.zeros(shape, np.uint8)
        start[0, 0, :k] = 1  # k = 0: empty starting labels, the journal starts at the first edit
        ed = LabelEditor(start, g, journal=Journal.for_scan(f"/data/scan{k}.nii.gz", g))
        scripted_edits(ed, edits)
        for _ in range(undos):
            ed.undo()
        if save:
            ed.mark_saved("/out/labels.nii.gz")
        if ed.journal.started:
            cases.append(ed.journal.path)
        ed.journal.close()
    damaged = cases[0].read_bytes()
    i = damaged.find(journal_module.MAGIC, 100)
    cases[0].write_bytes(damaged[:i + 8] + b"\x00" * 8 + damaged[i + 16:])  # one step record's CRC broken
    for path in cases:
        full, outline = read_journal(path), outline_journal(path)
        assert (outline.unsaved, outline.damaged, outline.recovered_steps) == \
            (full.unsaved, full.damaged, full.recovered_steps), path.name
        assert has_unsaved_edits(path) == full.unsaved
    assert [has_unsaved_edits(p) for p in cases] == [True, False, True, False]
    problems = journal_problems()
    assert list(problems) == [cases[0]] and "1 record(s) could not be read; 2 step(s) were recovered" in \
        problems[cases[0]]

    def no_voxels(*_a, **_k):
        raise AssertionError("a journal's voxels were decoded")
    monkeypatch.setattr(journal_module, "_decode_deltas", no_voxels)
    monkeypatch.setattr(journal_module, "read_journal", no_voxels)
    assert [has_unsaved_edits(p) for p in cases] == [True, False, True, False]
    assert list(journal_problems()) == [cases[0]]
