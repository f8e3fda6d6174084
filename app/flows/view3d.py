"""The 3D view flow: View > 3D view toggles a dock of label surfaces, built lazily.

The case's lungs (:attr:`app.state.case.CaseState.lungs`, found once per scan) show as a
faint surface around the findings; their surface is built once per set of lungs.

Nothing of vtk is imported until the view is first shown. Surfaces are rebuilt on a
worker only while the dock is visible, at most once per :attr:`DELAY_MS` after label
changes; colour and visibility changes restyle the surfaces without a rebuild. Slice
scrolling never touches the 3D view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence

from engine.display import downsample_labels

from ..context import AppContext
from ..state.tasks import Task, TaskRunner

if TYPE_CHECKING:  # pragma: no cover
    from ..views.view3d import Surface3DView


class View3DFlow(QObject):
    """Owns the 3D dock (created on first use) and keeps its surfaces up to date lazily.

    ``place_dock(dock)`` is called once the dock exists (the window sizes it beside the labels).
    """

    DELAY_MS = 800
    MAX_VOXELS = 2_000_000

    def __init__(self, ctx: AppContext, place_dock: Callable[[Any], None]) -> None:
        window = ctx.actions.owner
        super().__init__(window)
        self.ctx = ctx
        self.place_dock = place_dock
        self.surfaces: dict[int, Any] = {}
        self.view: Optional["Surface3DView"] = None
        self.dock: Any = None
        self._dirty = True
        self._reset_camera = True
        self._building: Optional[Task] = None
        self._runner = TaskRunner(self)  # no progress bar: rebuilds are background work
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(self.DELAY_MS)
        self._timer.timeout.connect(self.rebuild)
        self.action = QAction("&3D view", window)
        self.action.setCheckable(True)
        self.action.setShortcut(QKeySequence("F10"))
        self.action.setToolTip("Show the label surfaces in 3D (F10)")
        self.action.toggled.connect(self.set_shown)
        ctx.actions.menus["view"].addAction(self.action)
        ctx.labels.changed.connect(self._on_labels_changed)
        ctx.labels.appearance_changed.connect(self._on_appearance)
        ctx.session.volume_changed.connect(self._on_volume)
        ctx.case.lungs_changed.connect(self._on_labels_changed)  # the lung context surface follows the case
        self.lung_surface: Any = None
        self._lungs_shown: Any = None  # the LungMasks the lung surface was built from

    @property
    def shown(self) -> bool:
        return self.dock is not None and self.dock.isVisible()

    def set_shown(self, shown: bool) -> None:
        """Show (creating it the first time) or hide the 3D dock."""
        if shown and self.dock is None:
            from ..views.view3d import Surface3DView

            self.view = Surface3DView()
            self.dock = self.ctx.actions.dock(self.view, "3D", Qt.DockWidgetArea.RightDockWidgetArea)
            self.dock.visibilityChanged.connect(self._on_dock_visibility)
            self.place_dock(self.dock)
            if not self.view.available:
                self.ctx.notices.status(self.view.message.text())
        if self.dock is not None:
            self.dock.setVisible(shown)
        if shown:
            self._schedule(0)

    def _on_dock_visibility(self, visible: bool) -> None:
        if self.action.isChecked() != visible and not self.dock.isFloating():
            self.action.setChecked(visible)
        if visible:
            self._schedule(0)

    def _on_volume(self, volume: Any) -> None:
        self._dirty = True
        self._reset_camera = True
        self._schedule()
        if volume is not None and self.view is None:  # the first 3D view then need not wait for the probe
            from ..views.view3d import probe_in_background
            probe_in_background()

    def _on_labels_changed(self, _bbox: Any = None) -> None:
        self._dirty = True
        self._schedule()

    def _on_appearance(self) -> None:
        if self.view is not None and self.view.available:
            self.view.set_appearance(self.ctx.labels.table, self.ctx.labels.hidden)

    def _schedule(self, delay: Optional[int] = None) -> None:
        if self.shown and self._dirty:
            self._timer.start(self.DELAY_MS if delay is None else delay)

    def rebuild(self) -> None:
        """Rebuild the surfaces now (on a worker) if the dock is shown and they are stale."""
        volume = self.ctx.session.volume
        if not self.shown or self.view is None or not self.view.available or volume is None:
            return
        if self._building is not None:
            self._timer.start(self.DELAY_MS)  # one build at a time; try again later
            return
        labels = self.ctx.labels
        if labels.array.shape != volume.shape:
            return
        # the coarse copy is taken here, on the GUI thread, so the worker never reads a
        # label array that an edit is changing
        small, spacing = downsample_labels(labels.array, volume.spacing, self.MAX_VOXELS)
        from ..views.surfaces import bounds_mm, build_scene

        self._dirty = False
        bounds = bounds_mm(volume.shape, volume.spacing)
        lungs = self.ctx.case.lungs
        # the lung masks never change in place: a new LungMasks comes with a new surface, built once
        lung_mask = lungs.lung if lungs is not None and lungs is not self._lungs_shown else None
        task = Task(build_scene, small, spacing, labels.table.values, lung_mask, volume.spacing, self.MAX_VOXELS,
                    title="3D surfaces")
        self._building = task
        task.signals.finished.connect(self._build_finished)
        self._runner.start(task, on_result=lambda s, m=lungs: self._show(s, bounds, m),
                           on_error=lambda e: self.ctx.notices.status(f"3D view: {e}"))

    def _build_finished(self) -> None:
        self._building = None
        self._schedule()

    def _show(self, scene: tuple[dict[int, Any], Any], bounds: tuple[float, ...], lungs: Any) -> None:
        surfaces, lung = scene
        labels = self.ctx.labels
        if lungs is not self._lungs_shown:
            self._lungs_shown, self.lung_surface = lungs, lung
            self.view.set_lungs(lung, render=False)
        self.view.set_surfaces(surfaces, labels.table, labels.hidden, bounds, reset=self._reset_camera)
        self._reset_camera = False
        self.surfaces = surfaces

    def shutdown(self) -> None:
        """Stop pending builds (window closing)."""
        self._timer.stop()
        self._runner.shutdown(0)  # cancel, never wait: a close must not block the GUI thread
        if self.view is not None and self.view.backend == "interactive":
            self.view.canvas.Finalize()
