"""Load and arrange the data of a :class:`TrainConfig` into arrays for the trainer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import DataError
from ..preprocessing.clahe import clahe
from ..preprocessing.resize import resize_labels
from .config import TrainConfig
from .data import (SliceSet, _fit, class_split, derive_lung_mask, fixed_split, load_class_folders,
                   load_label_volume, load_negatives, load_pseudo_folder, load_slice_folder)
from .folds import fold_train_val, kfold_split
from .losses import median_frequency_weights


@dataclass
class Prepared:
    """Training arrays at the input size (uint8) and full-size validation slices."""

    x: np.ndarray                      # (N, S, S) uint8 training images
    x_clahe: np.ndarray                # CLAHE copies
    y: np.ndarray                      # (N, S, S) uint8 targets, or (N, K) float for classifiers
    lung: Optional[np.ndarray] = None  # (N, S, S) uint8 lung masks
    xp: Optional[np.ndarray] = None    # pseudo-labelled images
    xp_clahe: Optional[np.ndarray] = None
    yp: Optional[np.ndarray] = None
    val_x: list = field(default_factory=list)   # full-size uint8 images
    val_y: list = field(default_factory=list)   # full-size targets
    val_ids: list = field(default_factory=list)
    train_ids: list = field(default_factory=list)
    xn: Optional[np.ndarray] = None    # negatives (no lung): background-only targets
    xq: Optional[np.ndarray] = None    # slices a teacher labelled in the model's classes
    yq: Optional[np.ndarray] = None
    class_weights: Optional[np.ndarray] = None
    pos_weight: Optional[np.ndarray] = None
    description: str = ""


def _clahe_stack(x: np.ndarray, p: float = 1.0) -> np.ndarray:
    """CLAHE copies of ``x``; ``x`` itself when they would never be drawn (``p`` == 0)."""
    if p <= 0:
        return x
    return np.stack([np.clip(np.rint(clahe(im) * 255), 0, 255).astype(np.uint8) for im in x])


def _resized(s: SliceSet, size: int) -> tuple[np.ndarray, np.ndarray]:
    imgs, labs = zip(*(_fit(im, lab, size) for im, lab in zip(s.images, s.labels)))
    return np.stack(imgs), np.stack(labs)


def presence(labels: np.ndarray) -> np.ndarray:
    """(N, 3) float: whether GGO, consolidation, effusion appear on each label map."""
    return np.stack([[float((lab == c).any()) for c in (1, 2, 3)] for lab in labels]).astype(np.float32)


def split_indices(cfg: TrainConfig, labels: np.ndarray, ids: list[str]) -> tuple[list[int], list[int], str]:
    """(train, val, description) of the labelled slices: a fold of a stratified k-fold split
    (``cfg.folds`` > 0; fold -1 = every slice trains) or the fixed seeded split."""
    if cfg.folds:
        folds = kfold_split(labels, cfg.folds, cfg.fold_seed)
        if cfg.fold < 0:
            return list(range(len(ids))), [], f"all {len(ids)} slices train (no validation)"
        tr, va = fold_train_val(folds, cfg.fold)
        return tr, va, (f"{len(tr)} train / {len(va)} val slices (fold {cfg.fold} of {cfg.folds}, "
                        f"stratified by findings present, seed {cfg.fold_seed})")
    tr, va = fixed_split(ids, labels, cfg.val_n, cfg.val_seed)
    return tr, va, (f"{len(tr)} train / {len(va)} val slices (val = fixed seeded split stratified "
                    f"by findings present, seed {cfg.val_seed})")


def prepare(cfg: TrainConfig) -> Prepared:
    size = cfg.input_size
    clahe_p = float(cfg.augment.get("clahe_p", 0.2))
    if cfg.task == "covid":
        if not cfg.class_folders:
            raise DataError("Task 'covid' needs class_folders (e.g. ../shared/data/ucsd_covid_ct).")
        s = load_class_folders(cfg.class_folders, size)
        tr, va = class_split(s.labels, cfg.val_frac, cfg.val_seed)
        y = s.labels.astype(np.float32)[:, None]
        n_pos = y[tr].sum()
        return Prepared(s.images[tr], _clahe_stack(s.images[tr], clahe_p), y[tr],
                        val_x=[s.images[i] for i in va], val_y=[y[i] for i in va],
                        val_ids=[s.ids[i] for i in va], train_ids=[s.ids[i] for i in tr],
                        pos_weight=np.array([(len(tr) - n_pos) / max(n_pos, 1)], np.float32),
                        description=f"{cfg.class_folders}: {len(tr)} train / {len(va)} val images "
                                    f"(seeded stratified split, seed {cfg.val_seed}, {cfg.val_frac:.0%} val)")
    if not cfg.labelled:
        raise DataError("Training needs a labelled folder (images/ + labels/), e.g. ../shared/data/medseg100.")
    full = load_slice_folder(cfg.labelled)
    tr, va, how = split_indices(cfg, full.labels, full.ids)
    train = full.subset(tr)
    x, y = _resized(train, size)
    extra = [load_label_volume(scan, lab, size) for scan, lab in cfg.label_volumes]
    for e in extra:
        x, y = np.concatenate([x, e.images]), np.concatenate([y, e.labels])
    # lung masks: targets of the lung task and of the two-stream network's lung head only
    needs_lungs = cfg.task == "lung" or cfg.architecture == "two_stream"
    lungs = np.stack([derive_lung_mask(im, lab) for im, lab in zip(x, y)]) if needs_lungs else None
    desc = f"{cfg.labelled}: {how}"
    if extra:
        desc += f"; plus {sum(len(e.ids) for e in extra)} slices from {len(extra)} label volume(s)"
    val_ids = [full.ids[i] for i in va]
    val_x = [full.images[i] for i in va]
    if cfg.task == "findings":
        p = presence(y)
        pos = p.sum(0)
        return Prepared(x, _clahe_stack(x, clahe_p), p, val_x=val_x, val_y=[presence(full.labels[i][None])[0] for i in va],
                        val_ids=val_ids, train_ids=list(train.ids),
                        pos_weight=((len(p) - pos) / np.maximum(pos, 1)).astype(np.float32), description=desc)
    if cfg.task == "lung":
        val_y = [derive_lung_mask(full.images[i], full.labels[i]) for i in va]
        return Prepared(x, _clahe_stack(x, clahe_p), lungs, lungs, val_x=val_x, val_y=val_y, val_ids=val_ids,
                        train_ids=list(train.ids), class_weights=median_frequency_weights(lungs, 2),
                        description=desc + "; lung masks derived by threshold + morphology united with the infection labels")
    k = cfg.num_outputs
    target = y if k > 2 else (y > 0).astype(np.uint8)
    prep = Prepared(x, _clahe_stack(x, clahe_p), target, lungs, val_x=val_x,
                    val_y=[full.labels[i] for i in va], val_ids=val_ids, train_ids=list(train.ids),
                    class_weights=median_frequency_weights(target, max(k, 2)), description=desc)
    if cfg.pseudo:
        ps = load_pseudo_folder(cfg.pseudo, size)
        prep.xp, prep.yp = ps.images, ps.labels
        prep.xp_clahe = _clahe_stack(ps.images, clahe_p)
        prep.description += (f"; plus {len(ps.ids)} pseudo-labelled slices from {cfg.pseudo} (binary infection "
                             f"only, loss weight {cfg.pseudo_weight})")
    if cfg.negatives:
        neg = load_negatives(cfg.negatives, size)
        prep.xn = neg.images
        prep.description += (f"; plus {len(neg.ids)} slices without lung from {len(cfg.negatives)} stack(s) as "
                             f"background-only negatives ({cfg.negatives_batch} per step)")
    if cfg.pseudo4:
        q = load_slice_folder(cfg.pseudo4, size, label_dir="labels", keep_values=True)
        prep.xq, prep.yq = q.images, q.labels
        prep.description += (f"; plus {len(q.ids)} slices labelled by a teacher model in {k} classes from "
                             f"{cfg.pseudo4} (loss weight {cfg.pseudo4_weight}, {cfg.pseudo4_batch} per step)")
    return prep


def val_targets_at(prep: Prepared, size: int) -> list[np.ndarray]:
    return [resize_labels(v, (size, size)) for v in prep.val_y]
