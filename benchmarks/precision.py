"""Accuracy check of the faster runtimes against float32 (and of this pipeline against another
checkout's); prints JSON.

For each runtime of ``--runtimes`` (default ``auto``, the chosen one, and ``bf16``) the
whole reading (:class:`engine.inference.Predictor`, default models, calibrated presence,
lung gate on, no COVID classifier) runs on

``medseg``
    the labelled slices of ``../shared/data/medseg100``: the held-out validation split
    of the segmentation model's card (``python -m engine evaluate --split val``) and,
    separately, all 100 slices. Per finding: Dice against the ground truth (mean over
    the slices whose truth holds it, as ``engine evaluate``) in fp32 and in the runtime,
    the Dice between the two label maps (pooled), the largest change of the calibrated
    per-slice probability and the per-slice AUC (truth present or not) of both;
``scans``
    ``dicom/chest_ct_99`` and the five ``radiopaedia_covid_stacks``: per finding the
    Dice between the fp32 and the runtime's label maps (pooled over the scan, where
    either has the finding) and the largest change of the per-slice probability.

With ``--baseline DIR`` the scans also run in fp32 with the code of ``DIR`` (e.g.
``../main``, the pipeline before it worked at model resolution) and the Dice between
its labels and this checkout's fp32 / chosen-runtime labels is reported per finding.

Tolerance (docs/MODELS.md): Dice against the truth changes by less than 0.005 per
finding, calibrated per-slice probabilities by less than 0.02, AUC by less than 0.005.

Usage: ``python benchmarks/precision.py [--runtimes auto,bf16] [--baseline ../main]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
FINDING_NAMES = ("ggo", "consolidation", "effusion")
TOLERANCE = {"dice": 0.005, "slice_probability": 0.02, "auc": 0.005}


def _scans() -> dict[str, Path]:
    out = {"chest_ct_99": DATA / "dicom" / "chest_ct_99"}
    stacks = DATA / "radiopaedia_covid_stacks"
    if stacks.is_dir():
        for p in sorted(stacks.iterdir()):
            if p.is_dir():
                out[p.name] = p
    return {k: v for k, v in out.items() if v.is_dir()}


def _predictor(precision: str):
    from engine.inference import Predictor

    kw = {"precision": precision} if precision != "today" else {}
    return Predictor(device="cpu", covid_model=False, keep_probabilities=False, **kw)


def dump_scans(precision: str, out: Path) -> None:
    """Labels and per-slice probabilities of every scan, saved to ``out`` (npz)."""
    from engine import io

    predictor = _predictor(precision)
    arrays = {}
    for name, path in _scans().items():
        pred = predictor.predict(io.load(path))
        arrays[f"{name}/labels"] = pred.labels
        arrays[f"{name}/slice_p"] = pred.slice_probabilities
    np.savez(out, **arrays)


def _dice(a: np.ndarray, b: np.ndarray) -> float | None:
    s = int(a.sum()) + int(b.sum())
    return None if s == 0 else round(2.0 * int(np.logical_and(a, b).sum()) / s, 5)


def _auc(truth: np.ndarray, score: np.ndarray) -> float | None:
    pos, neg = score[truth], score[~truth]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return round(float(greater) / (len(pos) * len(neg)), 5)


def medseg(runtimes: list[str]) -> dict:
    from engine.cli.evaluate import find_pairs, read_pair, select_split
    from engine.inference.calibration import slice_volume
    from engine.models import registry

    images, labels = DATA / "medseg100" / "images", DATA / "medseg100" / "labels"
    pairs = find_pairs(images, labels)
    card = registry.get_card(registry.default_model("segmentation"))
    val = {stem for stem, _, _ in select_split(pairs, card, "val")}
    slices = [(stem, *read_pair(img, lab)) for stem, img, lab in pairs]
    res: dict[str, dict] = {}
    for r in ["fp32"] + runtimes:
        predictor = _predictor(r)
        labs, sp = [], []
        for _, img, _ in slices:
            pred = predictor.predict(slice_volume(img))
            labs.append(pred.labels[0])
            sp.append(pred.slice_probabilities[0])
        res[r] = {"labels": labs, "slice_p": np.array(sp)}
    out: dict = {"slices": len(slices), "val_slices": len(val), "runtimes": {}}
    for r in runtimes:
        per_split = {}
        for split, keep in (("val", [s[0] in val for s in slices]), ("all", [True] * len(slices))):
            idx = [i for i, k in enumerate(keep) if k]
            rows = {}
            for c, key in enumerate(FINDING_NAMES):
                lab = c + 1
                truth_any = np.array([(slices[i][2] == lab).any() for i in idx])
                with_truth = [i for i in idx if (slices[i][2] == lab).any()]

                def mean_dice(rt: str) -> float | None:
                    d = [_dice(res[rt]["labels"][i] == lab, slices[i][2] == lab) for i in with_truth]
                    return round(float(np.mean(d)), 5) if d else None
                d32, dr = mean_dice("fp32"), mean_dice(r)
                a32 = _auc(truth_any, res["fp32"]["slice_p"][idx, c])
                ar = _auc(truth_any, res[r]["slice_p"][idx, c])
                agree = _dice(np.stack([res["fp32"]["labels"][i] == lab for i in idx]),
                              np.stack([res[r]["labels"][i] == lab for i in idx]))
                rows[key] = {"n_with_truth": len(with_truth), "dice_fp32": d32, "dice": dr,
                             "dice_change": None if d32 is None else round(dr - d32, 5),
                             "dice_vs_fp32_labels": agree,
                             "slice_p_max_abs_diff": round(float(np.abs(res[r]["slice_p"][idx, c]
                                                                        - res["fp32"]["slice_p"][idx, c]).max()), 5),
                             "auc_fp32": a32, "auc": ar,
                             "auc_change": None if a32 is None or ar is None else round(ar - a32, 5)}
            per_split[split] = rows
        out["runtimes"][r] = per_split
    return out


def _scan_compare(a: dict, b: dict) -> dict:
    out = {}
    for name in sorted({k.split("/")[0] for k in a}):
        la, lb = a[f"{name}/labels"], b[f"{name}/labels"]
        pa, pb = a[f"{name}/slice_p"], b[f"{name}/slice_p"]
        row = {}
        for c, key in enumerate(FINDING_NAMES):
            va, vb = la == c + 1, lb == c + 1
            row[key] = {"dice": _dice(va, vb), "voxels": [int(va.sum()), int(vb.sum())],
                        "slice_p_max_abs_diff": round(float(np.abs(pa[:, c] - pb[:, c]).max()), 5)}
        out[name] = row
    return out


def _spawn_dump(precision: str, out: Path, code_root: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code_root))
    proc = subprocess.run([sys.executable, __file__, "--dump", str(out), "--runtimes", precision],
                          capture_output=True, text=True, cwd=code_root, env=env)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtimes", default="auto,bf16")
    ap.add_argument("--baseline", default="")
    ap.add_argument("--skip-medseg", action="store_true")
    ap.add_argument("--skip-scans", action="store_true")
    ap.add_argument("--dump", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.dump:
        dump_scans(args.runtimes, Path(args.dump))
        return 0
    import torch

    from engine.inference.runtime import choose

    runtimes = [r for r in args.runtimes.split(",") if r]
    report: dict = {"tolerance": TOLERANCE, "auto_is": choose(torch.device("cpu"), "auto"),
                    "threads": torch.get_num_threads()}
    if not args.skip_medseg:
        report["medseg"] = medseg(runtimes)
    if not args.skip_scans:
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            got = {r: _spawn_dump(r, t / f"{r}.npz", ROOT) for r in ["fp32"] + runtimes}
            report["scans"] = {r: _scan_compare(got["fp32"], got[r]) for r in runtimes}
            if args.baseline:
                today = _spawn_dump("today", t / "today.npz", Path(args.baseline).resolve())
                report["scans_vs_baseline"] = {r: _scan_compare(today, got[r]) for r in ["fp32"] + runtimes}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
