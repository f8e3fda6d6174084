"""Base class of the editing tools and the context they work in."""

from __future__ import annotations

from typing import Any, Optional, Protocol

from engine.display import slice_axis
from engine.editing import LabelEditor

from ..views.tools import ViewTool, VoxelMouseEvent
from .settings import ToolSettings


class EditContext(Protocol):
    """What a tool may use: the editor of the open scan, the options, and a way to report."""

    settings: ToolSettings

    @property
    def editor(self) -> Optional[LabelEditor]: ...

    def report_error(self, message: str) -> None: ...


class EditTool(ViewTool):
    """A left-button tool that edits labels through the :class:`LabelEditor` only.

    Subclasses set ``name``, ``title`` and ``shortcut`` and implement ``press`` /
    ``drag`` / ``release``; :meth:`cancel` (Esc) drops any stroke in progress.
    """

    title = "Tool"
    shortcut = ""
    cursor: Any = None

    def __init__(self, context: EditContext) -> None:
        self.context = context

    @property
    def editor(self) -> Optional[LabelEditor]:
        return self.context.editor

    @property
    def settings(self) -> ToolSettings:
        return self.context.settings

    @staticmethod
    def plane_axis(event: VoxelMouseEvent) -> int:
        """Array axis the event's view slices along (0 axial, 1 coronal, 2 sagittal)."""
        return slice_axis(event.plane)

    def step_name(self, value: Optional[int] = None) -> str:
        """Undo step name, e.g. ``"Brush GGO"``."""
        from engine.labels import DEFAULT_TABLE
        v = self.settings.label if value is None else value
        return f"{self.title} {DEFAULT_TABLE[v].key.upper() if v == 1 else DEFAULT_TABLE[v].name}" if v else self.title

    def cancel(self) -> bool:
        """Drop the stroke in progress; True when there was one."""
        return False

    def deactivate(self) -> None:
        """The tool is being replaced: finish cleanly."""
        self.cancel()
