"""A transparent intensity-rule model with the segmentation model's I/O contract.

:class:`IntensityModel` is *not* a diagnostic model: it labels ground-glass density
(-700 to -250 HU) as GGO, pixel by pixel, and never predicts consolidation or
effusion (they cannot be told from soft tissue by intensity). It needs no weights, so it lets the
inference pipeline (resizing, cropping, slab order, batching, the GUI's progressive
overlays) be tested and benchmarked against a known answer, and lets a demo run
before any trained weights are installed. :func:`intensity_model` wraps it with a
model card as a :class:`engine.models.registry.LoadedModel`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.card import ModelCard
from ..models.registry import LoadedModel
from ..preprocessing.normalize import unit_to_hu



class IntensityModel(nn.Module):
    """Logits (B, 4, H, W) from HU rules; input (B, 1, H, W) in [0, 1] (lung window)."""

    def __init__(self, sharpness: float = 0.05) -> None:
        super().__init__()
        self.sharpness = sharpness

    def _band(self, hu: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        """Soft indicator (logit) of ``lo <= hu <= hi``."""
        return self.sharpness * torch.minimum(hu - lo, hi - hu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hu = unit_to_hu(x[:, :1])
        ggo = self._band(hu, -700.0, -250.0)
        other = torch.full_like(hu, -20.0)
        return torch.cat([torch.zeros_like(hu), ggo, other, other], 1)


def intensity_model(input_size: tuple[int, int] = (256, 256), name: str = "intensity_rules") -> LoadedModel:
    """The :class:`IntensityModel` with a card, ready for :class:`engine.inference.Predictor`."""
    card = ModelCard(name=name, task="segmentation", architecture="intensity_rules", input_size=input_size,
                     version="1", notes="Intensity rules for tests and demos; not a trained or diagnostic model.",
                     extra={"multiple": 1})
    return LoadedModel(IntensityModel().eval(), card, torch.device("cpu"), torch.float32)
