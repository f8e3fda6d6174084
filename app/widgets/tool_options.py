"""The editing options panel: tool, label, brush size, paint-over mode, HU range, islands,
and the mL each finding gained or lost by hand since the last AI result.

It mirrors :class:`~app.state.tool_settings.ToolSettings` and writes back through its setters
(STYLE rule 2); updates from the model are applied with signals blocked.
"""

from __future__ import annotations

from typing import Iterable, Optional

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QWidget

from engine.editing import THRESHOLD_PRESETS
from engine.labels import DEFAULT_TABLE

from ..state.tool_settings import MAX_RADIUS_MM, MIN_RADIUS_MM, ToolSettings

MODES = (("everything", "Everything"), ("background", "Background only"), ("label", "Only label…"))


class OptionsPanel(QWidget):
    """Form of editing options; ``set_tool`` and ``set_hand_edits`` are fed by the editing flow.

    The rows a tool does not use (its ``options``) are disabled while it is active.
    """

    def __init__(self, settings: ToolSettings, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.settings = settings
        form = QFormLayout(self)
        self.tool_label = QLabel("Navigate")
        form.addRow("Tool", self.tool_label)
        self.label_combo = QComboBox()
        for lab in DEFAULT_TABLE:
            self.label_combo.addItem(f"{lab.value}  {lab.name}", lab.value)
        self.label_combo.setToolTip("Label to paint (keys 1-3)")
        self.label_combo.currentIndexChanged.connect(
            lambda i: settings.set_label(self.label_combo.itemData(i)))
        form.addRow("Label", self.label_combo)
        self.radius = QDoubleSpinBox()
        self.radius.setRange(MIN_RADIUS_MM, MAX_RADIUS_MM)
        self.radius.setDecimals(2)
        self.radius.setSuffix(" mm")
        self.radius.setToolTip("Brush radius (- or [ smaller, + or ] larger, Shift+wheel)")
        self.radius.valueChanged.connect(settings.set_radius_mm)
        form.addRow("Brush radius", self.radius)
        self.mode_combo = QComboBox()
        for key, text in MODES:
            self.mode_combo.addItem(text, key)
        self.over_combo = QComboBox()
        for lab in DEFAULT_TABLE:
            self.over_combo.addItem(lab.name, lab.value)
        self.mode_combo.currentIndexChanged.connect(self._mode_edited)
        self.over_combo.currentIndexChanged.connect(self._mode_edited)
        row = QHBoxLayout()
        row.addWidget(self.mode_combo)
        row.addWidget(self.over_combo)
        form.addRow("Paint over", row)
        self.preset_combo = QComboBox()
        self.preset_combo.addItem("Custom", "")
        for key in THRESHOLD_PRESETS:
            self.preset_combo.addItem(DEFAULT_TABLE.by_key(key).name, key)
        self.preset_combo.currentIndexChanged.connect(self._preset_chosen)
        self.lo = QDoubleSpinBox()
        self.hi = QDoubleSpinBox()
        for spin in (self.lo, self.hi):
            spin.setRange(-3000, 5000)
            spin.setDecimals(0)
            spin.setSuffix(" HU")
            spin.valueChanged.connect(lambda _v: settings.set_hu_range(self.lo.value(), self.hi.value()))
        hu = QHBoxLayout()
        hu.addWidget(self.lo)
        hu.addWidget(self.hi)
        form.addRow("Threshold preset", self.preset_combo)
        form.addRow("Threshold range", hu)
        self.island = QDoubleSpinBox()
        self.island.setRange(0.0, 1000.0)
        self.island.setDecimals(3)
        self.island.setSuffix(" mL")
        self.island.setToolTip("Remove small islands: pieces smaller than this are erased")
        self.island.valueChanged.connect(self._island_edited)
        form.addRow("Smallest island", self.island)
        #: option key -> the widgets of its row (a tool's ``options`` names these keys)
        self.rows: dict[str, tuple[QWidget, ...]] = {
            "label": (self.label_combo,), "radius": (self.radius,),
            "paint_over": (self.mode_combo, self.over_combo), "threshold": (self.preset_combo, self.lo, self.hi)}
        self._options: Optional[frozenset[str]] = None
        self._is_hu = True
        self._voxels_per_ml: Optional[float] = None
        self.hand_edits = QLabel("—")
        self.hand_edits.setWordWrap(True)
        self.hand_edits.setToolTip("Changed by hand since the last AI result")
        form.addRow("By hand", self.hand_edits)
        settings.changed.connect(self.sync)
        self.sync()

    def set_tool(self, title: str, options: Optional[Iterable[str]] = None) -> None:
        """Show the active tool; only the rows of its ``options`` are enabled (all when ``None``)."""
        self.tool_label.setText(title)
        self._options = None if options is None else frozenset(options)
        self._enable_rows()

    def _enable_rows(self) -> None:
        for key, widgets in self.rows.items():
            on = self._options is None or key in self._options
            for w in widgets:
                w.setEnabled(on)
        if self._options is None or "paint_over" in self._options:
            self.over_combo.setEnabled(self.settings.mode == "label")
        if not self._is_hu:
            self.preset_combo.setEnabled(False)

    def set_units(self, spacing_known: bool, is_hu: bool, voxel_ml: float) -> None:
        """Units follow the scan: mm and mL with a known spacing, voxels otherwise; HU on CT, grey levels
        0-255 on 8-bit images (the HU presets are then off and the range is reset to the grey scale)."""
        self._voxels_per_ml = None if spacing_known else 1.0 / max(voxel_ml, 1e-12)
        self.radius.setSuffix(" mm" if spacing_known else " vox")
        self.radius.setToolTip(f"Brush radius in {'mm' if spacing_known else 'voxels (the spacing is unknown)'}"
                               " (- or [ smaller, + or ] larger, Shift+wheel)")
        with QSignalBlocker(self.island):
            self.island.setSuffix(" mL" if spacing_known else " vox")
            self.island.setDecimals(3 if spacing_known else 0)
            self.island.setRange(0.0, 1000.0 if spacing_known else 1e9)
        was_hu, self._is_hu = self._is_hu, is_hu
        for spin in (self.lo, self.hi):
            spin.setSuffix(" HU" if is_hu else " grey")
        self.preset_combo.setToolTip("" if is_hu else "The presets are HU ranges; this 8-bit image has grey "
                                                      "levels 0-255: set the range by hand")
        if is_hu != was_hu:
            if is_hu:
                self.settings.apply_preset(next(iter(THRESHOLD_PRESETS)))
            else:
                self.settings.set_hu_range(0, 255)
        self._enable_rows()
        self.sync()

    def set_hand_edits(self, changes: dict[str, dict[str, float]], unknown: bool = False) -> None:
        """Show ``LabelEditor.person_changes_ml()`` (in voxels when the spacing is unknown); ``unknown``: the labels
        came from a file that does not record who edited them, and nobody edited them since."""
        per_ml = self._voxels_per_ml
        lines = [f"{DEFAULT_TABLE.by_key(k).name}: +{v['added_ml']:.2f} / -{v['removed_ml']:.2f} mL" if per_ml is None
                 else f"{DEFAULT_TABLE.by_key(k).name}: +{v['added_ml'] * per_ml:.0f} / "
                      f"-{v['removed_ml'] * per_ml:.0f} voxels"
                 for k, v in changes.items() if v["added_ml"] or v["removed_ml"]]
        self.hand_edits.setText("\n".join(lines) if lines else
                                "unknown (the label file does not record it)" if unknown else "no hand edits")

    def sync(self) -> None:
        """Mirror the settings (signals blocked, so nothing is written back)."""
        s = self.settings
        widgets = (self.label_combo, self.radius, self.mode_combo, self.over_combo, self.lo, self.hi,
                   self.island, self.preset_combo)
        blockers = [QSignalBlocker(w) for w in widgets]
        self.label_combo.setCurrentIndex(self.label_combo.findData(s.label))
        self.radius.setValue(s.radius_mm)
        self.mode_combo.setCurrentIndex(self.mode_combo.findData(s.mode))
        self.over_combo.setCurrentIndex(self.over_combo.findData(s.over_label))
        self.over_combo.setEnabled(s.mode == "label" and (self._options is None or "paint_over" in self._options))
        self.lo.setValue(s.hu_range[0])
        self.hi.setValue(s.hu_range[1])
        per_ml = self._voxels_per_ml
        self.island.setValue(s.island_ml if per_ml is None else round(s.island_ml * per_ml))
        preset = next((k for k, r in THRESHOLD_PRESETS.items() if tuple(r) == tuple(s.hu_range)), "")
        self.preset_combo.setCurrentIndex(self.preset_combo.findData(preset))
        del blockers

    def _island_edited(self, value: float) -> None:
        per_ml = self._voxels_per_ml
        self.settings.set_island_ml(value if per_ml is None else value / per_ml)

    def _mode_edited(self, _index: int) -> None:
        self.settings.set_mode(self.mode_combo.currentData(), self.over_combo.currentData())

    def _preset_chosen(self, index: int) -> None:
        key = self.preset_combo.itemData(index)
        if key:
            self.settings.apply_preset(key)
