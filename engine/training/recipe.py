"""The cross-validated training recipe: folds, self-training, CV report, ensemble and
distilled model, from one JSON file (``"kind": "recipe"``) and one command::

    python -m engine train engine/training/recipes/unet512_cv.json --out runs/unet512_cv

Stages (each one skipped when its output exists, so re-running the command resumes; each
training run also resumes from its own checkpoints):

1. ``teacher``: ``folds`` runs of ``base`` + ``teacher`` settings, fold ``k`` held out of run
   ``k`` (:mod:`engine.training.folds`). Weights of the last step are kept (``select: last``):
   the folds choose between recipes, never an epoch.
2. ``pool``: the unlabelled slices (``pool``: zenodo lung crops, radiopaedia stack slices
   that show lung) written once at the input size.
3. ``pseudo``: teacher ``k`` labels the pool in the model's classes for student ``k`` (so no
   held-out slice leaks into its own fold through the teacher); the ensemble of all teachers
   labels it for the final student. Pixels whose top probability is under ``confidence`` are
   255 (ignored).
4. ``student``: ``folds`` runs of ``base`` + ``student`` settings with the teacher labels.
5. ``final``: one student on all labelled slices (fold -1) with the ensemble's labels: the
   distilled single model.
6. ``report``: ``cv_report.json`` + ``cv_report.md``: per fold and mean +- spread of GGO,
   consolidation, effusion Dice (over held-out slices that hold each), infection Dice and meanDic.
7. ``export``: ``export/<name>.safetensors`` (distilled) and ``export/<name>_ensemble.safetensors``
   (the student folds averaged, test-time flips ``tta``), fp16, with cards carrying the
   per-fold figures.

Runs of a stage go in parallel (``parallel`` processes, e.g. 6 on one large GPU).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import DataError

STAGES = ("teacher", "pool", "pseudo", "student", "final", "report", "export")
FINDINGS = ("ggo", "consolidation", "effusion")


@dataclass
class Recipe:
    """A cross-validated training recipe (JSON with ``"kind": "recipe"``)."""

    name: str
    base: dict
    kind: str = "recipe"
    teacher: dict = field(default_factory=dict)
    student: dict = field(default_factory=dict)
    folds: int = 5
    fold_seed: int = 0
    #: run only these folds (default all), e.g. [0] for a smoke test
    only_folds: list = field(default_factory=list)
    #: unlabelled sources: {"images": folder} or {"stack": folder, "exclude": [[first, last], ...]}
    pool: list = field(default_factory=list)
    pool_limit: int = 0
    confidence: float = 0.6
    parallel: int = 1
    threads_per_run: int = 0
    tta: list = field(default_factory=list)
    stages: list = field(default_factory=lambda: list(STAGES))
    out: str = ""
    notes: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DataError(f"Unknown recipe option(s): {', '.join(sorted(unknown))}.")
        bad = set(d.get("stages", [])) - set(STAGES)
        if bad:
            raise DataError(f"Unknown recipe stage(s) {', '.join(sorted(bad))}: use {', '.join(STAGES)}.")
        return cls(**d)

    @property
    def fold_ids(self) -> list[int]:
        """The folds this recipe runs."""
        ids = [int(k) for k in self.only_folds] or list(range(self.folds))
        bad = [k for k in ids if not 0 <= k < self.folds]
        if bad:
            raise DataError(f"only_folds {bad} do not exist with {self.folds} folds.")
        return ids

    def run_config(self, stage: str, fold: int, out: Path, data_root: str, pseudo4: Optional[str] = None) -> dict:
        """The TrainConfig dict of one run of ``stage`` ("teacher" or "student") on ``fold``."""
        d = {**self.base, **(self.teacher if stage == "teacher" else self.student)}
        d.update(name=f"{self.name}_{stage}_f{fold}" if fold >= 0 else self.name, folds=self.folds, fold=fold,
                 fold_seed=self.fold_seed, out=str(out), select="last", resume=True)
        if pseudo4:
            d["pseudo4"] = pseudo4
        else:
            d.pop("pseudo4", None)
            d["pseudo4_batch"] = 0
        return substitute(d, data_root)


def substitute(d: Any, data_root: str) -> Any:
    """Replace ``{data}`` in every string of a (nested) config by ``data_root``."""
    if isinstance(d, str):
        return d.replace("{data}", data_root)
    if isinstance(d, list):
        return [substitute(v, data_root) for v in d]
    if isinstance(d, dict):
        return {k: substitute(v, data_root) for k, v in d.items()}
    return d


def is_recipe(path: str | Path) -> bool:
    """Whether the JSON file at ``path`` is a recipe (``"kind": "recipe"``)."""
    try:
        return json.loads(Path(path).read_text()).get("kind") == "recipe"
    except (OSError, ValueError, AttributeError):
        return False


# --------------------------------------------------------------------------- runs
def _run_all(jobs: list[tuple[str, Path]], parallel: int, threads: int, say: Callable[[str], None]) -> None:
    """Run ``python -m engine train CONFIG`` for each (name, config path), ``parallel`` at a time."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    pending = list(jobs)
    running: list[tuple[str, subprocess.Popen, float, Any]] = []
    failed = []
    while pending or running:
        while pending and len(running) < max(1, parallel):
            name, cfg_path = pending.pop(0)
            log = open(cfg_path.parent / "log.txt", "a")
            cmd = [sys.executable, "-m", "engine", "train", str(cfg_path), "--quiet"]
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env),
                            time.monotonic(), log))
            say(f"started {name}")
        time.sleep(0.5)
        for item in list(running):
            name, proc, t0, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            say(f"{name}: exit {proc.returncode} after {time.monotonic() - t0:.0f} s")
            if proc.returncode:
                failed.append(name)
    if failed:
        raise DataError(f"Training run(s) {', '.join(failed)} failed: see log.txt in their folders.")


