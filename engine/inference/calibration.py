"""Fit and measure the presence model (:mod:`.presence`) of a segmentation model.

Data and what each part is for
------------------------------
- *Labelled slices* (``medseg100``: 50 8-bit lung-window slices with GGO,
  consolidation and effusion labels). The shipped segmentation models were trained on
  40 of them (``split.train`` of the model card) and validated on 10 (``split.val``).
  The presence model is **fitted on the 40 training slices** and **measured on the 10
  validation slices**, which neither the segmentation nor the presence model saw. The
  segmentation is more confident on its own training slices than on new ones, so the
  fitted model leans towards over-confidence; the held-out figures show how much.
- *Normal-anatomy negatives*: slices without lung from the radiopaedia stacks (the
  abdomen below the lungs). Each stack's lung-free slices go alternately to fitting and
  measuring (even / odd index). ``dicom/chest_ct_99`` is never used here: it is the
  clear-lung validation scan.

Each slice goes through the full reading (:class:`~.predictor.Predictor`: lungs,
segmentation, anatomy rules) with :data:`~.presence.KEEP_ALL`, so the regions are those
the rules leave. A region is "that finding" when at least :data:`REGION_TRUTH_SHARE` of
its pixels carry that label in the ground truth; a slice holds a finding when its ground
truth has at least one pixel of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..labels import FINDING_KEYS, FINDINGS
from ..types import Geometry, Volume
from .presence import (FEATURES, KEEP_ALL, PresenceModel, THRESHOLD, fit_presence, label_regions,
                       read_evidence)

REGION_TRUTH_SHARE = 0.2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class SliceEvidence:
    """Regions and truth of one slice (or one lung-free slice of a stack)."""

    name: str
    truth: np.ndarray                      #: (3,) bool: ground truth holds the finding
    features: dict[str, np.ndarray] = field(default_factory=dict)        #: key -> (n, F)
    region_truth: dict[str, np.ndarray] = field(default_factory=dict)    #: key -> (n,) bool
    confidence: Optional[np.ndarray] = None
    lung: Optional[np.ndarray] = None


def slice_volume(image: np.ndarray) -> Volume:
    """One 8-bit slice as a 1-slice volume (no spacing)."""
    arr = np.ascontiguousarray(image[None])
    return Volume(arr, Geometry(shape=arr.shape, spacing_known=False), is_hu=False, format="png")


def _read_grey(path: Path) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def labelled_slices(images: Path, labels: Path, names: Optional[list[str]] = None) -> list[tuple[str, Path, Path]]:
    """``(stem, image, label)`` of every image with a label of the same stem (optionally only ``names``)."""
    out = []
    for p in sorted(images.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES or (names is not None and p.stem not in names):
            continue
        lab = next((labels / (p.stem + s) for s in IMAGE_SUFFIXES if (labels / (p.stem + s)).is_file()), None)
        if lab is not None:
            out.append((p.stem, p, lab))
    return out


def _evidence(predictor, volume: Volume, truth_labels: Optional[np.ndarray], zs: list[int],
              name: str) -> list[SliceEvidence]:
    pred = predictor.predict(volume)
    out = []
    if not pred.assessed:
        return out
    for z in zs:
        truth = (np.array([(truth_labels[z] == lab).any() for lab in FINDINGS]) if truth_labels is not None
                 else np.zeros(len(FINDINGS), dtype=bool))
        ev = SliceEvidence(f"{name}[{z}]" if volume.shape[0] > 1 else name, truth)
        for c, lab in enumerate(FINDINGS):
            key = FINDING_KEYS[lab]
            reg = pred.evidence[key]
            sel = reg.z == z
            ev.features[key] = reg.features[sel]
            if truth_labels is None:
                ev.region_truth[key] = np.zeros(int(sel.sum()), dtype=bool)
            else:
                ids, n = label_regions(pred.labels, lab)  # the same components, in the same order
                idx = np.flatnonzero(sel) + 1
                share = np.array([(truth_labels[ids == i] == lab).mean() for i in idx]) if idx.size else np.zeros(0)
                ev.region_truth[key] = share >= REGION_TRUTH_SHARE
        out.append(ev)
    return out


def labelled_evidence(predictor, items: list[tuple[str, Path, Path]],
                      progress: Optional[Callable[[str], None]] = None) -> tuple[list[SliceEvidence], list[str]]:
    """Evidence of labelled 8-bit slices; also the names of slices the reading refused."""
    out, refused = [], []
    for name, img, lab in items:
        if progress:
            progress(name)
        truth = _read_grey(lab)[None].astype(np.uint8)
        ev = _evidence(predictor, slice_volume(_read_grey(img)), truth, [0], name)
        if not ev:
            refused.append(name)
        out.extend(ev)
    return out, refused


def negative_evidence(predictor, stacks: list[Path],
                      progress: Optional[Callable[[str], None]] = None) -> tuple[list[SliceEvidence], list[SliceEvidence]]:
    """Evidence of the lung-free slices of image stacks, split alternately (even, odd) into two lists."""
    from .. import io
    from ..anatomy import lung_masks
    from ..errors import DataError
    even, odd = [], []
    for stack in stacks:
        if progress:
            progress(stack.name)
        vol = io.load(stack)
        try:
            lungs = lung_masks(vol)
        except DataError:
            zs = list(range(vol.shape[0]))
        else:
            zs = [int(z) for z in np.flatnonzero(~lungs.lung.any(axis=(1, 2)))]
        if zs:
            ev = _evidence(predictor, vol, None, zs, stack.name)
            even.extend(ev[0::2])
            odd.extend(ev[1::2])
    return even, odd


def cross_validated_metrics(evidence: list[SliceEvidence], folds: int = 5, seed: int = 0,
                            bins: int = 10) -> dict[str, dict]:
    """Presence metrics of ``folds``-fold cross-validation: each slice scored by a model fitted without it."""
    from ..metrics.classification import auc, brier, ece, reliability
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(evidence)) % folds
    scores: dict[str, list] = {FINDING_KEYS[lab]: [np.zeros(len(evidence)), np.zeros(len(evidence), bool)]
                               for lab in FINDINGS}
    for f in range(folds):
        test = [ev for ev, k in zip(evidence, fold) if k == f]
        if not test:
            continue
        model = fit([ev for ev, k in zip(evidence, fold) if k != f])
        idx = np.flatnonzero(fold == f)
        for key, (p, y) in slice_scores(model, test).items():
            scores[key][0][idx] = p
            scores[key][1][idx] = y
    return {key: {"auc": auc(p, y), "brier": brier(p, y), "brier_base_rate": brier(np.full(len(y), y.mean()), y),
                  "ece": ece(p, y, bins), "n": int(len(y)), "positives": int(y.sum()),
                  "reliability": reliability(p, y, bins)} for key, (p, y) in scores.items()}


def _arrays(evidence: list[SliceEvidence], key: str) -> dict[str, np.ndarray]:
    c = [FINDING_KEYS[lab] for lab in FINDINGS].index(key)
    feats, truth, where = [], [], []
    for i, ev in enumerate(evidence):
        feats.append(ev.features[key])
        truth.append(ev.region_truth[key])
        where.append(np.full(len(ev.features[key]), i))
    return {"features": np.concatenate(feats) if feats else np.zeros((0, len(FEATURES))),
            "truth": np.concatenate(truth) if truth else np.zeros(0, bool),
            "region_slice": np.concatenate(where).astype(np.int64) if where else np.zeros(0, np.int64),
            "slice_truth": np.array([ev.truth[c] for ev in evidence], dtype=bool)}


def fit(evidence: list[SliceEvidence], l2: float = 1.0, **info) -> PresenceModel:
    """Fit the presence model on ``evidence``."""
    data = {FINDING_KEYS[lab]: _arrays(evidence, FINDING_KEYS[lab]) for lab in FINDINGS}
    return fit_presence(data, l2=l2, **info)


def slice_scores(model: PresenceModel, evidence: list[SliceEvidence]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per finding: ``(slice probabilities, slice truth)`` of ``evidence`` under ``model``."""
    out = {}
    for c, lab in enumerate(FINDINGS):
        key = FINDING_KEYS[lab]
        fm = model.findings[key]
        p = []
        for ev in evidence:
            q = fm.predict(ev.features[key]) if len(ev.features[key]) else np.zeros(0)
            kept = q[q > THRESHOLD]
            p.append(1.0 - float(np.prod(1.0 - kept)) if kept.size else min(fm.p_empty, 0.45))
        out[key] = (np.array(p), np.array([ev.truth[c] for ev in evidence], dtype=bool))
    return out


