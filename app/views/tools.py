"""Left-button tools of the slice views.

A tool is a small object with ``press``, ``drag`` and ``release`` methods, each taking
a :class:`VoxelMouseEvent`, and it calls only model APIs (STYLE rule 8). The views send
every plain left-button action to the current tool (Shift+left is window/level, middle
pans, right zooms). Extensions install their own tool with
``window.views.set_tool(tool)``; ``set_tool(None)`` restores :class:`CrosshairTool`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.display import Plane

if TYPE_CHECKING:  # pragma: no cover
    from ..models import Session


@dataclass(frozen=True)
class VoxelMouseEvent:
    """A mouse action in voxel coordinates.

    Attributes
    ----------
    plane
        The plane of the view that got it.
    zyx
        Fractional voxel ``(z, y, x)`` under the mouse (may lie outside the volume).
    kind
        ``"press"``, ``"drag"``, ``"release"`` or ``"hover"``.
    button
        ``Qt.MouseButton`` (``NoButton`` for hover).
    modifiers
        ``Qt.KeyboardModifier`` flags.
    view
        The :class:`app.views.slice_view.SliceView` (for tools that need its scale).
    """

    plane: Plane
    zyx: tuple[float, float, float]
    kind: str
    button: Any
    modifiers: Any
    view: Any = None

    @property
    def voxel(self) -> tuple[int, int, int]:
        """``zyx`` rounded to the nearest voxel."""
        return tuple(int(round(v)) for v in self.zyx)  # type: ignore[return-value]


class ViewTool:
    """Base class of left-button tools; every method does nothing."""

    name = "tool"
    #: cursor shape over the views (a ``Qt.CursorShape``) or None for the default arrow
    cursor: Any = None

    def press(self, event: VoxelMouseEvent) -> None:
        """Left button pressed (also the start of a drag)."""

    def drag(self, event: VoxelMouseEvent) -> None:
        """Mouse moved with the left button held."""

    def release(self, event: VoxelMouseEvent) -> None:
        """Left button released (end of a click or drag)."""


class CrosshairTool(ViewTool):
    """Click or drag to move the linked crosshair within the view's slice."""

    name = "crosshair"

    def __init__(self, session: "Session") -> None:
        self._session = session

    def press(self, event: VoxelMouseEvent) -> None:
        self._session.set_cursor(*event.zyx)

    drag = press
