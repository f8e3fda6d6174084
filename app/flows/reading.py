"""The reading tools: ruler, ellipse and freehand ROI, and thick-slab MIP / MinIP.

Tools > Ruler (R), Ellipse ROI (O) and Freehand ROI (P) measure on any view (:mod:`app.tools.ruler`,
:mod:`app.tools.roi`) into :class:`app.state.measurements.Measurements`, drawn by
:mod:`app.views.measure_overlay`; Tools > Clear measurements (Shift+R) removes them.
View > Thick slab switches every view between the single slice, MIP (Ctrl+M) and
MinIP (Ctrl+Shift+M); the toolbar's Slab box sets the thickness (mm, or slices when the
spacing is unknown). The slab lives in the session (:meth:`app.state.session.Session.set_slab`);
the projection is :func:`engine.display.slab_projection`.
"""

from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import QObject, QSignalBlocker
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QDoubleSpinBox

from ..context import AppContext
from ..state.measurements import Measurements
from ..state.session import Slab
from ..tools import EditTool, EllipseRoiTool, FreehandRoiTool, RulerTool
from ..views.measure_overlay import add_overlays

#: slab mode -> (menu text, shortcut)
SLAB_ACTIONS = (("", "&No slab (single slice)", "Ctrl+0"), ("mip", "&MIP (maximum, vessels)", "Ctrl+M"),
                ("minip", "M&inIP (minimum, airways)", "Ctrl+Shift+M"))


class ReadingFlow(QObject):
    """Ruler and ROI tools, their overlays, and the thick-slab actions."""

    def __init__(self, ctx: AppContext, views: Any) -> None:
        super().__init__(ctx.actions.owner)
        self.ctx = ctx
        self.views = views
        session = ctx.session
        self.measurements = Measurements(session, self)
        self.overlays = add_overlays(views, self.measurements)
        self.tools = {cls.name: cls(self.measurements) for cls in (RulerTool, EllipseRoiTool, FreehandRoiTool)}
        a = ctx.actions
        a.menus["tools"].addSeparator()
        self.tool_actions: dict[str, QAction] = {}
        for tool in self.tools.values():
            action = a.action(tool.title, lambda t=tool.name: self.set_tool(t), tool.shortcut, "tools",
                              checkable=True, tip=f"{tool.title} ({tool.shortcut})")
            self.tool_actions[tool.name] = action
            a.tool_bar.addAction(action)
        self.clear_action = a.action("Clear &measurements", self.clear, "Shift+R", "tools")
        menu = a.menus["view"].addMenu("Thick &slab")
        self.slab_group = QActionGroup(self)
        self.slab_actions: dict[str, QAction] = {}
        for mode, text, key in SLAB_ACTIONS:
            action = a.action(text, lambda m=mode: session.set_slab(mode=m), key, checkable=True,
                              tip=f"{text.replace('&', '')} ({key})")
            action.setIconText(text.replace("&", "").split(" (")[0])
            self.slab_group.addAction(action)
            menu.addAction(action)
            self.slab_actions[mode] = action
        self.thickness = QDoubleSpinBox()
        self.thickness.setRange(1.0, 200.0)
        self.thickness.setDecimals(0)
        self.thickness.setSingleStep(5.0)
        self.thickness.setKeyboardTracking(False)
        self.thickness.setPrefix("Slab ")
        self.thickness.setToolTip("Thick-slab thickness for MIP / MinIP (View > Thick slab)")
        self.thickness.valueChanged.connect(lambda v: session.set_slab(thickness=v))
        a.toolbar.addSeparator()
        a.toolbar.addAction(self.slab_actions["mip"])
        a.toolbar.addAction(self.slab_actions["minip"])
        a.toolbar.addWidget(self.thickness)
        session.slab_changed.connect(self._mirror)
        session.volume_changed.connect(lambda _v: self._mirror(session.slab))
        self._mirror(session.slab)

    def set_tool(self, name: Optional[str]) -> None:
        """Make the ruler or ROI (``name``) the left-button tool of every view; ``None`` for the crosshair."""
        current = self.views.tool
        if isinstance(current, (EditTool, RulerTool)):
            current.deactivate()
        self.views.set_tool(self.tools[name] if name else None)
        for key, action in self.tool_actions.items():
            action.setChecked(key == name)

    def cancel(self) -> bool:
        """Esc: drop the measurement being dragged (True when there was one)."""
        tool = self.views.tool
        return any(tool is t for t in self.tools.values()) and tool.cancel()

    def clear(self) -> bool:
        return self.measurements.clear()

    def _mirror(self, slab: Slab) -> None:
        self.slab_actions[slab.mode].setChecked(True)
        volume = self.ctx.session.volume
        unit = " mm" if volume is None or volume.geometry.spacing_known else " slices"
        with QSignalBlocker(self.thickness):
            self.thickness.setSuffix(unit)
            self.thickness.setValue(slab.thickness)
