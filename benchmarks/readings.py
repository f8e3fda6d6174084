"""The table "Measured on real inputs" of ``docs/MODELS.md``: the reading of every real input.

Reads, with the default models and the same pipeline as ``python -m engine predict``:
``dicom/chest_ct_99``, the five radiopaedia stacks, each NY-SBU slice, and a no-lung input
built here (the 24 lowest slices of radiopaedia case 74560, below the lungs). Prints one
Markdown row per input: whole-scan probability per finding, GGO + consolidation % of lung,
severity (Pan / Chung, zones), RSNA category with its deciding features, the nodules set
aside, and "not assessed" reasons.

Usage: ``python benchmarks/readings.py [--json FILE] [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def inputs() -> list[tuple[str, Callable[[], object]]]:
    """``(name, loader)`` of every input; the no-lung input is the 24 lowest slices of case 74560."""
    from engine import io
    from engine.types import Geometry, Volume

    def nolung() -> Volume:
        v = io.load(DATA / "radiopaedia_covid_stacks" / "case_74560")
        arr = v.array[:24]  # canonical order: slice 0 is the lowest (the upper abdomen, below the lungs)
        return Volume(arr, Geometry(shape=arr.shape, spacing=v.geometry.spacing, spacing_known=False,
                                    direction=v.geometry.direction), is_hu=False, format=v.format)

    out = [("chest_ct_99", lambda: io.load(DATA / "dicom" / "chest_ct_99"))]
    for p in sorted((DATA / "radiopaedia_covid_stacks").glob("case_*")):
        out.append((p.name, lambda p=p: io.load(p)))
    out.append(("nolung_abdomen_stack", nolung))
    for p in sorted((DATA / "dicom" / "covid_ny_sbu_axial_slices").rglob("*.dcm")):
        out.append((f"nysbu_{p.parent.name}_{p.stem}", lambda p=p: io.load(p)))
    return out


def row(name: str, doc: dict) -> str:
    if not doc["assessment"]["assessed"]:
        return f"| {name} | — | — | — | — | — | — | not assessed: {' '.join(doc['assessment']['reasons'])} |"
    f = doc["findings"]
    sev = doc.get("severity") or []
    pan = next((s["total"] for s in sev if s["key"].lower().startswith("pan")), "?")
    chung = next((s["total"] for s in sev if s["key"].lower().startswith("chung")), "?")
    cat = doc.get("rsna_category") or {}
    deciding = "; ".join(cat.get("deciding_features", []))
    notes = []
    if doc.get("covid"):
        notes.append(f"COVID classifier {doc['covid']['probability']}")
    for n in doc.get("nodules") or []:
        notes.append(f"nodule set aside: {n['diameter_mm']:.0f} mm, slices {n['slices'][0]}-{n['slices'][1]}")
    return (f"| {name} | {f['ggo']['probability']:.2f} | {f['consolidation']['probability']:.2f} | "
            f"{f['effusion']['probability']:.2f} | {doc['involvement_percent_of_lung']} | {pan} / {chung} | "
            f"{cat.get('category', '?')} ({deciding}) | {'; '.join(notes)} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="also write every findings.json (minus per-slice lists) to this file")
    ap.add_argument("--only", nargs="+", help="only these inputs (names as in the table)")
    args = ap.parse_args()
    from engine.inference import Predictor
    from engine.inference.pipeline import read
    from engine.inference.summary import findings_document

    predictor = Predictor()
    docs = {}
    for name, load in inputs():
        if args.only and name not in args.only:
            continue
        volume = load()
        reading = read(volume, predictor)
        doc = findings_document(reading.prediction, volume, reading.quantification, notes=reading.notes)
        doc.pop("slice_probabilities", None)
        docs[name] = doc
        print(row(name, doc), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(docs, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
