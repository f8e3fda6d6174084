"""Segmentation and classification models of the seed papers, and their registry.

See :mod:`engine.models.registry` for the I/O contract every model follows. Importing
this package does not import torch: :mod:`.card` (model cards, :func:`list_cards`) is
torch-free, and the registry names below are loaded on first use (PEP 562).
"""

from __future__ import annotations

from typing import Any

from .card import MODELS_DIR, ModelCard, list_cards

_REGISTRY_NAMES = ("LoadedModel", "available", "build", "default_model", "get_card", "load")

__all__ = ["MODELS_DIR", "ModelCard", "list_cards", *_REGISTRY_NAMES]


def __getattr__(name: str) -> Any:
    if name in _REGISTRY_NAMES:
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'engine.models' has no attribute {name!r}")
