"""``python -m engine predict PATH --out DIR``: the app's Run AI, without the app.

For one scan, writes ``DIR/labels.nii.gz`` (the scan's geometry; ``--format seg.nrrd``
for 3D Slicer, ``--format dcm`` for DICOM SEG over a DICOM source), ``DIR/lungs.nii.gz``
(the lungs the reading used: 0 background, 1 right lung, 2 left lung, same geometry) and
``DIR/findings.json`` (per finding: probability, volume in mL, % of lung, slices where
present, what each anatomy rule removed; per-slice probabilities; severity; RSNA
category; COVID likelihood with its caveat; models and versions; timings). A scan the AI
cannot read (no lung, unknown intensity scale, tiny or non-axial images) gets
``"assessment": {"assessed": false, "reasons": [...]}`` and no numbers.

When PATH is a folder of scans (files such as ``.nii.gz``, or sub-folders, rather than
one DICOM series or image stack), each scan is processed into ``DIR/<scan name>/``;
scans that cannot be read are skipped with a message, and the exit status is 1 when
any was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Optional

from ..io.label_formats import cli_choices, split_suffix
from .options import add_stack_order, first_slice
from .progress_bar import ProgressBar

NAME = "predict"
#: ``--format`` choice -> label file name, from the one format table
FORMATS = cli_choices()
#: scan file endings stripped from a scan's name (besides the label suffixes of the table)
SCAN_SUFFIXES = (".nhdr", ".mha", ".mhd", ".dcm")
_COMPANIONS = (".raw", ".json", ".txt", ".csv", ".md", ".zraw", ".gz.json")


def register(subparsers) -> None:
    p = subparsers.add_parser(NAME, help="segment findings and estimate their probabilities (Run AI, headless)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="a scan (file, DICOM folder, image stack) or a folder of scans")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default=None, help="segmentation model name, or 'default' (the default: the registry default)")
    p.add_argument("--findings-model", default=None, help="finding classifier name ('none' to skip)")
    p.add_argument("--covid-model", default=None, help="COVID classifier name ('none' to skip)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run the models")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "onnx"),
                   help="how the networks run: auto (ONNX Runtime on the CPU when installed, bf16 on CUDA), "
                        "fp32 (the reference), bf16 (autocast), onnx (ONNX Runtime, CPU); see docs/MODELS.md")
    p.add_argument("--format", default="nii.gz", choices=tuple(FORMATS), help="label file format")
    p.add_argument("--batch-size", type=int, default=None, help="slices per forward pass (default 8 on CPU, 32 on CUDA)")
    p.add_argument("--series", default=None, help="DICOM series to read (uid or series number)")
    add_stack_order(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _model_arg(value: Optional[str]):
    if value is None:
        return None
    return False if value.lower() == "none" else value


def scan_name(path: Path) -> str:
    name = path.name
    stem, suffix = split_suffix(name, SCAN_SUFFIXES)
    if suffix:
        return stem or name
    return path.stem if path.is_file() else name


def find_scans(path: Path) -> tuple[list[Path], bool]:
    """The scans under ``path`` and whether ``path`` is a folder of scans (vs one scan)."""
    if not path.is_dir():
        return [path], False
    from ..io.dicom_scan import is_dicom_file
    from ..io.images import image_files
    entries = [q for q in sorted(path.iterdir()) if not q.name.startswith(".")]
    files = [q for q in entries if q.is_file()]
    if image_files(path) or any(is_dicom_file(q) for q in files[:32]):
        return [path], False  # one DICOM series or image stack
    scans = [q for q in entries if q.is_dir() or not q.name.lower().endswith(_COMPANIONS)]
    return scans, True


def to_json(doc: dict) -> str:
    """Indented JSON with lists of numbers kept on one line (per-slice probabilities)."""
    text = json.dumps(doc, indent=1)
    return re.sub(r"\[\s*((?:-?[\d.eE+-]+|null)(?:,\s*(?:-?[\d.eE+-]+|null))*)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text) + "\n"


def predict_one(scan: Path, out: Path, predictor, args: argparse.Namespace) -> dict:
    """Load ``scan``, read it with ``predictor`` (:func:`engine.inference.pipeline.read`), write labels and
    findings.json into ``out``."""
    from .. import io
    from ..inference.pipeline import read
    from ..inference.summary import findings_document

    quiet = args.quiet
    bar = ProgressBar(f"{scan_name(scan)[:24]:<24} reading", enabled=not quiet)
    try:
        volume = io.load(scan, progress=bar, series=args.series, first_slice=first_slice(args))
    finally:
        bar.close()
    bar = ProgressBar(f"{scan_name(scan)[:24]:<24} AI     ", enabled=not quiet)
    try:
        reading = read(volume, predictor, progress=bar)  # the app's Run AI pipeline
    finally:
        bar.close()
    if not quiet:
        for w in volume.warnings:  # what the reader changed or assumed (also in findings.json's notes)
            print(f"warning: {scan_name(scan)}: {w}", file=sys.stderr)
    out_folder(out)
    labels_path = out / FORMATS[args.format]
    assessed = reading.prediction.assessed
    if assessed:  # a scan the AI did not read gets no label map: an empty one would read "no findings"
        io.save_labels(reading.prediction.labels, volume, labels_path)
    if reading.lungs is not None and hasattr(reading.lungs, "label_map"):
        io.save_labels(reading.lungs.label_map(), volume, out / "lungs.nii.gz")  # 1 right, 2 left
    doc = findings_document(reading.prediction, volume, reading.quantification,
                            labels_file=labels_path.name if assessed else None, notes=reading.notes)
    from ..io._common import wrap_errors
    with wrap_errors(out / "findings.json", "file", "write"):
        (out / "findings.json").write_text(to_json(doc))
    return doc


def out_folder(out: Path) -> None:
    """Make the output folder ``out``, or say why it cannot be (before any work is done)."""
    from ..errors import LungLensError
    from ..io._common import wrap_errors

    if out.exists() and not out.is_dir():
        raise LungLensError(f"--out {out} is a file: give a folder (labels, lungs and findings.json go in it).")
    with wrap_errors(out, "folder", "create"):
        out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise LungLensError(f"Could not write in {out}: permission denied.")


def summary_line(doc: dict) -> str:
    """One line per scan: mL (and whole-scan probability, once validated) per finding, or why it was not assessed.

    While ``scan_probabilities_validated`` is false the whole-scan probabilities are
    withheld here as in the app and the report; findings.json keeps them, flagged.
    """
    if not doc["assessment"]["assessed"]:
        return "not assessed: " + " ".join(doc["assessment"]["reasons"])
    validated = doc.get("scan_probabilities_validated") is not False
    parts = []
    for key, finding in doc["findings"].items():
        ml = finding["volume_ml"] if finding["volume_ml"] is not None else "?"
        parts.append(f"{key} p={finding['probability']:.2f} {ml} mL" if validated else f"{key} {ml} mL")
    if doc.get("rsna_category"):
        parts.append(f"RSNA {doc['rsna_category']['category']}")
    if not validated:
        parts.append("whole-scan probabilities withheld (not validated; see findings.json)")
    return ", ".join(parts)


def run(args: argparse.Namespace) -> int:
    from ..errors import CancelledError, LungLensError
    from ..inference import Predictor

    path = Path(args.path).expanduser()
    out = Path(args.out).expanduser()
    if not path.exists():
        raise LungLensError(f"{path} does not exist: give a scan file, a DICOM folder or a folder of scans.")
    scans, many = find_scans(path)
    if many and not scans:
        raise LungLensError(f"{path} holds no scans.")
    predictor = Predictor(args.model, device=args.device, findings_model=_model_arg(args.findings_model),
                          covid_model=_model_arg(args.covid_model), batch_size=args.batch_size,
                          keep_probabilities=False, precision=getattr(args, "precision", "auto"))
    predictor.load()
    out_folder(out)  # before any scan is read: an --out that cannot be written fails now, not after the AI
    skipped = 0
    for scan in scans:
        target = out / scan_name(scan) if many else out
        try:
            doc = predict_one(scan, target, predictor, args)
        except CancelledError:
            raise
        except LungLensError as exc:
            if not many:
                raise
            skipped += 1
            print(f"skipped {scan.name}: {exc}", file=sys.stderr)
            continue
        print(f"{scan.name}: {summary_line(doc)} -> {target}")
    if many:
        print(f"{len(scans) - skipped} of {len(scans)} scans processed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if skipped else 0
