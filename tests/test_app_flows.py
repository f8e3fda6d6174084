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


class RuleServer:
    """A predictor that is not the local torch one (as a remote service would be): GGO where
    -700 <= HU <= -250, two slices per answer."""

    def iter_predict(self, volume, progress=None, cancel=None, order=None, visible_slice=None):
        from engine.inference import Prediction, Slab

        hu = volume.array
        labels = np.where((hu >= -700) & (hu <= -250), GGO, 0).astype(np.uint8)
        nz = volume.shape[0]
        sp = np.zeros((nz, 3), np.float32)
        sp[:, 0] = labels.reshape(nz, -1).any(axis=1)
        for z0 in range(0, nz, 2):
            z = np.arange(z0, min(z0 + 2, nz))
            yield Slab(z=z, labels=labels[z], probabilities=None, slice_probabilities=sp[z], fraction=z[-1] / nz)
        return Prediction(labels=labels, probabilities=None, slice_probabilities=sp,
                          scan_probabilities={"ggo": 1.0, "consolidation": 0.0, "effusion": 0.0},
                          covid_probability=None, segmented=np.ones(nz, bool), geometry=volume.geometry,
                          models={"segmentation": {"name": "rule_server", "version": "1"}}, timings={"total_s": 0.0},
                          device="remote")


def test_ai_flow_takes_another_predictor_through_its_seam(qtbot, tmp_path, monkeypatch):
    from app.flows.ai import AIFlow
    from app.flows.open_scan import OpenFlow
    from app.tools import CrosshairTool
    from app.views.view_set import ViewSet
    from PySide6.QtCore import QObject, Signal

    class Shown(QObject):
        shown = Signal()

    ctx, docks = make_context(qtbot, tmp_path, monkeypatch, active=True)
    views = ViewSet(ctx.session, ctx.labels, CrosshairTool(ctx.session))
    qtbot.addWidget(views)
    asked = []
    window_shown = Shown()
    ai = AIFlow(ctx, views, window_shown.shown,
                make_predictor=lambda key, threads: asked.append(key) or RuleServer())
    assert [d.windowTitle() for d in docks] == ["AI findings", "Slice strip"]
    OpenFlow(ctx, lambda _t: None).show_volume(volume())
    qtbot.waitUntil(lambda: not ctx.runner.active, timeout=30000)  # the case found the lungs
    seen = []
    ai.proposal.slab_added.connect(lambda z: seen.append(len(z)))
    with qtbot.waitSignal(ai.proposal_ready, timeout=30000):
        ai.run()
    assert asked == [ai.model_key] and seen and set(seen) <= {1, 2}
    expected = np.where(volume().array == -500, GGO, 0)
    np.testing.assert_array_equal(ai.proposal.prediction.labels, expected)
    assert not ctx.labels.array.any()  # nothing on the labels before accepting
    assert ai.accept()
    np.testing.assert_array_equal(ctx.labels.array, expected)
    assert ctx.labels.editor.history.undo_name == "AI segmentation"
    assert ctx.case.models["segmentation"]["name"] == "rule_server"


class NoLungServer(RuleServer):
    """A predictor that says the scan cannot be read (as the engine does for an abdomen series)."""

    def iter_predict(self, volume, progress=None, cancel=None, order=None, visible_slice=None):
        pred = yield from super().iter_predict(volume, progress, cancel, order, visible_slice)
        pred.labels[:] = 0
        pred.slice_probabilities[:] = 0
        pred.scan_probabilities = {}
        pred.not_assessed = ["no lung in this series (is it a chest CT?)"]
        return pred


def chest() -> Volume:
    """A chest-like HU volume: a body, two lungs over 8 slices, a -500 HU patch in the right one."""
    arr = np.full((8, 128, 128), -1000, np.int16)
    arr[:, 8:120, 8:120] = 40
    arr[:, 24:104, 16:56] = -850
    arr[:, 24:104, 72:112] = -850
    arr[:, 40:60, 20:40] = -500
    return Volume(arr, Geometry(arr.shape, (2.0, 1.0, 1.0)), source=None, format="phantom")


