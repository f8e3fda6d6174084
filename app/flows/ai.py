"""Run AI in the main window: progressive proposal, findings panel, slice strip.

Data flow
---------
Run AI (toolbar, AI menu, Ctrl+R) runs the engine's reading pipeline
(:func:`engine.inference.pipeline.iter_read`, the same one ``python -m engine predict``
uses) on a worker thread with the model chosen in the toolbar's selector and the case's
lungs. The pipeline reads the slice on screen first, then outwards; each finished slab
(with its per-slice finding counts) is yielded, crosses to the GUI thread as the worker
task's ``yielded`` signal and lands in the :class:`app.state.proposal.ProposalModel`,
which the :class:`~app.views.proposal_overlay.ProposalOverlay`, the
:class:`~app.widgets.findings_panel.FindingsPanel` and the
:class:`~app.widgets.slice_strip.SliceStrip` mirror. The user keeps scrolling, windowing
and switching views meanwhile. The label layer is untouched until the user accepts
(Enter): the proposal is merged into the labels (:func:`engine.editing.assist.merge_proposal`:
every voxel a person painted or erased keeps its value, strokes made while the model ran
included) as one undo step named "AI segmentation" of the layer's editor, and the case
records the reading's models and lungs. The findings panel's Accept buttons and the AI
menu's "Accept only" entries take one finding at a time. Until then the overlay shows
the difference accepting would make. Esc rejects (the rest); Cancel drops everything the
run produced.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Callable, Generator, Optional

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QComboBox, QScrollArea

from engine.editing.assist import merge_proposal, proposal_changes
from engine.errors import ModelError
from engine.inference.pipeline import Reading, SlabReading, SlicePredictor, iter_read
from engine.labels import DEFAULT_TABLE, FINDINGS
from engine.models.card import ModelCard, list_cards
from engine.types import Volume

from ..context import AppContext
from ..state.proposal import ProposalModel
from ..state.tasks import Task, error_message
from ..views.proposal_overlay import ProposalOverlay
from ..views.view_set import ViewSet
from ..widgets.findings_panel import FindingsPanel
from ..widgets.slice_strip import SliceStrip

log = logging.getLogger(__name__)

#: selector key of the weight-free intensity-rule model (demo and tests)
DEMO_MODEL = "intensity_rules"
#: torch is imported on a background thread this long after the window first shows, so
#: the first Run AI does not wait for it (~1.5 s) and the import's short GUI hitch falls
#: while the user is not yet reading
PRELOAD_DELAY_MS = 2000
#: ``LUNGLENS_PRELOAD_MODELS=0`` turns off loading the selected model when a scan opens (tests do)
PRELOAD_MODELS_ENV = "LUNGLENS_PRELOAD_MODELS"


def model_choices() -> list[tuple[str, str, str]]:
    """``(key, text, tooltip)`` for every segmentation model of the registry, then the demo model.

    The cards are read without importing torch (:func:`engine.models.card.list_cards`).
    """
    out = []
    for card in list_cards(task="segmentation"):
        text = f"{card.name} v{card.version} · {_picker_dice(card)}"
        tip = f"{card.architecture}, trained on {card.trained_on or 'n/a'}. Validation: {_metric_text(card)}"
        out.append((card.name, text, tip))
    out.append((DEMO_MODEL, "Intensity rules (demo, not a trained model)",
                "Labels ground-glass density (-700 to -250 HU) only; for demos and tests, not for reading."))
    return out


#: short names of the findings in the model picker
_SHORT = {"ggo": "GGO", "consolidation": "cons", "effusion": "eff"}


def _picker_dice(card: ModelCard) -> str:
    """Per-finding validation Dice for the picker ("GGO 0.62 cons 0.43 eff 0.00"): the binary
    infection Dice alone would hide a finding the model never finds."""
    per = card.class_dice()
    if per:
        return "Dice " + " ".join(f"{_SHORT.get(k, k)} {v['dice']:.2f}" for k, v in per.items())
    dice = card.validation_dice
    return f"infection Dice {dice:.2f}" if dice is not None else "Dice n/a"


def _metric_text(card: ModelCard) -> str:
    parts = [f"{k} Dice {v['dice']:.2f}" for k, v in card.class_dice().items()]
    if parts:
        return ", ".join(parts)
    dice = card.validation_dice
    return f"Dice {dice:.2f}" if dice is not None else "none recorded"


#: ``make_predictor(model_key, threads)``: the seam where a remote or batch predictor replaces the local one
PredictorFactory = Callable[[str, int], SlicePredictor]


def local_predictor(key: str, threads: int) -> SlicePredictor:
    """The local torch :class:`engine.inference.Predictor` of registry model ``key`` (imports torch).

    Run AI shows labels, not probability maps: none are kept (236 MB for 512x512x300).
    """
    from engine.inference import Predictor

    if key == DEMO_MODEL:
        from engine.inference.reference import intensity_model
        return Predictor(intensity_model(), device="auto", threads=threads, keep_probabilities=False)
    return Predictor(key, device="auto", threads=threads, keep_probabilities=False)


def read_scan(volume: Volume, get_predictor: Callable[[], SlicePredictor], visible_slice: int, lungs: Any = None,
              progress: Any = None, cancel: Any = None) -> Generator[SlabReading, None, Reading]:
    """Worker-thread body of Run AI: the engine's reading pipeline.

    ``get_predictor()`` is called here, so torch is imported off the GUI thread the first time.
    """
    predictor = get_predictor()
    return (yield from iter_read(volume, predictor, lungs=lungs, visible_slice=visible_slice, progress=progress,
                                 cancel=cancel))


class AIFlow(QObject):
    """Run AI, the proposal's life cycle (accept / reject / cancel) and the AI widgets.

    Parameters
    ----------
    ctx
        The window's context (the case gives the lungs and takes the accepted reading).
    views
        The slice views (the proposal is drawn over them).
    shown
        The window's first-shown signal (torch is preloaded some time after it).
    make_predictor
        Builds the predictor of a model key (default :func:`local_predictor`).

    Signals
    -------
    proposal_ready()
        a run completed and its proposal waits for Enter / Esc.
    run_ended(str)
        ``"accepted"``, ``"rejected"``, ``"cancelled"`` or ``"failed"``.
    escape_claimed(bool)
        Esc rejects the proposal (True) or is free for other flows again (False).
    """

    proposal_ready = Signal()
    run_ended = Signal(str)
    escape_claimed = Signal(bool)

    def __init__(self, ctx: AppContext, views: ViewSet, shown: Any,
                 make_predictor: PredictorFactory = local_predictor) -> None:
        super().__init__(ctx.actions.owner)
        self.ctx = ctx
        self.make_predictor = make_predictor
        self.proposal = ProposalModel(self)
        self.task: Optional[Task] = None
        self._predictors: dict[str, SlicePredictor] = {}
        self._predictor_lock = threading.Lock()  # the GUI, Run AI's worker and the preload thread ask
        self._load_locks: dict[str, threading.Lock] = {}  # one per model: a press waits only for its own
        self._preloads: list[threading.Thread] = []  # the process waits for them before it exits
        #: load the selected model a while after a scan opens (off in scripted screenshot runs)
        self.preload_models = True
        self.threads = max(1, (os.cpu_count() or 2) - 1)  # leave the GUI thread a core
        self.reading: Optional[Reading] = None
        #: the case's lungs before the first per-finding accept of the proposal (a 1-tuple; None: none yet)
        self._lungs_before: Optional[tuple[Any]] = None
        self.panel = FindingsPanel(self.proposal, ctx.session)
        self.panel.jump_requested.connect(self.jump_to_finding)
        self.panel.accept_requested.connect(lambda i: self.accept({FINDINGS[i]}))
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.panel)
        self.dock = ctx.actions.dock(scroll, "AI findings")
        self.strip = SliceStrip(self.proposal, ctx.session)
        self.strip_dock = ctx.actions.dock(self.strip, "Slice strip", Qt.DockWidgetArea.LeftDockWidgetArea)
        self.strip_dock.setMaximumWidth(90)
        self.overlay = ProposalOverlay(self.proposal, views, ctx.labels, ctx.session)
        self._build_actions()
        ctx.session.volume_changed.connect(self._on_volume)
        ctx.labels.changed.connect(self._on_labels_changed)
        ctx.labels.history_changed.connect(self._on_history)
        ctx.case.numbers_changed.connect(self._on_numbers)
        self._update_actions()
        shown.connect(lambda: QTimer.singleShot(PRELOAD_DELAY_MS, self._preload))

    # -- actions --------------------------------------------------------------
    def _build_actions(self) -> None:
        a = self.ctx.actions
        menu = a.menus["ai"]
        self.run_action = a.action("&Run AI", self.run, QKeySequence("Ctrl+R"), "ai",
                                   tip="Segment the findings with the chosen model (Ctrl+R)")
        self.accept_action = a.action("&Accept AI proposal", self.accept,
                                      (QKeySequence(Qt.Key.Key_Return), QKeySequence(Qt.Key.Key_Enter)), "ai")
        self.reject_action = a.action("Re&ject AI proposal (Esc)", self.reject, None, "ai")  # Esc: app.flows.keys
        for action in (self.run_action, self.accept_action, self.reject_action):
            a.owner.addAction(action)
        only = menu.addMenu("Accept &only")
        self.accept_only_actions = []
        for lab in FINDINGS:
            act = a.action(f"{DEFAULT_TABLE[lab].name}", lambda v=lab: self.accept({v}))
            only.addAction(act)
            self.accept_only_actions.append(act)
        menu.addSeparator()
        menu.addAction(self.dock.toggleViewAction())
        menu.addAction(self.strip_dock.toggleViewAction())
        self.selector = QComboBox()
        self.selector.setToolTip("Segmentation model used by Run AI (validation Dice from its model card)")
        self.reload_models()
        a.toolbar.addSeparator()
        a.toolbar.addWidget(self.selector)
        a.toolbar.addAction(self.run_action)

    def reload_models(self) -> None:
        """Fill the selector from the registry; keep the user's last choice."""
        saved = self.ctx.preferences.ai_model
        self.selector.clear()
        for key, text, tip in model_choices():
            self.selector.addItem(text, key)
            self.selector.setItemData(self.selector.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        idx = self.selector.findData(saved)
        self.selector.setCurrentIndex(idx if idx >= 0 else 0)
        self.selector.currentIndexChanged.connect(lambda _i: self._on_model_chosen())

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
        self.run_action.setEnabled(self.ctx.session.volume is not None and state != "running")
        ready = state == "ready"
        # a reading that was not assessed proposes no finding: nothing to accept (Esc / Reject drop it)
        assessed = bool(getattr(self.proposal.prediction, "assessed", True))
        self.accept_action.setEnabled(ready and assessed)
        self.reject_action.setEnabled(ready)
        for lab, act in zip(FINDINGS, self.accept_only_actions):
            act.setEnabled(ready and assessed and lab not in self.proposal.accepted_values)
        self.escape_claimed.emit(ready)  # Esc rejects the proposal: the stroke's Esc steps aside meanwhile

    def _preload(self) -> None:
        """Import the inference modules (torch) on a daemon thread, off the GUI thread."""
        if "torch" in sys.modules:
            return

        def work() -> None:
            try:
                import engine.inference.predictor  # noqa: F401 (imports torch)
            except Exception:  # noqa: BLE001 - Run AI reports a real failure later, with its message
                log.exception("preloading engine.inference failed")
        self._start_preload(work, "lunglens-ai-preload")

    def _preload_model(self) -> None:
        """Load the selected model (weights, ONNX Runtime session; the first time on a machine, its
        ONNX export) on a daemon thread, a while after a scan opens: the first Run AI then starts
        at once and takes no more memory than a second one (issue 15). The scan's lungs are
        being found meanwhile, the same way."""
        if (self.ctx.session.volume is None or not self.preload_models
                or os.environ.get(PRELOAD_MODELS_ENV, "1") == "0"):
            return
        key = self.model_key

        def work() -> None:
            try:
                self.loaded_predictor(key)
            except Exception:  # noqa: BLE001 - Run AI reports a real failure later, with its message
                log.exception("preloading model %s failed", key)
        self._start_preload(work, "lunglens-model-preload")

    def _start_preload(self, work: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=work, name=name, daemon=True)
        self._preloads = [t for t in self._preloads if t.is_alive()] + [thread]
        thread.start()

    def wait_for_preloads(self, timeout_s: float) -> bool:
        """Wait at most ``timeout_s`` for the preload threads; True when none still runs. The
        application exits at once (``os._exit``) otherwise: the interpreter's teardown under a
        thread inside torch's or ONNX Runtime's C++ code aborts the process."""
        end = time.monotonic() + timeout_s
        for thread in list(self._preloads):
            thread.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._preloads)

    # -- run ------------------------------------------------------------------
    def predictor(self, key: Optional[str] = None) -> SlicePredictor:
        """The (cached) predictor of model ``key`` (default: the selected one); may import torch."""
        key = key or self.model_key
        with self._predictor_lock:
            if key not in self._predictors:
                self._predictors[key] = self.make_predictor(key, self.threads)
            return self._predictors[key]

    def loaded_predictor(self, key: Optional[str] = None) -> SlicePredictor:
        """:meth:`predictor` with its models loaded (once: a Run AI that starts while the preload
        loads waits for it instead of loading a second copy)."""
        key = key or self.model_key
        predictor = self.predictor(key)
        load = getattr(predictor, "load", None)
        if load is not None:
            with self._predictor_lock:
                lock = self._load_locks.setdefault(key, threading.Lock())
            with lock:
                load()
        return predictor

    def _on_model_chosen(self) -> None:
        """Another model was chosen: forget the others (a run keeps its own) and load this one."""
        if self.selector.currentData() is None:  # the list is being refilled
            return
        key = self.model_key
        self.ctx.preferences.set_ai_model(key)
        with self._predictor_lock:
            self._predictors = {k: v for k, v in self._predictors.items() if k == key}
        QTimer.singleShot(PRELOAD_DELAY_MS, self._preload_model)

    def run(self) -> Optional[Task]:
        """Start Run AI on the open scan from the slice on screen; returns the worker task."""
        self._lungs_before = None
        volume = self.ctx.session.volume
        if volume is None:
            self.ctx.notices.status("Open a scan first.")
            return None
        if self.proposal.state == "running":
            return self.task
        visible = int(self.ctx.session.cursor[0])
        run_id = self.proposal.start(volume.shape, self.selector.currentText())
        self.panel.set_status(f"Running {self.selector.currentText()} …")
        key, case = self.model_key, self.ctx.case  # lungs still being found: Run AI waits for them
        self.task = self.ctx.run(
            read_scan, volume, lambda: self.loaded_predictor(key), visible,
            case.lungs if case.lungs is not None else case.pending_lungs(), title="Run AI",
            on_yield=lambda part, rid=run_id: self._on_slab(rid, part),
            on_result=lambda out, rid=run_id, v=volume: self._on_result(rid, v, out),
            on_error=lambda exc, rid=run_id: self._on_error(rid, exc),
            on_cancel=lambda rid=run_id: self._on_cancel(rid))
        self._update_actions()
        return self.task

    def cancel(self) -> None:
        """Stop the running Run AI (nothing it produced is kept)."""
        if self.task is not None:
            self.task.cancel()

    def _on_slab(self, run_id: int, part: SlabReading) -> None:
        slab = part.slab
        self.proposal.add_slab(run_id, slab.z, slab.labels, slab.slice_probabilities, part.counts)

    def _on_result(self, run_id: int, volume: Volume, reading: Reading) -> None:
        if run_id != self.proposal.run_id or volume is not self.ctx.session.volume:
            return
        prediction = reading.prediction
        self.task = None
        self.reading = reading
        self.proposal.finish(run_id, prediction, reading.quantification, reading.notes,
                             getattr(reading, "rsna", None))
        assessed = bool(getattr(prediction, "assessed", True))
        nodules = list(getattr(prediction, "nodules", None) or [])
        self.ctx.case.set_assessment(assessed, list(getattr(prediction, "not_assessed", [])),
                                     [n.notice for n in nodules])
        if not assessed:
            self.ctx.notices.warn("Not assessed by the AI: " + "; ".join(prediction.not_assessed) + ".")
        for nodule in nodules:  # not pneumonia: set aside, to review
            self.ctx.notices.warn(nodule.notice)
        t = prediction.timings
        self.panel.set_status(f"{self.proposal.model_title}: proposal ready in {t.get('total_s', 0):.1f} s. "
                              "Shown as changes (cyan adds, magenta removes, blue changes a finding). "
                              "Enter accepts it, keeping every voxel you painted or erased (one undo step); "
                              "Accept takes one finding; Esc rejects it.")
        self.ctx.notices.status("AI proposal ready: Enter to accept, Esc to reject.")
        self._update_actions()
        self.proposal_ready.emit()

    def _on_error(self, run_id: int, exc: BaseException) -> None:
        if run_id != self.proposal.run_id:
            return
        self.task = None
        self.proposal.clear()
        self.panel.set_status("Run AI failed.")
        self._update_actions()
        self.ctx.notices.error(error_message(exc))
        self.run_ended.emit("failed")

    def _on_cancel(self, run_id: int) -> None:
        if run_id != self.proposal.run_id:
            return
        self.task = None
        self.proposal.clear()
        self.panel.set_status("Run AI was cancelled; nothing was changed.")
        self.ctx.notices.status("Run AI cancelled.")
        self._update_actions()
        self.run_ended.emit("cancelled")

    # -- proposal -------------------------------------------------------------
    def accept(self, values: Optional[set[int]] = None) -> bool:
        """Merge the proposal into the label layer as one undo step; a person's voxels are kept.

        ``values`` accepts those findings only (per-finding accept); the rest of the proposal
        keeps waiting until every finding is accepted, or Enter (the rest) or Esc (drop the rest).
        Voxels a person painted or erased, strokes made while the model ran included, keep their
        value and stay counted as a person's edits.
        """
        if self.proposal.state != "ready":
            return False
        prediction = self.proposal.prediction
        if not bool(getattr(prediction, "assessed", True)):  # an empty proposal: accepting it would erase labels
            self.panel.set_status("Not assessed: there is nothing to accept; the labels were not changed.")
            return False
        editor = self.ctx.labels.editor
        if editor is None or editor.shape != prediction.labels.shape:
            return False
        if editor.stroke_active:
            self.ctx.notices.status("Finish the stroke, then accept the AI proposal.")
            return False
        remaining = set(FINDINGS) - self.proposal.accepted_values
        if values is None and self.proposal.accepted_values:
            values = remaining  # Enter after a per-finding accept: the rest
        person = editor.person_mask()
        merged = merge_proposal(editor.labels, prediction.labels, person, values)
        changes = proposal_changes(editor.labels, merged, prediction.labels, person)
        if values is None:
            name = "AI segmentation"
        else:
            name = "AI " + ", ".join(DEFAULT_TABLE[v].name for v in sorted(values))
        step = editor.apply_ai_result(merged, name, keep_person=person)
        if step is not None:
            self.proposal.accepted_steps.append(step.id)
        kept = (f" {changes.kept_by_person:,} voxels you edited were kept." if changes.kept_by_person else "")
        known = DEFAULT_TABLE.values
        replaced = [f"{int(n):,} voxels of {DEFAULT_TABLE[v].name if v in known else f'label {v}'}"
                    for v, n in enumerate(changes.removed) if n]  # labels that were there before
        if replaced:  # labels opened from a file carry no provenance (NIfTI): say what the AI replaced
            kept += " It replaced " + ", ".join(replaced) + " that were on the labels."
        finished = values is None or not (remaining - set(values))
        if finished:
            self._lungs_before = None
            self.proposal.mark_accepted(*self._layer_numbers())  # from here the counts follow the label layer
            reading = self.reading
            self.ctx.case.accept_reading(dict(prediction.models), reading.lungs if reading is not None else None,
                                         self.proposal.accepted_steps)
            self.panel.set_status("AI segmentation accepted (Ctrl+Z undoes it). Volumes follow your edits." + kept)
            self.ctx.notices.status("AI segmentation accepted." + kept)
            self.run_ended.emit("accepted")
        else:
            self.proposal.note_accepted(set(values), None if step is None else step.id)
            # its voxels are on the labels now: the model is credited at once, and the reading's lungs count them
            # (the case's open-time lungs gave the Numbers panel another % of lung than the AI panel: QA pass)
            reading = self.reading
            if self._lungs_before is None:  # given back if every accept is undone and the rest rejected
                self._lungs_before = (self.ctx.case.lungs,)
            self.ctx.case.accept_reading(dict(prediction.models), reading.lungs if reading is not None else None,
                                         self.proposal.accepted_steps)
            self.panel.set_status(f"{name} accepted (Ctrl+Z undoes it).{kept} Enter accepts the rest of the "
                                  "proposal, Esc drops the rest.")
            self.ctx.notices.status(f"{name} accepted.{kept}")
        self._update_actions()
        return True

    def reject(self) -> bool:
        """Drop the proposal; the labels stay as they were."""
        if self.proposal.state != "ready":
            return False
        if self.proposal.accepted_values:  # part of it is on the labels: keep its numbers, drop the rest
            had = {lab for i, lab in enumerate(FINDINGS) if self.proposal.counts[:, i].any()}  # in the proposal
            self.proposal.dropped_values = had - self.proposal.accepted_values
            self.proposal.mark_accepted(*self._layer_numbers())
            reading, prediction = self.reading, self.proposal.prediction
            self.ctx.case.accept_reading(dict(prediction.models), reading.lungs if reading is not None else None,
                                         self.proposal.accepted_steps)
            self.panel.set_status("The rest of the AI proposal was dropped; the findings you accepted stay.")
            self._update_actions()
            self.run_ended.emit("accepted")
            return True
        self.proposal.clear()
        if self._lungs_before is not None:  # accepts of this proposal were undone: the lungs before them again
            self.ctx.case.set_lungs(self._lungs_before[0])
            self._lungs_before = None
        self.panel.set_status("AI proposal rejected; the labels were not changed.")
        self._update_actions()
        self.run_ended.emit("rejected")
        return True

    def _layer_numbers(self) -> tuple[Any, Any]:
        """The label layer and its live numbers (``None`` while a count runs), for the panel after an accept."""
        case = self.ctx.case
        return self.ctx.labels.array, None if case.counting else case.result

    def _on_history(self) -> None:
        """Undo / redo while the rest of the proposal waits: findings accepted one by one follow their steps."""
        ed = self.ctx.labels.editor
        if ed is not None and self.proposal.follow_history(ed.history.is_done):
            self._update_actions()

    def _on_labels_changed(self, bbox: Any) -> None:
        """After acceptance the strip and jump buttons follow edits of the label layer."""
        if self.proposal.state != "accepted":
            return
        layer = self.ctx.labels.array
        z0, z1 = (0, layer.shape[0]) if bbox is None else (int(bbox[0]), int(bbox[1]))
        self.proposal.update_counts(layer, z0, z1, edited=True)

    def _on_numbers(self, quantification: Any) -> None:
        """The case's live numbers of the label layer (mL, % of lung) after acceptance."""
        if self.proposal.state == "accepted" and quantification is not None:
            self.proposal.update_counts(self.ctx.labels.array, 0, 0, quantification)

    def jump_to_finding(self, index: int) -> None:
        """Move the cursor to the slice with most of finding ``index``, on its centre."""
        z = self.proposal.peak_slice(index)
        if z is None:
            return
        c = self.proposal.centroid(z, FINDINGS[index])
        _, cy, cx = self.ctx.session.cursor
        y, x = c if c is not None else (cy, cx)
        self.ctx.session.set_cursor(z, y, x)

    def _on_volume(self, volume: Any) -> None:
        """A new scan: stop a run and drop the proposal of the previous one; load the model."""
        self._lungs_before = None
        if volume is not None:
            QTimer.singleShot(PRELOAD_DELAY_MS, self._preload_model)
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if self.proposal.active:
            self.proposal.clear()
            self.panel.set_status("Press Run AI (Ctrl+R) to segment the findings.")
        self._update_actions()
