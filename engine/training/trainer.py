"""The training loop behind ``python -m engine train``.

Seeded (torch + a dedicated augmentation generator re-seeded each epoch; checkpoints keep
every random state, so a resumed run draws the same batches), AdamW with warm-up and cosine decay over the planned steps or the
time budget (whichever runs out first), bf16 autocast on CUDA, per-epoch validation written
to ``metrics.csv``, resumable checkpoints (``checkpoint/``: safetensors + JSON, no pickle),
the best epoch kept, and at the end ``model.safetensors`` + ``card.json`` in the run folder
(loadable with :func:`engine.models.registry.load`).
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import platform
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ..errors import DataError, ModelError
from ..metrics.classification import classification_metrics
from ..metrics.evaluation import evaluate_segmentation
from ..models.card import ModelCard
from ..models.registry import build, count_params, sha256_file
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from .augment import AugmentConfig
from .checkpoint import has_checkpoint, load_checkpoint, restore_rng, save_checkpoint
from .config import TrainConfig
from .objective import classifier_loss, labelled_loss, pseudo4_loss, pseudo_loss
from .prepare import Prepared, prepare, val_targets_at
from .sampling import Sampler, split_sizes


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _lr_factor(progress: float, warmup: float = 0.03) -> float:
    if progress < warmup:
        return max(progress / warmup, 0.01)
    p = min((progress - warmup) / (1 - warmup), 1.0)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p))


def _batch_to_model(x: torch.Tensor, dev: torch.device, size: int) -> torch.Tensor:
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.to(dev).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_probs(model: torch.nn.Module, images: list[np.ndarray], size: int, dev: torch.device,
                  amp: bool, full_size: bool = True, batch: int = 8) -> list[np.ndarray]:
    """Softmax probabilities (K, H, W) per uint8 image; at the image's size when ``full_size``."""
    model.eval()
    out = []
    for i in range(0, len(images), batch):
        chunk = images[i:i + batch]
        x = torch.stack([torch.from_numpy(im).float().div(255) for im in chunk])[:, None]
        xs = _batch_to_model(x, dev, size)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp and dev.type == "cuda"):
            logits = model(xs).float()
        for j, im in enumerate(chunk):
            lg = logits[j:j + 1]
            if full_size and tuple(im.shape) != tuple(lg.shape[-2:]):
                lg = F.interpolate(lg, size=im.shape, mode="bilinear", align_corners=False)
            out.append(torch.softmax(lg, 1)[0].cpu().numpy())
    return out


@torch.no_grad()
def predict_classifier(model: torch.nn.Module, images: list[np.ndarray], size: int, dev: torch.device) -> np.ndarray:
    model.eval()
    x = torch.stack([torch.from_numpy(im).float().div(255) for im in images])[:, None]
    return torch.sigmoid(model(_batch_to_model(x, dev, size)).float()).cpu().numpy()


def validate(model: torch.nn.Module, cfg: TrainConfig, prep: Prepared, dev: torch.device,
             final: bool = False) -> tuple[float, dict[str, Any]]:
    """Score (higher is better) and metrics on the validation split.

    During training metrics are computed at the model's input size; ``final=True`` evaluates
    at full resolution with every metric (the numbers that go into the model card).
    """
    size = cfg.input_size
    if cfg.task in ("findings", "covid"):
        prob = predict_classifier(model, prep.val_x, size, dev)
        y = np.stack(prep.val_y)
        names = cfg.classes
        mets = {n: classification_metrics(prob[:, k], y[:, k]) for k, n in enumerate(names)}
        aucs = [m["auc"] for m in mets.values() if not math.isnan(m["auc"])]
        accs = [m["accuracy"] for m in mets.values()]
        return float(np.mean(aucs) if aucs else np.mean(accs)), mets
    probs = predict_probs(model, prep.val_x, size, dev, cfg.amp, full_size=final)
    targets = prep.val_y if final else val_targets_at(prep, size)
    if cfg.task == "lung":
        targets = [t.astype(np.uint8) for t in targets]
    res = evaluate_segmentation(zip(probs, targets), fast=not final)
    inf = res["infection"] or {"dice": 0.0}
    cls = [v["dice"] for v in res["classes"].values() if v]
    score = 0.5 * inf["dice"] + 0.5 * float(np.mean(cls)) if cls else inf["dice"]
    return float(score), res


