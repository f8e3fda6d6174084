"""Run AI in the main window: progressive proposal, findings panel, slice strip.

``install(window)`` (called by :class:`app.main_window.MainWindow` through
``EXTENSIONS``) creates one :class:`AIController`, kept as ``window.ai``.

Data flow
---------
Run AI (toolbar, AI menu, Ctrl+R) starts :func:`run_ai` on a worker thread
(``window.run_worker``: progress bar with Cancel) with the model chosen in the toolbar's
selector. The engine's :meth:`engine.inference.Predictor.iter_predict` segments the slice
on screen first, then outwards; each finished slab crosses to the GUI thread through a
queued Qt signal and lands in the :class:`app.ai_state.ProposalModel`, which the
:class:`~app.ai_widgets.ProposalOverlay` (an extra image item per view), the
:class:`~app.ai_widgets.FindingsPanel` and the :class:`~app.ai_widgets.SliceStrip`
mirror. The user keeps scrolling, windowing and switching views meanwhile: the GUI
thread only copies slabs and repaints. The label layer is untouched until the user
accepts (Enter): the labels then go through the editing flow as one undo step named
"AI segmentation" (``window.editing.editor.apply_ai_result``). Esc rejects; Cancel
drops everything the run produced.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QScrollArea

from engine.errors import ModelError
from engine.progress import as_progress, check_cancel
from engine.types import Volume

from .ai_state import ProposalModel, finding_counts
from .ai_widgets import FindingsPanel, ProposalOverlay, SliceStrip
from .worker import Task, error_message

if TYPE_CHECKING:  # pragma: no cover
    from engine.inference import Predictor

    from .main_window import MainWindow

log = logging.getLogger(__name__)

#: selector key of the weight-free intensity-rule model (demo and tests)
DEMO_MODEL = "intensity_rules"
#: torch is imported on a background thread this long after the window first shows, so
#: the first Run AI does not wait for it (~1.5 s) and the import's short GUI hitch falls
#: while the user is not yet reading
PRELOAD_DELAY_MS = 2000


def install(window: "MainWindow") -> "AIController":
    """Add Run AI, the findings panel and the slice strip to ``window``."""
    controller = AIController(window)
    window.ai = controller  # type: ignore[attr-defined]
    return controller


def models_dir() -> Path:
    """The registry's model folder, found without importing torch (the window must open fast)."""
    registry = sys.modules.get("engine.models.registry")
    if registry is not None:
        return Path(registry.MODELS_DIR)
    spec = importlib.util.find_spec("engine")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).resolve().parents[1] / "resources" / "models"


