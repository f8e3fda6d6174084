"""``python -m engine train``: train a model from a JSON config and/or flags.

Examples
--------
python -m engine train --config engine/training/configs/unet_s16.json
python -m engine train --name my_unet --arch unet --model '{"base": 16}' --labelled ../shared/data/medseg100 \
    --pseudo ../shared/data/zenodo20_unlabeled --pseudo-batch 8 --epochs 40
"""

from __future__ import annotations

import argparse
import json

from ..errors import DataError

NAME = "train"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="train a segmentation / classification model",
                       description="Train a model of engine.models; writes model.safetensors, card.json, "
                                   "metrics.csv and a resumable checkpoint/ into --out.")
    p.add_argument("--config", help="JSON training config (TrainConfig fields); flags override it")
    p.add_argument("--name")
    p.add_argument("--task", choices=["segmentation", "lung", "findings", "covid"])
    p.add_argument("--arch", dest="architecture", help="architecture key (python -m engine models --architectures)")
    p.add_argument("--model", help="architecture config as JSON, e.g. '{\"base\": 16}'")
    p.add_argument("--input-size", type=int)
    p.add_argument("--labelled", help="folder with images/ + labels/ (medseg100 format)")
    p.add_argument("--label-volume", nargs=2, action="append", metavar=("SCAN", "LABELS"),
                   help="NIfTI scan + label volume exported by the app (repeatable)")
    p.add_argument("--pseudo", help="folder with images/ + pseudo_masks/ (zenodo20 format)")
    p.add_argument("--pseudo-batch", type=int)
    p.add_argument("--class-folders", help="folder with one sub-folder per class (task covid)")
    p.add_argument("--data-root", help="replaces '{data}' in the config's data paths (default ../shared/data)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--steps", dest="steps_per_epoch", type=int, help="steps per epoch")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 mixed precision on CUDA")
    p.add_argument("--time-budget", dest="time_budget_s", type=float, help="stop after this many seconds")
    p.add_argument("--out", help="run folder (default runs/NAME)")
    p.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    p.add_argument("--export", metavar="DIR", help="after training also write fp16 <name>.safetensors + .json to DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _bar(quiet: bool):
    from .progress_bar import ProgressBar

    return ProgressBar("training", enabled=not quiet)


def build_config(args: argparse.Namespace):
    from ..training.config import TrainConfig

    over = {k: getattr(args, k, None) for k in ("name", "task", "architecture", "input_size", "labelled", "pseudo",
                                                  "class_folders", "epochs", "steps_per_epoch", "batch_size", "lr",
                                                  "seed", "device", "time_budget_s", "out")}
    if args.pseudo_batch is not None:
        over["pseudo_batch"] = args.pseudo_batch
    if args.model:
        try:
            over["model"] = json.loads(args.model)
        except ValueError as exc:
            raise DataError(f"--model is not valid JSON: {exc}") from exc
    if args.label_volume:
        over["label_volumes"] = [list(v) for v in args.label_volume]
    if args.no_amp:
        over["amp"] = False
    if args.no_resume:
        over["resume"] = False
    over = {k: v for k, v in over.items() if v is not None}
    if args.config:
        d = json.loads(open(args.config).read()) if args.config else {}
    else:
        d = {}
    d.update(over)
    root = args.data_root or "../shared/data"
    for key in ("labelled", "pseudo", "class_folders"):
        if isinstance(d.get(key), str):
            d[key] = d[key].replace("{data}", root)
    return TrainConfig.from_dict(d)


def run(args: argparse.Namespace) -> int:
    from ..models.registry import load, save
    from ..training import train

    cfg = build_config(args)
    card = train(cfg, progress=_bar(args.quiet))
    print(f"trained {card.name}: val {json.dumps(card.extra.get('val_score'))} -> {cfg.out}")
    if args.export:
        loaded = load(cfg.out)
        card.weights = None
        save(loaded.module, card, args.export)
        print(f"exported {card.name} to {args.export}")
    return 0
