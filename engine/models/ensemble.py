"""Inference-time wrapping of segmentation models: ensembles and test-time flips.

Both keep the registry's contract (input (B, C, H, W) in [0, 1], output (B, K, H, W) whose
softmax gives class probabilities): they average the members' softmax probabilities over
the members and the flipped copies of the input, and return the log of the average (whose
softmax is that average).

An ensemble is an ordinary registry model: architecture ``"ensemble"``, config
``{"members": [{"architecture": ..., "config": {...}}, ...], "tta": ["h", "v"]}`` and one
safetensors file whose keys are ``members.<i>.<member key>``. A single model with test-time
flips is an ensemble of one (:func:`make_card`). ``tta`` lists the flips added to the
identity: ``"h"`` (left-right), ``"v"`` (up-down), ``"hv"`` (both); each one costs a
forward pass.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ModelError

#: flip name -> dims of a (B, C, H, W) tensor it reverses
FLIPS: dict[str, tuple[int, ...]] = {"h": (-1,), "v": (-2,), "hv": (-2, -1)}


def _check_flips(flips: Sequence[str]) -> tuple[str, ...]:
    bad = [f for f in flips if f not in FLIPS]
    if bad:
        raise ModelError(f"Unknown test-time flip(s) {bad}: use {', '.join(FLIPS)}.")
    return tuple(flips)


class Ensemble(nn.Module):
    """Average of the softmax probabilities of ``members`` over the identity and ``tta`` flips;
    returns their log (so ``softmax(output)`` is the average)."""

    def __init__(self, members: Sequence[nn.Module], tta: Sequence[str] = ()) -> None:
        super().__init__()
        if not members:
            raise ModelError("An ensemble needs at least one member.")
        self.members = nn.ModuleList(members)
        self.tta = _check_flips(tta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        n = 0
        views = [()] + [FLIPS[f] for f in self.tta]
        for dims in views:
            xi = x.flip(dims) if dims else x
            for m in self.members:
                out = m(xi)
                if isinstance(out, dict):  # a member in training mode: its main output
                    out = out["logits"]
                p = torch.softmax(out.float(), 1)
                p = p.flip(dims) if dims else p
                total = p if total is None else total + p
                n += 1
        assert total is not None
        return torch.log((total / n).clamp_min(1e-8))


def flip_tta(module: nn.Module, flips: Sequence[str] = ("h",)) -> Ensemble:
    """``module`` with test-time flips: an ensemble of one."""
    return Ensemble([module], flips)


def build(config: dict) -> Ensemble:
    """Build an untrained ensemble from ``{"members": [{"architecture", "config"}], "tta": [...]}``."""
    from .registry import build as build_one

    members = config.get("members")
    if not isinstance(members, list) or not members:
        raise ModelError("An ensemble config needs a non-empty 'members' list.")
    in_ch = config.get("in_channels")
    mods = []
    for m in members:
        cfg = dict(m.get("config") or {})
        if in_ch is not None:
            cfg["in_channels"] = in_ch
        mods.append(build_one(m["architecture"], cfg))
    return Ensemble(mods, config.get("tta", ()))


def make_card(name: str, cards: Sequence[Any], tta: Sequence[str] = (), **fields: Any):
    """A :class:`~engine.models.card.ModelCard` of the ensemble of models with ``cards``
    (same task, classes, channels and input size); ``fields`` fill the other card fields."""
    from .card import ModelCard

    first = cards[0]
    for c in cards[1:]:
        if (c.task, tuple(c.classes), c.in_channels, tuple(c.input_size)) != \
                (first.task, tuple(first.classes), first.in_channels, tuple(first.input_size)):
            raise ModelError(f"Cannot ensemble '{first.name}' and '{c.name}': task, classes, channels or input "
                             f"size differ.")
    config = {"members": [{"architecture": c.architecture, "config": dict(c.config)} for c in cards],
              "tta": list(_check_flips(tta))}
    extra = dict(fields.pop("extra", {}) or {})
    extra.setdefault("multiple", max(int(c.extra.get("multiple", 32)) for c in cards))
    extra["members"] = [c.name for c in cards]
    return ModelCard(name=name, task=first.task, architecture="ensemble", config=config,
                     in_channels=first.in_channels, input_size=tuple(first.input_size), classes=tuple(first.classes),
                     extra=extra, **fields)


def stack_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One state dict of an :class:`Ensemble` from its members' state dicts."""
    return {f"members.{i}.{k}": v for i, sd in enumerate(states) for k, v in sd.items()}
