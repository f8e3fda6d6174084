"""The ``findings.json`` document: a :class:`~.result.Prediction` as numbers a reader uses.

Per finding: the probability that the scan shows it (see :mod:`.presence`), its volume
in mL, its share of the lung volume in %, the slices where the label map has it and the
slice with most of it; what each anatomy rule removed (voxels and mL per finding); per
slice, the finding probabilities; the lungs (mL per side); the RSNA category with the
features that decided it; the COVID likelihood with its caveat (and whether an app may
show it); the models (names and versions) and the timings. Slice indices are 0-based
along z of the canonical (z, y, x) array.

A prediction that was not assessed (:attr:`~.result.Prediction.not_assessed`) gives
``"assessment": {"assessed": false, "reasons": [...]}`` and no probability, severity,
category or COVID number.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import __version__
from ..labels import DEFAULT_TABLE, FINDING_KEYS, FINDINGS
from ..types import Volume, slice_runs
from .result import Prediction

COVID_CAVEAT = ("From a classifier trained on CT images published in papers (UCSD COVID-CT); "
                "a research signal, not a diagnosis. On real volumes it does not rank COVID-19 scans above a "
                "clear chest (docs/MODELS.md), so the app does not show it.")
#: whether an app may show the COVID classifier's number (validated on volumes: docs/MODELS.md)
COVID_SHOW_IN_APP = False

#: whether the whole-scan finding probabilities are validated on whole scans. They are built from
#: slice probabilities fitted on labelled *slices* (all with pneumonia) and lung-free slices; no
#: labelled clear-lung volume exists to fit or check a scan-level value against, and on the one
#: clear chest we may test on (chest_ct_99) they read GGO 0.92 and consolidation 0.91. So the app
#: and the report withhold them; findings.json keeps them for research, flagged.
SCAN_PROBABILITIES_VALIDATED = False
SCAN_PROBABILITY_NOTE = ("Whole-scan probabilities are not validated on whole scans (no labelled clear-lung "
                         "volume to fit or check them; the clear test chest reads GGO 0.93): read the per-slice "
                         "probabilities, the volumes and the RSNA category instead.")


def quantify_prediction(volume: Volume, prediction: Prediction, lungs: Optional[Any] = None,
                        progress: Optional[Any] = None, cancel: Optional[Any] = None) -> tuple[Optional[Any], list[str]]:
    """Volumes, % of lung and severity of the predicted labels by :mod:`engine.quantification`.

    The lungs are ``lungs`` when given, else the prediction's own
    (:attr:`~.result.Prediction.lungs`, found once by the predictor); only a prediction
    made without them has them searched here. A prediction that was not assessed gets no
    quantification.
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
    if not getattr(prediction, "assessed", True):
        return None, []
    if lungs is None:
        lungs = getattr(prediction, "lungs", None)
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


def rules_document(prediction: Prediction) -> dict[str, Any]:
    """Per anatomy rule: its text and, per finding, voxels and mL it removed."""
    from .gate import RULE_TEXT
    from .nodules import RULE_TEXT as NODULE_TEXT
    from .vessels import RULE_TEXT as VESSEL_TEXT
    geom = prediction.geometry
    texts = dict(RULE_TEXT, **VESSEL_TEXT, **NODULE_TEXT, low_evidence="a finding is shown on a slice only when its probability there is above 0.5")
    out: dict[str, Any] = {}
    for rule, per in (prediction.rules_removed or {}).items():
        out[rule] = {"rule": texts.get(rule, rule),
                     "removed": {k: {"voxels": int(v), "volume_ml": round(v * geom.voxel_volume_ml, 3)
                                     if geom.spacing_known else None} for k, v in per.items() if v}}
    return out