def presence_metrics(model: PresenceModel, evidence: list[SliceEvidence], bins: int = 10) -> dict[str, dict]:
    """Per finding: AUC, Brier score, ECE, counts and reliability bins of the slice probabilities."""
    from ..metrics.classification import auc, brier, ece, reliability
    out = {}
    for key, (p, y) in slice_scores(model, evidence).items():
        out[key] = {"auc": auc(p, y), "brier": brier(p, y), "brier_base_rate": brier(np.full(len(y), y.mean()), y)
                    if len(y) else float("nan"), "ece": ece(p, y, bins), "n": int(len(y)), "positives": int(y.sum()),
                    "reliability": reliability(p, y, bins)}
    return out


def check_evidence_rule(evidence: list[SliceEvidence], model: PresenceModel) -> bool:
    """True when every slice's probability is above 0.5 exactly when a region of it is kept."""
    for key, (p, _) in slice_scores(model, evidence).items():
        fm = model.findings[key]
        shown = np.array([bool(len(ev.features[key])) and bool((fm.predict(ev.features[key]) > THRESHOLD).any())
                          for ev in evidence])
        if not np.array_equal(shown, p > THRESHOLD):
            return False
    return True


def draw_reliability(metrics: dict[str, dict], path: str | Path, title: str = "") -> Path:
    """Reliability diagram (one panel per finding) as a PNG: matplotlib when installed, else Pillow."""
    path = Path(path)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _draw_reliability_pil(metrics, path, title)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 4), squeeze=False)
    for ax, (key, m) in zip(axes[0], metrics.items()):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        bins = m["reliability"]
        ax.bar([(b["low"] + b["high"]) / 2 for b in bins], [b["observed"] for b in bins], width=0.09,
               color="tab:blue", alpha=0.6, label="observed rate")
        ax.plot([b["mean_probability"] for b in bins], [b["observed"] for b in bins], "o", color="tab:red",
                label="mean probability")
        for b in bins:
            ax.annotate(str(b["n"]), ((b["low"] + b["high"]) / 2, b["observed"]), ha="center", va="bottom",
                        fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed frequency")
        ax.set_title(f"{key}: AUC {m['auc']:.2f}, ECE {m['ece']:.2f}, n {m['n']}")
    axes[0][0].legend(loc="upper left", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _draw_reliability_pil(metrics: dict[str, dict], path: Path, title: str) -> Path:
    from PIL import Image, ImageDraw
    w, h, pad = 300, 300, 30
    img = Image.new("RGB", (w * len(metrics), h + 20), "white")
    d = ImageDraw.Draw(img)
    for i, (key, m) in enumerate(metrics.items()):
        x0 = i * w + pad
        size = w - 2 * pad
        d.rectangle([x0, pad, x0 + size, pad + size], outline="black")
        d.line([x0, pad + size, x0 + size, pad], fill=(150, 150, 150))
        for b in m["reliability"]:
            bx0 = x0 + int(b["low"] * size)
            bx1 = x0 + int(b["high"] * size) - 2
            d.rectangle([bx0, pad + size - int(b["observed"] * size), bx1, pad + size], fill=(100, 140, 220))
        d.text((x0, 5), f"{key} AUC {m['auc']:.2f} ECE {m['ece']:.2f}", fill="black")
    if title:
        d.text((5, h + 5), title, fill="black")
    img.save(path)
    return path
