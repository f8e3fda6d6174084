"""The label layer: a thin Qt facade over the engine's :class:`~engine.editing.LabelEditor`.

The editor owns the one label array of the open scan, its undo history, its journal and
its voxel counts; the layer adds what a display needs (label table, colours, opacity,
hidden labels, fill/outline) and turns the editor's callbacks into Qt signals. There is
no second copy of the labels: :attr:`LabelLayer.array` *is* ``editor.labels``.

Every writer goes through the editor:

``attach(volume, labels, name)``
    a newly opened scan (and the labels it comes with): a fresh editor, bound to that
    scan, built before anyone is told (see :meth:`attach`'s ``announce``).
``set_array(array, name)``
    a label map opened for the same scan: a fresh editor (a new starting point).
``adopt(editor, name)``
    an editor rebuilt from a crash journal.
``write(bbox, values)``
    a block written by a flow outside the tools: one undo step ("External edit").
Tools, AI results (``editor.apply_ai_result``), undo and redo use :attr:`editor` directly.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.display import label_lut
from engine.editing import History, Journal, LabelEditor
from engine.errors import GeometryMismatchError
from engine.labels import DEFAULT_TABLE, LabelTable
from engine.types import Geometry, Volume

BBox = tuple[int, int, int, int, int, int]

_EMPTY = np.zeros((1, 1, 1), dtype=np.uint8)
_EMPTY.flags.writeable = False


class LabelLayer(QObject):
    """The label map shown over the scan.

    Parameters
    ----------
    history_factory
        Makes the undo history of each new editor (the undo budget of the preferences).

    Signals
    -------
    changed(object)
        label voxels changed inside bbox ``(z0, z1, y0, y1, x0, x1)``, or everywhere (``None``).
    appearance_changed()
        LUT, opacity, hidden labels or fill/outline mode changed (voxels did not).
    counts_changed()
        per-label voxel counts changed.
    editor_replaced()
        a new editor (new scan, labels opened, edits restored).
    history_changed()
        a step was committed, undone or redone, or the labels saved.
    """

    changed = Signal(object)
    appearance_changed = Signal()
    counts_changed = Signal()
    editor_replaced = Signal()
    history_changed = Signal()

    def __init__(self, parent: Optional[QObject] = None,
                 history_factory: Optional[Callable[[], History]] = None) -> None:
        super().__init__(parent)
        self._editor: Optional[LabelEditor] = None
        self._volume: Optional[Volume] = None
        self.history_factory: Callable[[], History] = history_factory or History
        self.name = ""
        self._provenance_unknown = False
        self._table: LabelTable = DEFAULT_TABLE
        self._opacity = 0.5
        self._hidden: frozenset[int] = frozenset()
        self._shown_before: frozenset[int] = frozenset()  # the labels shown before H hid them all
        self._outline = False
        self._lut = label_lut(self._table, self._opacity)

    # -- the editor -----------------------------------------------------------
    @property
    def provenance_unknown(self) -> bool:
        """The labels were opened from a file that does not record which voxels a person edited (NIfTI, NRRD,
        PNG): whether they are a model's or a person's is unknown (the report and the Editing panel say so)."""
        return self._provenance_unknown

    @provenance_unknown.setter
    def provenance_unknown(self, value: bool) -> None:
        self._provenance_unknown = bool(value)
        self.history_changed.emit()  # what the panels say of who edited follows

    @property
    def editor(self) -> Optional[LabelEditor]:
        """The editor of the open scan (``None`` before one is open)."""
        return self._editor

    @property
    def array(self) -> np.ndarray:
        """The ``uint8`` ``(z, y, x)`` labels (the editor's own array). Read it; change it via the editor."""
        return self._editor.labels if self._editor is not None else _EMPTY

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    def counts(self) -> np.ndarray:
        """Voxels per label value (length 256), the editor's tally. Do not modify."""
        if self._editor is None:
            out = np.zeros(256, np.int64)
            out[0] = _EMPTY.size
            return out
        return self._editor.counts

    def attach(self, volume: Volume, labels: Optional[np.ndarray] = None, name: str = "",
               announce: bool = True) -> LabelEditor:
        """Make a fresh editor over ``labels`` (default: empty) for the newly opened ``volume``.

        With ``announce=False`` nobody is told yet: the open flow sets the session's volume
        first and then calls :meth:`announce`, so listeners never see labels and scan of
        two different files.
        """
        arr = np.zeros(volume.shape, np.uint8) if labels is None else self._checked(labels, volume.shape)
        self._volume = volume
        editor = LabelEditor(arr, volume.geometry, intensities=volume.array, source=volume.source,
                             journal=Journal.for_scan(volume.source, volume.geometry, open_with(volume)),
                             history=self.history_factory())
        self._replace(editor, name, announce)
        return editor

    def set_array(self, array: np.ndarray, name: str = "") -> LabelEditor:
        """Labels opened for the open scan: a fresh editor over a copy of ``array`` (a new starting point).

        Raises
        ------
        GeometryMismatchError
            When ``array`` does not have the scan's shape.
        """
        arr = self._checked(array, self.shape)
        if self._volume is not None and tuple(self._volume.shape) == arr.shape:
            return self.attach(self._volume, arr, name)
        editor = LabelEditor(arr, Geometry(arr.shape), history=self.history_factory())
        self._replace(editor, name, True)
        return editor

    def reset(self, shape: tuple[int, int, int]) -> None:
        """An empty layer of ``shape`` (bound to the open scan when it has that shape)."""
        shape = tuple(int(s) for s in shape)
        if self._volume is not None and tuple(self._volume.shape) == shape:
            self.attach(self._volume)
            return
        self._volume = None
        self._replace(LabelEditor(np.zeros(shape, np.uint8), Geometry(shape), history=self.history_factory()),
                      "", True)

    def adopt(self, editor: LabelEditor, name: str) -> None:
        """Make ``editor`` (e.g. rebuilt from a journal) the layer's editor."""
        self._replace(editor, name, True)

    def write(self, bbox: BBox, values: np.ndarray) -> np.ndarray:
        """Write ``values`` into the half-open box ``bbox`` as one undo step; return the box's previous values."""
        if self._editor is None:
            raise GeometryMismatchError("Open a scan before writing labels.")
        z0, z1, y0, y1, x0, x1 = (int(v) for v in bbox)
        box = (slice(z0, z1), slice(y0, y1), slice(x0, x1))
        values = np.asarray(values, dtype=np.uint8)
        old = self._editor.labels[box].copy()
        if values.shape != old.shape:
            raise ValueError(f"values of shape {values.shape} do not fit box {bbox} ({old.shape})")
        self._editor.apply_box(box, values, "External edit")
        return old

    def announce(self) -> None:
        """Tell every listener that the whole layer changed (after :meth:`attach` with ``announce=False``)."""
        self.editor_replaced.emit()
        self.changed.emit(None)
        self.counts_changed.emit()
        self.history_changed.emit()

    def _checked(self, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        arr = np.asarray(array)
        if arr.shape != tuple(shape):
            raise GeometryMismatchError(
                f"The label map has shape {arr.shape} but the scan has {tuple(shape)} (z, y, x). "
                "Open labels made for this scan.")
        return np.array(arr, dtype=np.uint8, order="C", copy=True)

    def _replace(self, editor: LabelEditor, name: str, announce: bool) -> None:
        old = self._editor
        if old is not None:
            old.changed.clear()
            old.history_changed.clear()
            if old.journal is not None and editor.journal is not old.journal:
                if old.dirty:
                    old.journal.close()    # unsaved edits stay on disk and will be offered next time
                else:
                    old.journal.discard()  # saved or untouched: nothing to recover
        self._editor = editor
        self.name = name
        self._provenance_unknown = False
        editor.changed.append(self._on_editor_changed)
        editor.history_changed.append(self.history_changed.emit)
        if announce:
            self.announce()

    def _on_editor_changed(self, box: tuple[slice, slice, slice]) -> None:
        self.changed.emit(tuple(v for s in box for v in (s.start, s.stop)))
        self.counts_changed.emit()

    # -- appearance -----------------------------------------------------------
    @property
    def table(self) -> LabelTable:
        return self._table

    @property
    def opacity(self) -> float:
        return self._opacity

    @property
    def hidden(self) -> frozenset[int]:
        return self._hidden

    @property
    def outline(self) -> bool:
        """True when labels are drawn as outlines, False when filled."""
        return self._outline

    @property
    def lut(self) -> np.ndarray:
        """The current 256x4 RGBA lookup table (precomputed; opaque in outline mode)."""
        return self._lut

    def set_color(self, value: int, rgb: tuple[int, int, int]) -> None:
        self._table = self._table.with_color(value, tuple(int(c) for c in rgb))
        self._update_lut()

    def set_opacity(self, opacity: float) -> None:
        opacity = min(max(float(opacity), 0.0), 1.0)
        if opacity != self._opacity:
            self._opacity = opacity
            self._update_lut()

    def set_visible(self, value: int, visible: bool) -> None:
        hidden = self._hidden - {value} if visible else self._hidden | {value}
        if not visible and self.is_visible(value) and not self._table_values() - hidden:  # the last one shown:
            self._shown_before = frozenset({value})  # H shows it again
        if hidden != self._hidden:
            self._hidden = frozenset(hidden)
            self._update_lut()

    def is_visible(self, value: int) -> bool:
        return value not in self._hidden

    @property
    def any_visible(self) -> bool:
        return bool(self._table_values() - self._hidden)

    def _table_values(self) -> frozenset[int]:
        return frozenset(lab.value for lab in self._table if lab.value)

    def set_all_visible(self, visible: bool) -> None:
        """Hide every label (H), or show again the ones shown before they were all hidden (all when none was)."""
        if not visible:
            if self.any_visible:
                self._shown_before = self._table_values() - self._hidden
            hidden = self._table_values()
        else:
            hidden = self._hidden - (self._shown_before or self._table_values())
        if hidden != self._hidden:
            self._hidden = hidden
            self._update_lut()

    def set_outline(self, outline: bool) -> None:
        if bool(outline) != self._outline:
            self._outline = bool(outline)
            self._update_lut()

    def _update_lut(self) -> None:
        # thin outlines are drawn opaque (a half-transparent 1-voxel line is hard to see);
        # the opacity slider then only hides them at 0
        alpha = (1.0 if self._opacity > 0 else 0.0) if self._outline else self._opacity
        self._lut = label_lut(self._table, alpha, self._hidden)
        self.appearance_changed.emit()


def open_with(volume: Volume) -> dict:
    """How ``volume`` was opened, for a restore to open it the same way: its DICOM series, a stack's first slice."""
    meta = volume.meta or {}
    return {"series": meta.get("series_instance_uid"), "first_slice": meta.get("stack_first_slice")}