def _ai_flow(qtbot, tmp_path, monkeypatch, server, scan=None):
    from PySide6.QtCore import QObject, Signal

    from app.flows.ai import AIFlow
    from app.flows.open_scan import OpenFlow
    from app.tools import CrosshairTool
    from app.views.view_set import ViewSet

    class Shown(QObject):
        shown = Signal()

    ctx, _ = make_context(qtbot, tmp_path, monkeypatch, active=True)
    views = ViewSet(ctx.session, ctx.labels, CrosshairTool(ctx.session))
    qtbot.addWidget(views)
    shown = Shown()
    ai = AIFlow(ctx, views, shown.shown, make_predictor=lambda key, threads: server)
    ai._keep_alive = (shown, views)  # noqa: SLF001 - the signal's owner and the views live as long as the flow
    OpenFlow(ctx, lambda _t: None).show_volume(scan if scan is not None else volume())
    qtbot.waitUntil(lambda: not ctx.runner.active, timeout=30000)
    with qtbot.waitSignal(ai.proposal_ready, timeout=30000):
        ai.run()
    return ctx, ai


def test_a_scan_that_was_not_assessed_shows_why_and_no_numbers(qtbot, tmp_path, monkeypatch):
    ctx, ai = _ai_flow(qtbot, tmp_path, monkeypatch, NoLungServer())
    panel = ai.panel
    assert panel.reading.text().startswith("Not assessed: no lung in this series")
    assert [bar.text() for bar in panel.scan_bars] == ["not assessed"] * 3
    assert all(bar.value() <= bar.minimum() for bar in panel.slice_bars + panel.scan_bars)
    assert not panel.covid_bar.isVisibleTo(panel)  # the COVID number is not validated on volumes


def test_an_assessed_reading_shows_the_rsna_category_and_calibrated_bars(qtbot, tmp_path, monkeypatch):
    ctx, ai = _ai_flow(qtbot, tmp_path, monkeypatch, RuleServer(), scan=chest())
    assert ctx.case.lungs is not None and ctx.case.lungs.extents["right"] == (0, 7)
    panel = ai.panel
    rsna = ai.proposal.rsna
    assert rsna is not None and rsna.category in ("typical", "indeterminate", "atypical", "negative")
    assert panel.reading.text().startswith(f"RSNA category: {rsna.category}")
    assert "not a diagnosis" in panel.reading.text()
    # the predictor's whole-scan P(GGO) = 1.0 is withheld: not validated on whole scans
    assert panel.scan_bars[0].text() == "not validated" and panel.scan_bars[0].value() <= panel.scan_bars[0].minimum()
    z = int(np.flatnonzero(ai.proposal.slice_probabilities[:, 0] > 0.5)[0])
    ctx.session.set_cursor(z, 20, 20)
    assert panel.slice_bars[0].value() == 100  # the slice bars (calibrated on slices) stay


def test_without_lungs_there_is_no_rsna_category(qtbot, tmp_path, monkeypatch):
    """The RSNA category reads the findings' distribution over the lungs' zones: where no lungs were found it
    is not given (it used to read 'indeterminate' on such a scan), and the panel says no category."""
    ctx, ai = _ai_flow(qtbot, tmp_path, monkeypatch, RuleServer())
    assert ctx.case.lungs is None and ai.proposal.rsna is None
    assert "RSNA category" not in ai.panel.reading.text()


def test_no_number_on_screen_rounds_a_finding_that_is_there_to_zero():
    """One formatter for the panels and the PDF (there were four): "<0.1", never "0.0", for a finding present."""
    from app.widgets.findings_panel import _volume_text
    from engine.quantification.numbers import shown

    assert shown(0.004, 3) == "<0.1" and shown(0.049, 1) == "<0.1" and shown(0.004, 3, digits=2) == "<0.01"
    assert shown(0.0, 0) == "0.0" and shown(0.06, 5) == "0.1" and shown(12.34, 900) == "12.3"
    assert shown(None, 4) == "n/a"
    assert _volume_text(2, 0.01) == "<0.1 mL" and _volume_text(0, 0.01) == "0.0 mL" and _volume_text(7, None) == "7 vox"
    from app.widgets.label_panel import volume_text  # the Labels panel too (QA pass: "0.070 mL" beside "0.1")
    assert volume_text(73, 0.000956) == "0.1 mL" and volume_text(2, 0.01) == "<0.1 mL"
    assert volume_text(0, 0.01) == "0.0 mL" and volume_text(7, None) == "7 vox"
