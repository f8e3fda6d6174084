"""Segmentation and classification models of the seed papers, and their registry.

See :mod:`engine.models.registry` for the I/O contract every model follows.
"""

from .card import ModelCard
from .registry import LoadedModel, available, build, default_model, get_card, load

__all__ = ["ModelCard", "LoadedModel", "available", "build", "default_model", "get_card", "load"]
