"""Map a model's (training-mode) output onto the right losses for its task and data."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .losses import bce_dice, edge_loss, infection_from_logits, multiclass_loss, structure_loss

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


def labelled_loss(out: Output, y: torch.Tensor, lung: torch.Tensor | None, weights: torch.Tensor | None,
                  edge_weight: float = 1.0, aux_weight: float = 0.5) -> torch.Tensor:
    """Loss on labelled samples; ``y`` holds class indices matching the model's classes
    (0..3, or 0/1 for binary models)."""
    inf = (y > 0).to(torch.float32)
    loss = torch.zeros((), device=y.device)
    logits = _logits(out)
    if logits is not None:
        loss = loss + multiclass_loss(logits, y, weights if logits.shape[1] == (weights.numel() if weights is not None else -1) else None)
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


def classifier_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), target.float(), pos_weight=pos_weight)
