"""``python -m engine lungs PATH --out FILE``: the right and left lung of a scan.

Writes a label map in the scan's geometry (0 background, 1 right lung, 2 left lung;
NIfTI ``.nii.gz`` / ``.nii``, or ``.nrrd``) made by :func:`engine.anatomy.lung_masks`,
and prints their volumes. These are the lungs the AI reading and the report start from:
the reading then adds the dense findings it keeps at their edge (and, on 8-bit lung-window
images, the lung model's mask), and ``report`` the labels it is given, so their lung
volumes can be a little larger (0.2 % on the phantom); ``predict``'s ``lungs.nii.gz`` is
its own, and ``report --lungs`` takes it for the same numbers as ``findings.json``. Sides are
the patient's, decided from the geometry (in a standard axial view the right lung is on
the image's left).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .options import add_stack_order, first_slice

NAME = "lungs"


def register(subparsers) -> None:
    p = subparsers.add_parser(NAME, help="find the right and left lung (0 background, 1 right, 2 left)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="a scan (file, DICOM folder, image stack)")
    p.add_argument("--out", required=True, help="label file to write (.nii.gz, .nii or .nrrd)")
    p.add_argument("--series", default=None, help="DICOM series to read (uid or series number)")
    add_stack_order(p)
    p.add_argument("--json", action="store_true", help="print the volumes as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import io
    from ..anatomy import LEFT_LUNG, RIGHT_LUNG, lung_masks
    from ..errors import DataError, LungLensError

    path = Path(args.path).expanduser()
    if not path.exists():
        raise LungLensError(f"{path} does not exist: give a scan file, a DICOM folder or an image stack.")
    volume = io.load(path, series=args.series, first_slice=first_slice(args))
    try:
        lungs = lung_masks(volume)
    except DataError as exc:
        raise LungLensError(str(exc)) from exc
    out = Path(args.out).expanduser()
    from ..io._common import wrap_errors
    with wrap_errors(out.parent, "folder", "create"):
        out.parent.mkdir(parents=True, exist_ok=True)
    lab = lungs.label_map()
    io.save_labels(lab, volume, out)
    ml = volume.geometry.voxel_volume_ml if volume.geometry.spacing_known else None
    info = {"file": str(out), "method": lungs.method, "warnings": list(volume.warnings) + list(lungs.warnings)}
    for name, value in (("right", RIGHT_LUNG), ("left", LEFT_LUNG)):
        n = int((lab == value).sum())
        info[name] = {"label": value, "voxels": n, "volume_ml": round(n * ml, 1) if ml is not None else None}
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        def fmt(side: dict) -> str:
            return f"{side['volume_ml']} mL" if side["volume_ml"] is not None else f"{side['voxels']} voxels"
        print(f"right lung {fmt(info['right'])}, left lung {fmt(info['left'])} ({lungs.method}) -> {out}")
        for w in info["warnings"]:  # the reader's (NaN voxels filled, a stack's order), then the lungs'
            print(f"note: {w}")
    return 0
