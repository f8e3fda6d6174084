"""``python -m engine models [--json] [--check] [--architectures]``: the models LungLens ships.

One line per model card in ``resources/models``: name (``*`` marks the default of its
task), task, architecture, parameters, and the validation figures its card records
(segmentation: Dice per finding and for infection, Inf-Net's threshold-averaged Dice;
classifiers: AUC / accuracy). ``--check`` also reads every weights file and compares
its sha256 with the card (a damaged or replaced file is reported, exit status 1), and checks
that each segmentation model's ``<name>.presence.json`` (``engine calibrate``) was fitted for
those weights.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Optional

NAME = "models"


def register(subparsers) -> None:
    p = subparsers.add_parser(NAME, help="list the shipped models with their validation figures",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument("--check", action="store_true", help="verify each weights file's sha256 against its card")
    p.add_argument("--architectures", action="store_true",
                   help="list the architecture keys that 'train --arch' and configs accept")
    p.set_defaults(func=run)


def _fmt(x: Optional[float]) -> str:
    return "-" if x is None or x != x else f"{x:.3f}"


def summary(card: Any) -> dict[str, Any]:
    """The figures ``models`` prints for one card."""
    from ..models.registry import DEFAULTS

    m = card.val_metrics or {}
    row: dict[str, Any] = {"name": card.name, "task": card.task, "architecture": card.architecture,
                           "params": card.params, "default": DEFAULTS.get(card.task) == card.name,
                           "input_size": list(card.input_size), "date": card.date, "device": card.device}
    if "classes" in m or "infection" in m:
        for key, d in (m.get("classes") or {}).items():
            row[f"{key}_dice"] = (d or {}).get("dice")
        inf = m.get("infection") or {}
        row["infection_dice"] = inf.get("dice")
        row["mean_dice_thresholds"] = inf.get("mean_dice_thresholds")
    else:
        for key, d in m.items():
            if isinstance(d, dict):
                row[f"{key}_auc"] = d.get("auc")
                row[f"{key}_accuracy"] = d.get("accuracy")
    return row


def run(args: argparse.Namespace) -> int:
    from ..models.registry import ARCHITECTURES, MODELS_DIR, available, sha256_file

    if args.architectures:
        for key, module in ARCHITECTURES.items():
            print(f"{key:14s} {module}")
        return 0

    cards = available()
    rows = [summary(c) for c in cards]
    bad = 0
    if args.check:
        for card, row in zip(cards, rows):
            path = MODELS_DIR / (card.weights or f"{card.name}.safetensors")
            ok = path.is_file() and sha256_file(path) == card.sha256
            row["sha256_ok"] = ok
            bad += not ok
            fitted = MODELS_DIR / f"{card.name}.presence.json"
            if card.task == "segmentation" and fitted.is_file():
                # the finding probabilities were fitted for these very weights
                try:
                    tied = json.loads(fitted.read_text()).get("model_sha256") == card.sha256
                except (OSError, ValueError):
                    tied = False
                row["presence_ok"] = tied
                bad += not tied
    if args.json:
        print(json.dumps(rows, indent=1))
        return 1 if bad else 0
    if not rows:
        print(f"No models in {MODELS_DIR}.")
        return 1
    print(f"{'model':22s} {'task':13s} {'architecture':14s} {'params':>9s}  validation")
    for row in rows:
        name = row["name"] + (" *" if row["default"] else "")
        if row["task"] == "lung":
            figs = f"lung Dice {_fmt(row.get('infection_dice'))} (against derived lung masks)"
        elif "infection_dice" in row:
            figs = (f"Dice GGO {_fmt(row.get('ggo_dice'))} cons {_fmt(row.get('consolidation_dice'))} "
                    f"eff {_fmt(row.get('effusion_dice'))} infection {_fmt(row['infection_dice'])} "
                    f"meanDic {_fmt(row.get('mean_dice_thresholds'))}")
        else:
            figs = " ".join(f"{k[:-4]} AUC {_fmt(v)}" for k, v in row.items() if k.endswith("_auc"))
        if "sha256_ok" in row:
            figs += "  sha256 " + ("ok" if row["sha256_ok"] else "MISMATCH")
        if "presence_ok" in row:
            figs += ", presence fit " + ("ok" if row["presence_ok"] else "FOR OTHER WEIGHTS (engine calibrate)")
        print(f"{name:22s} {row['task']:13s} {row['architecture']:14s} {row['params']:>9,d}  {figs}")
    print("* default model of its task. Validation: the split recorded in each card "
          "(see docs/MODELS.md).")
    return 1 if bad else 0
