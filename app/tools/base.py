"""Base class of the editing tools and the context they work in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from engine.display import slice_axis
from engine.editing import LabelEditor, ops
from engine.labels import DEFAULT_TABLE

from ..state.interaction import ViewTool, VoxelMouseEvent
from ..state.label_layer import LabelLayer
from ..state.tool_settings import ToolSettings


@dataclass(frozen=True)
class EditContext:
    """What a tool may use: the label layer (its editor), the options, and ways to report and ask.

    ``confirm(question)`` asks the user a yes/no question (e.g. before a fill that looks like a
    leak) and returns True to go on; without it, the tool goes on. ``off_thread(title, compute,
    apply)`` runs ``compute()`` on a worker (a 3D fill of a lung: about a second on a large scan)
    and ``apply(result)`` on the GUI thread if the labels did not change meanwhile; without it,
    both run at once.
    """

    labels: LabelLayer
    settings: ToolSettings
    report_error: Callable[[str], None]
    confirm: Optional[Callable[[str], bool]] = None
    off_thread: Optional[Callable[[str, Callable[[], Any], Callable[[Any], None]], None]] = None

    @property
    def editor(self) -> Optional[LabelEditor]:
        return self.labels.editor


class EditTool(ViewTool):
    """A left-button tool that edits labels through the :class:`LabelEditor` only.

    Subclasses declare ``name``, ``title``, ``shortcut`` and ``options`` and implement
    ``press`` / ``drag`` / ``release``; :meth:`cancel` (Esc) drops any stroke in progress.
    """

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

    def visible_only(self, region: ops.Region, value: int) -> ops.Region:
        """``region`` without the voxels of labels the user has hidden (other than ``value``): an edit never changes
        what cannot be seen."""
        ed = self.editor
        hidden = self.context.labels.hidden - {int(value)}
        return ops.without_values(region, ed.labels, hidden) if ed is not None and hidden else region

    def step_name(self, value: Optional[int] = None) -> str:
        """Undo step name, e.g. ``"Brush GGO"``."""
        v = self.settings.label if value is None else value
        return f"{self.title} {DEFAULT_TABLE[v].key.upper() if v == 1 else DEFAULT_TABLE[v].name}" if v else self.title

    def cancel(self) -> bool:
        """Drop the stroke in progress; True when there was one."""
        return False

    def deactivate(self) -> None:
        """The tool is being replaced: finish cleanly."""
        self.cancel()
