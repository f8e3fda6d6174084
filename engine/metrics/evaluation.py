"""Dataset-level evaluation in the JSON layout of ``python -m engine evaluate``."""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from ..labels import FINDING_KEYS
from .segmentation import binary_metrics, mean_dice_thresholds

METRIC_KEYS = ("dice", "iou", "sensitivity", "specificity", "precision", "f1", "f2", "gmean", "mcc",
               "mae", "s_measure", "e_measure")


def _mean(rows: list[dict[str, float]]) -> Optional[dict[str, float]]:
    if not rows:
        return None
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    out["n_images"] = len(rows)
    return out


def evaluate_segmentation(pairs: Iterable[tuple[np.ndarray, np.ndarray]], fast: bool = False) -> dict:
    """Evaluate (probabilities (K, H, W), labels (H, W) in 0..3) pairs.

    For each finding, metrics are computed per image on ``argmax == class`` against
    ``label == class`` with the class probability as the saliency map, and averaged over the
    images whose ground truth contains that class. ``infection`` uses ``argmax != 0`` and
    P(infection) = 1 - P(background), averaged over images with any infection, and adds
    ``mean_dice_thresholds`` (Inf-Net meanDic). Binary models (K = 2) give ``null`` classes.
    ``fast`` skips the 256-threshold E-measure (uses the binary prediction instead).
    """
    per_class: dict[str, list[dict[str, float]]] = {k: [] for k in FINDING_KEYS.values()}
    infection: list[dict[str, float]] = []
    k_classes = None
    for probs, lab in pairs:
        k_classes = probs.shape[0]
        pred = probs.argmax(0)
        if k_classes > 2:
            for c, key in FINDING_KEYS.items():
                gt = lab == c
                if gt.any():
                    p = pred == c
                    per_class[key].append(binary_metrics(p, gt, p if fast else probs[c]))
        gt = lab > 0
        if gt.any():
            p_inf = 1.0 - probs[0]
            p = pred != 0
            row = binary_metrics(p, gt, p if fast else p_inf)
            row["mean_dice_thresholds"] = mean_dice_thresholds(p_inf, gt)
            infection.append(row)
    classes = {key: (_mean(rows) if (k_classes or 0) > 2 else None) for key, rows in per_class.items()}
    return {"classes": classes, "infection": _mean(infection)}