def _stage_runs(recipe: Recipe, stage: str, out: Path, data_root: str, say: Callable[[str], None]) -> None:
    """Run the training runs of ``stage``; ``student`` also runs ``final`` alongside (when the
    recipe has that stage), so that both share the device."""
    jobs = []
    folds = [-1] if stage == "final" else recipe.fold_ids
    if stage == "student" and "final" in recipe.stages:
        folds.append(-1)
    for k in folds:
        run = out / ("final" if k < 0 else f"{stage}/fold{k}")
        if (run / "card.json").is_file():
            continue
        pseudo = None
        if k < 0:
            pseudo = str(out / "pseudo" / "all")
        elif stage == "student":
            pseudo = str(out / "pseudo" / f"fold{k}")
        if k < 0 and not (out / "pseudo" / "all").exists():
            pseudo = None  # the pseudo stage did not run: no teacher labels
        cfg = recipe.run_config("teacher" if stage == "teacher" else "student", k, run, data_root, pseudo)
        run.mkdir(parents=True, exist_ok=True)
        (run / "train.json").write_text(json.dumps(cfg, indent=1))
        jobs.append((run.relative_to(out).as_posix(), run / "train.json"))
    _run_all(jobs, recipe.parallel, recipe.threads_per_run, say)


# --------------------------------------------------------------------------- pool + pseudo labels
def place(img: np.ndarray, size: int) -> np.ndarray:
    """A slice on a ``size`` x ``size`` canvas: smaller crops centred at their own scale (the
    zenodo lung crops are native-resolution crops), larger slices padded square and resized."""
    from .data import _fit, pad_square

    h, w = img.shape
    if h <= size and w <= size:
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        out = np.full((size, size), np.median(border), dtype=np.uint8)
        y0, x0 = (size - h) // 2, (size - w) // 2
        out[y0:y0 + h, x0:x0 + w] = img
        return out
    return _fit(pad_square(img)[0], None, size)[0]


