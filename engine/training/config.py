"""Training configuration (a JSON file and/or command-line flags)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from ..errors import DataError

CLASSES = {
    "segmentation4": ("background", "ggo", "consolidation", "effusion"),
    "segmentation2": ("background", "infection"),
    "lung": ("background", "lung"),
    "findings": ("ggo", "consolidation", "effusion"),
    "covid": ("covid",),
}


@dataclass
class TrainConfig:
    """Everything a training run needs; unknown keys in a JSON file are an error."""

    name: str = "model"
    task: str = "segmentation"            # segmentation | lung | findings | covid
    architecture: str = "unet"
    model: dict = field(default_factory=dict)
    input_size: int = 256
    labelled: Optional[str] = None          # medseg100-style folder (images/ + labels/)
    label_volumes: list = field(default_factory=list)  # [[scan.nii.gz, labels.nii.gz], ...]
    pseudo: Optional[str] = None            # zenodo20-style folder (images/ + pseudo_masks/)
    pseudo_weight: float = 0.5
    pseudo_batch: int = 0
    class_folders: Optional[str] = None     # ucsd_covid_ct-style folder, for task "covid"
    val_n: int = 10
    val_seed: int = 0
    val_frac: float = 0.2
    epochs: int = 30
    steps_per_epoch: int = 50
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    augment: dict = field(default_factory=dict)
    edge_weight: float = 1.0
    aux_weight: float = 0.5
    amp: bool = True
    seed: int = 0
    device: str = "auto"
    out: str = ""
    time_budget_s: Optional[float] = None
    resume: bool = True
    notes: str = ""
    # --- cross-validation: ``folds`` > 0 replaces the fixed validation split by fold ``fold``
    # of a stratified k-fold split (engine.training.folds); ``fold`` -1 trains on every slice
    folds: int = 0
    fold: int = 0
    fold_seed: int = 0
    #: which weights the card and model.safetensors get: "best" validation epoch, or "last"
    #: (model selection by the folds, never by the figures reported)
    select: str = "best"
    # --- normal anatomy: [[stack folder, first, last], ...] slices (in the stack's numeric
    # file order, inclusive) that show no lung, trained with background-only targets
    negatives: list = field(default_factory=list)
    negatives_batch: int = 0
    # --- self-training: images/ + labels/ that a teacher labelled in the model's classes
    # (value 255 = unsure, ignored), at loss weight pseudo4_weight
    pseudo4: Optional[str] = None
    pseudo4_weight: float = 0.5
    pseudo4_batch: int = 0
    #: start from these weights (registry name, run folder or .safetensors; shapes must fit)
    init_from: Optional[str] = None
    #: checkpoint every this many seconds (and at each epoch end); steps, if > 0, win
    checkpoint_every_s: float = 180.0
    checkpoint_every_steps: int = 0
    #: train on random crop x crop patches of the input_size slices (0: whole slices), a share
    #: crop_fg of them centred on a finding; validation and inference use whole slices
    crop: int = 0
    crop_fg: float = 0.33
    #: bf16 autocast on the CPU as well (CUDA always uses it when ``amp``)
    amp_cpu: bool = False

    def __post_init__(self) -> None:
        if self.task not in ("segmentation", "lung", "findings", "covid"):
            raise DataError(f"Unknown task '{self.task}'.")
        if not self.out:
            self.out = str(Path("runs") / self.name)
        if self.select not in ("best", "last"):
            raise DataError(f"select must be 'best' or 'last', not '{self.select}'.")
        if self.folds and not -1 <= self.fold < self.folds:
            raise DataError(f"fold {self.fold} does not exist with {self.folds} folds: use 0 to {self.folds - 1} "
                            f"(or -1 to train on every slice).")

    @property
    def num_outputs(self) -> int:
        if self.task == "segmentation":
            return int(self.model.get("num_classes", 4))
        if self.task == "lung":
            return 2
        return 3 if self.task == "findings" else 1

    @property
    def classes(self) -> tuple[str, ...]:
        if self.task == "segmentation":
            return CLASSES["segmentation4"] if self.num_outputs > 2 else CLASSES["segmentation2"]
        return CLASSES[self.task]

    def model_config(self) -> dict:
        cfg = dict(self.model)
        if self.task in ("findings", "covid"):
            cfg["num_outputs"] = self.num_outputs
        elif self.task == "lung":
            cfg["num_classes"] = 2
        cfg.setdefault("in_channels", 1)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DataError(f"Unknown training option(s): {', '.join(sorted(unknown))}.")
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> "TrainConfig":
        """Read a JSON config (the recipe checks and tests load every system's config this way)."""
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"Cannot read training config {path}: {exc}") from exc
        d.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(d)
