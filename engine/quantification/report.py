"""Reports of the numbers: JSON, CSV and PDF.

:func:`report_document` gathers everything a report shows (patient and series fields,
scan geometry, the numbers of :mod:`.numbers`, severity scores with their citations,
models and versions, whether a person edited the labels) into one JSON-ready dict;
:func:`write_report` writes it as ``.json``, ``.csv`` (one tidy table) or ``.pdf``
(reportlab: tables plus key images from :mod:`.images`).

With ``anonymize=True`` the identifying fields (:data:`IDENTIFIERS`: names, IDs, dates,
UIDs, institution, file paths), every free-text field that can hold a name
(:data:`FREE_TEXT`: study and series descriptions, comments, the NIfTI description) and
the patient's age are left out of every format, and ``doc["removed"]`` plus a note
say which fields were removed. The load warnings of the scan are notes of the report.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .. import __version__
from ..errors import UnsupportedFormatError
from ..labels import DEFAULT_TABLE
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Volume
from ..anatomy.lungs import ZONES, LungMasks, lung_masks
from .numbers import Quantification, quantify

#: meta fields shown in the report, with their labels
PATIENT_FIELDS = (("patient_name", "Patient name"), ("patient_id", "Patient ID"),
                  ("patient_birth_date", "Birth date"), ("patient_sex", "Sex"), ("patient_age", "Age"),
                  ("study_date", "Study date"), ("accession_number", "Accession number"),
                  ("institution_name", "Institution"), ("study_description", "Study"),
                  ("series_description", "Series"), ("series_number", "Series number"),
                  ("modality", "Modality"), ("manufacturer", "Manufacturer"),
                  ("convolution_kernel", "Kernel"), ("slice_thickness", "Slice thickness (mm)"),
                  ("study_instance_uid", "Study UID"), ("series_instance_uid", "Series UID"))
#: fields left out by ``anonymize=True`` (the scan's path too)
IDENTIFIERS = frozenset({"patient_name", "patient_id", "patient_birth_date", "study_date",
                         "accession_number", "institution_name", "study_instance_uid",
                         "series_instance_uid", "patient_age"})
#: free text typed at the scanner or PACS ("Jane Doe MRN 88812345" in a study description):
#: left out by ``anonymize=True`` as well
FREE_TEXT = frozenset({"study_description", "series_description", "image_comments", "study_comments",
                       "patient_comments", "nifti_descrip", "protocol_name", "requested_procedure"})
TITLE = "Chest CT quantification report"
DISCLAIMER = ("LungLens research software. Numbers are computed from the label map shown; check the "
              "segmentation before relying on them.")
FORMATS = (".json", ".csv", ".pdf")


def _clean(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def patient_fields(volume: Volume, anonymize: bool) -> dict[str, Any]:
    """The patient/series fields of ``volume.meta`` that are set (identifiers left out if asked)."""
    out: dict[str, Any] = {}
    for key, _ in PATIENT_FIELDS:
        if anonymize and (key in IDENTIFIERS or key in FREE_TEXT):
            continue
        v = volume.meta.get(key)
        if v not in (None, "", []):
            out[key] = _clean(v) if not isinstance(v, (str, int, float)) else v
    return out


def removed_fields(volume: Volume) -> list[str]:
    """The names of the fields ``anonymize=True`` leaves out that this scan has set."""
    labels = dict(PATIENT_FIELDS)
    return [labels.get(k, k.replace("_", " ")) for k in sorted(IDENTIFIERS | FREE_TEXT)
            if volume.meta.get(k) not in (None, "", [])] + (["File path"] if volume.source else [])


def report_document(volume: Volume, quant: Quantification, *, anonymize: bool = False,
                    models: Optional[dict[str, Any]] = None, edited_by_person: Optional[bool] = False,
                    lungs: Optional[LungMasks] = None, labels_source: Optional[str] = None,
                    findings_doc: Optional[dict[str, Any]] = None, labels: Optional[np.ndarray] = None,
                    assessment: Optional[dict[str, Any]] = None,
                    review_notes: Optional[list[str]] = None) -> dict[str, Any]:
    """Everything the report shows, JSON-ready.

    ``labels`` (the labels the numbers are of) adds the RSNA category of their distribution.
    ``assessment`` (``{"assessed": bool, "reasons": [...]}``, also read from ``findings_doc``)
    marks a scan the AI did not read (no lung, unknown intensity scale, ...): the report then
    gives no probabilities, no severity score and no category, and says why. ``review_notes``
    are what the reading asked a person to review (the app's; ``findings_doc`` brings its own).
    """
    g = volume.geometry
    doc: dict[str, Any] = {
        "title": TITLE,
        "lunglens_version": __version__,
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "anonymized": bool(anonymize),
        "patient": patient_fields(volume, anonymize),
        "scan": {"path": None if anonymize else volume.source, "format": volume.format,
                 "shape": list(volume.shape), "spacing_mm": list(g.spacing), "spacing_known": g.spacing_known,
                 "is_hu": bool(volume.is_hu), "orientation": g.orientation_code(),
                 # the reader doubted the HU scale (no air in the image): HU figures are not valid
                 "hu_doubtful": bool(volume.is_hu and (volume.meta or {}).get("hu_scale_doubtful"))},
        # edited_by_person None: unknown (labels from a file that does not record it)
        "labels": {"source": None if anonymize else labels_source,
                   "edited_by_person": None if edited_by_person is None else bool(edited_by_person)},
        "lungs": {"method": lungs.method if lungs is not None else None,
                  "warnings": list(lungs.warnings) if lungs is not None else []},
        "models": dict(models or {}),
        "numbers": quant.to_dict(),
        "notes": [],
    }
    doc["notes"].extend(volume.warnings)  # what the reader warned about reaches the report
    if anonymize:
        doc["removed"] = removed_fields(volume)
        if doc["removed"]:
            doc["notes"].append("Identifiers and free-text fields left out: " + ", ".join(doc["removed"]) + ".")
    if not g.spacing_known:
        doc["notes"].append("The scan has no physical spacing (image stack): volumes in mL are unknown; "
                            "voxel counts and percentages are given.")
    if assessment is None and findings_doc:
        assessment = findings_doc.get("assessment")
    assessed = bool(assessment.get("assessed", True)) if assessment else True
    doc["assessment"] = {"assessed": assessed, "reasons": list((assessment or {}).get("reasons", []))}
    if not assessed:
        doc["numbers"]["severity"] = []
        doc["notes"].insert(0, "Not assessed by the AI: " + "; ".join(doc["assessment"]["reasons"] or ["no reason"])
                            + ". No probabilities, severity score or RSNA category are given.")
    elif labels is not None:
        from .rsna import rsna_or_none, zones_missing

        category = rsna_or_none(labels, lungs, g)
        if category is not None:
            doc["rsna_category"] = category.to_dict()
        elif lungs is not None:  # without lungs the note below says so
            doc["notes"].append(f"No RSNA category or severity score: {zones_missing(lungs)}.")
    if findings_doc:
        if assessed and findings_doc.get("scan_probabilities_validated", True):
            doc["finding_probabilities"] = {k: v.get("probability")
                                            for k, v in findings_doc.get("findings", {}).items()}
        elif assessed and findings_doc.get("scan_probability_note"):
            doc["notes"].append(findings_doc["scan_probability_note"])  # withheld, and why
        if assessed:  # a nodule set aside from the pneumonia findings is named, to review
            doc["notes"].extend(n["notice"] for n in findings_doc.get("nodules") or [] if n.get("notice"))
        if findings_doc.get("covid") and assessed:
            doc["covid"] = findings_doc["covid"]  # JSON keeps it with its caveat; the PDF shows it only if validated
        if not doc["models"] and findings_doc.get("models"):
            doc["models"] = findings_doc["models"]
    if assessed:  # what the app's reading asked a person to review
        doc["notes"].extend(n for n in review_notes or [] if n and n not in doc["notes"])
    if anonymize and volume.source:  # file and folder names often carry the patient's name or record number
        doc["notes"] = [scrub_source(n, volume.source) for n in doc["notes"]]
        doc["lungs"]["warnings"] = [scrub_source(w, volume.source) for w in doc["lungs"]["warnings"]]
    return doc


#: folder names too generic to name anyone: left in the notes, where they are also ordinary words ("image data")
_GENERIC_FOLDERS = frozenset({
    "data", "images", "image", "scans", "scan", "series", "study", "studies", "dicom", "dcm", "nifti", "nrrd",
    "ct", "lung", "lungs", "chest", "slices", "slice", "stack", "stacks", "files", "input", "inputs", "output",
    "outputs", "export", "exports", "labels", "tmp", "temp", "downloads", "desktop", "documents", "home", "work",
    "shared", "cases", "case", "patients", "raw", "png", "jpg", "jpeg", "tif", "tiff"})
#: a file name of an image or label format, whatever its stem (a stack's other files, a series' files)
_FILE_NAME = re.compile(r"(?<![\w.-])[^\s/\\'\"()<>,;:]+\.(?:png|jpe?g|tiff?|bmp|dcm|ima|nii(?:\.gz)?|nrrd|"
                        r"nhdr|mha|mhd|raw|gz|zip)(?![\w.])", re.IGNORECASE)


def scrub_source(text: str, source: str) -> str:
    """``text`` without the scan's path, its file name (with or without suffixes), the name of its folder or
    any other image file's name: each becomes "<scan>" (a reader's warning names the file, a stack's notes
    name its other files; names like ``Doe_Jane_MRN123.nii.gz`` are common). Folder names that are ordinary
    words (``data``, ``images``: :data:`_GENERIC_FOLDERS`) stay, so the notes' own words are not rewritten."""
    p = Path(source)
    stem = p.name.split(".")[0]
    # a numbered stack's other files share the name before the number ("Doe Jane MRN123 0001.png")
    series = re.sub(r"[\s_.-]*\d+$", "", stem)
    names = {str(p), str(p.resolve()), str(p.parent), p.name, stem, series, p.parent.name}
    names = {n for n in names if len(n) >= 3 and n not in (".", "..") and n.lower() not in _GENERIC_FOLDERS}
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(r"(?<![A-Za-z0-9])" + re.escape(name) + r"(?![A-Za-z0-9])", "<scan>", text)
    text = _FILE_NAME.sub("<scan>", text)
    return re.sub(r"<scan>(?:[\s_.-]*<scan>)+", "<scan>", text)  # a name scrubbed in parts is one "<scan>"


