"""Run AI in the real main window, offscreen: proposal overlay, panel, strip, accept/undo, cancel, latency."""

from __future__ import annotations

import json

import gc
import os
import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtGui import QColor

from engine.labels import GGO
from engine.models.card import ModelCard

pytestmark = pytest.mark.gui

SHAPE = (64, 128, 128)


@pytest.fixture
def window(make_window, qtbot):
    w = make_window(flows=None, size=(1300, 850))
    w.scan_io.open_phantom(SHAPE)
    qtbot.waitUntil(lambda: bool(w.errors or (w.session.volume is not None and w.labels.name)), timeout=60000)
    assert not w.errors
    qtbot.waitUntil(lambda: not w.runner.active, timeout=60000)  # the lungs are found at open
    return w


def empty_labels(w):
    w.labels.set_array(np.zeros(SHAPE, dtype=np.uint8), "empty")


def run_demo(w, qtbot):
    from app.flows.ai import DEMO_MODEL
    w.ai.select_model(DEMO_MODEL)
    with qtbot.waitSignal(w.ai.proposal_ready, timeout=60000):
        w.ai.run()
    return w.ai.proposal.prediction


def pixel_color(view, zyx) -> tuple[int, int, int]:
    scene = view.view_box.mapViewToScene(view.scene_point(zyx))
    img = view.grab().toImage()
    c = QColor(img.pixel(view.mapFromScene(scene)))
    return c.red(), c.green(), c.blue()


