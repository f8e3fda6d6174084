"""Rendering only: slice views (pyqtgraph), overlays and the 3D view (vtk, imported lazily).

- :mod:`app.views.slice_view`: :class:`SliceView`, one plane of the scan with its label
  overlay, crosshair, orientation letters and slice text; its :class:`SliceViewBox`
  turns mouse input into :class:`app.state.interaction.VoxelMouseEvent` objects.
- :mod:`app.views.view_set`: the three linked views and their layout.
- :mod:`app.views.proposal_overlay`, :mod:`app.views.lung_overlay`,
  :mod:`app.views.brush_outline`: what flows draw over the views.
- :mod:`app.views.view3d`: label surfaces in 3D (vtk), built lazily in a dock.
"""
