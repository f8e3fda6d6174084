"""AI reading of a whole scan: segmentation, finding probabilities, COVID likelihood.

Objects and data flow
---------------------
- :class:`Predictor` (:mod:`.predictor`) resolves the models from
  :mod:`engine.models.registry` (segmentation required; finding classifier, COVID
  classifier and lung model optional) and runs a :class:`~engine.types.Volume` slab by
  slab: the visible slice first (:mod:`.order`), then only the slices that hold lung,
  cropped to the torso (:mod:`.roi`), batched on CUDA (with autocast) or the CPU.
- Each finished group of slices is a :class:`Slab` (``iter_predict`` yields them; the
  ``on_slab`` callback of ``predict`` receives them) for progressive overlays.
- The complete result is a :class:`Prediction` (:mod:`.result`): uint8 label map in the
  scan's geometry, uint8-quantised probability maps, per-slice and whole-scan finding
  probabilities, the COVID likelihood, timings and the models used.
- :mod:`.summary` turns a prediction into the ``findings.json`` document (volumes in
  mL and % of lung through :mod:`engine.quantification` when available).

Model input normalisation follows DESIGN.md (:func:`.nets.to_unit`): HU clipped to
[-1350, 150] and scaled to [0, 1]; 8-bit slices divided by 255.

- :mod:`.pipeline` is the one reading pipeline (scan in; slabs with per-slice finding
  counts out; a :class:`~.pipeline.Reading` with prediction, quantification, notes and
  lungs back) shared by the app's Run AI and ``python -m engine predict``, behind the
  small :class:`~.pipeline.SlicePredictor` protocol.

Importing this package does not import torch: :class:`Predictor` and :func:`predict`
are loaded on first use (PEP 562), so the app can import the pipeline's light parts
while its window opens.
"""

from __future__ import annotations

from typing import Any

from ..errors import CancelledError
from .order import center_out, slice_order
from .result import Prediction, Slab

__all__ = ["CancelledError", "Prediction", "Predictor", "Slab", "center_out", "predict", "slice_order"]


def __getattr__(name: str) -> Any:
    if name in ("Predictor", "predict"):
        from . import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'engine.inference' has no attribute {name!r}")
