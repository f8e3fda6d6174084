"""``python -m engine calibrate``: fit the finding probabilities of a segmentation model.

Runs the full reading (lungs, segmentation, anatomy rules) on the labelled slices and on
the lung-free slices of image stacks, fits the presence model of
:mod:`engine.inference.presence` on the *validation* slices (card ``split.val``: the
segmentation never saw them, so its regions there are as reliable as on a new scan) plus
the lung-free slices, measures it by 5-fold cross-validation on that pool (and, for
comparison, a model fitted on the 40 *training* slices measured on the validation
slices: over-confident), and writes ``resources/models/<model>.presence.json``
(coefficients, the sha256 of the weights they belong to, the figures). Rerun it whenever new weights land: a file
fitted to other weights is ignored (the reading then says "not calibrated").
``dicom/chest_ct_99`` is never used: it is the clear-lung validation scan.

Example
-------
python -m engine calibrate --model unet_infection --plot /tmp/reliability.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "calibrate"
DATA = Path("../shared/data")


def register(subparsers) -> None:
    p = subparsers.add_parser(NAME, help="fit the finding probabilities of a segmentation model (presence.json)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="segmentation model (default: the registry default)")
    p.add_argument("--images", default=str(DATA / "medseg100" / "images"), help="labelled 8-bit slices")
    p.add_argument("--labels", default=str(DATA / "medseg100" / "labels"), help="their label maps (0..3)")
    p.add_argument("--stacks", default=str(DATA / "radiopaedia_covid_stacks"),
                   help="folder of image stacks whose lung-free slices are negatives")
    p.add_argument("--out", default=None, help="output JSON (default resources/models/<model>.presence.json)")
    p.add_argument("--plot", default=None, help="also draw the held-out reliability diagram to this PNG")
    p.add_argument("--json", action="store_true", help="print the held-out metrics as JSON")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    p.set_defaults(func=run)


def build_evidence(args: argparse.Namespace):
    """(predictor, fit evidence, held-out evidence, refused names, card) for ``args``."""
    from ..errors import LungLensError
    from ..inference import Predictor
    from ..inference.calibration import labelled_evidence, labelled_slices, negative_evidence
    from ..inference.presence import KEEP_ALL

    predictor = Predictor(args.model, device=args.device, covid_model=False, presence=KEEP_ALL,
                          keep_probabilities=False)
    seg = predictor.load()["segmentation"]
    from ..models import registry
    card = registry.load(seg.name).card if args.model is None or not str(args.model).endswith(".safetensors") \
        else registry.load(args.model).card
    split = getattr(card, "split", None) or {}
    if not split.get("train") or not split.get("val"):
        raise LungLensError(f"The card of '{seg.name}' has no train/val split: the presence model cannot be fitted "
                            "on slices the segmentation model did not see.")
    images, labels = Path(args.images), Path(args.labels)
    if not images.is_dir() or not labels.is_dir():
        raise LungLensError(f"{images} or {labels} is not a folder: give the labelled slices (--images, --labels).")

    tty = sys.stderr.isatty()  # a log gets one line, not a carriage-return ticker
    print("Reading the labelled slices and the stacks' lung-free slices...", file=sys.stderr, flush=True)

    def say(name: str) -> None:
        if tty:
            print(f"\r  {name:<40}", end="", file=sys.stderr, flush=True)

    train, ref1 = labelled_evidence(predictor, labelled_slices(images, labels, split["train"]), say)
    val, ref2 = labelled_evidence(predictor, labelled_slices(images, labels, split["val"]), say)
    stacks = sorted(p for p in Path(args.stacks).iterdir() if p.is_dir()) if Path(args.stacks).is_dir() else []
    neg_fit, neg_val = negative_evidence(predictor, stacks, say)
    if tty:
        print(file=sys.stderr)
    info = {"train": len(train), "val": len(val), "negatives_fit": len(neg_fit), "negatives_val": len(neg_val)}
    return predictor, (train, neg_fit), (val, neg_val), ref1 + ref2, card, info


def run(args: argparse.Namespace) -> int:
    from ..inference.calibration import (check_evidence_rule, cross_validated_metrics, draw_reliability, fit,
                                         presence_metrics)
    from ..inference.presence import presence_path

    predictor, (train, neg_a), (val, neg_b), refused, card, info = build_evidence(args)
    pool = val + neg_a + neg_b
    fitted_on = (f"{info['val']} labelled slices the segmentation model never saw (card split.val) + "
                 f"{info['negatives_fit'] + info['negatives_val']} lung-free stack slices")
    model = fit(pool, model_name=card.name, model_sha256=card.sha256, fitted_on=fitted_on)
    cv = cross_validated_metrics(pool, folds=5)
    if not check_evidence_rule(pool, model):
        raise AssertionError("slice probability above 0.5 without a kept region: presence model is inconsistent")
    # for comparison: fitted on the segmentation's own training slices, measured on the held-out ones
    in_sample = presence_metrics(fit(train + neg_a), val + neg_b)

    def brief(ms: dict) -> dict:
        return {k: {m: v for m, v in d.items() if m != "reliability"} for k, d in ms.items()}
    model.metrics = {"cross_validated_held_out": brief(cv), "fit_on_training_slices_measured_on_val": brief(in_sample),
                     "refused_slices": refused, "counts": info,
                     "note": ("cross_validated_held_out: 5 folds over the pool the model is fitted on (validation "
                              "slices + lung-free slices); every slice is scored by a presence model fitted without "
                              "it, on segmentation output of slices the segmentation never saw. "
                              "fit_on_training_slices_measured_on_val: the same model fitted on the segmentation's "
                              "own 40 training slices is over-confident (region precision there 0.8-0.9, on new "
                              "slices 0.4-0.5), which is why the shipped model is fitted on held-out slices.")}
    out = Path(args.out) if args.out else presence_path(card.name)
    model.save(out)
    if args.plot:
        draw_reliability(cv, args.plot, f"{card.name}: 5-fold cross-validation on held-out slices")
    if args.json:
        print(json.dumps({"file": str(out), "counts": info, "refused": refused, "cross_validated": cv,
                          "fit_on_training_slices_measured_on_val": in_sample}, indent=1))
    else:
        print(f"{card.name}: fitted on {fitted_on}")
        for title, ms in (("5-fold CV (held out)", cv), ("fitted on training slices, measured on val", in_sample)):
            print(f" {title}:")
            for key, m in ms.items():
                print(f"  {key:<14} AUC {m['auc']:.3f}  Brier {m['brier']:.3f} (base rate {m['brier_base_rate']:.3f})  "
                      f"ECE {m['ece']:.3f}  n {m['n']} ({m['positives']} with it)")
        print(f"-> {out}")
    return 0
