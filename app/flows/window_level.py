"""Window/level flow: preset actions on F-keys, typed values in the toolbar."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup, QKeySequence

from engine.display import GREY_8BIT, PRESETS

from ..context import AppContext
from ..widgets.window_level import WindowLevelWidget

#: preset key -> shortcut (digits 1..4 belong to the label tools)
PRESET_KEYS = {"lung": "F2", "mediastinum": "F3", "bone": "F4", "soft_tissue": "F5"}


class WindowLevelFlow(QObject):
    """Adds View > Window presets and the W/L spin boxes; presets are off for 8-bit scans."""

    def __init__(self, ctx: AppContext) -> None:
        window = ctx.actions.owner
        super().__init__(window)
        session = ctx.session
        menu = ctx.actions.menus["view"].addMenu("&Window")
        self.group = QActionGroup(self)
        self.actions: dict[str, QAction] = {}
        for key, wl in PRESETS.items():
            action = QAction(f"{wl.name} (W{wl.width:.0f} L{wl.level:.0f})", window)
            action.setShortcut(QKeySequence(PRESET_KEYS[key]))
            action.setIconText(wl.name)
            action.setToolTip(f"{wl.name} window (W{wl.width:.0f} L{wl.level:.0f}), {PRESET_KEYS[key]}")
            action.setCheckable(True)
            action.triggered.connect(lambda _c=False, k=key: session.apply_preset(k))
            self.group.addAction(action)
            menu.addAction(action)
            self.actions[key] = action
        self.widget = WindowLevelWidget(session)
        toolbar = ctx.actions.toolbar
        toolbar.addSeparator()
        for key in PRESETS:
            toolbar.addAction(self.actions[key])
        toolbar.addWidget(self.widget)
        session.window_changed.connect(self._mirror)
        session.volume_changed.connect(self._on_volume)

    def _mirror(self, wl: object) -> None:
        for key, action in self.actions.items():
            action.setChecked(PRESETS[key] == wl)

    def _on_volume(self, volume: object) -> None:
        is_hu = volume is None or getattr(volume, "is_hu", True)
        for action in self.actions.values():
            action.setEnabled(is_hu)
        tip = "" if is_hu else f"8-bit image: shown with the {GREY_8BIT.name} window"
        self.widget.setToolTip(tip)
