"""``python -m engine info PATH [--json] [--series UID]``: what a scan is, before opening it in the app.

Prints the format, modality, shape ``(z, y, x)``, spacing ``(z, y, x)`` in mm, the
orientation (canonical, and as stored in the file), the intensity range (HU for CT:
min, max, 1st and 99th percentile), warnings raised while reading and, for a DICOM
folder, every image series found (``--series`` picks one of them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from .options import add_stack_order, first_slice

NAME = "info"


def register(subparsers) -> None:
    p = subparsers.add_parser(NAME, help="describe a scan: format, shape, spacing, orientation, HU range",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="NIfTI / NRRD / MHA file, DICOM file or folder, PNG/JPG slice or folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--series", help="DICOM series to read (its uid, SeriesInstanceUID or series number)")
    add_stack_order(p)
    p.set_defaults(func=run)


def _percentiles(arr: np.ndarray) -> tuple[float, float]:
    step = max(1, int(round((arr.size / 2_000_000) ** (1 / 3))))
    sample = arr[::step, ::step, ::step]
    p1, p99 = np.percentile(sample, [1, 99])
    return float(p1), float(p99)


def describe(path: str | Path, series: str | None = None, first_slice: str | None = None) -> dict[str, Any]:
    """The facts ``info`` prints, as a JSON-ready dict."""
    from .. import io
    from ..io.orientation import SourceOrientation

    fmt = io.detect_format(path)
    series_list = io.list_series(path) if fmt == "dicom" and Path(path).is_dir() else []
    if series_list:  # read the chosen series from the scan just made
        from ..io.dicom_scan import choose_series
        vol = io.load(path, series=choose_series(series_list, series))
    else:
        vol = io.load(path, series=series, first_slice=first_slice)
    arr = vol.array
    p1, p99 = _percentiles(arr)
    source_code = vol.geometry.orientation_code()
    if isinstance(vol.meta.get("source_orientation"), dict):
        source_code = SourceOrientation.from_dict(vol.meta["source_orientation"]).source_geometry.orientation_code()
    meta_keys = ("patient_id", "study_description", "series_description", "series_number",
                 "series_instance_uid", "manufacturer", "convolution_kernel")
    return {
        "path": str(path), "format": vol.format, "modality": vol.meta.get("modality", ""),
        "shape": list(vol.shape), "spacing": [round(s, 6) for s in vol.spacing],
        "spacing_known": vol.geometry.spacing_known, "origin": [round(o, 4) for o in vol.geometry.origin],
        "orientation": vol.geometry.orientation_code(), "source_orientation": source_code,
        "dtype": str(arr.dtype), "is_hu": vol.is_hu,
        "range": {"min": float(arr.min()), "max": float(arr.max()), "p1": p1, "p99": p99},
        "megabytes": round(vol.nbytes / 1e6, 1), "warnings": list(vol.warnings),
        "meta": {k: vol.meta[k] for k in meta_keys if vol.meta.get(k) not in (None, "")},
        "series": [s.to_dict() for s in series_list],
    }


def _text(d: dict[str, Any]) -> str:
    sz, sy, sx = d["spacing"]
    unit = "mm" if d["spacing_known"] else "(unknown: 1 mm placeholder)"
    r = d["range"]
    what = "HU range" if d["is_hu"] else "intensity"
    lines = [
        f"path:        {d['path']}",
        f"format:      {d['format']}" + (f"   modality: {d['modality']}" if d["modality"] else ""),
        f"shape:       {tuple(d['shape'])} (z, y, x)   {d['dtype']}, {d['megabytes']} MB",
        f"spacing:     ({sz:.4g}, {sy:.4g}, {sx:.4g}) {unit} (z, y, x)",
        f"orientation: {d['orientation']} (as stored: {d['source_orientation']})",
        f"{what + ':':12s} {r['min']:g} .. {r['max']:g}   (p1 {r['p1']:g}, p99 {r['p99']:g})",
    ]
    for key, value in d["meta"].items():
        lines.append(f"{key + ':':12s} {value}")
    if d["series"]:
        lines.append(f"series:      {len(d['series'])} found")
        for s in d["series"]:
            num = f"#{s['number']} " if s["number"] is not None else ""
            lines.append(f"  - {num}{s['modality']} {s['orientation']}, {s['n_slices']} slice(s) "
                         f"{s['rows']}x{s['columns']} '{s['description']}'  uid {s['uid']}")
    for w in d["warnings"]:
        lines.append(f"warning:     {w}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    info = describe(args.path, series=args.series, first_slice=first_slice(args))
    print(json.dumps(info, indent=1) if args.json else _text(info))
    return 0