def segmentation_cards(folder: Optional[Path] = None) -> list[dict]:
    """Model cards (as dicts) of the segmentation models in the registry folder, by name.

    Reads the JSON cards directly: :mod:`engine.models` imports torch, which the window
    only loads when Run AI is first used.
    """
    cards = []
    for path in sorted((folder or models_dir()).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("task") == "segmentation" and data.get("name"):
            cards.append(data)
    return cards


def model_choices() -> list[tuple[str, str, str]]:
    """``(key, text, tooltip)`` for every segmentation model of the registry, then the demo model."""
    out = []
    for card in segmentation_cards():
        metrics = card.get("val_metrics") or {}
        dice = card_dice(metrics)
        text = f"{card['name']} v{card.get('version', '1')}" + (f" · Dice {dice:.2f}" if dice is not None
                                                                 else " · Dice n/a")
        tip = (f"{card.get('architecture', '?')}, trained on {card.get('trained_on') or 'n/a'}. "
               f"Validation: {_metric_text(metrics)}")
        out.append((card["name"], text, tip))
    out.append((DEMO_MODEL, "Intensity rules (demo, not a trained model)",
                "Labels ground-glass density (-700 to -250 HU) only; for demos and tests, not for reading."))
    return out


def card_dice(metrics: dict) -> Optional[float]:
    """Validation Dice from a model card's ``val_metrics`` (infection Dice, else the mean of classes)."""
    if not isinstance(metrics, dict):
        return None
    inf = metrics.get("infection")
    if isinstance(inf, dict) and isinstance(inf.get("dice"), (int, float)):
        return float(inf["dice"])
    classes = metrics.get("classes")
    if isinstance(classes, dict):
        values = [v["dice"] for v in classes.values() if isinstance(v, dict) and isinstance(v.get("dice"), (int, float))]
        if values:
            return float(sum(values) / len(values))
    if isinstance(metrics.get("dice"), (int, float)):
        return float(metrics["dice"])
    return None


def _metric_text(metrics: dict) -> str:
    classes = metrics.get("classes") if isinstance(metrics, dict) else None
    if isinstance(classes, dict):
        parts = [f"{k} Dice {v['dice']:.2f}" for k, v in classes.items()
                 if isinstance(v, dict) and isinstance(v.get("dice"), (int, float))]
        if parts:
            return ", ".join(parts)
    dice = card_dice(metrics)
    return f"Dice {dice:.2f}" if dice is not None else "none recorded"


def run_ai(volume: Volume, get_predictor: Callable[[], "Predictor"], visible_slice: int,
           deliver: Callable[[Any, Any], None], lungs: Any = None, progress: Any = None,
           cancel: Any = None) -> tuple[Any, Any, list[str]]:
    """Worker-thread body of Run AI: predict slab by slab, then quantify.

    ``get_predictor()`` is called here, so torch is imported off the GUI thread the first
    time. ``deliver(slab, counts)`` receives each :class:`engine.inference.Slab` and its
    voxels per finding and slice (counted here, off the GUI thread).
    """
    from engine.inference.summary import quantify_prediction

    report = as_progress(progress)
    report(0.0, "Loading the model")
    predictor = get_predictor()
    gen = predictor.iter_predict(volume, progress=report.sub(0.0, 0.95), cancel=cancel, order="center_out",
                                 visible_slice=visible_slice)
    while True:
        try:
            slab = next(gen)
        except StopIteration as stop:
            prediction = stop.value
            break
        deliver(slab, finding_counts(slab.labels))
    check_cancel(cancel)
    report(0.96, "Measuring the findings")
    quantification, notes = quantify_prediction(volume, prediction, lungs=lungs, cancel=cancel)
    report(1.0, "Done")
    return prediction, quantification, notes


class _SlabRelay(QObject):
    """Carries slabs from the worker thread to the GUI thread (queued connection)."""

    slab = Signal(int, object, object)


class AIController(QObject):
    """Run AI, the proposal's life cycle (accept / reject / cancel) and the AI widgets.

    Signals
    -------
    proposal_ready()
        a run completed and its proposal waits for Enter / Esc.
    run_ended(str)
        ``"accepted"``, ``"rejected"``, ``"cancelled"`` or ``"failed"``.
    """

    proposal_ready = Signal()
    run_ended = Signal(str)

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.window = window
        self.proposal = ProposalModel(self)
        self.task: Optional[Task] = None
        self._predictors: dict[str, "Predictor"] = {}
        self._relay = _SlabRelay(self)
        self._relay.slab.connect(self._on_slab)
        self.threads = max(1, (os.cpu_count() or 2) - 1)  # leave the GUI thread a core
        self.panel = FindingsPanel(self.proposal, window.session)
        self.panel.jump_requested.connect(self.jump_to_finding)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.panel)
        self.dock = window.add_dock(scroll, "AI findings")
        self.strip = SliceStrip(self.proposal, window.session)
        self.strip_dock = window.add_dock(self.strip, "Slice strip", Qt.DockWidgetArea.LeftDockWidgetArea)
        self.strip_dock.setMaximumWidth(90)
        self.overlay = ProposalOverlay(self.proposal, window.views, window.labels, window.session)
        self._build_actions()
        window.session.volume_changed.connect(self._on_volume)
        window.labels.changed.connect(self._on_labels_changed)
        self._numbers_connected = False
        self._update_actions()
        window.shown.connect(lambda: QTimer.singleShot(PRELOAD_DELAY_MS, self._preload))

    # -- actions --------------------------------------------------------------
    def _build_actions(self) -> None:
        w = self.window
        menu = w.menus["ai"]
        self.run_action = QAction("&Run AI", w)
        self.run_action.setShortcut(QKeySequence("Ctrl+R"))
        self.run_action.setToolTip("Segment GGO, consolidation and effusion with the chosen model (Ctrl+R)")
        self.run_action.triggered.connect(lambda _c=False: self.run())
        self.accept_action = QAction("&Accept AI proposal", w)
        self.accept_action.setShortcuts([QKeySequence(Qt.Key.Key_Return), QKeySequence(Qt.Key.Key_Enter)])
        self.accept_action.triggered.connect(lambda _c=False: self.accept())
        self.reject_action = QAction("Re&ject AI proposal", w)
        self.reject_action.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.reject_action.triggered.connect(lambda _c=False: self.reject())
        for action in (self.run_action, self.accept_action, self.reject_action):
            menu.addAction(action)
            w.addAction(action)
        menu.addSeparator()
        menu.addAction(self.dock.toggleViewAction())
        menu.addAction(self.strip_dock.toggleViewAction())
        self.selector = QComboBox()
        self.selector.setToolTip("Segmentation model used by Run AI (validation Dice from its model card)")
        self.reload_models()
        w.toolbar.addSeparator()
        w.toolbar.addWidget(self.selector)
        w.toolbar.addAction(self.run_action)

    def reload_models(self) -> None:
        """Fill the selector from the registry; keep the user's last choice."""
        saved = str(self.window.settings.value("ai/model", "") or "")
        self.selector.clear()
        for key, text, tip in model_choices():
            self.selector.addItem(text, key)
            self.selector.setItemData(self.selector.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        idx = self.selector.findData(saved)
        self.selector.setCurrentIndex(idx if idx >= 0 else 0)
        self.selector.currentIndexChanged.connect(
            lambda _i: self.window.settings.setValue("ai/model", self.selector.currentData()))

    @property
    def model_key(self) -> str:
        return str(self.selector.currentData())

    def select_model(self, key: str) -> None:
        idx = self.selector.findData(key)
        if idx < 0:
            raise ModelError(f"No segmentation model named '{key}'.")
        self.selector.setCurrentIndex(idx)

    def _update_actions(self) -> None:
        state = self.proposal.state
        self.run_action.setEnabled(self.window.session.volume is not None and state != "running")
        ready = state == "ready"
        self.accept_action.setEnabled(ready)
        self.reject_action.setEnabled(ready)
        # Esc rejects the proposal: the editing flow's Esc (cancel stroke) steps aside meanwhile
        editing = getattr(self.window, "editing", None)
        cancel_stroke = getattr(editing, "cancel_action", None)
        if cancel_stroke is not None:
            cancel_stroke.setEnabled(not ready)

    def _preload(self) -> None:
        """Import the inference modules (torch) on a daemon thread, off the GUI thread."""
        if "torch" in sys.modules:
            return

        def work() -> None:
            try:
                importlib.import_module("engine.inference")
            except Exception:  # noqa: BLE001 - Run AI reports a real failure later, with its message
                log.exception("preloading engine.inference failed")
        threading.Thread(target=work, name="lunglens-ai-preload", daemon=True).start()

    # -- run ------------------------------------------------------------------
    def predictor(self, key: Optional[str] = None) -> "Predictor":
        """The (cached) predictor of model ``key`` (default: the selected one); imports torch."""
        from engine.inference import Predictor

        key = key or self.model_key
        if key not in self._predictors:
            if key == DEMO_MODEL:
                from engine.inference.reference import intensity_model
                model: Any = intensity_model()
            else:
                model = key
            self._predictors[key] = Predictor(model, device="auto", threads=self.threads)
        return self._predictors[key]

    def run(self) -> Optional[Task]:
        """Start Run AI on the open scan from the slice on screen; returns the worker task."""
        volume = self.window.session.volume
        if volume is None:
            self.window.status_message("Open a scan first.")
            return None
        if self.proposal.state == "running":
            return self.task
        visible = int(self.window.session.cursor[0])
        run_id = self.proposal.start(volume.shape, self.selector.currentText())
        self.panel.set_status(f"Running {self.selector.currentText()} …")
        reporting = getattr(self.window, "reporting", None)
        lungs = getattr(reporting, "lungs", None)
        relay = self._relay

        def deliver(slab: Any, counts: Any, rid: int = run_id) -> None:  # worker thread
            relay.slab.emit(rid, slab, counts)

        key = self.model_key
        self.task = self.window.run_worker(
            run_ai, volume, lambda: self.predictor(key), visible, deliver, lungs, title="Run AI",
            on_result=lambda out, rid=run_id, v=volume: self._on_result(rid, v, out),
            on_error=lambda exc, rid=run_id: self._on_error(rid, exc),
            on_cancel=lambda rid=run_id: self._on_cancel(rid))
        self._update_actions()
        return self.task

    def cancel(self) -> None:
        """Stop the running Run AI (nothing it produced is kept)."""
        if self.task is not None:
            self.task.cancel()

    def _on_slab(self, run_id: int, slab: Any, counts: Any) -> None:
        self.proposal.add_slab(run_id, slab.z, slab.labels, slab.slice_probabilities, counts)

    def _on_result(self, run_id: int, volume: Volume, out: Any) -> None:
        if run_id != self.proposal.run_id or volume is not self.window.session.volume:
            return
        prediction, quantification, notes = out
        self.task = None
        self.proposal.finish(run_id, prediction, quantification, notes)
        t = prediction.timings
        self.panel.set_status(f"{self.proposal.model_title}: proposal ready in {t.get('total_s', 0):.1f} s. "
                              "Enter accepts it (one undo step), Esc rejects it.")
        self.window.status_message("AI proposal ready: Enter to accept, Esc to reject.")
        self._update_actions()
        self.proposal_ready.emit()

    def _on_error(self, run_id: int, exc: BaseException) -> None:
        if run_id != self.proposal.run_id:
            return
        self.task = None
        self.proposal.clear()
        self.panel.set_status("Run AI failed.")
        self._update_actions()
        self.window.show_error(error_message(exc))
        self.run_ended.emit("failed")

    def _on_cancel(self, run_id: int) -> None:
        if run_id != self.proposal.run_id:
            return
        self.task = None
        self.proposal.clear()
        self.panel.set_status("Run AI was cancelled; nothing was changed.")
        self.window.status_message("Run AI cancelled.")
        self._update_actions()
        self.run_ended.emit("cancelled")

    # -- proposal -------------------------------------------------------------
    def accept(self) -> bool:
        """Put the proposal on the label layer as one undo step named "AI segmentation"."""
        if self.proposal.state != "ready":
            return False
        prediction = self.proposal.prediction
        reporting = getattr(self.window, "reporting", None)
        if not self._numbers_connected and reporting is not None and hasattr(reporting, "numbers_changed"):
            reporting.numbers_changed.connect(self._on_numbers)  # installed after this flow
            self._numbers_connected = True
        self.proposal.mark_accepted()  # from here the counts follow the label layer
        editing = getattr(self.window, "editing", None)
        editor = getattr(editing, "editor", None)
        if editor is not None and editor.shape == prediction.labels.shape:
            editor.apply_ai_result(prediction.labels)
        else:  # no editing flow in this build: replace the layer (no undo available)
            self.window.labels.set_array(prediction.labels.copy(), "AI segmentation")
        if reporting is not None and hasattr(reporting, "use_prediction"):
            reporting.use_prediction(prediction)  # models for the report, lung-model lungs
        else:
            self.window.report_models = dict(prediction.models)  # type: ignore[attr-defined]
        self.panel.set_status("AI segmentation accepted (Ctrl+Z undoes it). Volumes follow your edits.")
        self.window.status_message("AI segmentation accepted.")
        self._update_actions()
        self.run_ended.emit("accepted")
        return True

    def reject(self) -> bool:
        """Drop the proposal; the labels stay as they were."""
        if self.proposal.state != "ready":
            return False
        self.proposal.clear()
        self.panel.set_status("AI proposal rejected; the labels were not changed.")
        self._update_actions()
        self.run_ended.emit("rejected")
        return True

    def _on_labels_changed(self, bbox: Any) -> None:
        """After acceptance the strip and jump buttons follow edits of the label layer."""
        if self.proposal.state != "accepted":
            return
        layer = self.window.labels.array
        z0, z1 = (0, layer.shape[0]) if bbox is None else (int(bbox[0]), int(bbox[1]))
        self.proposal.update_counts(layer, z0, z1)

    def _on_numbers(self, quantification: Any) -> None:
        """The reporting flow's live numbers of the label layer (mL, % of lung) after acceptance."""
        if self.proposal.state == "accepted" and quantification is not None:
            self.proposal.update_counts(self.window.labels.array, 0, 0, quantification)

    def jump_to_finding(self, index: int) -> None:
        """Move the cursor to the slice with most of finding ``index``, on its centre."""
        from engine.labels import FINDINGS
        z = self.proposal.peak_slice(index)
        if z is None:
            return
        c = self.proposal.centroid(z, FINDINGS[index])
        _, cy, cx = self.window.session.cursor
        y, x = c if c is not None else (cy, cx)
        self.window.session.set_cursor(z, y, x)

    def _on_volume(self, _volume: Any) -> None:
        """A new scan: stop a run and drop the proposal of the previous one."""
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if self.proposal.active:
            self.proposal.clear()
            self.panel.set_status("Press Run AI (Ctrl+R) to segment the findings.")
        self._update_actions()
