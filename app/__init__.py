"""LungLens desktop application (PySide6 + pyqtgraph + vtk).

The app holds no numerics: it assembles widgets, runs engine functions on worker
threads and mirrors models. Entry point: ``python -m app`` (:mod:`app.__main__`), which
imports Qt only when a window is wanted (``--version`` needs none).

Objects and data flow (layers, top to bottom; import-linter keeps the arrows down)
---------------------------------------------------------------------------------
- :mod:`app.application`: ``run(args)`` creates the QApplication and the window, shows
  it at once, then opens the scan (or the phantom), the labels and takes the
  ``--screenshot``.
- :mod:`app.main_window`: :class:`~app.main_window.MainWindow` only assembles: one
  :class:`~app.context.AppContext`, the views, then each flow in plain code.
- :mod:`app.flows`: one controller per user flow (open, AI, editing, recovery, export,
  numbers, window/level, view actions, probe, 3D), each taking the context and the
  collaborators it needs, never the window.
- :mod:`app.context`: the typed context (session, label layer, case, worker runner,
  preferences, notices, actions).
- :mod:`app.tools` (one file per interaction tool), :mod:`app.views` (rendering only:
  slice views, overlays, 3D) and :mod:`app.widgets` (panels and dialogs that mirror state).
- :mod:`app.state`: Qt models without widgets: :class:`~app.state.session.Session`,
  :class:`~app.state.label_layer.LabelLayer` (a facade over the engine's
  :class:`~engine.editing.LabelEditor`: one label array), :class:`~app.state.case.CaseState`
  (lungs found once, accepted models, one quantifier), the AI proposal, tool settings,
  preferences, notices and the worker runner (:mod:`app.state.tasks`: engine calls on a
  thread pool with progress and cancel; a generator's yields become signals).

A scan travels: file -> ``engine.io.load`` (worker) -> ``Session.set_volume`` ->
each ``SliceView`` extracts its slice (:func:`engine.display.extract`, a numpy view),
converts that one slice to float32 and draws it with explicit levels; labels go
through the label layer's 256-entry RGBA lookup table.
"""

from engine import __version__

__all__ = ["__version__"]
