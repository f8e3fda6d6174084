"""Flows are built in plain code against a context, without a main window (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtWidgets import QDockWidget, QMenu, QToolBar, QWidget

from engine.editing import ops
from engine.labels import GGO
from engine.types import Geometry, Volume

pytestmark = pytest.mark.gui

SHAPE = (8, 40, 40)


def make_context(qtbot, tmp_path, monkeypatch, active: bool = False):
    from PySide6.QtCore import QSettings

    from app.context import MENUS, Actions, AppContext
    from app.state.case import CaseState
    from app.state.label_layer import LabelLayer
    from app.state.notices import Notices
    from app.state.preferences import Preferences
    from app.state.session import Session
    from app.state.tasks import TaskRunner

    monkeypatch.setenv("LUNGLENS_DATA_DIR", str(tmp_path / "data"))
    owner = QWidget()
    qtbot.addWidget(owner)
    docks: list[QDockWidget] = []

    def add_dock(widget, title, area=None):
        dock = QDockWidget(title, owner)
        dock.setWidget(widget)
        docks.append(dock)
        return dock

    prefs = Preferences(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    session, runner = Session(owner), TaskRunner(owner)
    labels = LabelLayer(owner, history_factory=prefs.new_history)
    case = CaseState(session, labels, runner, active=active, parent=owner)
    actions = Actions(owner, {k: QMenu(t, owner) for k, t in MENUS}, QToolBar(owner), add_dock)
    return AppContext(session, labels, case, runner, prefs, Notices(owner), actions), docks


def volume() -> Volume:
    arr = np.full(SHAPE, -1000, np.int16)
    arr[:, 10:30, 10:30] = -500
    return Volume(arr, Geometry(SHAPE, (2.0, 1.0, 1.0)), source=None, format="phantom")


def test_open_and_editing_flows_against_a_bare_context(qtbot, tmp_path, monkeypatch):
    from app.flows.editing import EditingFlow
    from app.flows.open_scan import OpenFlow
    from app.tools import CrosshairTool
    from app.views.view_set import ViewSet

    ctx, docks = make_context(qtbot, tmp_path, monkeypatch)
    views = ViewSet(ctx.session, ctx.labels, CrosshairTool(ctx.session))
    qtbot.addWidget(views)
    titles = []
    opener = OpenFlow(ctx, titles.append)
    editing = EditingFlow(ctx, views)
    assert [d.windowTitle() for d in docks] == ["Editing"]
    seen = []  # every announcement must show labels of the open scan's shape
    ctx.labels.changed.connect(lambda _b: seen.append(ctx.labels.shape == tuple(ctx.session.volume.shape)))
    truth = np.zeros(SHAPE, np.uint8)
    truth[4, 12:20, 12:20] = GGO
    vol = volume()
    opener.show_volume(vol, None, truth, "truth")
    assert titles == ["LungLens — phantom"] and seen == [True]
    assert ctx.labels.editor is not None and ctx.labels.array is ctx.labels.editor.labels  # one array
    np.testing.assert_array_equal(ctx.labels.array, truth)
    assert ctx.labels.counts()[GGO] == 64 and ctx.labels.name == "truth"
    ed = ctx.labels.editor
    ed.paint(ops.brush_segment(SHAPE, vol.spacing, (4, 25, 25), (4, 25, 25), 1.0), GGO, name="Brush GGO")
    assert editing.undo_action.text() == "&Undo Brush GGO" and ctx.labels.counts()[GGO] > 64
    assert editing.undo() == "Brush GGO" and ctx.labels.counts()[GGO] == 64


def test_before_open_hook_can_hold_an_open(qtbot, tmp_path, monkeypatch):
    from app.flows.open_scan import OpenFlow

    ctx, _ = make_context(qtbot, tmp_path, monkeypatch)
    opener = OpenFlow(ctx, lambda _t: None)
    held = []
    opener.set_guard(lambda what, proceed: held.append((what, proceed)))
    opener.open_phantom((16, 32, 32))
    assert [w for w, _ in held] == ["open another scan"] and ctx.session.volume is None
    with qtbot.waitSignal(opener.volume_opened, timeout=30000):
        held[0][1]()  # the user answered: go on
    assert ctx.session.volume.shape == (16, 32, 32) and ctx.labels.name == "phantom labels"
