"""Per-image segmentation metrics.

Confusion-based metrics follow seeds 001/004 (sensitivity, specificity, precision, F1, F2,
G-mean, MCC); MAE, S-measure (Fan et al., ICCV 2017, alpha = 0.5) and mean E-measure (Fan et
al., IJCAI 2018) follow Inf-Net's evaluation code (seed 003); ``mean_dice_thresholds`` is
Inf-Net's "meanDic": the Dice of the probability map binarised at 256 thresholds in [0, 1],
averaged over thresholds.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-8


def confusion(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of two binary masks."""
    p, g = np.asarray(pred, bool), np.asarray(gt, bool)
    tp = int(np.count_nonzero(p & g))
    fp = int(np.count_nonzero(p & ~g))
    fn = int(np.count_nonzero(~p & g))
    tn = int(p.size - tp - fp - fn)
    return tp, fp, fn, tn


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """2|P∩G| / (|P|+|G|); 1.0 when both are empty."""
    tp, fp, fn, _ = confusion(pred, gt)
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    tp, fp, fn, _ = confusion(pred, gt)
    return 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn)


def _safe(num: float, den: float, empty: float = 0.0) -> float:
    return num / den if den > 0 else empty


def binary_metrics(pred: np.ndarray, gt: np.ndarray, prob: np.ndarray | None = None) -> dict[str, float]:
    """All confusion metrics plus MAE, S-measure and E-measure (on ``prob`` when given,
    else on the binary ``pred``) for one image."""
    tp, fp, fn, tn = confusion(pred, gt)
    sens = _safe(tp, tp + fn, 1.0 if fp == 0 else 0.0)
    spec = _safe(tn, tn + fp, 1.0)
    prec = _safe(tp, tp + fp, 1.0 if fn == 0 else 0.0)
    f1 = _safe(2 * prec * sens, prec + sens)
    f2 = _safe(5 * prec * sens, 4 * prec + sens)
    den = math.sqrt(float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = _safe(tp * tn - fp * fn, den)
    sal = np.asarray(prob if prob is not None else pred, dtype=np.float64)
    g = np.asarray(gt, bool)
    return {"dice": dice(pred, gt), "iou": iou(pred, gt), "sensitivity": sens, "specificity": spec,
            "precision": prec, "f1": f1, "f2": f2, "gmean": math.sqrt(sens * spec), "mcc": mcc,
            "mae": float(np.abs(sal - g).mean()), "s_measure": s_measure(sal, g), "e_measure": e_measure(sal, g)}


def mean_dice_thresholds(prob: np.ndarray, gt: np.ndarray, n: int = 256) -> float:
    """Inf-Net meanDic: mean over ``n`` thresholds linspace(0, 1, n) of Dice(prob >= t, gt)
    (a prediction equal to the threshold counts as positive, as in Inf-Net's MATLAB code)."""
    p = np.asarray(prob, dtype=np.float64).ravel()
    g = np.asarray(gt, bool).ravel()
    thr = np.linspace(0, 1, n)
    # cumulative counts by sorting once
    order = np.argsort(p)
    ps, gs = p[order], g[order]
    idx = np.searchsorted(ps, thr, side="left")  # positives: ps[idx:]
    pos_after = np.concatenate([np.cumsum(gs[::-1])[::-1], [0]])
    tp = pos_after[idx]
    npred = p.size - idx
    ng = g.sum()
    den = npred + ng
    d = np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0)
    return float(d.mean())


def _object(pred: np.ndarray, gt: np.ndarray) -> float:
    x = pred[gt]
    if x.size == 0:
        return 0.0
    mu, sigma = x.mean(), x.std(ddof=1) if x.size > 1 else 0.0
    return float(2 * mu / (mu * mu + 1 + sigma + EPS))


def _s_object(pred: np.ndarray, gt: np.ndarray) -> float:
    fg = np.where(gt, pred, 0.0)
    bg = np.where(gt, 0.0, 1 - pred)
    u = gt.mean()
    return u * _object(fg, gt) + (1 - u) * _object(bg, ~gt)