def test_run_ai_shows_a_proposal_then_accept_is_one_undo_step(window, qtbot):
    w = window
    empty_labels(w)
    ai = w.ai
    pred = run_demo(w, qtbot)
    assert ai.proposal.state == "ready"
    assert not w.labels.array.any()  # nothing on the label layer before accepting
    # the demo model finds the phantom's GGO (see tests/test_inference.py for the Dice bound)
    ph = w.session.volume
    assert pred.labels.shape == ph.shape and (pred.labels == GGO).sum() > 100

    # panel values mirror the prediction
    panel = ai.panel
    # whole-scan values are withheld on screen until validated on whole scans (findings.json keeps them)
    assert [bar.text() for bar in panel.scan_bars] == ["not validated"] * 3
    assert "not validated on whole scans" in panel.scan_bars[0].toolTip()
    voxel_ml = ph.geometry.voxel_volume_ml
    ml = (pred.labels == GGO).sum() * voxel_ml
    assert panel.volume_labels[0].text().startswith(f"{ml:.1f} mL")
    q = ai.proposal.quantification
    if q is not None and q.findings["ggo"].percent_of_lungs is not None:
        assert f"{q.findings['ggo'].percent_of_lungs:.1f} % of lung" in panel.volume_labels[0].text()
    assert "UCSD" in panel.covid_title.text() and "not a diagnosis" in panel.covid_title.text()

    # jump to the slice with most GGO: cursor on the GGO, overlay pixels cyan there (the proposal
    # is drawn as the change it would make: cyan adds, not in the finding colours)
    ai.jump_to_finding(0)
    z, y, x = w.session.cursor
    assert z == pred.peak_slice(GGO)
    assert pred.labels[z, y, x] == GGO
    assert panel.slice_bars[0].value() == int(round(100 * pred.slice_probabilities[z, 0]))
    view = w.views.axial
    item = ai.overlay.items[view.plane]
    assert item.isVisible()
    ggo_y, ggo_x = np.argwhere(pred.labels[z] == GGO)[len(np.argwhere(pred.labels[z] == GGO)) // 2]
    w.session.set_crosshair_visible(False)
    r, g, b = pixel_color(view, (z, ggo_y, ggo_x))
    assert b > r + 60 and g > r + 60  # cyan (would be added) over grey lung

    # slice strip: GGO column lit on the GGO slices, a click jumps
    strip = ai.strip
    img = strip.image()[::-1]  # back to z order
    has = (pred.labels == GGO).any(axis=(1, 2))
    assert (img[has, 0, :3] == (255, 220, 0)).all() and not (img[~has, 0, :3] == (255, 220, 0)).all(axis=1).any()
    target = int(np.flatnonzero(has)[0])
    ypix = int((SHAPE[0] - 1 - target + 0.5) / SHAPE[0] * strip.height())
    qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=QPoint(strip.width() // 2, ypix))
    assert w.session.cursor[0] == target

    # Enter accepts: labels = prediction, one undo step named "AI segmentation"
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert ai.proposal.state == "accepted" and not item.isVisible()
    assert np.array_equal(w.labels.array, pred.labels)
    editor = w.editing.editor
    assert editor.history.undo_name == "AI segmentation"
    assert w.case.models["segmentation"]["name"] == "intensity_rules"
    # the probabilities stay on show; volumes and the strip now follow the label layer
    assert panel.scan_bars[0].text() == "not validated"
    assert panel.volume_labels[0].text().startswith(f"{ml:.1f} mL")
    qtbot.waitUntil(lambda: w.numbers.result is not None
                    and w.numbers.result.findings["ggo"].voxels == (pred.labels == GGO).sum(), timeout=30000)
    if w.numbers.result.findings["ggo"].percent_of_lungs is not None:
        pct = w.numbers.result.findings["ggo"].percent_of_lungs
        qtbot.waitUntil(lambda: f"{pct:.1f} % of lung" in panel.volume_labels[0].text(), timeout=10000)
    w.editing.undo()
    assert not w.labels.array.any()
    assert ai.proposal.counts.sum() == 0 and not panel.jump_buttons[0].isEnabled()
    assert not (strip.image()[:, 0, :3] == (255, 220, 0)).all(axis=1).any()


def test_escape_rejects_and_labels_stay(window, qtbot):
    w = window
    before = w.labels.array.copy()
    run_demo(w, qtbot)
    w.views.axial.setFocus()
    qtbot.keyClick(w.views.axial, Qt.Key.Key_Escape)
    assert w.ai.proposal.state == "idle"
    assert np.array_equal(w.labels.array, before)
    assert w.editing.cancel_action.isEnabled()  # the editing flow's Esc is back


class SlowModel(torch.nn.Module):
    """Pixelwise GGO rule plus a delay per forward pass, so a run can be cancelled mid-way."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        from engine.inference.reference import IntensityModel
        self.inner = IntensityModel()
        self.delay = delay

    def forward(self, x):
        time.sleep(self.delay)
        return self.inner(x)


def slow_predictor(w, delay):
    from engine.inference import Predictor
    from engine.models.registry import LoadedModel
    card = ModelCard(name="slow_rules", task="segmentation", architecture="test", input_size=(128, 128),
                     extra={"multiple": 1})
    model = LoadedModel(SlowModel(delay).eval(), card, torch.device("cpu"), torch.float32)
    return Predictor(model, device="cpu", findings_model=False, covid_model=False, batch_size=4, threads=1)


def test_cancel_mid_way_leaves_scan_and_labels_unchanged(window, qtbot, monkeypatch):
    w = window
    scan_before = w.session.volume.array.copy()
    labels_before = w.labels.array.copy()
    predictor = slow_predictor(w, 0.15)
    monkeypatch.setattr(w.ai, "predictor", lambda key=None: predictor)
    seen = []
    w.ai.proposal.slab_added.connect(lambda z: seen.append(z))
    w.ai.run()
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=30000)
    assert w.ai.overlay.items[w.views.axial.plane].isVisible() or not w.ai.proposal.labels[w.session.cursor[0]].any()
    with qtbot.waitSignal(w.ai.run_ended, timeout=30000) as blocker:
        w.progress.cancel()  # the status bar's Cancel button
    assert blocker.args == ["cancelled"]
    assert w.ai.proposal.state == "idle"
    assert not any(item.isVisible() for item in w.ai.overlay.items.values())
    assert np.array_equal(w.session.volume.array, scan_before)
    assert np.array_equal(w.labels.array, labels_before)
    assert w.editing.editor.history.undo_name is None  # no step was recorded
    assert len(seen) < 16  # it stopped long before the end (61 slices in batches of 4)


def test_gui_stays_responsive_while_the_ai_runs(window, qtbot, monkeypatch):
    """A 10 ms QTimer keeps firing on time (lateness < 100 ms) while the user scrolls."""
    from engine.inference import Predictor
    from engine.models.registry import LoadedModel, build
    w = window
    torch.manual_seed(0)
    net = build("unet", {"base": 16, "depth": 3}).eval()
    card = ModelCard(name="busy_unet", task="segmentation", architecture="unet", input_size=(128, 128))
    predictor = Predictor(LoadedModel(net, card, torch.device("cpu"), torch.float32), device="cpu",
                          findings_model=False, covid_model=False, threads=w.ai.threads, batch_size=4)
    monkeypatch.setattr(w.ai, "predictor", lambda key=None: predictor)
    lateness: list[float] = []
    last = [time.perf_counter()]
    step = [1]

    def tick():
        now = time.perf_counter()
        lateness.append(now - last[0] - 0.010)
        last[0] = now
        z = w.session.cursor[0]
        if z in (5, SHAPE[0] - 6):
            step[0] = -step[0]
        w.session.step_cursor(0, step[0])  # the user scrolls through the scan meanwhile

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    gc.collect()  # garbage of earlier tests is not the app's pause
    with qtbot.waitSignal(w.ai.proposal_ready, timeout=120000):
        w.ai.run()
        last[0] = time.perf_counter()
        timer.start()
    timer.stop()
    assert len(lateness) > 20
    worst = max(lateness[1:])
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    if worst >= 0.100 and load > 1.5 * cores:
        # other processes hold the cores: the OS, not the app, delays the GUI thread
        pytest.xfail(f"late by {worst * 1000:.0f} ms on an overloaded machine (load {load:.1f}, {cores} cores)")
    at = int(np.argmax(lateness[1:])) + 1
    assert worst < 0.100, (f"event loop blocked for {worst * 1000:.0f} ms at tick {at} of {len(lateness)} "
                           f"(load {load:.1f})")


def test_model_selector_lists_registry_models_with_dice(window, tmp_path, monkeypatch):
    from engine.models import card as card_module
    from engine.models import registry
    folder = tmp_path / "models"
    torch.manual_seed(0)
    for name, dice in (("unet_a", 0.71), ("segnet_b", 0.64)):
        card = ModelCard(name=name, task="segmentation", architecture="unet", config={"base": 4, "depth": 2},
                         val_metrics={"infection": {"dice": dice}, "classes": {"ggo": {"dice": dice - 0.1}}})
        registry.save(registry.build("unet", {"base": 4, "depth": 2}), card, folder)
    clf = ModelCard(name="clf", task="findings", architecture="classifier", classes=("ggo", "consolidation", "effusion"))
    clf.save(folder / "clf.json")
    monkeypatch.setattr(card_module, "MODELS_DIR", folder)  # the model cards' folder, read without torch
    w = window
    w.ai.reload_models()
    texts = [w.ai.selector.itemText(i) for i in range(w.ai.selector.count())]
    # per-finding Dice, not the binary infection figure (0.71) that hides weak findings
    assert "unet_a v1 · Dice GGO 0.61" in texts and "segnet_b v1 · Dice GGO 0.54" in texts
    assert not any(t.startswith("clf") for t in texts)  # classifiers are not segmentation models
    assert texts[-1].startswith("Intensity rules")
    assert w.ai.run_action.shortcut().toString() == "Ctrl+R"
    assert w.ai.run_action in w.toolbar.actions() and w.ai.run_action in w.menus["ai"].actions()


def test_run_ai_and_every_tool_are_on_screen_at_1280_px(window, qtbot):
    """At a laptop width nothing a reader or annotator needs folds into a toolbar's overflow menu."""
    w = window
    w.resize(1280, 850)
    qtbot.waitUntil(lambda: w.width() == 1280, timeout=5000)
    needed = [(w.toolbar, w.scan_io.open_action), (w.toolbar, w.ai.run_action)]
    needed += [(w.tools_toolbar, a) for a in w.editing.tool_actions.values()]
    needed += [(w.tools_toolbar, a) for a in w.reading.tool_actions.values()]
    assert len(needed) >= 9
    for bar, action in needed:
        button = bar.widgetForAction(action)
        assert button is not None and button.isVisible(), action.text()
        assert bar.geometry().contains(button.geometry().translated(bar.geometry().topLeft()))
    assert w.ai.run_action.isEnabled()  # a scan is open


class SolidRule(torch.nn.Module):
    """Labels solid density (-100 to +150 HU) consolidation, pixel by pixel: a nodule becomes 'consolidation'."""

    def forward(self, x):
        from engine.preprocessing.normalize import unit_to_hu
        hu = unit_to_hu(x[:, :1])
        other = torch.full_like(hu, -20.0)
        return torch.cat([torch.zeros_like(hu), other, 0.05 * torch.minimum(hu + 100.0, 150.0 - hu), other], 1)


def test_a_nodule_read_as_consolidation_is_a_notice(make_window, qtbot, monkeypatch, tmp_path):
    """A 23 mm solid ball in the aerated right lung of the phantom: set aside, named in Notices and the panel."""
    from engine.anatomy import lung_masks
    from engine.inference import Predictor
    from engine.models.registry import LoadedModel
    from engine.phantom import chest_ct
    from engine.types import Volume
    ph = chest_ct(shape=SHAPE, seed=3)
    lungs = lung_masks(ph.volume)
    z = 30
    ys, xs = np.nonzero(lungs.right[z])
    centre = np.array([z, np.median(ys), np.median(xs)]) * np.asarray(ph.volume.geometry.spacing)
    grid = np.stack(np.meshgrid(*(np.arange(n) * s for n, s in zip(SHAPE, ph.volume.geometry.spacing)),
                                indexing="ij"), -1)
    ball = np.linalg.norm(grid - centre, axis=-1) <= 9.0
    assert lungs.right[ball].all()
    arr = ph.volume.array.copy()
    arr[ball] = 40
    w = make_window(flows=None, size=(1300, 850))
    w.scan_io.show_volume(Volume(arr, ph.volume.geometry, is_hu=True))
    qtbot.waitUntil(lambda: not w.runner.active, timeout=60000)   # the lungs are found at open
    card = ModelCard(name="solid_rule", task="segmentation", architecture="test", input_size=(128, 128),
                     extra={"multiple": 1})
    predictor = Predictor(LoadedModel(SolidRule().eval(), card, torch.device("cpu"), torch.float32), device="cpu",
                          findings_model=False, covid_model=False, threads=1)
    monkeypatch.setattr(w.ai, "predictor", lambda key=None: predictor)
    with qtbot.waitSignal(w.ai.proposal_ready, timeout=60000):
        w.ai.run()
    pred = w.ai.proposal.prediction
    assert len(pred.nodules) == 1 and ball.sum() <= pred.nodules[0].voxels <= ball.sum() + 10  # + its edge
    assert pred.nodules[0].slices == (29, 31)
    notice = pred.nodules[0].notice
    assert notice.startswith("Solid nodule / mass of 23 mm at slices 30-32: not assessed by this model")
    assert notice in w.notices.warnings                     # View > Notices
    assert notice in w.ai.panel.notes.text()                # the findings panel's notes
    assert not (pred.labels[ball] == 2).any()               # not counted as consolidation
    # the report exported from the app names it too, also after the labels were edited
    w.labels.write((0, 1, 0, 2, 0, 2), np.ones((1, 2, 2), np.uint8))
    out = tmp_path / "report.json"
    with qtbot.waitSignal(w.numbers.exported, timeout=60000):
        w.numbers.export(str(out))
    doc = json.loads(out.read_text())
    assert doc["notes"].count(notice) == 1


def test_the_gate_uses_the_lung_distances_made_when_the_scan_opened(window, qtbot, monkeypatch):
    """The lungs found at open carry the gate's lung part; Run AI's gate does not recompute it."""
    from engine.inference import gate_parts
    if torch.cuda.is_available():
        pytest.skip("checks the host gate; a CUDA machine gates on the device (tests/test_gate.py checks that one)")
    w = window
    lungs = w.case.lungs
    assert lungs is not None and lungs.__dict__.get("_gate_prep") is not None
    made = []
    real = gate_parts._distance_masks
    monkeypatch.setattr(gate_parts, "_distance_masks", lambda *a: made.append(1) or real(*a))
    empty_labels(w)
    pred = run_demo(w, qtbot)
    assert pred.labels.any() and "outside_lungs" in pred.rules_removed
    assert made == []  # the gate ran on the findings with the distances made at open
    # and the reading equals one whose gate made them itself
    lungs.__dict__.pop("_gate_prep")
    again = run_demo(w, qtbot)
    assert made == [1] and np.array_equal(again.labels, pred.labels)
    assert again.rules_removed == pred.rules_removed


def test_the_selected_model_is_loaded_when_a_scan_opens(make_window, qtbot, monkeypatch):
    """The first Run AI finds its models loaded (off the GUI thread, after the scan opened), and a
    press while the preload still loads waits for it rather than loading a second copy."""
    import threading

    from app.flows import ai as ai_flow
    from engine.inference.predictor import Predictor
    monkeypatch.setenv("LUNGLENS_PRELOAD_MODELS", "1")
    monkeypatch.setattr(ai_flow, "PRELOAD_DELAY_MS", 10)
    loads: list[str] = []
    real = Predictor.load

    def load(self):
        if self._nets is None:
            loads.append(threading.current_thread().name)
        return real(self)
    monkeypatch.setattr(Predictor, "load", load)
    w = make_window(flows=None, size=(1300, 850))
    w.ai.select_model(ai_flow.DEMO_MODEL)
    assert w.ai._predictors == {}
    w.scan_io.open_phantom(SHAPE)
    qtbot.waitUntil(lambda: loads == ["lunglens-model-preload"], timeout=60000)
    qtbot.waitUntil(lambda: w.ai._predictors[ai_flow.DEMO_MODEL]._nets is not None, timeout=60000)
    preloaded = w.ai._predictors[ai_flow.DEMO_MODEL]
    pred = run_demo(w, qtbot)
    assert loads == ["lunglens-model-preload"]  # Run AI loaded nothing itself
    assert w.ai.predictor() is preloaded and (pred.labels == GGO).sum() > 100
    # another model chosen: it is loaded in turn, and the one left is forgotten (its memory freed)
    other = next(w.ai.selector.itemData(i) for i in range(w.ai.selector.count())
                 if w.ai.selector.itemData(i) != ai_flow.DEMO_MODEL)
    w.ai.select_model(other)
    qtbot.waitUntil(lambda: len(loads) == 2 and getattr(w.ai._predictors.get(other), "_nets", None) is not None,
                    timeout=60000)
    assert loads == ["lunglens-model-preload"] * 2 and list(w.ai._predictors) == [other]


def test_run_ai_pressed_while_the_lungs_are_found_waits_for_them(make_window, qtbot, monkeypatch):
    """A press right after the open (the lungs still being found) does not search them a second
    time: the reading waits for the case's search and uses its lungs."""
    import threading

    import app.state.case as case_module
    from app.flows.ai import DEMO_MODEL
    from engine.inference import background
    release = threading.Event()
    real = case_module.find_lungs

    def slow(volume, progress=None, cancel=None):
        release.wait(60)
        return real(volume, progress=progress, cancel=cancel)
    monkeypatch.setattr(case_module, "find_lungs", slow)
    searched: list[int] = []
    monkeypatch.setattr(background, "lung_masks", lambda *a, **k: searched.append(1))
    w = make_window(flows=None, size=(1300, 850))
    w.scan_io.open_phantom(SHAPE)
    qtbot.waitUntil(lambda: w.session.volume is not None and w.case.lungs_pending, timeout=60000)
    empty_labels(w)
    w.ai.select_model(DEMO_MODEL)
    w.ai.run()
    qtbot.waitUntil(lambda: w.ai.proposal.counts.sum() > 0, timeout=60000)  # slabs arrive meanwhile
    assert w.ai.proposal.state == "running" and w.case.lungs is None
    release.set()
    qtbot.waitUntil(lambda: w.ai.proposal.state == "ready", timeout=60000)
    assert searched == [] and w.case.lungs is not None
    assert w.ai.proposal.prediction.assessed and (w.ai.proposal.prediction.labels == GGO).sum() > 100


def test_the_slice_strip_goes_to_the_clicked_slice_before_any_run(window, qtbot):
    """QA pass: before Run AI every click on the strip went to slice 1 (it counted the proposal's slices: none),
    and no current-slice line was drawn."""
    w = window
    strip = w.ai.strip
    assert w.ai.proposal.processed.size == 0 and strip.image().shape[0] == SHAPE[0]
    for target in (SHAPE[0] - 1, SHAPE[0] // 2, 3):
        ypix = int((SHAPE[0] - 1 - target + 0.5) / SHAPE[0] * strip.height())
        qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=QPoint(strip.width() // 2, ypix))
        assert w.session.cursor[0] == target
    row = SHAPE[0] - 1 - 3  # the white current-slice line at slice 4 (image row 0 = the top)
    img = strip.grab().toImage()
    y = int((row + 0.5) / SHAPE[0] * strip.height())
    assert QColor(img.pixel(strip.width() // 2, y)).red() == 255
