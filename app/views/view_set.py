"""The three linked slice views and their layout.

Layout ``"three"``: axial large on the left, coronal above sagittal on the right.
Layouts ``"axial"``, ``"coronal"``, ``"sagittal"`` show one view alone. The layout is
state of the :class:`app.state.session.Session`; this widget only mirrors it.
"""

from __future__ import annotations

from typing import Iterator, Optional

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from engine.display import PLANES, Plane

from ..state.interaction import ViewTool
from ..state.label_layer import LabelLayer
from ..state.session import Session
from .slice_view import SliceView


class ViewSet(QWidget):
    """Axial, coronal and sagittal :class:`SliceView` widgets sharing one session.

    Iterate over it for the views; index it with a :class:`Plane` or its name.
    """

    def __init__(self, session: Session, labels: LabelLayer, default_tool: ViewTool,
                 parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.session = session
        self._views = {p: SliceView(p, session, labels) for p in PLANES}
        self._default_tool = default_tool
        self._tool: ViewTool = self._default_tool
        self.right = QSplitter(Qt.Orientation.Vertical)
        self.right.addWidget(self.coronal)
        self.right.addWidget(self.sagittal)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.axial)
        self.splitter.addWidget(self.right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.splitter)
        self.set_tool(None)
        session.layout_changed.connect(self._on_layout)
        self._on_layout(session.layout)

    @property
    def axial(self) -> SliceView:
        return self._views[Plane.AXIAL]

    @property
    def coronal(self) -> SliceView:
        return self._views[Plane.CORONAL]

    @property
    def sagittal(self) -> SliceView:
        return self._views[Plane.SAGITTAL]

    def __iter__(self) -> Iterator[SliceView]:
        return iter(self._views.values())

    def __getitem__(self, plane: Plane | str) -> SliceView:
        return self._views[Plane(plane)]

    @property
    def tool(self) -> ViewTool:
        """The left-button tool of every view."""
        return self._tool

    def set_tool(self, tool: Optional[ViewTool]) -> None:
        """Give every view ``tool``; ``None`` restores the default tool (the crosshair)."""
        self._tool = tool or self._default_tool
        for view in self:
            view.tool = self._tool
            if self._tool.cursor is None:
                view.unsetCursor()
            else:
                view.setCursor(self._tool.cursor)

    def reset_views(self) -> None:
        """Fit every view to its slice."""
        for view in self:
            view.reset_view()

    def _on_layout(self, layout: str) -> None:
        for plane, view in self._views.items():
            view.setVisible(layout == "three" or layout == plane.value)
        self.right.setVisible(layout in ("three", "coronal", "sagittal"))
        if layout == "three":
            w = max(self.width(), 600)
            self.splitter.setSizes([int(w * 0.6), int(w * 0.4)])
        # refit once the splitter has given the views their new sizes
        QTimer.singleShot(0, self, self.reset_views)