# -- writers ---------------------------------------------------------------------------------

def csv_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The numbers as one tidy table: one row per (quantity, region); then one ``note`` row per note of
    the report (a scan the AI did not assess, numbers withheld and why, the reader's warnings), the text
    in the last column: a table of numbers read alone must not drop what qualifies them."""
    n = doc["numbers"]
    rows: list[dict[str, Any]] = []
    regions = [("both", "percent_of_lungs", "voxels", "ml"), ("left", "percent_left", "voxels_left", "ml_left"),
               ("right", "percent_right", "voxels_right", "ml_right")]
    for key, f in n["findings"].items():
        for region, pk, vk, mk in regions:
            rows.append({"quantity": key, "region": region, "voxels": f[vk], "volume_ml": f[mk],
                         "percent_of_lung": f[pk],
                         "hu_mean": f["hu_mean"] if region == "both" else None,
                         "hu_p10": f["hu_p10"] if region == "both" else None,
                         "hu_p50": f["hu_p50"] if region == "both" else None,
                         "hu_p90": f["hu_p90"] if region == "both" else None, "score": None})
        for zone, z in f["zones"].items():
            rows.append({"quantity": key, "region": zone, "voxels": z["voxels"], "volume_ml": z["ml"],
                         "percent_of_lung": z["percent"], "hu_mean": None, "hu_p10": None, "hu_p50": None,
                         "hu_p90": None, "score": None})
    for region, v in (n["lungs"].items() if n["has_lungs"] else ()):  # no lung masks: no rows of 0
        rows.append({"quantity": "lung", "region": region, "voxels": v["voxels"], "volume_ml": v["ml"],
                     "percent_of_lung": None, "hu_mean": None, "hu_p10": None, "hu_p50": None, "hu_p90": None,
                     "score": None})
    for s in n["severity"]:
        rows.append({"quantity": s["key"], "region": "total", "voxels": None, "volume_ml": None,
                     "percent_of_lung": None, "hu_mean": None, "hu_p10": None, "hu_p50": None, "hu_p90": None,
                     "score": s["total"]})
        for zone, sc in s["per_zone"].items():
            rows.append({"quantity": s["key"], "region": zone, "voxels": None, "volume_ml": None,
                         "percent_of_lung": None, "hu_mean": None, "hu_p10": None, "hu_p50": None,
                         "hu_p90": None, "score": sc})
    notes = list(doc["notes"])
    if doc["scan"].get("hu_doubtful"):
        notes.insert(0, "The intensities may not be HU (no air in the image): the HU figures are not valid.")
    if doc["labels"].get("edited_by_person") is None:
        notes.append("Whether a person edited these labels is unknown (labels from a file that does not record it).")
    blank = dict.fromkeys(rows[0] if rows else ("quantity", "region"))
    rows = [{**r, "note": None} for r in rows]
    rows += [{**blank, "quantity": "note", "region": "", "note": text} for text in notes]
    return rows


def _csv_bytes(doc: dict[str, Any]) -> bytes:
    buf = io.StringIO()
    rows = csv_rows(doc)
    w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else (round(v, 4) if isinstance(v, float) else v)) for k, v in r.items()})
    return buf.getvalue().encode("utf-8")


def _atomic_write(path: Path, data: bytes) -> None:
    from ..io.atomic import replace_durably, temp_path
    tmp = temp_path(path)
    try:
        tmp.write_bytes(data)
        replace_durably(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_report(path: str | Path, volume: Volume, labels: np.ndarray, lungs: Optional[LungMasks] = None,
                 *, anonymize: bool = False, models: Optional[dict[str, Any]] = None,
                 edited_by_person: Optional[bool] = False, findings_doc: Optional[dict[str, Any]] = None,
                 labels_source: Optional[str] = None, quant: Optional[Quantification] = None,
                 assessment: Optional[dict[str, Any]] = None, review_notes: Optional[list[str]] = None,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelLike] = None) -> Path:
    """Write a report of ``labels`` on ``volume`` as JSON, CSV or PDF (by the file's suffix).

    Lungs are found with :func:`~.lungs.lung_masks` when not given (findings united);
    numbers with :func:`~.numbers.quantify` when ``quant`` is not given.

    Raises
    ------
    UnsupportedFormatError
        The suffix is not ``.json``, ``.csv`` or ``.pdf``.
    LungLensError
        The file cannot be written (permissions, a full disk, a folder of that name), with the reason.
    """
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise UnsupportedFormatError(f"Cannot write a report as '{out.name}': use a .pdf, .json or .csv file name.")
    report = as_progress(progress)
    if lungs is None:
        try:
            lungs = lung_masks(volume, progress=report.sub(0.0, 0.6), cancel=cancel, labels=labels)
        except Exception as exc:  # no lungs: volumes only, say why
            from ..errors import CancelledError, DataError
            if isinstance(exc, CancelledError) or not isinstance(exc, DataError):
                raise
            lungs = None
    check_cancel(cancel)
    if quant is None:
        report(0.6, "Computing the numbers")
        quant = quantify(labels, volume.geometry, lungs, volume.array if volume.is_hu else None)
    doc = report_document(volume, quant, anonymize=anonymize, models=models, edited_by_person=edited_by_person,
                          lungs=lungs, labels_source=labels_source, findings_doc=findings_doc, labels=labels,
                          assessment=assessment, review_notes=review_notes)
    if lungs is None:
        doc["notes"].append("No lungs were found: percentages and severity scores are not available.")
    check_cancel(cancel)
    report(0.7, f"Writing {out.name}")
    if suffix == ".json":
        data = json.dumps(doc, indent=2, default=_clean).encode("utf-8")
    elif suffix == ".csv":
        data = _csv_bytes(doc)
    else:
        from .images import key_images
        from .pdf import pdf_bytes
        images = key_images(volume, labels, lungs.lung if lungs is not None else None, DEFAULT_TABLE)
        check_cancel(cancel)
        data = pdf_bytes(doc, images)
    from ..io._common import wrap_errors  # a folder that cannot be written, a full disk: said, not a crash
    with wrap_errors(out, "report", "write"):
        if out.is_dir():
            raise IsADirectoryError(21, "a folder of that name is there")
        out.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(out, data)
    report(1.0, f"Report written: {out.name}")
    return out


__all__ = ["write_report", "report_document", "csv_rows", "patient_fields", "removed_fields", "IDENTIFIERS",
           "FREE_TEXT", "ZONES"]
