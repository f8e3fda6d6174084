"""``python -m engine export SCAN --labels FILE --out PATH``: write labels over their scan.

The format follows the ``--out`` name: ``.nii``/``.nii.gz``, ``.nrrd``, ``.seg.nrrd``,
``.mha``, ``.dcm`` (DICOM SEG; the scan must be DICOM) or a folder name (PNG slices).
Labels come from a file (``--labels``) or from the scan's crash-recovery journal
(``--from-journal``: the newest session with unsaved edits, else the newest).
``--edited-mask PATH`` also writes the voxels changed by a person: from the journal,
or as the difference to ``--ai-labels``. A ``.seg.nrrd`` or DICOM SEG ``--out`` carries
the voxels changed by a person inside the file (from the journal, ``--ai-labels``, or the
provenance stored in a ``--labels`` file of those formats). ``--itksnap-labels`` writes ITK-SNAP's label
description file (names and colours) beside the labels, e.g. ``labels.label.txt``.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from ..errors import LungLensError
from .options import add_stack_order, first_slice

NAME = "export"


def register(subparsers) -> None:
    p = subparsers.add_parser(NAME, help="export a label map over its scan (NIfTI, NRRD, .seg.nrrd, DICOM SEG, PNG)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scan", help="the scan the labels belong to (file or DICOM folder)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--labels", help="label map file or PNG folder on the scan's grid")
    src.add_argument("--from-journal", action="store_true",
                     help="take the labels of the last committed edit from the scan's recovery journal")
    p.add_argument("--out", required=True, help="target file or folder; the format follows the name")
    p.add_argument("--map-unknown-labels", action="store_true",
                   help="set label values outside the label table (0..3) to background instead of refusing the file")
    p.add_argument("--edited-mask", metavar="PATH", help="also write the voxels changed by a person")
    p.add_argument("--ai-labels", metavar="FILE",
                   help="the AI result the edits started from (for --edited-mask with --labels)")
    p.add_argument("--series", help="DICOM series (SeriesInstanceUID or number) when the folder has several")
    add_stack_order(p)
    p.add_argument("--itksnap-labels", action="store_true",
                   help="also write an ITK-SNAP label description file (NAME.label.txt) beside the labels")
    p.add_argument("--json", action="store_true", help="print the written paths as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import io
    from ..editing.editor import LabelEditor
    from ..editing.export import export_labels
    from ..editing.journal import scan_key
    from ..editing.journals import session_journals, unsaved_journals

    volume = io.load(args.scan, series=args.series, first_slice=first_slice(args))
    unknown = "background" if args.map_unknown_labels else "refuse"
    edited = None
    editor = None
    if args.from_journal:
        key = scan_key(volume.source or args.scan, volume.geometry)
        found = unsaved_journals(key) or session_journals(key)
        if not found:
            raise LungLensError(f"No edit journal exists for {args.scan}: export from a label file with --labels.")
        path = found[0]
        editor = LabelEditor.from_journal(path)
        if editor.labels.shape != volume.shape:
            raise LungLensError("The edit journal does not match this scan's grid.")
        labels = editor.labels
        person = editor.person_mask()
    else:
        labels = io.load_labels(args.labels, reference=volume, unknown=unknown)
        if args.ai_labels:
            person = labels != io.load_labels(args.ai_labels, reference=volume, unknown=unknown)
        else:
            person = io.load_edited(args.labels, volume)  # provenance stored in a .seg.nrrd / DICOM SEG
        if args.edited_mask and person is None:
            raise LungLensError("--edited-mask needs --ai-labels FILE (the AI result the edits started "
                                "from) or --from-journal.")
    edited = person if args.edited_mask else None
    written = export_labels(labels, volume, args.out, edited_mask=edited,
                            edited_mask_path=args.edited_mask if edited is not None else None, edited=person)
    if args.itksnap_labels:
        from ..io.itksnap import label_descriptions_path, write_label_descriptions

        written = list(written) + [write_label_descriptions(label_descriptions_path(written[0]))]
    if args.from_journal:
        editor.mark_saved(str(written[0]))  # the journal's edits are saved now: no restore offer
        editor.journal.close()  # type: ignore[union-attr]
    if args.json:
        print(json.dumps({"written": [str(p) for p in written],
                          "voxels": {str(v): int(n) for v, n in enumerate(np.bincount(labels.ravel()))
                                     if v and n}}))
    else:
        for p in written:
            print(f"wrote {p}")
    return 0