def _centroid(gt: np.ndarray) -> tuple[int, int]:
    h, w = gt.shape
    if not gt.any():
        return int(round(w / 2)), int(round(h / 2))
    ys, xs = np.nonzero(gt)
    return int(round(xs.mean())), int(round(ys.mean()))


def _ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    n = pred.size
    x, y = pred.mean(), gt.mean()
    sx = ((pred - x) ** 2).sum() / (n - 1 + EPS)
    sy = ((gt - y) ** 2).sum() / (n - 1 + EPS)
    sxy = ((pred - x) * (gt - y)).sum() / (n - 1 + EPS)
    alpha = 4 * x * y * sxy
    beta = (x * x + y * y) * (sx + sy)
    if alpha != 0:
        return float(alpha / (beta + EPS))
    return 1.0 if beta == 0 else 0.0


def _s_region(pred: np.ndarray, gt: np.ndarray) -> float:
    h, w = gt.shape
    cx, cy = _centroid(gt)
    area = h * w
    parts = [(slice(0, cy), slice(0, cx)), (slice(0, cy), slice(cx, w)),
             (slice(cy, h), slice(0, cx)), (slice(cy, h), slice(cx, w))]
    score = 0.0
    for ys, xs in parts:
        g, p = gt[ys, xs].astype(np.float64), pred[ys, xs]
        if g.size == 0:
            continue
        score += g.size / area * _ssim(p, g)
    return score


def s_measure(pred: np.ndarray, gt: np.ndarray, alpha: float = 0.5) -> float:
    """Structure measure (Fan et al. 2017): alpha * S_object + (1 - alpha) * S_region."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, bool)
    y = g.mean()
    if y == 0:
        return float(1 - p.mean())
    if y == 1:
        return float(p.mean())
    q = alpha * _s_object(p, g) + (1 - alpha) * _s_region(p, g)
    return float(max(q, 0.0))


def _enhanced_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> np.ndarray:
    """Mean enhanced alignment of a binary map from its confusion counts (vectorised).

    With a binary foreground map every pixel of one confusion cell has the same bias-matrix
    values, so the sum over pixels is a sum over the four cells (Fan et al. 2018, eqs. 3-5).
    """
    n = tp + fp + fn + tn
    mu_f = (tp + fp) / n
    mu_g = (tp + fn) / n
    total = np.zeros_like(mu_f, dtype=np.float64)
    for count, f, g in ((tp, 1.0, 1.0), (fp, 1.0, 0.0), (fn, 0.0, 1.0), (tn, 0.0, 0.0)):
        af, ag = f - mu_f, g - mu_g
        den = af * af + ag * ag
        align = np.where(den > 0, 2 * af * ag / np.maximum(den, EPS), 0.0)
        total += count * (align + 1) ** 2 / 4
    all_fg, no_fg = mu_g == 1, mu_g == 0
    total = np.where(no_fg, fp * 0 + (fn + tn), total)  # E = 1 - fm summed (fm==1 on tp+fp)
    total = np.where(all_fg, tp + fp, total)
    return total / (n - 1 + EPS)


def e_measure(pred: np.ndarray, gt: np.ndarray, n: int = 256) -> float:
    """Mean enhanced-alignment measure (Fan et al. 2018) over ``n`` thresholds of ``pred``
    (``pred >= t`` for t in linspace(0, 1, n)); a binary ``pred`` gives its single value."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    g = np.asarray(gt, bool).ravel()
    if np.isin(p, (0.0, 1.0)).all():
        thr = np.array([0.5])
    else:
        thr = np.linspace(0, 1, n)
    order = np.argsort(p, kind="stable")
    ps, gs = p[order], g[order]
    idx = np.searchsorted(ps, thr, side="left")
    pos_after = np.concatenate([np.cumsum(gs[::-1])[::-1], [0]])
    tp = pos_after[idx].astype(np.float64)
    npred = (p.size - idx).astype(np.float64)
    ng = float(g.sum())
    fp = npred - tp
    fn = ng - tp
    tn = p.size - tp - fp - fn
    return float(_enhanced_counts(tp, fp, fn, tn).mean())
