"""LungLens engine: everything LungLens does to data, with no GUI.

Objects and data flow
---------------------
- :class:`engine.types.Volume` holds a scan as a C-contiguous ``(z, y, x)`` array
  plus a :class:`engine.types.Geometry` (spacing, origin, direction) that maps voxel
  indices to patient coordinates (LPS, millimetres) and round-trips through every
  reader and writer in :mod:`engine.io`.
- :mod:`engine.labels` is the single label table (0 background, 1 GGO,
  2 consolidation, 3 pleural effusion) with names and colours.
- Long work (loading, inference, training, export) takes ``progress`` and
  ``cancel`` arguments (see :mod:`engine.progress`) and never touches Qt; the GUI
  in ``app`` runs it on a worker thread.
- :mod:`engine.errors` holds the one exception hierarchy; every message is meant
  to be shown to a user as-is.

The package must never import Qt, pyqtgraph or ``app`` (a test enforces it).
"""

__version__ = "0.1.0"
