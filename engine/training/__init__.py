"""Training of the models in :mod:`engine.models` (``python -m engine train``)."""

from .config import TrainConfig
from .trainer import train

__all__ = ["TrainConfig", "train"]
