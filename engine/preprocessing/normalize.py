"""Model input normalisation (DESIGN.md): HU clipped to the lung window [-1350, 150] and scaled
to [0, 1]; 8-bit slices (already windowed) divided by 255."""

from __future__ import annotations

import numpy as np

#: the lung window every model is trained for (HU)
HU_WINDOW: tuple[float, float] = (-1350.0, 150.0)


def hu_to_unit(hu: np.ndarray, window: tuple[float, float] = HU_WINDOW) -> np.ndarray:
    """Clip HU to ``window`` and scale to float32 [0, 1]."""
    lo, hi = window
    out = (np.asarray(hu, dtype=np.float32) - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)


def uint8_to_unit(img: np.ndarray) -> np.ndarray:
    """8-bit image to float32 [0, 1]."""
    return np.asarray(img, dtype=np.float32) / 255.0


def to_unit(arr: np.ndarray, is_hu: bool | None = None) -> np.ndarray:
    """Normalise a slice whatever its source: uint8 -> /255, HU (``is_hu`` or values < -100) ->
    lung window, float already in [0, 1] -> unchanged."""
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return uint8_to_unit(arr)
    if is_hu is None:
        is_hu = bool(arr.size) and (float(arr.min()) < -100.0 or float(arr.max()) > 255.0)
    if is_hu:
        return hu_to_unit(arr)
    arr = arr.astype(np.float32)
    if arr.size and float(arr.max()) > 1.0:
        arr = arr / 255.0
    return np.clip(arr, 0.0, 1.0)
