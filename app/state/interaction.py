"""The contract between the slice views and the interaction tools.

A tool is a small object with ``press``, ``drag`` and ``release`` methods, each taking
a :class:`VoxelMouseEvent`, and it calls only model APIs (STYLE rule 8). The views send
every plain left-button action to the current tool (Shift+left is window/level, middle
pans, right zooms). The tools live in :mod:`app.tools`; the views know only this base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.display import Plane


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
    """Base class of left-button tools; every method does nothing.

    Each tool declares its ``name`` (a key), ``title`` (menus), ``shortcut`` and
    ``options`` (the rows of the editing options panel it uses).
    """

    name = "tool"
    title = "Tool"
    shortcut = ""
    options: tuple[str, ...] = ()
    #: cursor shape over the views (a ``Qt.CursorShape``) or None for the default arrow
    cursor: Any = None

    def press(self, event: VoxelMouseEvent) -> None:
        """Left button pressed (also the start of a drag)."""

    def drag(self, event: VoxelMouseEvent) -> None:
        """Mouse moved with the left button held."""

    def release(self, event: VoxelMouseEvent) -> None:
        """Left button released (end of a click or drag)."""
