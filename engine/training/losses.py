"""Losses: cross-entropy with median-frequency class weights (seed 001), soft Dice, BCE,
Inf-Net's structure loss (weighted BCE + weighted IoU) and edge loss."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def median_frequency_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Median frequency balancing (Eigen & Fergus): w_c = median(f) / f_c, where f_c is the
    pixel frequency of class c over the images that contain c. Absent classes get weight 0."""
    freq = np.zeros(num_classes)
    for c in range(num_classes):
        has = np.array([(lab == c).any() for lab in labels])
        if has.any():
            freq[c] = (labels[has] == c).sum() / labels[has][0].size / has.sum()
    present = freq > 0
    w = np.zeros(num_classes)
    w[present] = np.median(freq[present]) / freq[present]
    return w.astype(np.float32)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, classes: list[int] | None = None,
                   eps: float = 1.0, ignore_index: int | None = None) -> torch.Tensor:
    """1 - mean soft Dice over ``classes`` (default all but 0) of softmax(logits) vs ``target``
    (batch Dice: sums over the whole batch). Pixels equal to ``ignore_index`` do not count."""
    prob = torch.softmax(logits.float(), 1)
    n = logits.shape[1]
    t = target.long()
    valid = None
    if ignore_index is not None:
        valid = (t != ignore_index)
        t = torch.where(valid, t, torch.zeros_like(t))
    onehot = F.one_hot(t, n).permute(0, 3, 1, 2).float()
    if valid is not None:
        v = valid.unsqueeze(1).float()
        prob, onehot = prob * v, onehot * v
    classes = classes if classes is not None else list(range(1, n))
    dims = (0, 2, 3)
    inter = (prob * onehot).sum(dims)[classes]
    denom = (prob + onehot).sum(dims)[classes]
    return 1 - ((2 * inter + eps) / (denom + eps)).mean()


def binary_dice_loss(logit: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    p = torch.sigmoid(logit.float()).flatten(1)
    t = target.float().flatten(1)
    return 1 - ((2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def bce_dice(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice for a (B, 1, H, W) logit and a (B, H, W) binary target."""
    t = target.float().unsqueeze(1) if target.dim() == 3 else target.float()
    return F.binary_cross_entropy_with_logits(logit.float(), t) + binary_dice_loss(logit, t)


def structure_loss(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Inf-Net / F3Net structure loss: boundary-weighted BCE + weighted IoU."""
    mask = target.float().unsqueeze(1) if target.dim() == 3 else target.float()
    logit = logit.float()
    weit = 1 + 5 * torch.abs(F.avg_pool2d(mask, 31, 1, 15) - mask)
    wbce = F.binary_cross_entropy_with_logits(logit, mask, reduction="none")
    wbce = (weit * wbce).sum((2, 3)) / weit.sum((2, 3))
    pred = torch.sigmoid(logit)
    inter = (pred * mask * weit).sum((2, 3))
    union = ((pred + mask) * weit).sum((2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return (wbce + wiou).mean()


def edge_target(mask: torch.Tensor, width: int = 1) -> torch.Tensor:
    """Boundary of a binary (B, H, W) mask: dilation minus erosion, as (B, 1, H, W) float."""
    m = mask.float().unsqueeze(1)
    k = 2 * width + 1
    dil = F.max_pool2d(m, k, 1, width)
    ero = -F.max_pool2d(-m, k, 1, width)
    return (dil - ero).clamp(0, 1)


def edge_loss(edge_logit: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE of the edge-attention map against the infection boundary (Inf-Net's L_edge)."""
    return F.binary_cross_entropy_with_logits(edge_logit.float(), edge_target(mask))


def multiclass_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None,
                    ignore_index: int | None = None) -> torch.Tensor:
    """Weighted cross-entropy + soft Dice (over the foreground classes); pixels equal to
    ``ignore_index`` (e.g. 255 where a pseudo-label was unsure) count in neither."""
    t = target.long()
    if ignore_index is None:
        ce = F.cross_entropy(logits.float(), t, weight=weights)
    else:
        # the mean of F.cross_entropy over the pixels that count, written out so that a batch
        # with none (every pseudo-label unsure) gives 0 without asking the device first (a
        # host sync per step, costly when runs share a GPU)
        valid = t != ignore_index
        per_pixel = F.cross_entropy(logits.float(), t, weight=weights, ignore_index=ignore_index, reduction="none")
        if weights is None:
            norm = valid.sum()
        else:
            norm = (weights[torch.where(valid, t, torch.zeros_like(t))] * valid).sum()
        ce = per_pixel.sum() / norm.clamp_min(1e-12)
    return ce + soft_dice_loss(logits, t, ignore_index=ignore_index)


def downsample_target(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a (B, H, W) label map to ``size``."""
    if tuple(target.shape[-2:]) == tuple(size):
        return target
    return F.interpolate(target[:, None].float(), size=size, mode="nearest")[:, 0].to(target.dtype)


def deep_supervision_weights(n: int) -> list[float]:
    """nnU-Net's weights of the full-resolution output and ``n - 1`` coarser ones: 1, 1/2,
    1/4, ... normalised to sum to 1."""
    w = [0.5 ** i for i in range(n)]
    return [v / sum(w) for v in w]


def deep_supervision_loss(logits: torch.Tensor, deep: list[torch.Tensor], target: torch.Tensor,
                          weights: torch.Tensor | None, ignore_index: int | None = None) -> torch.Tensor:
    """Weighted sum of :func:`multiclass_loss` over the full-resolution logits and each
    coarser output of ``deep`` against the target resized (nearest) to its size."""
    outs = [logits, *deep]
    ws = deep_supervision_weights(len(outs))
    return sum(w * multiclass_loss(o, downsample_target(target, tuple(o.shape[-2:])), weights, ignore_index)
               for w, o in zip(ws, outs))


def infection_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Binary infection logit from multi-class logits: log P(not background) - log P(background)."""
    lse = torch.logsumexp(logits[:, 1:].float(), 1, keepdim=True)
    return lse - logits[:, :1].float()