def _flat(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}_"))
        elif isinstance(v, (int, float)) and k in ("dice", "auc", "accuracy", "mean_dice_thresholds"):
            out[f"{prefix}{k}"] = float(v)
    return out


def init_weights(model: torch.nn.Module, source: str, dev: torch.device) -> str:
    """Copy into ``model`` every tensor of ``source`` (registry name, run folder or
    ``.safetensors`` with its card) whose name and shape fit; returns a one-line summary.

    Raises
    ------
    DataError
        No tensor of ``source`` fits ``model``.
    """
    from ..models import registry

    try:
        src = registry.load(source, device="cpu").module.state_dict()
    except ModelError as exc:
        raise DataError(f"init_from: {exc}") from exc
    own = model.state_dict()
    fit = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    if not fit:
        raise DataError(f"init_from: no weight of '{source}' fits this model (another architecture or width?).")
    model.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in fit.items()}})
    model.to(dev)
    return f"Initialised from {source} ({len(fit)} of {len(own)} tensors)"


def _truncate_csv(path: Path, epoch: int) -> bool:
    """Drop rows after ``epoch`` (written after the checkpoint a run resumes from); whether rows remain."""
    if not path.exists():
        return False
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keep = [r for r in rows if int(r["epoch"]) <= epoch]
    if len(keep) != len(rows):
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(keep)
    return bool(keep)


class _Batches:
    """Every sampler of a run, drawn in a fixed order into one concatenated batch."""

    def __init__(self, cfg: TrainConfig, prep: Prepared, dev: torch.device, aug: AugmentConfig) -> None:
        classifier = cfg.task in ("findings", "covid")
        crop = dict(crop=0 if classifier else cfg.crop, crop_fg=cfg.crop_fg)
        self.labelled = Sampler(prep.x, prep.x_clahe, [prep.y, prep.lung], dev, aug, **crop)
        self.pseudo = self.neg = self.teacher = None
        if prep.xp is not None and cfg.pseudo_batch > 0:
            self.pseudo = Sampler(prep.xp, prep.xp_clahe, [prep.yp], dev, aug, **crop)
        if prep.xn is not None and cfg.negatives_batch > 0 and not classifier:
            zeros = np.zeros_like(prep.xn)
            self.neg = Sampler(prep.xn, prep.xn, [zeros, zeros if prep.lung is not None else None], dev, aug, **crop)
        if prep.xq is not None and cfg.pseudo4_batch > 0 and not classifier:
            self.teacher = Sampler(prep.xq, prep.xq, [prep.yq], dev, aug, **crop)
        self.cfg = cfg

    def draw(self, g: torch.Generator) -> tuple[torch.Tensor, dict[str, Any]]:
        cfg = self.cfg
        x, (y, lung) = self.labelled.draw(cfg.batch_size, g)
        parts: dict[str, Any] = {"n_l": x.shape[0], "y": y, "lung": lung}
        xs = [x]
        if self.neg is not None:
            xn, (yn, ln) = self.neg.draw(cfg.negatives_batch, g)
            xs.append(xn)
            parts["y"] = torch.cat([y, yn])
            parts["lung"] = None if lung is None else torch.cat([lung, ln])
            parts["n_l"] += xn.shape[0]
        sizes = [parts["n_l"]]
        if self.pseudo is not None:
            xp, (yp,) = self.pseudo.draw(cfg.pseudo_batch, g)
            xs.append(xp)
            parts["yp"] = yp
            sizes.append(xp.shape[0])
        if self.teacher is not None:
            xq, (yq,) = self.teacher.draw(cfg.pseudo4_batch, g)
            xs.append(xq)
            parts["yq"] = yq
            sizes.append(xq.shape[0])
        parts["sizes"] = sizes
        return torch.cat(xs), parts


def _loss(cfg: TrainConfig, res: Any, parts: dict[str, Any], weights: Optional[torch.Tensor],
          pos_weight: Optional[torch.Tensor]) -> torch.Tensor:
    if cfg.task in ("findings", "covid"):
        return classifier_loss(res, parts["y"], pos_weight)
    outs = split_sizes(res, parts["sizes"]) if len(parts["sizes"]) > 1 else [res]
    loss = labelled_loss(outs[0], parts["y"].long(), parts["lung"], weights, cfg.edge_weight, cfg.aux_weight)
    k = 1
    if "yp" in parts:
        loss = loss + cfg.pseudo_weight * pseudo_loss(outs[k], parts["yp"], cfg.edge_weight)
        k += 1
    if "yq" in parts:
        loss = loss + cfg.pseudo4_weight * pseudo4_loss(outs[k], parts["yq"], weights)
    return loss


