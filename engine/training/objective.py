"""Map a model's (training-mode) output onto the right losses for its task and data."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .losses import (bce_dice, deep_supervision_loss, edge_loss, infection_from_logits, multiclass_loss,
                     structure_loss)

#: label value of pixels a pseudo-label leaves out (the teacher was unsure there)
IGNORE = 255

Output = Any  # a tensor, or a dict of tensors / lists of tensors


def split_output(out: Output, n: int) -> tuple[Output, Output]:
    """Split a batched output into its first ``n`` samples and the rest."""
    if isinstance(out, torch.Tensor):
        return out[:n], out[n:]
    if isinstance(out, (list, tuple)):
        parts = [split_output(o, n) for o in out]
        return [p[0] for p in parts], [p[1] for p in parts]
    a, b = {}, {}
    for k, v in out.items():
        a[k], b[k] = split_output(v, n)
    return a, b


def _logits(out: Output) -> torch.Tensor | None:
    if isinstance(out, torch.Tensor):
        return out
    return out.get("logits")


def _class_loss(out: Output, logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None,
                ignore_index: int | None) -> torch.Tensor:
    w = weights if weights is not None and logits.shape[1] == weights.numel() else None
    if isinstance(out, dict) and out.get("deep"):
        return deep_supervision_loss(logits, out["deep"], y, w, ignore_index)
    return multiclass_loss(logits, y, w, ignore_index)


def labelled_loss(out: Output, y: torch.Tensor, lung: torch.Tensor | None, weights: torch.Tensor | None,
                  edge_weight: float = 1.0, aux_weight: float = 0.5) -> torch.Tensor:
    """Loss on labelled samples; ``y`` holds class indices matching the model's classes
    (0..3, or 0/1 for binary models). With deep supervision (``out["deep"]``) the class loss
    is summed over the output scales."""
    inf = (y > 0).to(torch.float32)
    loss = torch.zeros((), device=y.device)
    logits = _logits(out)
    if logits is not None:
        loss = loss + _class_loss(out, logits, y, weights, None)
    if isinstance(out, dict):
        side = out.get("side")
        if side:
            loss = loss + sum(structure_loss(s, inf) for s in side)
        if "edge" in out:
            loss = loss + edge_weight * edge_loss(out["edge"], inf)
        if "lung" in out and lung is not None:
            loss = loss + aux_weight * bce_dice(out["lung"], lung)
        if "infection" in out:
            loss = loss + structure_loss(out["infection"], inf)
        if "streams" in out:
            z = out["streams"]
            loss = loss + sum(bce_dice(z[:, k:k + 1], (y == k + 1)) for k in range(z.shape[1]))
    return loss


def pseudo_loss(out: Output, inf: torch.Tensor, edge_weight: float = 1.0) -> torch.Tensor:
    """Loss on pseudo-labelled samples: binary infection only (their masks come from a model)."""
    infm = inf.to(torch.float32)
    loss = torch.zeros((), device=inf.device)
    logits = _logits(out)
    if logits is not None:
        if logits.shape[1] == 2:
            loss = loss + multiclass_loss(logits, inf.long(), None)
        else:
            loss = loss + bce_dice(infection_from_logits(logits), infm)
    if isinstance(out, dict):
        side = out.get("side")
        if side:
            loss = loss + sum(structure_loss(s, infm) for s in side)
        if "edge" in out:
            loss = loss + edge_weight * edge_loss(out["edge"], infm)
        if "infection" in out:
            loss = loss + structure_loss(out["infection"], infm)
    return loss


def pseudo4_loss(out: Output, y: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Loss on slices a teacher labelled in the model's classes; pixels :data:`IGNORE` (where
    the teacher was unsure) do not count. Models without a multi-class output learn nothing."""
    logits = _logits(out)
    if logits is None or logits.shape[1] < 3:
        return torch.zeros((), device=y.device)
    return _class_loss(out, logits, y, weights, IGNORE)


def classifier_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), target.float(), pos_weight=pos_weight)
