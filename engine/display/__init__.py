"""Display logic for the slice views, with numpy only (no Qt).

Objects and data flow
---------------------
- :mod:`engine.display.window`: :class:`WindowLevel` (width/level in the units of the
  scan), the named presets (lung W1500/L-600, mediastinum W400/L40, bone W2000/L300,
  soft tissue W350/L50) and the grey window used for 8-bit sources.
- :mod:`engine.display.slicing`: the three planes (axial, coronal, sagittal) of a
  canonical ``(z, y, x)`` volume in LPS index order; slice extraction as numpy *views*
  (no copies) oriented for display (row 0 at the top of the screen), the mapping
  between display pixels and voxel indices, pixel spacing for the aspect ratio and the
  orientation letters at each edge.
- :mod:`engine.display.overlay`: label lookup tables (256 RGBA entries, index 0
  transparent), label outlines, voxel counts per label and the coarse label map the
  3D view builds its surfaces from.
- :mod:`engine.display.reading`: thick-slab MIP/MinIP of any plane, ruler lengths and
  ellipse region statistics (mean, SD, area) for the reading tools.

The GUI converts one extracted slice to ``float32`` (scan) or hands the ``uint8`` label
slice straight to its image items, with explicit levels and a precomputed LUT.
"""

from .overlay import downsample_labels, label_counts, label_lut, outline
from .reading import SLAB_MODES, RegionStats, distance, ellipse_mask, region_stats, slab_projection, slab_range
from .slicing import PLANES, Plane, display_shape, display_spacing, edge_letters, extract, pixel_spacing, slice_axis, \
    to_display, to_voxel
from .window import (GREY_8BIT, PRESETS, WindowLevel, data_window, default_window, opening_window, preset,
                     value_decimals, window_text)

__all__ = ["GREY_8BIT", "PLANES", "PRESETS", "Plane", "RegionStats", "SLAB_MODES", "WindowLevel", "distance",
           "ellipse_mask", "region_stats", "slab_projection", "slab_range", "data_window", "default_window",
           "opening_window", "display_shape", "display_spacing", "downsample_labels",
           "edge_letters", "extract", "label_counts", "label_lut", "outline", "pixel_spacing", "preset",
           "slice_axis", "to_display", "to_voxel", "value_decimals", "window_text"]
