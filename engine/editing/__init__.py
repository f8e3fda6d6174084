"""Label editing: operations, undo history of bounding-box deltas, crash-safe journal.

Objects and data flow
---------------------
:mod:`engine.editing.ops`
    Pure functions that compute a :class:`~engine.editing.ops.Region` (box + mask) of
    voxels to paint: brush segments (2D disk / 3D sphere, size in mm), polygon/lasso,
    flood fill 2D/3D, small islands, outside-largest-component, fill between slices;
    and filters (paint-over mode, HU threshold brush with :data:`~engine.editing.ops.THRESHOLD_PRESETS`).
:class:`~engine.editing.editor.LabelEditor`
    Owns the label array. A tool computes a region with ``ops`` and paints it through
    ``editor.stroke(name)`` (one undo step per stroke, rolled back on error or Esc).
    Each committed step goes to the :class:`~engine.editing.history.History` (bounded
    in bytes) and to the :class:`~engine.editing.journal.Journal`; callbacks tell the
    application which box changed. ``apply_ai_result`` accepts a model's labels as one
    step and resets the "changed by a person" reference.
:mod:`engine.editing.journal`
    Append-only fsync-ed journal in the user data folder; ``recover`` /
    ``LabelEditor.from_journal`` rebuild the labels after a crash (one replay,
    :meth:`~engine.editing.editor.LabelEditor.replay`); :func:`tidy_journals` is the
    retention policy.
:mod:`engine.editing.commands`
    Whole-volume commands through the editor (remove small islands, keep the largest
    component, fill between slices), one undo step each.
"""

from .editor import LabelEditor, Stroke
from .history import DEFAULT_MAX_BYTES, DEFAULT_MIN_STEPS, Delta, History, Step
from .journal import (Journal, data_dir, journal_dir, journal_header, journal_path, journal_source, read_journal,
                      scan_key, source_stamp)
from .journals import all_unsaved_journals, has_unsaved_edits, session_journals, tidy_journals, unsaved_journals
from .ops import PAINT_OVER_MODES, THRESHOLD_PRESETS, Region
from .restore import recover

__all__ = ["LabelEditor", "Stroke", "History", "Step", "Delta", "DEFAULT_MAX_BYTES", "DEFAULT_MIN_STEPS",
           "Journal", "data_dir", "scan_key", "journal_dir", "journal_path", "session_journals",
           "unsaved_journals", "all_unsaved_journals", "journal_source", "journal_header", "source_stamp",
           "read_journal", "recover",
           "has_unsaved_edits", "tidy_journals",
           "Region", "THRESHOLD_PRESETS", "PAINT_OVER_MODES"]
