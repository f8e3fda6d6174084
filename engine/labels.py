"""The label table: the one place that names and colours LungLens labels.

Labels are stored as ``uint8`` arrays: 0 background, 1 ground-glass opacity,
2 consolidation, 3 pleural effusion (DESIGN.md). The lung mask is a separate
binary layer (:data:`LUNG`). Default colours follow seed 004, fig. 10: GGO
yellow, consolidation red, effusion green.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np

BACKGROUND, GGO, CONSOLIDATION, EFFUSION = 0, 1, 2, 3


@dataclass(frozen=True)
class Label:
    value: int
    key: str
    name: str
    color: tuple[int, int, int]
    #: SNOMED CT code (value, meaning) for DICOM SEG
    snomed: tuple[str, str] = ("", "")
    #: short name for table rows (``""``: the name)
    short: str = ""

    @property
    def short_name(self) -> str:
        return self.short or self.name


@dataclass(frozen=True)
class LabelTable:
    labels: tuple[Label, ...] = field(default_factory=tuple)

    def __iter__(self) -> Iterator[Label]:
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, value: int) -> Label:
        for lab in self.labels:
            if lab.value == value:
                return lab
        raise KeyError(value)

    def by_key(self, key: str) -> Label:
        for lab in self.labels:
            if lab.key == key:
                return lab
        raise KeyError(key)

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(lab.value for lab in self.labels)

    def with_color(self, value: int, color: tuple[int, int, int]) -> "LabelTable":
        return LabelTable(tuple(replace(lab, color=tuple(color)) if lab.value == value else lab
                                for lab in self.labels))

    def lut(self, opacity: float = 1.0, hidden: frozenset[int] = frozenset()) -> np.ndarray:
        """A 256x4 uint8 RGBA lookup table; index 0 and hidden labels are transparent."""
        lut = np.zeros((256, 4), dtype=np.uint8)
        alpha = int(round(255 * min(max(opacity, 0.0), 1.0)))
        for lab in self.labels:
            if lab.value == 0 or lab.value in hidden:
                continue
            lut[lab.value, :3] = lab.color
            lut[lab.value, 3] = alpha
        return lut


#: the findings: adding a class is a row here (and models trained for it)
DEFAULT_TABLE = LabelTable((
    Label(GGO, "ggo", "Ground-glass opacity", (255, 220, 0), ("45227007", "Ground glass opacity"), "GGO"),
    Label(CONSOLIDATION, "consolidation", "Consolidation", (230, 30, 30), ("95436008", "Lung consolidation"),
          "Consol."),
    Label(EFFUSION, "effusion", "Pleural effusion", (30, 200, 60), ("60046008", "Pleural effusion"), "Effusion"),
))

#: label values of the findings, in table order (derived from :data:`DEFAULT_TABLE`)
FINDINGS: tuple[int, ...] = DEFAULT_TABLE.values
#: keys used in JSON outputs (findings.json, evaluate --json, reports), from the table
FINDING_KEYS: dict[int, str] = {lab.value: lab.key for lab in DEFAULT_TABLE}

#: The lung mask layer is separate from the finding labels.
LUNG = Label(1, "lung", "Lung", (80, 140, 255), ("39607008", "Lung structure"))
