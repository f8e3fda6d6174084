"""Classification metrics of seed 004: accuracy, sensitivity, specificity, precision, F1, MCC, AUC."""

from __future__ import annotations

import math

import numpy as np


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tie correction); nan if one class only."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def classification_metrics(prob: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Binary classification metrics of probabilities ``prob`` against 0/1 ``labels``."""
    p = np.asarray(prob) >= threshold
    y = np.asarray(labels, bool)
    tp, tn = int((p & y).sum()), int((~p & ~y).sum())
    fp, fn = int((p & ~y).sum()), int((~p & y).sum())
    n = max(len(y), 1)
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    prec = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    den = math.sqrt(float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {"accuracy": (tp + tn) / n, "sensitivity": sens, "specificity": spec, "precision": prec,
            "f1": f1, "mcc": (tp * tn - fp * fn) / den if den else 0.0, "auc": auc(prob, labels), "n": len(y)}
