"""View menu: layouts, reset view, crosshair, label display mode."""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup, QKeySequence

from ..context import AppContext
from ..views.view_set import ViewSet

LAYOUT_ACTIONS = (("three", "&Three views", "Ctrl+1"), ("axial", "&Axial only", "Ctrl+2"),
                  ("coronal", "&Coronal only", "Ctrl+3"), ("sagittal", "&Sagittal only", "Ctrl+4"))


class ViewActionsFlow(QObject):
    """Layout actions mirror ``session.layout``; Home resets zoom and pan in every view."""

    def __init__(self, ctx: AppContext, views: ViewSet) -> None:
        window = ctx.actions.owner
        super().__init__(window)
        self.session = ctx.session
        self.views = views
        session = ctx.session
        labels = ctx.labels
        menu = ctx.actions.menus["view"]
        layout_menu = menu.addMenu("&Layout")
        self.group = QActionGroup(self)
        self.layout_actions: dict[str, QAction] = {}
        for key, text, shortcut in LAYOUT_ACTIONS:
            action = QAction(text, window)
            action.setShortcut(QKeySequence(shortcut))
            action.setCheckable(True)
            action.triggered.connect(lambda _c=False, k=key: session.set_layout(k))
            self.group.addAction(action)
            layout_menu.addAction(action)
            self.layout_actions[key] = action
        self.toggle_single = QAction("Toggle &one view / three views", window)
        self.toggle_single.setShortcut(QKeySequence("F11"))
        self.toggle_single.triggered.connect(self._toggle)
        layout_menu.addAction(self.toggle_single)
        self.reset_action = QAction("&Reset zoom and pan", window)
        self.reset_action.setShortcut(QKeySequence("Home"))
        self.reset_action.triggered.connect(lambda _c=False: views.reset_views())
        menu.addAction(self.reset_action)
        self.crosshair_action = QAction("&Crosshair", window)
        self.crosshair_action.setCheckable(True)
        self.crosshair_action.setChecked(session.crosshair_visible)
        self.crosshair_action.setShortcut(QKeySequence("Shift+C"))
        self.crosshair_action.toggled.connect(session.set_crosshair_visible)
        session.crosshair_toggled.connect(self.crosshair_action.setChecked)
        menu.addAction(self.crosshair_action)
        self.outline_action = QAction("Label &outlines", window)
        self.outline_action.setCheckable(True)
        self.outline_action.setShortcut(QKeySequence("Shift+O"))
        self.outline_action.toggled.connect(labels.set_outline)
        labels.appearance_changed.connect(lambda: self.outline_action.setChecked(labels.outline))
        menu.addAction(self.outline_action)
        self.labels_action = QAction("Show &labels", window)  # the review toggle: labels off and on again
        self.labels_action.setCheckable(True)
        self.labels_action.setChecked(labels.any_visible)
        self.labels_action.setShortcut(QKeySequence("H"))
        self.labels_action.setToolTip("Hide all labels to see the scan under them; H again shows them as they were")
        self.labels_action.triggered.connect(labels.set_all_visible)  # the user's H, not the mirror below
        labels.appearance_changed.connect(lambda: self.labels_action.setChecked(labels.any_visible))
        menu.addAction(self.labels_action)
        session.layout_changed.connect(self._mirror)
        self._mirror(session.layout)

    def _toggle(self) -> None:
        session = self.session
        if session.layout != "three":
            session.set_layout("three")
            return
        focused = next((v for v in self.views if v.hasFocus()), self.views.axial)
        session.set_layout(focused.plane.value)

    def _mirror(self, layout: str) -> None:
        self.layout_actions[layout].setChecked(True)
