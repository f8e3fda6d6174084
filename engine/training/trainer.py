"""The training loop behind ``python -m engine train``.

Seeded (torch + a dedicated augmentation generator re-seeded each epoch, so a resumed run
draws the same batches), AdamW with warm-up and cosine decay over the planned steps or the
time budget (whichever runs out first), bf16 autocast on CUDA, per-epoch validation written
to ``metrics.csv``, resumable checkpoints (``checkpoint/``: safetensors + JSON, no pickle),
the best epoch kept, and at the end ``model.safetensors`` + ``card.json`` in the run folder
(loadable with :func:`engine.models.registry.load`).
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
import platform
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ..metrics.classification import classification_metrics
from ..metrics.evaluation import evaluate_segmentation
from ..models.card import ModelCard
from ..models.registry import build, count_params, sha256_file
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from .augment import AugmentConfig, geometric, intensity
from .checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .objective import classifier_loss, labelled_loss, pseudo_loss, split_output
from .prepare import Prepared, prepare, val_targets_at


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


class _Sampler:
    """Draws augmented batches from uint8 arrays kept on the training device."""

    def __init__(self, x: np.ndarray, xc: np.ndarray, maps: list[Optional[np.ndarray]], dev: torch.device,
                 aug: AugmentConfig) -> None:
        self.x = torch.from_numpy(x).to(dev)
        self.xc = torch.from_numpy(xc).to(dev)
        self.maps = [None if m is None else torch.from_numpy(np.ascontiguousarray(m)).to(dev) for m in maps]
        self.aug, self.dev = aug, dev

    def __len__(self) -> int:
        return self.x.shape[0]

    def draw(self, n: int, g: torch.Generator, geometry: bool = True) -> tuple[torch.Tensor, list]:
        idx = torch.randint(0, len(self), (n,), generator=g).to(self.dev)
        use_c = (torch.rand(n, generator=g) < self.aug.clahe_p).to(self.dev).view(n, 1, 1)
        x = torch.where(use_c, self.xc[idx], self.x[idx]).float().div_(255).unsqueeze(1)
        maps = [None if m is None else m[idx] for m in self.maps]
        spatial = [m for m in maps if m is not None and m.dim() == 3]
        if geometry:
            x, warped = geometric(x, spatial, self.aug, g)
            it = iter(warped)
            maps = [None if m is None else (next(it) if m.dim() == 3 else m) for m in maps]
        return intensity(x, self.aug, g), maps


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


def train(cfg: TrainConfig, progress: Optional[ProgressCallback] = None, cancel: Optional[CancelLike] = None,
          log: Optional[Any] = None) -> ModelCard:
    """Train ``cfg`` and return the model card of the best epoch (also written to ``cfg.out``)."""
    report = as_progress(progress)
    t0 = time.monotonic()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    dev = resolve_device(cfg.device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(__import__("json").dumps(cfg.to_dict(), indent=1))
    report(0.0, "loading data")
    prep = prepare(cfg)
    aug = AugmentConfig.from_dict(cfg.augment)
    classifier = cfg.task in ("findings", "covid")
    sampler = _Sampler(prep.x, prep.x_clahe, [prep.y if not classifier else prep.y, prep.lung], dev, aug)
    psampler = None
    if prep.xp is not None and cfg.pseudo_batch > 0:
        psampler = _Sampler(prep.xp, prep.xp_clahe, [prep.yp], dev, aug)
    model = build(cfg.architecture, cfg.model_config()).to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    weights = torch.from_numpy(prep.class_weights).to(dev) if prep.class_weights is not None else None
    pos_weight = torch.from_numpy(prep.pos_weight).to(dev) if prep.pos_weight is not None else None
    ckpt = out / "checkpoint"
    state: dict[str, Any] = {"epoch": 0, "step": 0, "best_score": -1.0, "best_epoch": -1, "elapsed": 0.0}
    if cfg.resume and has_checkpoint(ckpt):
        state = load_checkpoint(ckpt, model, opt, dev)
    elapsed0 = float(state.get("elapsed", 0.0))
    total_steps = cfg.epochs * cfg.steps_per_epoch
    csv_path = out / "metrics.csv"
    amp = cfg.amp and dev.type == "cuda"
    fields_written = csv_path.exists() and state["epoch"] > 0
    for epoch in range(int(state["epoch"]), cfg.epochs):
        model.train()
        g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        losses = []
        for _ in range(cfg.steps_per_epoch):
            check_cancel(cancel)
            elapsed = elapsed0 + time.monotonic() - t0
            frac = state["step"] / total_steps
            if cfg.time_budget_s:
                frac = max(frac, elapsed / cfg.time_budget_s)
            for group in opt.param_groups:
                group["lr"] = cfg.lr * _lr_factor(frac)
            x, (y, lung) = sampler.draw(cfg.batch_size, g)
            n_l = x.shape[0]
            yp = None
            if psampler is not None:
                xp, (yp,) = psampler.draw(cfg.pseudo_batch, g)
                x = torch.cat([x, xp])
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                res = model(_batch_to_model(x, dev, cfg.input_size))
            if classifier:
                loss = classifier_loss(res, y, pos_weight)
            else:
                res_l, res_p = split_output(res, n_l)
                loss = labelled_loss(res_l, y.long(), lung, weights, cfg.edge_weight, cfg.aux_weight)
                if yp is not None:
                    loss = loss + cfg.pseudo_weight * pseudo_loss(res_p, yp, cfg.edge_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(float(loss.detach()))
            state["step"] += 1
        score, mets = validate(model, cfg, prep, dev)
        elapsed = elapsed0 + time.monotonic() - t0
        row = {"epoch": epoch + 1, "step": state["step"], "train_loss": float(np.mean(losses)),
               "lr": opt.param_groups[0]["lr"], "val_score": score, "elapsed_s": round(elapsed, 1), **_flat(mets, "val_")}
        with open(csv_path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if not fields_written:
                w.writeheader()
                fields_written = True
            w.writerow(row)
        if score > state["best_score"]:
            state["best_score"], state["best_epoch"] = score, epoch + 1
            save_file({k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.detach().cpu()
                       for k, v in model.state_dict().items()}, str(out / "best.safetensors"))
        state["epoch"], state["elapsed"] = epoch + 1, elapsed
        state["history_tail"] = {"train_loss": row["train_loss"], "val_score": score}
        save_checkpoint(ckpt, model, opt, state)
        msg = f"epoch {epoch + 1}/{cfg.epochs} loss {row['train_loss']:.4f} val {score:.4f} (best {state['best_score']:.4f} @ {state['best_epoch']})"
        report((epoch + 1) / cfg.epochs, msg)
        if log is not None:
            print(msg, file=log, flush=True)
        if cfg.time_budget_s and elapsed >= cfg.time_budget_s:
            break
    return finish(cfg, model, prep, dev, state)


def finish(cfg: TrainConfig, model: torch.nn.Module, prep: Prepared, dev: torch.device, state: dict) -> ModelCard:
    """Reload the best epoch, evaluate it at full resolution and write ``model.safetensors`` + ``card.json``."""
    from safetensors.torch import load_file

    out = Path(cfg.out)
    if (out / "best.safetensors").is_file():
        model.load_state_dict(load_file(str(out / "best.safetensors"), device=str(dev)))
    score, mets = validate(model, cfg, prep, dev, final=True)
    model = model.float().cpu().eval()
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    card = ModelCard(
        name=cfg.name, task=cfg.task if cfg.task != "lung" else "lung", architecture=cfg.architecture,
        config=cfg.model_config(), in_channels=int(cfg.model_config().get("in_channels", 1)),
        input_size=(cfg.input_size, cfg.input_size), classes=cfg.classes, val_metrics=mets,
        weights="model.safetensors", sha256=sha256_file(out / "model.safetensors"),
        trained_on=prep.description, params=count_params(model),
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), device=device_name(dev),
        split={"val": prep.val_ids, "train": prep.train_ids, "val_seed": cfg.val_seed},
        notes=("Trained from scratch, no ImageNet pretraining. "
               f"Best epoch {state.get('best_epoch')} of {state.get('epoch')} run "
               f"({state.get('step')} steps of batch {cfg.batch_size}"
               + (f" + {cfg.pseudo_batch} pseudo-labelled" if cfg.pseudo_batch and cfg.pseudo else "")
               + f", {state.get('elapsed', 0):.0f} s). " + cfg.notes).strip(),
        extra={"train_config": cfg.to_dict(), "val_score": score, "multiple": 32},
    )
    card.save(out / "card.json")
    return card
