"""The model card: everything LungLens knows about a model besides its weights.

This module reads cards without importing torch (the app lists the models in its Run AI
selector while the window opens): :func:`list_cards` scans :data:`MODELS_DIR` and
:attr:`ModelCard.validation_dice` is the one figure a selector shows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import ModelError
from ..labels import DEFAULT_TABLE

TASKS = ("segmentation", "findings", "covid", "lung")

#: the shipped models: ``<name>.safetensors`` + ``<name>.json`` (the registry reads this folder too)
MODELS_DIR = Path(__file__).resolve().parents[2] / "resources" / "models"


@dataclass
class ModelCard:
    """Description of one model (stored as ``resources/models/<name>.json``).

    Attributes
    ----------
    name : str
        Registry name, also the file stem of the weights.
    task : str
        ``"segmentation"`` (4-class or binary infection), ``"findings"`` (3 presence
        probabilities), ``"covid"`` (one COVID logit) or ``"lung"`` (lung region).
    architecture : str
        Key of :data:`engine.models.registry.ARCHITECTURES`.
    config : dict
        Keyword configuration passed to the architecture's ``build``.
    in_channels : int
        Channels of the input tensor; 1 = one axial slice scaled to [0, 1].
    input_size : tuple of int
        (H, W) the model was trained at; callers resize slices to it.
    classes : tuple of str
        Output channel names. Segmentation models return logits (B, len(classes), H, W)
        to be soft-maxed; classifiers return (B, len(classes)) logits to be sigmoided.
    """

    name: str
    task: str
    architecture: str
    config: dict = field(default_factory=dict)
    in_channels: int = 1
    input_size: tuple[int, int] = (256, 256)
    classes: tuple[str, ...] = ("background", *(lab.key for lab in DEFAULT_TABLE))
    version: str = "1"
    val_metrics: dict = field(default_factory=dict)
    weights: Optional[str] = None
    sha256: str = ""
    trained_on: str = ""
    notes: str = ""
    params: int = 0
    date: str = ""
    device: str = ""
    split: dict = field(default_factory=dict)
    preprocessing: str = ("one axial slice; HU clipped to [-1350, 150] and scaled to [0, 1], "
                          "8-bit slices divided by 255")
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelError(f"Model card '{self.name}': unknown task '{self.task}' (expected one of {TASKS}).")
        self.input_size = tuple(int(v) for v in self.input_size)  # type: ignore[assignment]
        self.classes = tuple(self.classes)

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCard":
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in d.items() if k in known})
        except TypeError as exc:
            raise ModelError(f"Model card is incomplete: {exc}") from exc

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ModelCard":
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ModelError(f"Model card {path} not found.") from exc
        except (OSError, ValueError) as exc:
            raise ModelError(f"Model card {path} cannot be read: {exc}") from exc
        return cls.from_dict(data)

    @property
    def validation_dice(self) -> Optional[float]:
        """Validation Dice of :attr:`val_metrics`: infection Dice, else the mean of the classes' Dice."""
        metrics = self.val_metrics if isinstance(self.val_metrics, dict) else {}
        inf = metrics.get("infection")
        if isinstance(inf, dict) and isinstance(inf.get("dice"), (int, float)):
            return float(inf["dice"])
        values = [v["dice"] for v in self.class_dice().values()]
        if values:
            return float(sum(values) / len(values))
        if isinstance(metrics.get("dice"), (int, float)):
            return float(metrics["dice"])
        return None

    def class_dice(self) -> dict[str, dict[str, float]]:
        """``{class: {"dice": value}}`` of :attr:`val_metrics` (the classes that have a Dice)."""
        classes = self.val_metrics.get("classes") if isinstance(self.val_metrics, dict) else None
        if not isinstance(classes, dict):
            return {}
        return {k: v for k, v in classes.items() if isinstance(v, dict) and isinstance(v.get("dice"), (int, float))}


def list_cards(folder: Optional[Path] = None, task: Optional[str] = None) -> list[ModelCard]:
    """Cards of the models in ``folder`` (default :data:`MODELS_DIR`), by file name; torch is not imported.

    Unreadable or incomplete cards are skipped; ``task`` keeps only the models of that task.
    """
    cards = []
    for path in sorted(Path(folder or MODELS_DIR).glob("*.json")):
        try:
            card = ModelCard.load(path)
        except ModelError:
            continue
        if task is None or card.task == task:
            cards.append(card)
    return cards
