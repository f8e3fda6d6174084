"""One label map from the segments of a segmentation file (``.seg.nrrd``, DICOM SEG), with nothing decided silently.

:class:`SegmentMerger` takes each segment's mask and the finding it maps to. A segment that is none of the
findings (a lung, a nodule) is named and refused, or left out (``unknown="background"``), or kept under its own
value (``"keep"``); segments of different findings that overlap are refused with the overlap, since a label map
holds one finding per voxel and the order of the segments in a file must not choose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import CorruptFileError
from ..labels import LabelTable


class SegmentMerger:
    """Segments in, one ``uint8`` label map out (:meth:`result`), refusing what would be silent."""

    def __init__(self, path: Path, table: LabelTable, unknown: str = "refuse",
                 where: str = "where the file was made") -> None:
        self.path, self.table, self.unknown, self.where = path, table, unknown, where
        self.out: Optional[np.ndarray] = None
        self.strangers: list[str] = []
        self.clashes: dict[tuple[int, int], int] = {}
        #: segments with any voxel on the grid (found or not): none of a file that holds some = made elsewhere
        self.seen = 0

    def add(self, mask: np.ndarray, target: Optional[int], name: str, own_value: int) -> None:
        """Segment ``name`` (voxels ``mask``) as finding ``target`` (``None``: none of the table's)."""
        if self.out is None:
            self.out = np.zeros(mask.shape, np.uint8)
        self.seen += bool(mask.any())
        if target is None:
            if self.unknown == "refuse" and mask.any():
                self.strangers.append(f"'{name}' ({int(mask.sum()):,} voxels)")
            if self.unknown != "keep":
                return
            target = own_value
        held = self.out[mask]
        other = held[(held != 0) & (held != target)]
        for v in np.unique(other):
            key = (int(min(v, target)), int(max(v, target)))
            self.clashes[key] = self.clashes.get(key, 0) + int(np.count_nonzero(other == v))
        self.out[mask] = target

    def stranger(self, text: str) -> None:
        """Something else no finding describes (e.g. a value no segment names), refused as an unknown segment."""
        self.strangers.append(text)

    def result(self, shape: tuple[int, ...]) -> np.ndarray:
        """The label map (background of ``shape`` without segments); raises what was refused."""
        if self.strangers:
            names = ", ".join(f"{lab.value} {lab.name}" for lab in self.table if lab.value)
            raise CorruptFileError(f"{self.path.name} holds segments outside the label table: "
                                   f"{', '.join(self.strangers)}. LungLens labels are {names}. Nothing was opened; to "
                                   "open it without those segments, ask for it explicitly (--map-unknown-labels on "
                                   "the command line).")
        if self.clashes:
            def name(v: int) -> str:
                return self.table[v].name if v in self.table.values else f"label {v}"
            pairs = "; ".join(f"{name(a)} and {name(b)} in {n:,} voxels" for (a, b), n in self.clashes.items())
            raise CorruptFileError(f"{self.path.name}: segments of different findings overlap ({pairs}). A LungLens "
                                   "label map holds one finding per voxel and will not choose for you: remove the "
                                   f"overlap {self.where}, then open it again.")
        return self.out if self.out is not None else np.zeros(shape, np.uint8)
