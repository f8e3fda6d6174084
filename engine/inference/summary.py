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


def lung_mask_for(volume: Volume, prediction: Prediction) -> tuple[Optional[np.ndarray], str]:
    """The lung mask used for '% of lung' and where it came from.

    The lung model's mask when the prediction has one, else
    :func:`engine.quantification.lung_masks` when that module is installed, else none.
    """
    if prediction.lung_mask is not None and prediction.lung_mask.any():
        return prediction.lung_mask, f"lung model {prediction.models.get('lung', {}).get('name', '')}".strip()
    try:
        from ..quantification import lung_masks  # type: ignore[attr-defined]
    except ImportError:
        return None, "none"
    masks = lung_masks(volume)
    mask = getattr(masks, "lung", masks)
    if isinstance(mask, (tuple, list)):
        mask = np.logical_or.reduce([np.asarray(m, dtype=bool) for m in mask])
    mask = np.asarray(mask, dtype=bool)
    # findings lie inside the lungs (effusion beside them): count them as lung tissue
    mask = mask | np.isin(prediction.labels, (FINDINGS[0], FINDINGS[1]))
    return mask, "engine.quantification.lung_masks"


def _ranges(zs: list[int]) -> list[list[int]]:
    """Consecutive runs of slice indices as ``[first, last]`` pairs."""
    out: list[list[int]] = []
    for z in zs:
        if out and z == out[-1][1] + 1:
            out[-1][1] = z
        else:
            out.append([z, z])
    return out


def findings_document(prediction: Prediction, volume: Volume, lung_mask: Optional[np.ndarray] = None,
                      lung_source: str = "none", labels_file: Optional[str] = None) -> dict[str, Any]:
    """Build the JSON-ready ``findings.json`` dictionary."""
    geom = prediction.geometry
    voxel_ml = geom.voxel_volume_ml
    known = geom.spacing_known
    counts = np.bincount(prediction.labels.ravel(), minlength=4)
    lung_ml = float(lung_mask.sum()) * voxel_ml if lung_mask is not None else None
    findings: dict[str, Any] = {}
    for c, lab in enumerate(FINDINGS):
        key = FINDING_KEYS[lab]
        per_slice = (prediction.labels == lab).sum(axis=(1, 2))
        zs = [int(z) for z in np.flatnonzero(per_slice)]
        ml = float(counts[lab]) * voxel_ml
        findings[key] = {
            "label": lab,
            "name": DEFAULT_TABLE[lab].name,
            "probability": round(float(prediction.scan_probabilities[key]), 4),
            "voxels": int(counts[lab]),
            "volume_ml": round(ml, 3) if known else None,
            "percent_of_lung": (round(100.0 * ml / lung_ml, 3) if lung_ml else None),
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
        "lung": {"volume_ml": round(lung_ml, 2) if (lung_ml is not None and known) else None,
                 "source": lung_source},
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
        "notes": list(prediction.notes) + ([] if known else
                                          ["The scan has no physical spacing (image stack): volumes in mL "
                                           "are not reported."]),
    }
    return doc
