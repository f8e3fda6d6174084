"""``python -m engine report PATH --labels FILE --out FILE.pdf|.json|.csv``: numbers and report.

Reads the scan (``engine.io.load``) and its label map (``engine.io.load_labels``, on the
same grid), finds the lungs (HU or intensity rules; ``--lungs`` loads a lung mask instead: ``predict``'s
``lungs.nii.gz`` with 1 right and 2 left lung as it is, any other mask as "lung" split into sides by the
rules), computes volumes, % of lung per zone,
HU statistics and the zone-based severity scores, and writes the report in the format
of ``--out``'s suffix. ``--no-identifiers`` leaves names, IDs, dates, UIDs, paths, age and free-text descriptions
out, and the report says which fields were removed.
``--findings`` takes the ``findings.json`` of ``predict`` for model names, versions and
finding probabilities. ``--edited`` records that a person edited the labels; without it, a
``.seg.nrrd`` or DICOM SEG ``--labels`` file written by LungLens says so itself (its stored
edited-by-a-person voxels), and for a file that does not record it (NIfTI, NRRD) the report says
"unknown".

``PATH`` may be ``phantom`` for the built-in synthetic chest CT (its ground-truth labels
are used when ``--labels`` is not given).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from .options import add_stack_order, first_slice

NAME = "report"


def register(subparsers) -> None:
    p = subparsers.add_parser(NAME, help="quantify labels on a scan and write a PDF/JSON/CSV report",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="scan: NIfTI / NRRD / MHA, DICOM file or folder, PNG/JPG; or 'phantom'")
    p.add_argument("--labels", help="label map on the scan's grid (0..3)")
    p.add_argument("--out", required=True, help="report file: .pdf, .json or .csv")
    p.add_argument("--no-identifiers", action="store_true", help="leave identifiers, age, descriptions and paths out (the report lists what was removed)")
    p.add_argument("--findings", help="findings.json written by 'predict' (models, probabilities)")
    p.add_argument("--map-unknown-labels", action="store_true",
                   help="set label values outside the label table (0..3) to background instead of refusing the file")
    p.add_argument("--lungs", help="lung mask file on the scan's grid, instead of finding the lungs: 1 right and 2 "
                                   "left lung (predict's lungs.nii.gz), or any other mask (sides by the rules)")
    p.add_argument("--edited", action="store_true",
                   help="the labels were edited by a person (default: what a .seg.nrrd or DICOM SEG --labels "
                        "file records; unknown for other label files)")
    p.add_argument("--series", help="DICOM series to read (uid, SeriesInstanceUID or number)")
    add_stack_order(p)
    p.add_argument("--print", action="store_true", help="also print the main numbers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import DataError
    from ..quantification import LungMasks, lung_masks, quantify
    from ..quantification.report import FORMATS, write_report
    from .progress_bar import ProgressBar

    out = Path(args.out)
    if out.suffix.lower() not in FORMATS:
        raise DataError(f"--out must end in .pdf, .json or .csv, got '{out.name}'.")
    if args.path == "phantom":
        from ..phantom import chest_ct
        ph = chest_ct()
        volume, labels = ph.volume, ph.labels
        if args.labels:
            from ..io import load_labels
            labels = load_labels(args.labels, reference=volume,
                                 unknown="background" if args.map_unknown_labels else "refuse")
    else:
        from ..io import load, load_labels
        if not args.labels:
            raise DataError("Give the label map with --labels FILE (e.g. the labels written by 'predict').")
        volume = load(args.path, series=args.series, first_slice=first_slice(args))
        labels = load_labels(args.labels, reference=volume,
                             unknown="background" if args.map_unknown_labels else "refuse")
    findings_doc = None
    if args.findings:
        try:
            findings_doc = json.loads(Path(args.findings).read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"Cannot read {args.findings}: {exc}. Give the findings.json written by 'predict'.")
    lungs = None
    progress = ProgressBar("report")
    if args.lungs:
        from ..io import load_labels
        from ..quantification import unite_findings
        import numpy as np

        sides = load_labels(args.lungs, reference=volume, unknown="keep")
        if not sides.any():
            raise DataError(f"The lung mask {args.lungs} is empty.")
        if (sides == 2).any() and np.isin(sides, (0, 1, 2)).all():
            # predict's lungs.nii.gz (1 right, 2 left): the reading's own lungs, as they are (they were re-found
            # as a "model" mask, 0.6 mL apart from the app's, named model+hu-rules: QA pass)
            found = LungMasks.from_masks(sides == 2, sides == 1, volume.geometry,
                                         method=f"given ({Path(args.lungs).name})")
        else:  # one value: a lung mask of another tool, split into sides by the rules
            found = lung_masks(volume, model_mask=sides > 0)
        lungs = unite_findings(found, labels, volume.geometry)
    elif args.path == "phantom" and not args.labels:
        lungs = LungMasks.from_masks(ph.lung_left, ph.lung_right, volume.geometry, method="phantom ground truth")
    else:
        try:
            lungs = lung_masks(volume, progress=progress, labels=labels)
        except DataError as exc:
            print(f"warning: {exc}", file=sys.stderr)
    quant = quantify(labels, volume.geometry, lungs, volume.array if volume.is_hu else None)
    edited: Optional[bool] = bool(args.edited)
    if not edited and args.labels:
        from ..io import load_edited
        stored = load_edited(args.labels, volume)  # provenance embedded by LungLens (.seg.nrrd, DICOM SEG)
        edited = None if stored is None else bool(stored.any())  # None: the file does not record it
    written = write_report(out, volume, labels, lungs, anonymize=args.no_identifiers, edited_by_person=edited,
                           findings_doc=findings_doc, labels_source=args.labels, quant=quant, progress=progress)
    progress.close()
    if args.print:
        from ..quantification.report import report_document
        doc = report_document(volume, quant, anonymize=True)
        from ..quantification.numbers import shown
        for key, f in doc["numbers"]["findings"].items():  # rounded as the app and the PDF round ("<0.1")
            ml = "unknown" if f["ml"] is None else f"{shown(f['ml'], f['voxels'])} mL"
            pct = "n/a" if f["percent_of_lungs"] is None else f"{shown(f['percent_of_lungs'], f['voxels'])} %"
            print(f"{f['name']}: {ml}, {pct} of lungs")
        for s in doc["numbers"]["severity"]:
            print(f"{s['name']}: {s['total']} / {s['maximum']}")
    print(f"wrote {written}")
    return 0
