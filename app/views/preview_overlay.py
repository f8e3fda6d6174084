"""A change preview drawn over every slice view: what a pending edit would add, remove or change.

Both the AI proposal (:mod:`.proposal_overlay`) and the fill-between preview of the editing
flow use the colours of :data:`DIFF_LUT`, chosen apart from the finding colours (yellow,
red, green) so that a preview never looks like labels already there:

====  =========================================  ==========
1     a finding would be added (background now)  cyan
2     a finding would be removed                 magenta
3     one finding would become another           blue
====  =========================================  ==========

The values are those of :func:`engine.editing.assist.difference_mask`.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pyqtgraph as pg

from engine.display import Plane, extract

#: preview colours per :func:`engine.editing.assist.difference_mask` value (RGB)
DIFF_COLORS = {1: (0, 220, 255), 2: (255, 0, 255), 3: (60, 110, 255)}
#: what each colour means, for legends and status texts
DIFF_LEGEND = "cyan: would be added, magenta: would be removed, blue: would change finding"


def diff_lut(opacity: float = 0.6) -> np.ndarray:
    """256x4 RGBA table of :data:`DIFF_COLORS` (other values transparent)."""
    lut = np.zeros((256, 4), np.uint8)
    for value, rgb in DIFF_COLORS.items():
        lut[value, :3] = rgb
        lut[value, 3] = int(round(255 * opacity))
    return lut


def overlay_items(views: Any, z_value: float) -> dict[Plane, pg.ImageItem]:
    """One hidden row-major image item per slice view, above the labels at ``z_value``."""
    items: dict[Plane, pg.ImageItem] = {}
    for view in views:
        item = pg.ImageItem(axisOrder="row-major")
        item.setZValue(z_value)
        item.setVisible(False)
        view.add_item(item)
        items[view.plane] = item
    return items


class PreviewOverlay:
    """Draws a ``uint8`` difference volume (values of :data:`DIFF_COLORS`) in every slice view."""

    Z_VALUE = 16
    OPACITY = 0.65

    def __init__(self, views: Any, session: Any) -> None:
        self.views = list(views)
        self.session = session
        self.volume: Optional[np.ndarray] = None
        self.items = overlay_items(self.views, self.Z_VALUE)
        self._lut = diff_lut(self.OPACITY)
        session.cursor_changed.connect(lambda _c: self.refresh_all())

    def show(self, volume: np.ndarray) -> None:
        """Show ``volume`` (the scan's shape) until :meth:`hide`."""
        self.volume = volume
        self.refresh_all()

    def hide(self) -> None:
        self.volume = None
        for item in self.items.values():
            item.setVisible(False)

    def refresh_all(self) -> None:
        for view in self.views:
            item = self.items[view.plane]
            vol = self.volume
            if vol is None or view.index < 0 or view.index >= vol.shape[{Plane.AXIAL: 0, Plane.CORONAL: 1,
                                                                          Plane.SAGITTAL: 2}[view.plane]]:
                item.setVisible(False)
                continue
            img = extract(vol, view.plane, view.index)
            if not img.any():
                item.setVisible(False)
                continue
            item.setTransform(view.label_item.transform())
            item.setImage(np.ascontiguousarray(img), autoLevels=False, levels=None, lut=self._lut)
            item.setVisible(True)
