"""The ``findings.json`` document: a :class:`~.result.Prediction` as numbers a reader uses.

Per finding: the probability that the scan shows it (see :mod:`.result` for the
aggregation), its volume in mL, its share of the lung volume in %, the slices where
the label map has it and the slice with most of it; per slice, the finding
probabilities; the COVID likelihood with its caveat; the models (names and versions)
and the timings. Slice indices are 0-based along z of the canonical (z, y, x) array.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import __version__
from ..labels import DEFAULT_TABLE, FINDING_KEYS, FINDINGS
from ..types import Volume
from .result import Prediction

COVID_CAVEAT = ("From a classifier trained on CT images published in papers (UCSD COVID-CT); "
                "a research signal, not a diagnosis.")


def quantify_prediction(volume: Volume, prediction: Prediction, lungs: Optional[Any] = None,
                        progress: Optional[Any] = None, cancel: Optional[Any] = None) -> tuple[Optional[Any], list[str]]:
    """Volumes, % of lung and severity of the predicted labels by :mod:`engine.quantification`.

    The lungs come from :func:`engine.quantification.lung_masks` (united with the lung
    model's mask when the prediction has one) unless ``lungs`` (a
    :class:`engine.quantification.LungMasks` found earlier for this scan) is given.
    Returns ``(quantification, notes)``;
    ``quantification`` is ``None`` when that module is not installed or finds no lung
    (the document then carries volumes without percentages).
    """
    try:
        from ..quantification import lung_masks, quantify
    except ImportError:
        return None, ["Lung masks are not available in this build: % of lung is not reported."]
    from ..errors import DataError
    notes: list[str] = []
    if lungs is None:
        try:
            lungs = lung_masks(volume, progress=progress, cancel=cancel, model_mask=prediction.lung_mask,
                               labels=prediction.labels)
        except DataError as exc:
            notes = [f"No lung mask: {exc} % of lung is not reported."]
        else:
            notes = list(lungs.warnings)
    q = quantify(prediction.labels, volume.geometry, lungs, hu=volume.array if volume.is_hu else None,
                 cancel=cancel)
    return q, notes


def _ranges(zs: list[int]) -> list[list[int]]:
    """Consecutive runs of slice indices as ``[first, last]`` pairs."""
    out: list[list[int]] = []
    for z in zs:
        if out and z == out[-1][1] + 1:
            out[-1][1] = z
        else:
            out.append([z, z])
    return out


def findings_document(prediction: Prediction, volume: Volume, quantification: Optional[Any] = None,
                      labels_file: Optional[str] = None, notes: Optional[list[str]] = None) -> dict[str, Any]:
    """Build the JSON-ready ``findings.json`` dictionary.

    ``quantification`` (from :func:`quantify_prediction`) supplies mL and % of lung;
    without it, mL are voxel counts times the voxel volume and % of lung is ``None``.
    """
    geom = prediction.geometry
    voxel_ml = geom.voxel_volume_ml
    known = geom.spacing_known
    counts = np.bincount(prediction.labels.ravel(), minlength=4)
    q = quantification
    findings: dict[str, Any] = {}
    for c, lab in enumerate(FINDINGS):
        key = FINDING_KEYS[lab]
        per_slice = (prediction.labels == lab).sum(axis=(1, 2))
        zs = [int(z) for z in np.flatnonzero(per_slice)]
        ml = float(counts[lab]) * voxel_ml
        pct = q.findings[key].percent_of_lungs if q is not None else None
        findings[key] = {
            "label": lab,
            "name": DEFAULT_TABLE[lab].name,
            "probability": round(float(prediction.scan_probabilities[key]), 4),
            "voxels": int(counts[lab]),
            "volume_ml": round(ml, 3) if known else None,
            "percent_of_lung": round(float(pct), 3) if pct is not None else None,
            "slices": _ranges(zs),
            "slice_count": len(zs),
            "peak_slice": int(np.argmax(per_slice)) if zs else None,
        }
    seg = prediction.segmented
    doc: dict[str, Any] = {
        "lunglens_version": __version__,
        "scan": {"path": volume.source, "format": volume.format, "shape": list(volume.shape),
                 "spacing_mm": list(geom.spacing), "spacing_known": known, "is_hu": bool(volume.is_hu)},
        "labels_file": labels_file,
        "findings": findings,
        "lung": ({"volume_ml": q.lungs["both"]["ml"], "left_ml": q.lungs["left"]["ml"],
                  "right_ml": q.lungs["right"]["ml"], "voxels": q.lungs["both"]["voxels"]}
                 if q is not None and q.has_lungs else None),
        "quantification": q.to_dict() if q is not None else None,
        "covid": (None if prediction.covid_probability is None else
                  {"probability": round(float(prediction.covid_probability), 4), "caveat": COVID_CAVEAT,
                   "model": (prediction.models.get("covid") or {}).get("name")}),
        "probability_method": ("per-slice probabilities averaged over 3 neighbouring slices (1 for "
                               "slices >= 5 mm), maximum over the segmented slices"),
        "slice_probability_source": prediction.slice_probability_source,
        "slice_probabilities": {FINDING_KEYS[lab]: [round(float(p), 4) for p in prediction.slice_probabilities[:, c]]
                                for c, lab in enumerate(FINDINGS)},
        "segmented_slices": _ranges([int(z) for z in np.flatnonzero(seg)]),
        "models": prediction.models,
        "device": prediction.device,
        "timings_s": {k: (round(v, 4) if k.endswith("_s") else v) for k, v in prediction.timings.items()},
        "notes": list(prediction.notes) + list(notes or []) + ([] if known else
                                          ["The scan has no physical spacing (image stack): volumes in mL "
                                           "are not reported."]),
    }
    return doc
