"""The app's Numbers panel follows label edits; File > Export report writes a report."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from engine.labels import GGO

pytestmark = pytest.mark.gui

SMALL = (48, 128, 128)


@pytest.fixture
def window(make_window):
    return make_window(flows=("numbers",), size=(1200, 800))


@pytest.fixture
def ready(window, qtbot):
    window.scan_io.open_phantom(SMALL)
    qtbot.waitUntil(lambda: bool(window.errors or window.numbers.result is not None), timeout=60000)
    assert not window.errors
    return window


def test_menu_and_panel_present(window):
    texts = [a.text() for a in window.menus["file"].actions()]
    assert any("Export &report" in t for t in texts)
    assert not window.numbers.export_action.isEnabled()  # no scan yet
    assert window.numbers.dock.windowTitle() == "Numbers"


def test_numbers_follow_edits(ready, qtbot):
    w = ready
    rep = w.numbers
    vox = w.session.volume.geometry.voxel_volume_ml
    labels = w.labels.array
    q = rep.result
    assert q.findings["ggo"].ml == pytest.approx(np.count_nonzero(labels == GGO) * vox)
    assert rep.lungs is not None and q.has_lungs
    assert rep.panel.cell("ggo", 0) == f"{q.findings['ggo'].ml:.1f}"
    # paint a GGO block inside the right lung through the layer's API
    zz, yy, xx = np.nonzero(rep.lungs.right & (labels == 0))
    i = len(zz) // 2
    z, y, x = int(zz[i]), int(yy[i]), int(xx[i])
    box = (z, z + 1, y - 2, y + 3, x - 2, x + 3)
    block = labels[z:z + 1, y - 2:y + 3, x - 2:x + 3].copy()
    before = np.count_nonzero(labels == GGO)
    t0 = time.perf_counter()
    with qtbot.waitSignal(rep.numbers_changed, timeout=2000):
        w.labels.write(box, np.full_like(block, GGO))
    assert time.perf_counter() - t0 < 0.5
    after = np.count_nonzero(w.labels.array == GGO)
    assert after > before
    q2 = rep.result
    assert q2.findings["ggo"].voxels == after
    assert rep.panel.cell("ggo", 0) == f"{after * vox:.1f}"
    assert w.case.edited_by_person()


def test_export_report_json(ready, qtbot, tmp_path):
    w = ready
    out = tmp_path / "r.json"
    with qtbot.waitSignal(w.numbers.exported, timeout=60000):
        w.numbers.export(str(out), anonymize=True)
    doc = json.loads(out.read_text())
    assert doc["anonymized"] and "patient_id" not in doc["patient"]
    assert doc["numbers"]["findings"]["ggo"]["voxels"] == int(np.count_nonzero(w.labels.array == GGO))
    assert doc["labels"]["edited_by_person"] is False
    assert doc["lungs"]["method"] == "hu-rules"


def test_lung_outline_overlay(ready, qtbot):
    w = ready
    rep = w.numbers
    k = int(np.argmax(rep.lungs.lung.sum(axis=(1, 2))))
    w.session.set_cursor(k, w.session.cursor[1], w.session.cursor[2])
    view, item = rep.overlay.items[0]
    assert view is w.views.axial and not item.isVisible()
    rep.lung_action.setChecked(True)
    assert item.isVisible()
    img = item.image
    assert set(np.unique(img)) == {0, 1, 2}  # outline of both lungs
    # outline pixels lie on the lung boundary of this slice
    edge = img > 0
    assert (rep.lungs.lung[k][edge]).all() and edge.sum() < 0.3 * rep.lungs.lung[k].sum()
    rep.lung_action.setChecked(False)
    assert not item.isVisible()


def test_accepted_reading_records_models_and_model_lungs(ready, qtbot):
    from types import SimpleNamespace

    from engine.inference.pipeline import reading_lungs
    w = ready
    rep = w.numbers
    model = rep.lungs.lung.copy()
    model[:, :, : model.shape[2] // 2] = False  # a lung model that saw only one side
    pred = SimpleNamespace(lung_mask=model, labels=w.labels.array)
    lungs, _notes = reading_lungs(w.session.volume, pred, rep.lungs)  # the pipeline's step, on its worker
    ai = w.labels.array.copy()
    ai[0, :2, :2] = GGO
    step = w.labels.editor.apply_ai_result(ai)  # the accept's step: its models are credited while it is in effect
    with qtbot.waitSignal(rep.numbers_changed, timeout=30000):
        w.case.accept_reading({"lung": {"name": "lung_unet", "version": "1"}}, lungs, [step.id])
    assert w.case.models["lung"]["name"] == "lung_unet"
    assert rep.lungs is lungs and rep.lungs.method == "model+hu-rules"
    assert rep.lungs.right.any() and rep.lungs.left.any()


def test_edits_during_the_initial_count_are_replayed(ready, qtbot):
    """A new label map starts a count on a worker; edits made meanwhile end up counted."""
    w = ready
    rep = w.numbers
    new = w.labels.array.copy()
    new[new == GGO] = 0
    w.labels.set_array(new, "other labels")
    assert w.case.counting  # counting on a worker
    box = (10, 12, 40, 50, 40, 50)
    w.labels.write(box, np.full((2, 10, 10), GGO, np.uint8))
    qtbot.waitUntil(lambda: not w.case.counting and w.case.quantifier is not None, timeout=30000)
    from engine.quantification import quantify
    vol = w.session.volume
    full = quantify(w.labels.array, vol.geometry, rep.lungs, vol.array)
    assert rep.result.to_dict() == full.to_dict()
    assert rep.result.findings["ggo"].voxels == 200


def test_numbers_without_spacing_are_headed_voxels(qtbot):
    """A stack without spacing (PNG/JPG) has voxel counts, not mL: the column header said "mL" above them."""
    from app.widgets.numbers_panel import NumbersPanel
    from engine.anatomy import LungMasks
    from engine.quantification.numbers import quantify
    from engine.types import Geometry

    panel = NumbersPanel()
    qtbot.addWidget(panel)
    labels = np.zeros((4, 64, 64), np.uint8)
    labels[1:3, 20:30, 10:20] = GGO  # 200 voxels
    lungs = np.zeros(labels.shape, bool)
    lungs[:, 10:50, 5:28] = True
    header = panel.table.horizontalHeaderItem
    for known, head, cell in ((False, "voxels", "200"), (True, "mL", "0.4")):
        g = Geometry(labels.shape, spacing=(2.0, 1.0, 1.0), spacing_known=known)
        rights = LungMasks.from_masks(np.zeros_like(lungs), lungs, g)
        panel.show_numbers(quantify(labels, g, rights))
        assert (header(0).text(), panel.cell("ggo", 0)) == (head, cell)
    panel.show_numbers(None)
    assert header(0).text() == "mL" and panel.cell("ggo", 0) == ""


def test_a_report_written_while_the_numbers_are_recounted_has_the_new_numbers(ready, qtbot, tmp_path):
    """An accept brings new lungs and a full recount (0.2 s on a stack); a report exported meanwhile used the
    last count's numbers (the old lungs) with the new lungs' method and the labels of now (QA pass: % of the
    right lung 17.0 instead of 15.2). It now counts the labels and lungs it writes."""
    from engine.anatomy import LungMasks
    from engine.quantification.numbers import quantify

    w = ready
    old = w.case.result
    lungs = w.case.lungs
    right = lungs.right.copy()
    xs = np.flatnonzero(right.any(axis=(0, 1)))
    right[:, :, (xs[0] + xs[-1]) // 2:] = False  # half the right lung: other percentages
    new = LungMasks.from_masks(lungs.left, right, w.session.volume.geometry)
    w.case.set_lungs(new)
    assert w.case.counting and w.case.result is old  # the recount runs; the panel still shows the last count
    out = tmp_path / "r.json"
    with qtbot.waitSignal(w.numbers.exported, timeout=60000):
        w.numbers.export(str(out))
    doc = json.loads(out.read_text())
    fresh = quantify(w.labels.array, w.session.volume.geometry, new, w.session.volume.array)
    assert fresh.findings["ggo"].percent_right != pytest.approx(old.findings["ggo"].percent_right)
    got = doc["numbers"]["findings"]["ggo"]
    assert got["percent_right"] == pytest.approx(fresh.findings["ggo"].percent_right)
    assert doc["numbers"]["lungs"]["right"]["voxels"] == fresh.lungs["right"]["voxels"] < old.lungs["right"]["voxels"]
    qtbot.waitUntil(lambda: not w.case.counting, timeout=30000)
    assert w.numbers.panel.cell("ggo", 3) == f"{fresh.findings['ggo'].percent_right:.1f}"