def write_pool(recipe: Recipe, out: Path, data_root: str, size: int) -> int:
    """Write the unlabelled slices of ``recipe.pool`` to ``out/pool/images`` at ``size``."""
    from PIL import Image

    from .data import _list_images, read_grey, stack_files

    dst = out / "pool" / "images"
    dst.mkdir(parents=True, exist_ok=True)
    files: list[tuple[str, Path]] = []
    for src in substitute(recipe.pool, data_root):
        if "images" in src:
            files += [(f"{Path(src['images']).parent.name}_{p.stem}", p) for p in _list_images(Path(src["images"]))]
        elif "stack" in src:
            ex = {i for a, b in src.get("exclude", []) for i in range(int(a), int(b) + 1)}
            stack = Path(src["stack"])
            files += [(f"{stack.name}_{i:04d}", p) for i, p in enumerate(stack_files(stack)) if i not in ex]
        else:
            raise DataError(f"A pool entry needs 'images' or 'stack': {src!r}.")
    if recipe.pool_limit:
        step = max(1, len(files) // recipe.pool_limit)
        files = files[::step][:recipe.pool_limit]
    for stem, p in files:
        Image.fromarray(place(read_grey(p), size)).save(dst / f"{stem}.png")
    return len(files)


def write_pseudo(model_dirs: list[Path], pool: Path, out: Path, confidence: float, device: str = "auto",
                 batch: int = 16) -> dict[str, dict[str, float]]:
    """Label every pool slice once per teacher (``out/fold<k>``, teacher ``k`` alone) and with
    the average of all of them (``out/all``), in one pass over the pool. Pixels whose top
    probability is under ``confidence`` get 255. Returns per target the share of unsure and of
    finding pixels."""
    import torch
    from PIL import Image

    from ..models import registry
    from .data import _list_images, read_grey
    from .trainer import resolve_device

    dev = resolve_device(device)
    loaded = [registry.load(d, device=dev) for d in model_dirs]
    size = int(loaded[0].card.input_size[0])
    names = [Path(d).name for d in model_dirs] + ["all"]
    for name in names:
        (out / name / "labels").mkdir(parents=True, exist_ok=True)
        link = out / name / "images"
        if not link.exists():
            link.symlink_to(pool.resolve(), target_is_directory=True)
    files = _list_images(pool)
    counts = {name: [0, 0, 0] for name in names}
    from concurrent.futures import ThreadPoolExecutor

    saver = ThreadPoolExecutor(max_workers=8)  # PNG encoding releases the GIL
    pending = []
    with torch.inference_mode():
        for i in range(0, len(files), batch):
            chunk = files[i:i + batch]
            x = torch.stack([torch.from_numpy(read_grey(f).copy()).float().div(255) for f in chunk])[:, None].to(dev)
            if x.shape[-1] != size:
                raise DataError(f"Pool slices are {x.shape[-1]} px, the teachers expect {size}.")
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                probs = [torch.softmax(m.module(x).float(), 1) for m in loaded]
            probs.append(torch.stack(probs).mean(0))
            for name, p in zip(names, probs):
                conf, lab = p.max(1)
                lab = lab.to(torch.uint8)
                lab[conf < confidence] = 255
                c = counts[name]
                for f, lb in zip(chunk, lab.cpu().numpy()):
                    pending.append(saver.submit(Image.fromarray(lb).save, out / name / "labels" / f"{f.stem}.png"))
                    c[0] += int((lb == 255).sum())
                    c[1] += int(((lb > 0) & (lb < 255)).sum())
                    c[2] += lb.size
    for fut in pending:
        fut.result()
    saver.shutdown()
    return {name: {"slices": len(files), "unsure_frac": c[0] / max(c[2], 1), "finding_frac": c[1] / max(c[2], 1)}
            for name, c in counts.items()}


# --------------------------------------------------------------------------- report
def fold_figures(val_metrics: dict) -> dict[str, Optional[float]]:
    """GGO / consolidation / effusion Dice, infection Dice and meanDic of one card's val_metrics."""
    classes = val_metrics.get("classes") or {}
    inf = val_metrics.get("infection") or {}
    out: dict[str, Optional[float]] = {}
    for f in FINDINGS:
        m = classes.get(f)
        out[f] = None if not m else float(m["dice"])
        out[f"{f}_n"] = None if not m else int(m.get("n_images", 0))
    out["infection"] = float(inf["dice"]) if "dice" in inf else None
    out["meanDic"] = float(inf["mean_dice_thresholds"]) if "mean_dice_thresholds" in inf else None
    return out


def summarise(per_fold: list[dict[str, Optional[float]]]) -> dict[str, dict[str, Optional[float]]]:
    """Mean, sample standard deviation, min and max over folds of each figure (folds without it skipped)."""
    out = {}
    for key in (*FINDINGS, "infection", "meanDic"):
        vals = [f[key] for f in per_fold if f.get(key) is not None]
        if not vals:
            out[key] = {"mean": None, "std": None, "min": None, "max": None, "folds": 0}
            continue
        arr = np.asarray(vals, dtype=float)
        out[key] = {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                    "min": float(arr.min()), "max": float(arr.max()), "folds": len(arr)}
    return out


def cv_report(out: Path, stages: tuple[str, ...] = ("teacher", "student")) -> dict[str, Any]:
    """Collect the held-out figures of every fold run of ``stages`` into ``cv_report.json`` and ``.md``."""
    from ..models.card import ModelCard

    report: dict[str, Any] = {}
    for stage in stages:
        runs = sorted((out / stage).glob("fold*/card.json"), key=lambda p: int(p.parent.name[4:]))
        if not runs:
            continue
        per = []
        for p in runs:
            card = ModelCard.load(p)
            figs = fold_figures(card.val_metrics)
            figs.update(fold=int(p.parent.name[4:]), val=list(card.split.get("val", [])),
                        steps=card.extra.get("steps"), seconds=card.extra.get("train_seconds"), device=card.device)
            per.append(figs)
        report[stage] = {"folds": per, "summary": summarise(per)}
    (out / "cv_report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "cv_report.md").write_text(report_markdown(report))
    return report


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def report_markdown(report: dict[str, Any]) -> str:
    """The CV report as Markdown tables (one per stage: folds, then mean +- std)."""
    lines = []
    for stage, rep in report.items():
        lines += [f"## {stage}", "", "| fold | GGO Dice (n) | consolidation Dice (n) | effusion Dice (n) | infection Dice "
                  "| meanDic | steps | seconds | device |", "|---|---|---|---|---|---|---|---|---|"]
        for f in rep["folds"]:
            cells = [f"{_fmt(f[k])} ({f.get(k + '_n') or 0})" for k in FINDINGS]
            lines.append(f"| {f['fold']} | " + " | ".join(cells) + f" | {_fmt(f['infection'])} | {_fmt(f['meanDic'])} "
                         f"| {f.get('steps')} | {f.get('seconds')} | {f.get('device')} |")
        s = rep["summary"]
        lines.append("| mean +- std | " + " | ".join(f"{_fmt(s[k]['mean'])} +- {_fmt(s[k]['std'])}"
                                                    for k in (*FINDINGS, "infection", "meanDic")) + " | | | |")
        lines.append("")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- export
def cv_val_metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """val_metrics in the cards' layout holding the CV means (what the app shows as Dice)."""
    classes = {f: (None if summary[f]["mean"] is None else {"dice": summary[f]["mean"]}) for f in FINDINGS}
    inf = {}
    if summary["infection"]["mean"] is not None:
        inf["dice"] = summary["infection"]["mean"]
    if summary["meanDic"]["mean"] is not None:
        inf["mean_dice_thresholds"] = summary["meanDic"]["mean"]
    return {"classes": classes, "infection": inf or None}


def export(recipe: Recipe, out: Path, report: dict[str, Any]) -> list[Path]:
    """Write the distilled model and the ensemble of the student folds (fp16 + cards)."""
    import torch

    from ..models import registry
    from ..models.card import ModelCard
    from ..models.ensemble import Ensemble, make_card

    dst = out / "export"
    written = []
    stage = "student" if "student" in report else "teacher"
    cv = report.get(stage, {})
    common = dict(val_metrics=cv_val_metrics(cv["summary"]) if cv else {},
                  notes=(f"val_metrics are the {recipe.folds}-fold cross-validated means of the recipe's {stage} "
                         f"runs on held-out slices (per fold in extra.cv). " + recipe.notes).strip())
    final = out / "final" / "card.json"
    if final.is_file():
        src = ModelCard.load(final)
        loaded = registry.load(out / "final")
        card = ModelCard(**{**src.to_dict(), "name": recipe.name, "weights": None, "sha256": "",
                            "extra": {**src.extra, "cv": cv, "recipe": recipe.name}, **common})
        written.append(registry.save(loaded.module, card, dst))
    members = sorted((out / stage).glob("fold*/card.json"), key=lambda p: int(p.parent.name[4:]))
    if members:
        cards = [ModelCard.load(p) for p in members]
        mods = [registry.load(p.parent).module for p in members]
        card = make_card(f"{recipe.name}_ensemble", cards, recipe.tta, trained_on=cards[0].trained_on,
                         device=cards[0].device, date=cards[0].date, extra={"cv": cv, "recipe": recipe.name},
                         **common)
        ens = Ensemble(mods, recipe.tta).to(torch.float32)
        written.append(registry.save(ens, card, dst))
    return written


# --------------------------------------------------------------------------- driver
def run_recipe(recipe: Recipe, out: str | Path, data_root: str = "../shared/data",
               say: Callable[[str], None] = print, device: str = "auto") -> dict[str, Any]:
    """Run the stages of ``recipe`` into ``out`` (resuming what is done); returns the CV report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.json").write_text(json.dumps(asdict(recipe), indent=1))
    size = int(recipe.base.get("input_size", 256))
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    report: dict[str, Any] = {}
    pool_thread = None

    def pool() -> None:
        if not (out / "pool" / "done").exists():
            n = write_pool(recipe, out, data_root, size)
            (out / "pool" / "done").write_text(str(n))

    for stage in recipe.stages:
        t = time.monotonic()
        say(f"== stage {stage}")
        if stage == "teacher" and "pool" in recipe.stages:  # the pool is written while the teachers train
            import threading

            pool_thread = threading.Thread(target=pool, daemon=True)
            pool_thread.start()
        if stage in ("teacher", "student", "final"):
            _stage_runs(recipe, stage, out, data_root, say)
        elif stage == "pool":
            if pool_thread is not None:
                pool_thread.join()
            else:
                pool()
            say(f"pool: {(out / 'pool' / 'done').read_text()} slices")
        elif stage == "pseudo":
            done = out / "pseudo" / "done.json"
            if not done.exists():
                teachers = [out / "teacher" / f"fold{k}" for k in recipe.fold_ids]
                stats = write_pseudo(teachers, out / "pool" / "images", out / "pseudo", recipe.confidence, device)
                done.write_text(json.dumps(stats, indent=1))
            say(f"pseudo labels: {done.read_text()}")
        elif stage == "report":
            report = cv_report(out)
            say((out / "cv_report.md").read_text())
        elif stage == "export":
            report = report or (json.loads((out / "cv_report.json").read_text())
                                if (out / "cv_report.json").exists() else cv_report(out))
            for p in export(recipe, out, report):
                say(f"exported {p}")
        timings[stage] = round(time.monotonic() - t, 1)
    timings["total"] = round(time.monotonic() - t0, 1)
    (out / "timings.json").write_text(json.dumps(timings, indent=1))
    return report
