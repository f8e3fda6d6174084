"""Slice views (pyqtgraph) and the 3D view (vtk, imported lazily).

- :mod:`app.views.slice_view`: :class:`SliceView`, one plane of the scan with its label
  overlay, crosshair, orientation letters and slice text; its :class:`SliceViewBox`
  turns mouse input into :class:`VoxelMouseEvent` objects.
- :mod:`app.views.tools`: left-button tools (the default one moves the crosshair).
- :mod:`app.views.view_set`: the three linked views and their layout.
- :mod:`app.views.view3d`: label surfaces in 3D (vtk), built lazily in a dock.
"""
