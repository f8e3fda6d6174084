"""The findings panel of Run AI; it only mirrors the :class:`app.state.proposal.ProposalModel`.

Per finding (every finding of :data:`engine.labels.FINDINGS`): a probability bar for the
current slice and for the whole scan, the volume in mL and % of lung, and a button that
jumps to the slice with most of it, and one that accepts that finding alone (per-finding
accept; a person's edits are kept); the COVID likelihood with its caveat.
"""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from engine.inference.summary import (COVID_CAVEAT, COVID_SHOW_IN_APP, SCAN_PROBABILITIES_VALIDATED,
                                      SCAN_PROBABILITY_NOTE)
from engine.labels import DEFAULT_TABLE, FINDING_KEYS, FINDINGS
from engine.quantification.numbers import shown

from ..state.proposal import ProposalModel
from ..state.session import Session


#: the COVID bar's heading; its caveat is the engine's one text (also in findings.json and the report)
COVID_TEXT = f"COVID-19 likelihood. {COVID_CAVEAT}"


def _bar(tooltip: str) -> QProgressBar:
    bar = QProgressBar()
    bar.setRange(0, 100)
    bar.setTextVisible(True)
    bar.setToolTip(tooltip)
    bar.setFixedHeight(16)
    return bar


def _set_bar(bar: QProgressBar, p: Optional[float], suffix: str = "") -> None:
    if p is None:
        bar.setValue(0)
        bar.setFormat("–")
        return
    bar.setValue(int(round(100 * float(p))))
    bar.setFormat(f"{100 * float(p):.0f} %{suffix}")


