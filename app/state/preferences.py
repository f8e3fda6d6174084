"""Persistent user preferences (QSettings, organisation "LungLens") and the Open Recent list.

Set the environment variable ``LUNGLENS_SETTINGS`` to an ``.ini`` path to keep settings
in that file instead of the user's profile (tests do this so they never touch it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, QSettings, Signal

from engine.editing import DEFAULT_MAX_BYTES, DEFAULT_MIN_STEPS, History

from .pacs import PacsSettings

ORGANISATION = "LungLens"
APPLICATION = "LungLens"
ENV_SETTINGS = "LUNGLENS_SETTINGS"
#: settings keys of the undo memory budget (MB) and of the steps always kept
UNDO_BUDGET_KEY, UNDO_MIN_STEPS_KEY = "editing/undo_budget_mb", "editing/undo_min_steps"
#: settings key of the model Run AI uses
AI_MODEL_KEY = "ai/model"
EXPORT_DIR_KEY = "export/last_dir"


def make_settings() -> QSettings:
    """The settings store: the ini file named by ``$LUNGLENS_SETTINGS``, else the user profile."""
    path = os.environ.get(ENV_SETTINGS)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(ORGANISATION, APPLICATION)


class RecentFiles(QObject):
    """Most recently opened scans, newest first, at most :attr:`limit` entries.

    Signals
    -------
    changed()
        the list changed.
    """

    changed = Signal()
    KEY = "recent/scans"

    def __init__(self, settings: QSettings, limit: int = 10, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._settings = settings
        self.limit = limit

    def paths(self) -> list[str]:
        value = self._settings.value(self.KEY, [])
        if isinstance(value, str):  # QSettings returns a bare string for one entry
            value = [value]
        return [str(v) for v in (value or [])]

    def add(self, path: str) -> None:
        """Put ``path`` (made absolute) at the top of the list."""
        path = str(Path(path).resolve())
        items = [path] + [p for p in self.paths() if p != path]
        self._settings.setValue(self.KEY, items[: self.limit])
        self._settings.sync()
        self.changed.emit()

    def remove(self, path: str) -> None:
        self._settings.setValue(self.KEY, [p for p in self.paths() if p != path])
        self._settings.sync()
        self.changed.emit()

    def clear(self) -> None:
        self._settings.setValue(self.KEY, [])
        self._settings.sync()
        self.changed.emit()


class Preferences:
    """The user's preferences: the settings store, Open Recent, the PACS and typed accessors."""

    def __init__(self, settings: QSettings, parent: Optional[QObject] = None) -> None:
        self.settings = settings
        self.recent = RecentFiles(settings, parent=parent)
        #: the PACS server (its password or token is kept in memory only, see :mod:`app.state.pacs`)
        self.pacs = PacsSettings(settings, parent=parent)

    def new_history(self) -> History:
        """An undo history with the budget of the settings (``editing/undo_budget_mb``, default 512,
        and ``editing/undo_min_steps``, default 10)."""
        mb = float(self.settings.value(UNDO_BUDGET_KEY, DEFAULT_MAX_BYTES / 2 ** 20))
        steps = int(self.settings.value(UNDO_MIN_STEPS_KEY, DEFAULT_MIN_STEPS))
        return History(max_bytes=int(mb * 2 ** 20), min_steps=steps)

    @property
    def ai_model(self) -> str:
        return str(self.settings.value(AI_MODEL_KEY, "") or "")

    def set_ai_model(self, key: str) -> None:
        self.settings.setValue(AI_MODEL_KEY, key)

    @property
    def export_dir(self) -> str:
        """Folder of the last export, or the user's documents folder (never the scan's folder)."""
        from PySide6.QtCore import QStandardPaths

        saved = str(self.settings.value(EXPORT_DIR_KEY, "") or "")
        if saved and Path(saved).is_dir():
            return saved
        docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        return docs if docs and Path(docs).is_dir() else str(Path.home())

    def set_export_dir(self, folder: str) -> None:
        """Remember ``folder`` as the place of the last export."""
        self.settings.setValue(EXPORT_DIR_KEY, str(folder))