def train(cfg: TrainConfig, progress: Optional[ProgressCallback] = None, cancel: Optional[CancelLike] = None,
          log: Optional[Any] = None) -> ModelCard:
    """Train ``cfg`` and return the model card (also written to ``cfg.out``).

    Resumes from ``cfg.out/checkpoint`` when one is there (``cfg.resume``), mid-epoch if the
    run was interrupted mid-epoch: model, optimizer, step counters and every random state come
    back, so on the same device and thread count a resumed run ends with the same weights as
    an uninterrupted one (bitwise on the CPU; see docs/TRAINING.md).
    """
    report = as_progress(progress)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    dev = resolve_device(cfg.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    report(0.0, "loading data")
    prep = prepare(cfg)
    aug = AugmentConfig.from_dict(cfg.augment)
    batches = _Batches(cfg, prep, dev, aug)
    model = build(cfg.architecture, cfg.model_config()).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    weights = torch.from_numpy(prep.class_weights).to(dev) if prep.class_weights is not None else None
    pos_weight = torch.from_numpy(prep.pos_weight).to(dev) if prep.pos_weight is not None else None
    ckpt = out / "checkpoint"
    state: dict[str, Any] = {"epoch": 0, "step": 0, "epoch_step": 0, "epoch_loss": 0.0, "best_score": -1.0,
                             "best_epoch": -1, "elapsed": 0.0, "init": ""}
    saved_rng: Optional[dict] = None
    if cfg.resume and has_checkpoint(ckpt):
        state = {**state, **load_checkpoint(ckpt, model, opt, dev)}
        saved_rng = state.pop("rng")
    elif cfg.init_from:
        state["init"] = init_weights(model, cfg.init_from, dev)
    elapsed0 = float(state.get("elapsed", 0.0))
    t0 = time.monotonic()  # the time budget counts training, not loading
    total_steps = cfg.epochs * cfg.steps_per_epoch
    csv_path = out / "metrics.csv"
    amp = cfg.amp and (dev.type == "cuda" or cfg.amp_cpu)
    fields_written = _truncate_csv(csv_path, int(state["epoch"])) if state["epoch"] > 0 else False
    if state["epoch"] == 0 and csv_path.exists() and not state["epoch_step"]:
        csv_path.unlink()
    has_val = bool(prep.val_x)
    g = torch.Generator()
    last_save = time.monotonic()
    for epoch in range(int(state["epoch"]), cfg.epochs):
        model.train()
        g.manual_seed(cfg.seed * 100003 + epoch)
        if saved_rng is not None:  # resumed: every random state as it was when saved
            restore_rng(saved_rng, g if state["epoch_step"] else None)
            saved_rng = None
        # the epoch's loss stays on the device (a float() per step would wait for the GPU)
        loss_sum = torch.tensor(float(state["epoch_loss"]) if state["epoch_step"] else 0.0,
                                dtype=torch.float64, device=dev)
        for step_in_epoch in range(int(state["epoch_step"]), cfg.steps_per_epoch):
            check_cancel(cancel)
            elapsed = elapsed0 + time.monotonic() - t0
            frac = state["step"] / total_steps
            if cfg.time_budget_s:
                frac = max(frac, elapsed / cfg.time_budget_s)
            for group in opt.param_groups:
                group["lr"] = cfg.lr * _lr_factor(frac)
            x, parts = batches.draw(g)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                res = model(_batch_to_model(x, dev, cfg.crop or cfg.input_size))
            loss = _loss(cfg, res, parts, weights, pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            loss_sum += loss.detach()
            state["step"] += 1
            state["epoch_step"] = step_in_epoch + 1
            due = (cfg.checkpoint_every_steps and state["step"] % cfg.checkpoint_every_steps == 0) or \
                (not cfg.checkpoint_every_steps and time.monotonic() - last_save >= cfg.checkpoint_every_s)
            if due and step_in_epoch + 1 < cfg.steps_per_epoch:
                state["epoch_loss"] = float(loss_sum)
                state["elapsed"] = elapsed0 + time.monotonic() - t0
                save_checkpoint(ckpt, model, opt, state, g)
                last_save = time.monotonic()
        state["epoch_step"], state["epoch_loss"] = 0, 0.0
        elapsed = elapsed0 + time.monotonic() - t0
        score, mets = validate(model, cfg, prep, dev) if has_val else (float("nan"), {})
        row = {"epoch": epoch + 1, "step": state["step"], "train_loss": float(loss_sum) / cfg.steps_per_epoch,
               "lr": opt.param_groups[0]["lr"], "val_score": score, "elapsed_s": round(elapsed, 1), **_flat(mets, "val_")}
        with open(csv_path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if not fields_written:
                w.writeheader()
                fields_written = True
            w.writerow(row)
        if has_val and score > state["best_score"]:
            state["best_score"], state["best_epoch"] = score, epoch + 1
            if cfg.select == "best":
                save_file({k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.detach().cpu()
                           for k, v in model.state_dict().items()}, str(out / "best.safetensors"))
        state["epoch"], state["elapsed"] = epoch + 1, elapsed
        stop = bool(cfg.time_budget_s and elapsed >= cfg.time_budget_s) or epoch + 1 == cfg.epochs
        if stop or cfg.checkpoint_every_steps or time.monotonic() - last_save >= cfg.checkpoint_every_s:
            save_checkpoint(ckpt, model, opt, state, g)
            last_save = time.monotonic()
        msg = (f"epoch {epoch + 1}/{cfg.epochs} loss {row['train_loss']:.4f}"
               + (f" val {score:.4f} (best {state['best_score']:.4f} @ {state['best_epoch']})" if has_val else ""))
        report((epoch + 1) / cfg.epochs, msg)
        if log is not None:
            print(msg, file=log, flush=True)
        if stop:
            break
    return finish(cfg, model, prep, dev, state)


def finish(cfg: TrainConfig, model: torch.nn.Module, prep: Prepared, dev: torch.device, state: dict) -> ModelCard:
    """Evaluate the selected weights (the best epoch, or the last with ``select: "last"``) at
    full resolution and write ``model.safetensors`` + ``card.json``."""
    from safetensors.torch import load_file

    out = Path(cfg.out)
    if cfg.select == "best" and (out / "best.safetensors").is_file():
        model.load_state_dict(load_file(str(out / "best.safetensors"), device=str(dev)))
    score, mets = validate(model, cfg, prep, dev, final=True) if prep.val_x else (float("nan"), {})
    model = model.float().cpu().eval()
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    chosen = (f"Best epoch {state.get('best_epoch')} of {state.get('epoch')}" if cfg.select == "best"
              else f"Last epoch ({state.get('epoch')})")
    split: dict[str, Any] = {"val": prep.val_ids, "train": prep.train_ids, "val_seed": cfg.val_seed}
    if cfg.folds:
        split.update(folds=cfg.folds, fold=cfg.fold, fold_seed=cfg.fold_seed)
    card = ModelCard(
        name=cfg.name, task=cfg.task if cfg.task != "lung" else "lung", architecture=cfg.architecture,
        config=cfg.model_config(), in_channels=int(cfg.model_config().get("in_channels", 1)),
        input_size=(cfg.input_size, cfg.input_size), classes=cfg.classes, val_metrics=mets,
        weights="model.safetensors", sha256=sha256_file(out / "model.safetensors"),
        trained_on=prep.description, params=count_params(model),
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), device=device_name(dev),
        split=split,
        notes=((f"{state['init']}. " if state.get("init") else "")
               + ("Trained from scratch, no ImageNet pretraining. " if not cfg.init_from else "")
               + f"{chosen} run ({state.get('step')} steps of batch {cfg.batch_size}"
               + (f" + {cfg.pseudo_batch} pseudo-labelled" if cfg.pseudo_batch and cfg.pseudo else "")
               + (f" + {cfg.negatives_batch} negatives" if cfg.negatives_batch and cfg.negatives else "")
               + (f" + {cfg.pseudo4_batch} teacher-labelled" if cfg.pseudo4_batch and cfg.pseudo4 else "")
               + f", {state.get('elapsed', 0):.0f} s). " + cfg.notes).strip(),
        extra={"train_config": cfg.to_dict(), "val_score": None if math.isnan(score) else score, "multiple": 32,
               "steps": state.get("step"), "train_seconds": round(float(state.get("elapsed", 0)), 1)},
    )
    card.save(out / "card.json")
    return card
