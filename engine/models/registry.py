"""The model registry: a name -> architecture + config + weights + model card.

Shipped models live in ``resources/models/<name>.safetensors`` (fp16) with a
``<name>.json`` :class:`~engine.models.card.ModelCard` beside it. Loading checks the
sha256 of the weights recorded in the card and never touches pickle.

Model I/O contract
------------------
* input: float tensor (B, C, H, W) in [0, 1] (HU window [-1350, 150] -> [0, 1]; 8-bit / 255),
  ``C = card.in_channels``; H and W a multiple of ``multiple(card)`` (32 for all shipped
  models); ``card.input_size`` is the resolution the model was trained at.
* ``task == "segmentation"`` / ``"lung"``: ``module(x)`` in eval mode returns logits
  (B, len(card.classes), H, W); softmax over dim 1 gives class probabilities. Binary
  models have classes ``("background", "infection")`` or ``("background", "lung")``.
* ``task == "findings"``: (B, 3) logits, sigmoid -> P(ggo), P(consolidation), P(effusion).
* ``task == "covid"``: (B, 1) logit, sigmoid -> P(COVID-19).
* Architectures that need a structure/texture decomposition (``two_stream``) compute it
  inside the module, so callers always pass the plain slice.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ..errors import ModelError
from .card import MODELS_DIR as CARDS_DIR
from .card import ModelCard, list_cards

#: architecture key -> module that defines ``build(config) -> nn.Module``
ARCHITECTURES: dict[str, str] = {
    "unet": "engine.models.unet",
    "segnet": "engine.models.segnet",
    "two_stream": "engine.models.two_stream",
    "infnet": "engine.models.infnet",
    "deeplabv3plus": "engine.models.deeplab",
    "classifier": "engine.models.classifier",
    "ensemble": "engine.models.ensemble",
}

#: the shipped default for each task
DEFAULTS: dict[str, str] = {
    "segmentation": "unet_infection",
    "findings": "findings_classifier",
    "covid": "covid_classifier",
    "lung": "lung_unet",
}

#: the name that stands for whatever ships as the default (``default`` = segmentation;
#: ``default:<task>`` for the other tasks), so scripts need not know its name
DEFAULT_ALIAS = "default"

MODELS_DIR = CARDS_DIR


def resolve_alias(name: str) -> str:
    """``"default"`` -> the shipped default segmentation model, ``"default:<task>"`` -> that
    task's default; any other name unchanged."""
    text = str(name)
    if text == DEFAULT_ALIAS:
        return default_model("segmentation")
    if text.startswith(DEFAULT_ALIAS + ":"):
        return default_model(text.split(":", 1)[1])
    return text


@dataclass
class LoadedModel:
    """A model ready for inference: ``module`` in eval mode and its ``card``."""

    module: nn.Module
    card: ModelCard
    device: torch.device
    dtype: torch.dtype

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(x.to(self.device, self.dtype))


def build(architecture: str, config: Optional[dict] = None) -> nn.Module:
    """Build an untrained model of ``architecture`` with ``config`` (see each module's DEFAULTS)."""
    try:
        module_name = ARCHITECTURES[architecture]
    except KeyError:
        raise ModelError(f"Unknown architecture '{architecture}'. Known: {', '.join(sorted(ARCHITECTURES))}.") from None
    mod = importlib.import_module(module_name)
    builder: Callable[[dict], nn.Module] = mod.build
    return builder(dict(config or {}))


def multiple(card: ModelCard) -> int:
    """The number input H and W must be a multiple of."""
    return int(card.extra.get("multiple", 32))


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def available(models_dir: Optional[Path] = None) -> list[ModelCard]:
    """Cards of all models with a card in ``models_dir`` (default ``resources/models``)."""
    return list_cards(Path(models_dir) if models_dir else MODELS_DIR)


def get_card(name: str, models_dir: Optional[Path] = None) -> ModelCard:
    name = resolve_alias(name)
    folder = Path(models_dir) if models_dir else MODELS_DIR
    path = folder / f"{name}.json"
    if not path.is_file():
        names = ", ".join(c.name for c in available(folder)) or "none"
        raise ModelError(f"No model named '{name}'. Available: {names}.")
    return ModelCard.load(path)


def default_model(task: str) -> str:
    """Name of the shipped default model for ``task``."""
    try:
        return DEFAULTS[task]
    except KeyError:
        raise ModelError(f"No default model for task '{task}'.") from None


def _resolve(name_or_path: str | Path, models_dir: Optional[Path]) -> tuple[ModelCard, Path]:
    p = Path(name_or_path)
    if p.suffix in (".safetensors", ".json") and p.exists():
        card = ModelCard.load(p.with_suffix(".json"))
        return card, p.with_suffix(".safetensors")
    if p.is_dir() and (p / "card.json").is_file():  # a training run folder
        return ModelCard.load(p / "card.json"), p / "model.safetensors"
    card = get_card(str(name_or_path), models_dir)
    folder = Path(models_dir) if models_dir else MODELS_DIR
    weights = folder / (card.weights or f"{card.name}.safetensors")
    return card, weights


def load_state(path: str | Path, expected_sha256: str = "") -> dict[str, torch.Tensor]:
    """Read a safetensors state dict, checking its sha256 when one is given."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Weights file {path} is missing. Reinstall LungLens or train the model.")
    if expected_sha256:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise ModelError(f"Weights file {path.name} is damaged or was changed: sha256 {actual[:12]}... "
                             f"does not match the model card ({expected_sha256[:12]}...).")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ModelError(f"Weights file {path.name} cannot be read: {exc}") from exc


def load(name_or_path: str | Path, device: str | torch.device = "cpu", dtype: Optional[torch.dtype] = None,
         models_dir: Optional[Path] = None) -> LoadedModel:
    """Load a shipped model by name (or a ``.safetensors`` path with its ``.json`` card).

    Raises
    ------
    ModelError
        The model is unknown, its card has no sha256 (weights are never loaded unverified),
        its weights are missing or their sha256 does not match.
    """
    card, weights = _resolve(name_or_path, models_dir)
    if Path(weights).is_file() and not re.fullmatch(r"[0-9a-f]{64}", (card.sha256 or "").strip().lower()):
        raise ModelError(f"The model card of '{card.name}' gives no valid sha256 of its weights, so they cannot be "
                         "verified and are not loaded. Re-save the model with engine.models.registry.save (it "
                         "records the hash), or write the sha256 of the .safetensors file into the card.")
    state = load_state(weights, card.sha256.strip().lower())
    module = build(card.architecture, {**card.config, "in_channels": card.in_channels})
    dtype = dtype or torch.float32
    state = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"Weights of '{card.name}' do not fit architecture '{card.architecture}': {exc}") from exc
    dev = torch.device(device)
    module.to(dev, dtype).eval()
    return LoadedModel(module, card, dev, dtype)


def save(module: nn.Module, card: ModelCard, folder: str | Path, fp16: bool = True) -> Path:
    """Write ``<folder>/<card.name>.safetensors`` (+ ``.json`` card with its sha256)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {}
    for k, v in module.state_dict().items():
        v = v.detach().cpu().contiguous()
        if fp16 and v.is_floating_point():
            v = v.to(torch.float16)
        state[k] = v
    path = folder / f"{card.name}.safetensors"
    save_file(state, str(path), metadata={"name": card.name, "architecture": card.architecture})
    card.weights = path.name
    card.sha256 = sha256_file(path)
    card.params = count_params(module)
    card.save(folder / f"{card.name}.json")
    return path