class FindingsPanel(QWidget):
    """Probabilities, volumes and jump buttons per finding, and the COVID likelihood.

    Signals
    -------
    jump_requested(int)
        the jump button of finding index 0 (GGO), 1 (consolidation) or 2 (effusion).
    accept_requested(int)
        the accept button of finding index 0, 1 or 2 (accept that finding of the proposal only).
    """

    jump_requested = Signal(int)
    accept_requested = Signal(int)

    def __init__(self, proposal: ProposalModel, session: Session, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.proposal = proposal
        self.session = session
        self.status = QLabel("Press Run AI (Ctrl+R) to segment the findings.")
        self.status.setWordWrap(True)
        grid = QGridLayout()
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        grid.setVerticalSpacing(2)
        grid.addWidget(QLabel("This slice"), 0, 0)
        grid.addWidget(QLabel("Whole scan"), 0, 1)
        self.slice_bars: list[QProgressBar] = []
        self.scan_bars: list[QProgressBar] = []
        self.volume_labels: list[QLabel] = []
        self.jump_buttons: list[QPushButton] = []
        self.accept_buttons: list[QPushButton] = []
        for i, lab in enumerate(FINDINGS):
            entry = DEFAULT_TABLE[lab]
            r = 1 + 3 * i
            name = QLabel(f"<span style='color: rgb{entry.color}'>■</span> <b>{entry.name}</b>")
            sbar = _bar(f"Probability that this slice shows {entry.name.lower()}")
            wbar = _bar(f"Probability that the scan shows {entry.name.lower()}")
            vol = QLabel("")
            jump = QPushButton("Go to")
            jump.setToolTip(f"Go to the slice with most {entry.name.lower()}")
            jump.setEnabled(False)
            jump.clicked.connect(lambda _c=False, k=i: self.jump_requested.emit(k))
            grid.addWidget(name, r, 0, 1, 2)
            accept = QPushButton("Accept")
            accept.setToolTip(f"Accept only the {entry.name.lower()} of the proposal; "
                              "voxels you painted or erased are kept")
            accept.setEnabled(False)
            accept.clicked.connect(lambda _c=False, k=i: self.accept_requested.emit(k))
            grid.addWidget(jump, r, 2)
            grid.addWidget(accept, r, 3)
            grid.addWidget(sbar, r + 1, 0)
            grid.addWidget(wbar, r + 1, 1)
            grid.addWidget(vol, r + 2, 0, 1, 4)
            self.slice_bars.append(sbar)
            self.scan_bars.append(wbar)
            self.volume_labels.append(vol)
            self.jump_buttons.append(jump)
            self.accept_buttons.append(accept)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        self.covid_title = QLabel(COVID_TEXT)
        self.covid_title.setWordWrap(True)
        self.covid_bar = _bar(COVID_CAVEAT)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        #: "not assessed" and why, or the RSNA category and the features that decided it
        self.reading = QLabel("")
        self.reading.setWordWrap(True)
        self.reading.setTextFormat(Qt.TextFormat.PlainText)
        lay = QVBoxLayout(self)
        lay.addWidget(self.status)
        lay.addWidget(self.reading)
        lay.addLayout(grid)
        lay.addWidget(line)
        lay.addWidget(self.covid_title)
        lay.addWidget(self.covid_bar)
        lay.addWidget(self.notes)
        lay.addStretch(1)
        self.voxel_ml: Optional[float] = None
        proposal.on_any_change(self.refresh)
        session.cursor_changed.connect(lambda _c: self._refresh_slice())
        self.refresh()

    def set_status(self, text: str) -> None:
        self.status.setText(text)

    def refresh(self) -> None:
        """Mirror the proposal: whole-scan bars, volumes, jump buttons, COVID bar."""
        p = self.proposal
        vol = self.session.volume
        self.voxel_ml = vol.geometry.voxel_volume_ml if vol is not None and vol.geometry.spacing_known else None
        pred = p.prediction
        q = p.quantification
        assessed = pred is None or bool(getattr(pred, "assessed", True))
        for i, lab in enumerate(FINDINGS):
            key = FINDING_KEYS[lab]
            done = lab in p.accepted_values
            self.accept_buttons[i].setEnabled(p.state == "ready" and assessed and not done)
            self.accept_buttons[i].setText("Dropped" if lab in p.dropped_values else
                                           "Accepted" if done or p.state == "accepted" else "Accept")
            if not p.active:
                _set_bar(self.scan_bars[i], None)
                self.volume_labels[i].setText("")
                self.jump_buttons[i].setEnabled(False)
                continue
            if not assessed:
                _set_bar(self.scan_bars[i], None)
                self.scan_bars[i].setFormat("not assessed")
            elif pred is not None and not SCAN_PROBABILITIES_VALIDATED:
                _set_bar(self.scan_bars[i], None)  # withheld: not validated on whole scans
                self.scan_bars[i].setFormat("not validated")
                self.scan_bars[i].setToolTip(SCAN_PROBABILITY_NOTE)
            elif pred is not None:
                _set_bar(self.scan_bars[i], pred.scan_probabilities.get(key))
            else:
                # the whole-scan value is estimated when the run ends, not a maximum of slices so far
                _set_bar(self.scan_bars[i], None)
                self.scan_bars[i].setFormat("after the run")
            if not assessed:  # no volume either (the panel's sentence says so)
                self.volume_labels[i].setText("not assessed")
                self.jump_buttons[i].setEnabled(False)
                continue
            n = int(p.counts[:, i].sum())
            text = _volume_text(n, self.voxel_ml)
            pct = q.findings[key].percent_of_lungs if q is not None else None
            if pct is not None:
                text += f" · {shown(pct, q.findings[key].voxels)} % of lung"
            elif p.state == "running":
                text += " …"
            self.volume_labels[i].setText(text)
            peak = p.peak_slice(i)
            self.jump_buttons[i].setEnabled(peak is not None)
            self.jump_buttons[i].setText("Go to" if peak is None else f"Go to {peak + 1}")
        # the COVID classifier's number is shown only when it is validated on volumes
        # (engine.inference.summary.COVID_SHOW_IN_APP); findings.json keeps it with its caveat
        self.covid_title.setVisible(COVID_SHOW_IN_APP)
        self.covid_bar.setVisible(COVID_SHOW_IN_APP)
        covid = pred.covid_probability if pred is not None and assessed else None
        _set_bar(self.covid_bar, covid)
        if pred is not None and covid is None:
            self.covid_bar.setFormat("no COVID classifier installed" if assessed else "not assessed")
        self.reading.setText(_reading_text(pred, p.rsna, p.edited_since_accept, bool(p.dropped_values))
                             if p.state in ("ready", "accepted") else "")
        self.notes.setText("\n".join(p.notes) if p.state in ("ready", "accepted") else "")
        self._refresh_slice()

    def _refresh_slice(self) -> None:
        p = self.proposal
        z = self.session.cursor[0]
        pred = p.prediction
        done = p.active and 0 <= z < p.processed.size and bool(p.processed[z])
        if pred is not None and not getattr(pred, "assessed", True):
            done = False  # no per-slice probability either
        for i, lab in enumerate(FINDINGS):
            edited = done and p.slice_edited(z, i)  # the AI's bar described this finding before a person changed it
            dropped = lab in p.dropped_values  # the bar would describe a finding that is not on the labels
            _set_bar(self.slice_bars[i], float(p.slice_probabilities[z, i]) if done and not edited and not dropped
                     else None)
            if done and (edited or dropped):
                self.slice_bars[i].setFormat("dropped" if dropped else "edited")


def _volume_text(voxels: int, voxel_ml: Optional[float]) -> str:
    """A finding's volume: mL (voxels without spacing); a finding too small to show at 0.1 mL reads "<0.1 mL",
    not "0.0 mL"."""
    return f"{voxels} vox" if voxel_ml is None else f"{shown(voxels * voxel_ml, voxels)} mL"


def _reading_text(pred: Any, rsna: Any, edited: bool = False, dropped: bool = False) -> str:
    """The sentence above the bars: why the scan was not assessed, or the RSNA category (withheld once the
    labels were edited after the AI's proposal was accepted, or some of its findings were dropped: it described
    the AI's labels)."""
    if pred is None:
        return ""
    if not getattr(pred, "assessed", True):
        reasons = "; ".join(r.rstrip(".") for r in getattr(pred, "not_assessed", []) or ["unknown reason"])
        return f"Not assessed: {reasons}. No probabilities, volumes or severity are given for this scan."
    parts = []
    if not getattr(pred, "presence_calibrated", True):
        parts.append("Probabilities are not calibrated for this model (python -m engine calibrate).")
    if rsna is not None and dropped:
        parts.append("RSNA category: withheld here since findings of the AI reading were dropped (it described "
                     "all of them); the report derives it from the labels kept.")
    elif rsna is not None and edited:
        parts.append("RSNA category: withheld here since the labels were edited after the AI reading (it "
                     "described the AI's labels); the report derives it from the edited labels.")
    elif rsna is not None:
        deciding = ", ".join(getattr(rsna, "deciding", [])[:4])
        parts.append(f"RSNA category: {rsna.category}" + (f" ({deciding})" if deciding else "") +
                     ". Derived from the segmented findings; nodules, cavitation and septal thickening are "
                     "not assessed. A reporting aid, not a diagnosis.")
    return "\n".join(parts)