def findings_document(prediction: Prediction, volume: Volume, quantification: Optional[Any] = None,
                      labels_file: Optional[str] = None, notes: Optional[list[str]] = None) -> dict[str, Any]:
    """Build the JSON-ready ``findings.json`` dictionary.

    ``quantification`` (from :func:`quantify_prediction`) supplies mL and % of lung;
    without it, mL are voxel counts times the voxel volume and % of lung is ``None``.
    """
    from ..quantification.rsna import rsna_or_none, zones_missing

    geom = prediction.geometry
    voxel_ml = geom.voxel_volume_ml
    known = geom.spacing_known
    assessed = prediction.assessed
    counts = np.bincount(prediction.labels.ravel(), minlength=4)
    q = quantification if assessed else None
    findings: dict[str, Any] = {}
    for c, lab in enumerate(FINDINGS):
        key = FINDING_KEYS[lab]
        per_slice = (prediction.labels == lab).sum(axis=(1, 2))
        zs = [int(z) for z in np.flatnonzero(per_slice)]
        ml = float(counts[lab]) * voxel_ml
        pct = q.findings[key].percent_of_lungs if q is not None else None
        prob = prediction.scan_probabilities.get(key) if assessed else None
        findings[key] = {
            "label": lab,
            "name": DEFAULT_TABLE[lab].name,
            "probability": round(float(prob), 4) if prob is not None else None,
            # not assessed: no label map was made, so no volume either (0.0 would read "no disease" in a cohort)
            "voxels": int(counts[lab]) if assessed else None,
            "volume_ml": round(ml, 3) if known and assessed else None,
            "percent_of_lung": round(float(pct), 3) if pct is not None else None,
            "slices": slice_runs(zs),
            "slice_count": len(zs),
            "peak_slice": int(np.argmax(per_slice)) if zs else None,
        }
    seg = prediction.segmented
    lungs = prediction.lungs
    category = rsna_or_none(prediction.labels, lungs, geom) if assessed else None  # None: no zones to read
    rsna = category.to_dict() if category is not None else None
    covid = None
    if assessed and prediction.covid_probability is not None:
        covid = {"probability": round(float(prediction.covid_probability), 4), "caveat": COVID_CAVEAT,
                 "show_in_app": COVID_SHOW_IN_APP, "model": (prediction.models.get("covid") or {}).get("name")}
    total = q.findings["total"] if q is not None else None
    withheld = []  # severity and category rate three zones per lung: where there are none, why
    if assessed and (category is None or not (q is not None and q.severity)):
        withheld.append(f"No RSNA category or severity score: {zones_missing(lungs) or 'no lungs were found'}.")
    stack_note = any("not in mL" in w for w in volume.warnings)
    doc: dict[str, Any] = {
        "lunglens_version": __version__,
        "scan": {"path": volume.source, "format": volume.format, "shape": list(volume.shape),
                 "spacing_mm": list(geom.spacing), "spacing_known": known, "is_hu": bool(volume.is_hu)},
        "assessment": {"assessed": assessed, "reasons": list(prediction.not_assessed)},
        "labels_file": labels_file,
        # "slices" and "peak_slice" below: canonical z indices from 0 (the app and the notes number slices from 1)
        "slice_numbering": "from 0",
        "findings": findings,
        "involvement_percent_of_lung": (round(float(total.percent_of_lungs), 3)
                                        if total is not None and total.percent_of_lungs is not None else None),
        "severity": ([sv.to_dict() for sv in q.severity] if q is not None and q.severity else None),
        "rsna_category": rsna,
        "rules": rules_document(prediction) if assessed else {},
        # regions the solid_nodule rule took out of the consolidation: not pneumonia, not assessed, to review
        "nodules": [n.to_dict() for n in (getattr(prediction, "nodules", None) or [])] if assessed else [],
        "lung": ({"volume_ml": q.lungs["both"]["ml"], "left_ml": q.lungs["left"]["ml"],
                  "right_ml": q.lungs["right"]["ml"], "voxels": q.lungs["both"]["voxels"],
                  "method": getattr(lungs, "method", None)}
                 if q is not None and q.has_lungs else None),
        "quantification": q.to_dict() if q is not None else None,
        "covid": covid,
        "probability_method": ("per slice: logistic model of the segmentation's evidence after the anatomy rules "
                               "(share of lung, mean and max model probability of the region); a finding is shown on "
                               "a slice only above 0.5; whole scan: the most convincing 3D region's highest slice "
                               "probability (lower bound of the union), at least p_empty"),
        "probabilities_calibrated": bool(prediction.presence_calibrated) if assessed else None,
        "scan_probabilities_validated": SCAN_PROBABILITIES_VALIDATED if assessed else None,
        "scan_probability_note": SCAN_PROBABILITY_NOTE if assessed and not SCAN_PROBABILITIES_VALIDATED else None,
        "slice_probability_source": prediction.slice_probability_source,
        "slice_probabilities": ({FINDING_KEYS[lab]: [round(float(p), 4) for p in prediction.slice_probabilities[:, c]]
                                 for c, lab in enumerate(FINDINGS)} if assessed else None),
        "segmented_slices": slice_runs([int(z) for z in np.flatnonzero(seg)]),
        "models": prediction.models,
        "device": prediction.device,
        "timings_s": {k: (round(v, 4) if k.endswith("_s") else v) for k, v in prediction.timings.items()},
        # what the reader warned about (NaN voxels filled, slices missing, a stack's assumed order) comes first
        "notes": list(volume.warnings) + list(prediction.notes) + list(notes or []) + withheld
        + ([] if known or stack_note else ["The scan has no physical spacing (image stack): volumes in mL "
                                           "are not reported."]),
    }
    return doc
