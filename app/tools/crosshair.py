"""Navigate: click or drag to move the linked crosshair (the default left-button tool)."""

from __future__ import annotations

from ..state.interaction import ViewTool, VoxelMouseEvent
from ..state.session import Session


class CrosshairTool(ViewTool):
    """Click or drag to move the linked crosshair within the view's slice."""

    name, title, shortcut = "crosshair", "Navigate", "N"

    def __init__(self, session: Session) -> None:
        self._session = session

    def press(self, event: VoxelMouseEvent) -> None:
        self._session.set_cursor(*event.zyx)

    drag = press
