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


def brier(prob: np.ndarray, labels: np.ndarray) -> float:
    """Brier score: mean squared difference between probability and outcome (0 best)."""
    p = np.asarray(prob, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    return float(np.mean((p - y) ** 2)) if p.size else float("nan")


def reliability(prob: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Equal-width reliability bins: per non-empty bin its range, count, mean probability and observed rate."""
    p = np.asarray(prob, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        if n:
            out.append({"low": b / bins, "high": (b + 1) / bins, "n": n,
                        "mean_probability": float(p[sel].mean()), "observed": float(y[sel].mean())})
    return out


def ece(prob: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: count-weighted mean |observed rate - mean probability| over equal-width bins."""
    n = len(np.asarray(prob))
    if n == 0:
        return float("nan")
    return float(sum(b["n"] * abs(b["observed"] - b["mean_probability"]) for b in reliability(prob, labels, bins)) / n)
