"""LungLens desktop application (PySide6 + pyqtgraph + vtk).

The app holds no numerics: it assembles widgets, runs engine functions on worker
threads and mirrors models. Entry point: ``python -m app`` (:mod:`app.__main__`), which
imports Qt only when a window is wanted (``--version`` needs none).

Objects and data flow
---------------------
- :mod:`app.application`: ``run(args)`` creates the QApplication and the window, shows
  it at once, then opens the scan (or the phantom), the labels and takes the
  ``--screenshot``.
- :mod:`app.main_window`: :class:`~app.main_window.MainWindow` only assembles; its
  docstring lists the access points for extensions (``app.ai``, ``app.editing``,
  ``app.reporting`` are installed when present).
- :mod:`app.models`: :class:`~app.models.Session` (open volume, cursor, window/level,
  layout) and :class:`~app.models.LabelLayerModel` (label array and its appearance).
  Models own state and announce changes; widgets mirror them. GUI thread only.
- :mod:`app.worker`: engine calls on a thread pool with progress and cancel; results,
  errors and cancellation come back as signals on the GUI thread.
- :mod:`app.controllers`: one flow each (open scans/labels, window/level, probe,
  view actions, 3D view).
- :mod:`app.views`: slice views (pyqtgraph ``ViewBox`` + ``ImageItem``), their tools,
  the three-view layout and the lazily created vtk 3D view.
- :mod:`app.widgets`: small widgets (progress bar, W/L spin boxes, label panel,
  series chooser, shortcuts).

A scan travels: file -> ``engine.io.load`` (worker) -> ``Session.set_volume`` ->
each ``SliceView`` extracts its slice (:func:`engine.display.extract`, a numpy view),
converts that one slice to float32 and draws it with explicit levels; labels go
through the label layer's 256-entry RGBA lookup table.
"""

from engine import __version__

__all__ = ["__version__"]
