"""Window/level: the intensity range mapped to black..white on screen."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class WindowLevel:
    """A display window: ``width`` and centre ``level`` in the units of the scan (HU or grey).

    Attributes
    ----------
    width
        Intensity range shown from black to white; always > 0.
    level
        Intensity shown as mid grey.
    name
        Preset name, or ``""`` for a custom window.
    """

    width: float
    level: float
    name: str = ""

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError(f"window width must be positive, got {self.width}")

    @property
    def levels(self) -> tuple[float, float]:
        """``(low, high)``: the intensities drawn black and white."""
        half = self.width / 2.0
        return (self.level - half, self.level + half)

    def dragged(self, d_width: float, d_level: float, min_width: float = 1.0) -> "WindowLevel":
        """A custom window changed by ``d_width`` and ``d_level`` (e.g. from a mouse drag)."""
        return WindowLevel(max(min_width, self.width + d_width), self.level + d_level)


#: HU presets, in menu order. Keys are stable identifiers; ``name`` is shown to the user.
PRESETS: dict[str, WindowLevel] = {
    "lung": WindowLevel(1500.0, -600.0, "Lung"),
    "mediastinum": WindowLevel(400.0, 40.0, "Mediastinum"),
    "bone": WindowLevel(2000.0, 300.0, "Bone"),
    "soft_tissue": WindowLevel(350.0, 50.0, "Soft tissue"),
}

#: 8-bit sources (PNG/JPG stacks) are already windowed: show them as stored.
GREY_8BIT = WindowLevel(255.0, 127.5, "Grey (8-bit)")


def preset(key: str) -> WindowLevel:
    """The preset named ``key`` (``"lung"``, ``"mediastinum"``, ``"bone"``, ``"soft_tissue"``)."""
    try:
        return PRESETS[key]
    except KeyError:
        raise KeyError(f"unknown window preset {key!r}; choose one of {', '.join(PRESETS)}") from None


def default_window(is_hu: bool) -> WindowLevel:
    """The window a scan opens with: lung for HU scans, plain grey for 8-bit images."""
    return PRESETS["lung"] if is_hu else GREY_8BIT


def data_window(array: np.ndarray) -> WindowLevel:
    """A window over the scan's own values (0.5th to 99.5th percentile of about 16 slices), named
    "Data range": for values read as HU that may not be HU, which the lung window shows white."""
    sample = np.asarray(array[:: max(1, array.shape[0] // 16)], dtype=np.float32)
    lo, hi = (float(v) for v in np.percentile(sample, (0.5, 99.5))) if sample.size else (0.0, 1.0)
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    return WindowLevel(hi - lo, (hi + lo) / 2.0, "Data range")


def opening_window(volume: Any) -> WindowLevel:
    """The window ``volume`` opens with: :func:`default_window`, or :func:`data_window` when its reader
    doubted that its values are HU (``meta["hu_scale_doubtful"]``, ``engine.io``)."""
    if volume.is_hu and (getattr(volume, "meta", None) or {}).get("hu_scale_doubtful"):
        return data_window(volume.array)
    return default_window(volume.is_hu)


def value_decimals(array: np.ndarray) -> int:
    """Decimals that show ``array``'s values (and windows over them) without rounding them away: 0 for integer
    data, else by the spread of about 16 slices (0 from 1000, 1 from 10, 3 from 0.1, else three significant
    digits of the spread, at least 5, at most 12): a float image of 0..1
    read "0" at 0.317 and its window "W 1 L 0"."""
    if np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_):
        return 0
    sample = np.asarray(array[:: max(1, array.shape[0] // 16)], dtype=np.float64)
    finite = sample[np.isfinite(sample)]
    span = float(finite.max() - finite.min()) if finite.size else 0.0
    if span >= 0.1:
        return 0 if span >= 1000 else 1 if span >= 10 else 3
    scale = span or (float(np.abs(finite).max()) if finite.size else 0.0)  # a constant image: its magnitude
    # three significant digits of the spread (a 1e-6 spread read "0.00000" at 5.9e-7 with a fixed 5)
    return 5 if scale <= 0 else int(min(12, max(5, 3 - math.floor(math.log10(scale)))))


def window_text(wl: WindowLevel, decimals: int = 0) -> str:
    """``W 1500  L -600`` as the views' captions show it; a fractional level of 8-bit data (127.5) keeps its half."""
    d = max(decimals, 1 if (wl.level % 1 or wl.width % 1) and decimals == 0 else decimals)
    return f"W {wl.width:.{d}f}  L {wl.level:.{d}f}"
