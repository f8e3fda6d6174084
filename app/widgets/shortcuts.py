"""Help > Shortcuts: every menu action with a shortcut, plus the mouse gestures."""

from __future__ import annotations

from typing import Iterable, Optional

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QTableWidget, QTableWidgetItem, \
    QVBoxLayout, QWidget

#: gestures of the slice views (see app.views.slice_view), shown after the menu shortcuts
VIEW_GESTURES = (
    ("Wheel up / down, Up / Down, Left / Right", "Previous / next slice"),
    ("Page Up / Page Down", "Ten slices back / forward (as the wheel up / down)"),
    ("Shift + wheel", "Brush size (up: larger)"),
    ("Left click or drag", "Move the crosshair (all views follow)"),
    ("Shift + left drag", "Window (left-right) and level (up-down)"),
    ("Ctrl + wheel, right drag", "Zoom"),
    ("Middle drag", "Pan"),
    ("Double click", "This view alone / three views"),
)


def shortcut_rows(actions: Iterable[QAction]) -> list[tuple[str, str]]:
    """``(keys, what)`` for each action with a shortcut, then :data:`VIEW_GESTURES`."""
    rows = []
    seen = set()
    for action in actions:
        keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts())
        if not keys or (keys, action.text()) in seen:
            continue
        seen.add((keys, action.text()))
        rows.append((keys, action.text().replace("&", "").rstrip("…")))
    return rows + list(VIEW_GESTURES)


class ShortcutsDialog(QDialog):
    """A two-column table of keys and what they do."""

    def __init__(self, rows: list[tuple[str, str]], parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard and mouse shortcuts")
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(["Keys", "Action"])
        for r, (keys, what) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(keys))
            self.table.setItem(r, 1, QTableWidgetItem(what))
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.resizeColumnToContents(0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)
        lay.addWidget(buttons)
        self.resize(560, 520)
