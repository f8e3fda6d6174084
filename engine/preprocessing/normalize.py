"""Model input normalisation (DESIGN.md), the one source of the models' HU input window.

HU are clipped to the lung window :data:`HU_WINDOW` = [-1350, 150] and scaled to [0, 1];
8-bit slices (already windowed) are divided by 255. The functions take a numpy array or a
torch tensor and return the same kind (float32), so training (numpy) and inference
(torch) share one formula; this module itself never imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: the lung window every model is trained for (HU)
HU_WINDOW: tuple[float, float] = (-1350.0, 150.0)


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def hu_to_unit(hu: Any, window: tuple[float, float] = HU_WINDOW) -> Any:
    """Clip HU to ``window`` and scale to float32 [0, 1] (numpy array or torch tensor)."""
    lo, hi = window
    if _is_tensor(hu):
        import torch

        # in place on one float32 copy: the same operations as ``(clamp(x) - lo) / (hi - lo)``
        return hu.to(torch.float32, copy=True).clamp_(lo, hi).sub_(lo).div_(hi - lo)
    out = (np.asarray(hu, dtype=np.float32) - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)


def unit_to_hu(unit: Any, window: tuple[float, float] = HU_WINDOW) -> Any:
    """Inverse of :func:`hu_to_unit` inside the window: [0, 1] -> HU (numpy or torch)."""
    lo, hi = window
    if _is_tensor(unit):
        return unit * (hi - lo) + lo
    return np.asarray(unit, dtype=np.float32) * (hi - lo) + lo


def uint8_to_unit(img: Any) -> Any:
    """8-bit image to float32 [0, 1] (numpy array or torch tensor)."""
    if _is_tensor(img):
        import torch

        return img.to(torch.float32, copy=True).div_(255.0)
    return np.asarray(img, dtype=np.float32) / 255.0


def model_input(slices: Any, is_hu: bool) -> Any:
    """The model input of raw slices: :func:`hu_to_unit` for HU scans, :func:`uint8_to_unit` otherwise."""
    return hu_to_unit(slices) if is_hu else uint8_to_unit(slices)


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
