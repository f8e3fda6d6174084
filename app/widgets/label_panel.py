"""The label panel: one row per label (visible, colour, name, volume), opacity, fill/outline.

It mirrors :class:`app.state.label_layer.LabelLayer` and writes back through its setters
(STYLE rule 2); volumes are voxel counts times the voxel volume, in mL, or plain voxel
counts when the scan's spacing is unknown (PNG/JPG stacks).
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QColorDialog, QComboBox, QGridLayout, QHBoxLayout, QLabel, \
    QPushButton, QSlider, QVBoxLayout, QWidget

from engine.quantification.numbers import shown

from ..state.label_layer import LabelLayer
from ..state.session import Session


def volume_text(count: int, voxel_ml: Optional[float]) -> str:
    """``"12.3 mL"`` (spacing known) or ``"1234 vox"``: rounded as the Numbers panel and the report round
    (``shown``: "<0.1 mL" for a finding too small to show, never "0.0"), so one volume reads the same everywhere."""
    if voxel_ml is None:
        return f"{count} vox"
    return f"{shown(count * voxel_ml, count)} mL"


class LabelPanel(QWidget):
    """Label list with visibility, colour and volume; global opacity and fill/outline mode."""

    def __init__(self, labels: LabelLayer, session: Session, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.labels = labels
        self.session = session
        self.checks: dict[int, QCheckBox] = {}
        self.color_buttons: dict[int, QPushButton] = {}
        self.volume_labels: dict[int, QLabel] = {}
        grid = QGridLayout()
        grid.setColumnStretch(2, 1)
        for row, lab in enumerate(labels.table):
            check = QCheckBox()
            check.setToolTip(f"Show {lab.name} (while hidden, the editing tools do not change it)")
            check.toggled.connect(lambda on, v=lab.value: labels.set_visible(v, on))
            button = QPushButton()
            button.setFixedSize(22, 18)
            button.setToolTip(f"Change the colour of {lab.name}")
            button.clicked.connect(lambda _c=False, v=lab.value: self.pick_color(v))
            volume = QLabel()
            volume.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(check, row, 0)
            grid.addWidget(button, row, 1)
            grid.addWidget(QLabel(f"{lab.value}  {lab.name}"), row, 2)
            grid.addWidget(volume, row, 3)
            self.checks[lab.value] = check
            self.color_buttons[lab.value] = button
            self.volume_labels[lab.value] = volume
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setToolTip("Opacity of the label overlay")
        self.opacity.valueChanged.connect(lambda v: labels.set_opacity(v / 100.0))
        self.mode = QComboBox()
        self.mode.addItems(["Fill", "Outline"])
        self.mode.setToolTip("Draw labels filled or as outlines")
        self.mode.currentIndexChanged.connect(lambda i: labels.set_outline(i == 1))
        row = QHBoxLayout()
        row.addWidget(QLabel("Opacity"))
        row.addWidget(self.opacity, 1)
        row.addWidget(self.mode)
        lay = QVBoxLayout(self)
        lay.addLayout(grid)
        lay.addLayout(row)
        lay.addStretch(1)
        labels.appearance_changed.connect(self._mirror_appearance)
        labels.counts_changed.connect(self._mirror_counts)
        session.volume_changed.connect(lambda _v: self._mirror_counts())
        self._mirror_appearance()
        self._mirror_counts()

    def pick_color(self, value: int) -> None:
        """Ask for a new colour of label ``value`` (QColorDialog) and set it on the model."""
        r, g, b = self.labels.table[value].color
        color = QColorDialog.getColor(QColor(r, g, b), self, f"Colour of {self.labels.table[value].name}")
        if color.isValid():
            self.labels.set_color(value, (color.red(), color.green(), color.blue()))

    def _mirror_appearance(self) -> None:
        for value, check in self.checks.items():
            with QSignalBlocker(check):
                check.setChecked(self.labels.is_visible(value))
            r, g, b = self.labels.table[value].color
            self.color_buttons[value].setStyleSheet(
                f"background-color: rgb({r},{g},{b}); border: 1px solid #444;")
        with QSignalBlocker(self.opacity):
            self.opacity.setValue(int(round(self.labels.opacity * 100)))
        with QSignalBlocker(self.mode):
            self.mode.setCurrentIndex(1 if self.labels.outline else 0)

    def _mirror_counts(self) -> None:
        vol = self.session.volume
        counts = self.labels.counts()
        known = vol is not None and vol.geometry.spacing_known and counts.sum() == vol.array.size
        voxel_ml = vol.geometry.voxel_volume_ml if known else None
        for value, label in self.volume_labels.items():
            label.setText(volume_text(int(counts[value]), voxel_ml) if vol is not None else "")
