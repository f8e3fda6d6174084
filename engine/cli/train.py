"""``python -m engine train``: train a model from a JSON config and/or flags, or run a
cross-validated recipe (a JSON file with ``"kind": "recipe"``, :mod:`engine.training.recipe`).

Examples
--------
python -m engine train engine/training/configs/unet_s16.json
python -m engine train engine/training/recipes/unet512_cv.json --out runs/unet512_cv
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
    p.add_argument("config_file", nargs="?", metavar="CONFIG",
                   help="JSON training config (TrainConfig fields; flags override it) or recipe (\"kind\": \"recipe\")")
    p.add_argument("--config", help="the same as CONFIG")
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
    p.add_argument("--init-from", dest="init_from", help="start from these weights (model name, run folder or .safetensors)")
    p.add_argument("--amp-cpu", action="store_true", help="bf16 autocast on the CPU too")
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
                                                  "seed", "device", "time_budget_s", "out", "init_from")}
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
    if getattr(args, "amp_cpu", False):
        over["amp_cpu"] = True
    over = {k: v for k, v in over.items() if v is not None}
    from ..training.recipe import substitute

    path = _config_path(args)
    d = _read_json(path) if path else {}
    d.update(over)
    return TrainConfig.from_dict(substitute(d, args.data_root or "../shared/data"))


def _config_path(args: argparse.Namespace):
    if args.config_file and args.config and args.config_file != args.config:
        raise DataError("Give the config once: as CONFIG or as --config.")
    return args.config_file or args.config


def _read_json(path: str) -> dict:
    try:
        d = json.loads(open(path).read())
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read training config {path}: {exc}") from exc
    if not isinstance(d, dict):
        raise DataError(f"Training config {path} must hold a JSON object.")
    return d


def run_recipe_cli(args: argparse.Namespace, path: str) -> int:
    """Run a cross-validated recipe; ``--out``, ``--data-root``, ``--device`` and the
    time / step flags apply to every run of it."""
    from ..training.recipe import Recipe, run_recipe

    d = _read_json(path)
    recipe = Recipe.from_dict(d)
    over = {k: getattr(args, k) for k in ("epochs", "steps_per_epoch", "batch_size", "time_budget_s", "device", "seed")
            if getattr(args, k, None) is not None}
    if getattr(args, "amp_cpu", False):
        over["amp_cpu"] = True
    recipe.base = {**recipe.base, **over}
    if over.get("time_budget_s"):
        for stage in (recipe.teacher, recipe.student):
            stage.pop("time_budget_s", None)
    out = args.out or recipe.out or f"runs/{recipe.name}"
    say = (lambda m: None) if args.quiet else (lambda m: print(m, flush=True))
    run_recipe(recipe, out, args.data_root or "../shared/data", say=say,
               device=args.device or recipe.base.get("device", "auto"))
    print(f"recipe {recipe.name} done -> {out} (cv_report.md, export/)")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..models.registry import load, save
    from ..training import train
    from ..training.recipe import is_recipe

    path = _config_path(args)
    if path and is_recipe(path):
        return run_recipe_cli(args, path)
    cfg = build_config(args)
    card = train(cfg, progress=_bar(args.quiet))
    print(f"trained {card.name}: val {json.dumps(card.extra.get('val_score'))} -> {cfg.out}")
    if args.export:
        loaded = load(cfg.out)
        card.weights = None
        save(loaded.module, card, args.export)
        print(f"exported {card.name} to {args.export}")
    return 0
