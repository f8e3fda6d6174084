"""Damaged journals, a real undo budget, durable exports and the clean-up of interrupted ones (issue 11)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine import io
from engine.editing import Journal, LabelEditor, all_unsaved_journals, ops, read_journal
from engine.editing.history import History
from engine.editing.journal import MAGIC
from engine.editing.journals import journal_problems
from engine.io.atomic import TEMP_PREFIX, clean_stale_temps
from engine.types import Geometry, Volume


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LUNGLENS_DATA_DIR", str(tmp_path / "appdata"))
    return tmp_path / "appdata"


def _edits(ed: LabelEditor, n: int) -> list[np.ndarray]:
    """n strokes on separate rows; the labels after each."""
    states = []
    for k in range(n):
        region = ops.Region((slice(k % 4, k % 4 + 1), slice(2 * k, 2 * k + 2), slice(1, 9)),
                            np.ones((1, 2, 8), bool))
        ed.paint(region, 1 + k % 3, name=f"Brush {k}")
        states.append(ed.labels.copy())
    return states


def _journal(data_home, n=6):
    shape = (4, 16, 12)
    g = Geometry(shape)
    ed = LabelEditor(np.zeros(shape, np.uint8), g, journal=Journal.for_scan("/data/scan.nii.gz", g))
    states = _edits(ed, n)
    ed.journal.close()
    return ed.journal.path, states


def _record_offsets(data: bytes) -> list[int]:
    out, pos = [], data.find(MAGIC)
    while pos >= 0:
        out.append(pos)
        pos = data.find(MAGIC, pos + 1)
    return out


# -- journals -------------------------------------------------------------------------------------

def test_damage_in_the_middle_keeps_every_later_step_and_says_so(data_home):
    path, states = _journal(data_home)
    data = bytearray(path.read_bytes())
    offs = _record_offsets(bytes(data))  # open, step 0..5
    data[offs[3] + 20] ^= 0xFF  # inside step 2's record
    path.write_bytes(bytes(data))
    rep = read_journal(path)
    assert rep.damaged == 1 and rep.recovered_steps == 5
    assert "1 record(s) could not be read; 5 step(s) were recovered" in rep.problem()
    got = LabelEditor.replay(rep).labels
    # every voxel equals the last edit except the row only the lost step 2 painted
    lost = (states[2] != states[1])
    assert np.array_equal(got[~lost], states[-1][~lost]) and not got[lost].any()
    ed = LabelEditor.from_journal(path)
    assert np.array_equal(ed.labels, got) and ed.restore_problem == rep.problem()
    assert len(ed.history) == 6  # the lost step keeps its place: undo/redo stay paired
    ed.journal.close()


def test_valid_checksum_with_bad_payload_never_hides_other_journals(data_home):
    good, _ = _journal(data_home)
    time.sleep(0.01)
    shape = (4, 16, 12)
    g = Geometry(shape)
    ed = LabelEditor(np.zeros(shape, np.uint8), g, journal=Journal.for_scan("/data/other.nii.gz", g))
    _edits(ed, 2)
    ed.journal.close()
    bad = ed.journal.path
    # rewrite the open record with a valid CRC over a header whose shape is nonsense
    import json
    import struct
    import zlib
    data = bad.read_bytes()
    magic, n_head, n_pay, _ = struct.unpack_from("<4sIII", data, 0)
    header = json.loads(data[16:16 + n_head])
    header["shape"] = ["x", 2]
    head = json.dumps(header).encode()
    body = head + data[16 + n_head:16 + n_head + n_pay]
    bad.write_bytes(struct.pack("<4sIII", MAGIC, len(head), n_pay, zlib.crc32(body)) + body
                    + data[16 + n_head + n_pay:])
    assert all_unsaved_journals() == [good]
    problems = journal_problems()
    assert set(problems) == {bad} and "cannot be restored" in problems[bad]


def test_torn_tail_is_not_reported_as_damage(data_home):
    path, states = _journal(data_home, n=3)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    rep = read_journal(path)
    assert rep.damaged == 0 and rep.problem() == "" and np.array_equal(LabelEditor.replay(rep).labels, states[1])


# -- undo budget ----------------------------------------------------------------------------------

def test_history_budget_is_a_real_bound_steps_go_to_disk_and_undo_still_works():
    shape = (20, 64, 64)
    ed = LabelEditor(np.zeros(shape, np.uint8), history=History(max_bytes=150_000, min_steps=10))
    states = [ed.labels.copy()]
    for k in range(6):  # each full-volume fill holds ~180 kB, over the whole budget
        ed.apply_labels(np.full(shape, 1 + k % 3, np.uint8), f"Fill {k}")
        states.append(ed.labels.copy())
        assert ed.history.nbytes <= 150_000
    h = ed.history
    assert len(h) == 6 and h.steps_on_disk >= 5
    folder = Path(h.undo_steps[0].delta.old.filename).parent
    assert folder.is_dir()
    for k in range(6, 0, -1):
        ed.undo()
        assert np.array_equal(ed.labels, states[k - 1])
    ed.redo()
    assert np.array_equal(ed.labels, states[1])
    h.clear()
    assert not folder.exists()


# -- durable exports and stale temporary files ------------------------------------------------------

def test_export_leaves_no_temp_and_stale_temps_of_dead_processes_are_cleaned(data_home, tmp_path):
    vol = Volume(np.zeros((3, 8, 8), np.int16), Geometry((3, 8, 8)))
    out = tmp_path / "exports"
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[1, 2:4, 2:4] = 2
    io.save_labels(labels, vol, out / "a.nii.gz")
    assert [p.name for p in out.iterdir()] == ["a.nii.gz"]
    # a process killed during an export leaves its temp file behind
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(child.stdout)
    stale = out / f"{TEMP_PREFIX}{dead}-abcdef12-b.nii.gz"
    stale.write_bytes(b"partial")
    stale_dir = out / f"{TEMP_PREFIX}{dead}-0badcafe-labels_png"
    stale_dir.mkdir()
    (stale_dir / "slice_0000.png").write_bytes(b"x")
    live = out / f"{TEMP_PREFIX}{os.getpid()}-12345678-c.nii.gz"  # an export running now
    live.write_bytes(b"in progress")
    removed = clean_stale_temps()
    assert sorted(p.name for p in removed) == sorted([stale.name, stale_dir.name])
    assert live.exists() and (out / "a.nii.gz").exists()
    assert np.array_equal(io.load_labels(out / "a.nii.gz", reference=vol), labels)
