"""Export edited labels (and the "changed by a person" mask) over their scan.

A thin layer over :func:`engine.io.save_labels`: the writer is chosen by the
target name, the write is atomic, and the source scan is never overwritten. The
edited mask is a separate label map (value 1 = voxel changed by a person since
the last AI result) written in the same format. Formats that can carry it inside the
label file (``.seg.nrrd``, DICOM SEG) embed it when ``edited`` is given, so provenance
survives an export and a reopen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import OverwriteError
from ..labels import DEFAULT_TABLE, Label, LabelTable
from ..progress import CancelLike, ProgressCallback, as_progress
from ..types import Geometry, Volume

#: label table of the "edited by a person" mask
EDITED_TABLE = LabelTable((Label(1, "edited", "Edited by a person", (255, 0, 255),
                                 ("", "")),))


def export_labels(labels: np.ndarray, volume: Volume | Geometry, path: str | Path, *,
                  table: LabelTable = DEFAULT_TABLE, edited_mask: Optional[np.ndarray] = None,
                  edited_mask_path: Optional[str | Path] = None,
                  edited: Optional[np.ndarray] = None,
                  progress: Optional[ProgressCallback] = None,
                  cancel: Optional[CancelLike] = None) -> list[Path]:
    """Write ``labels`` (and optionally the edited mask) so that they open aligned over the scan.

    Parameters
    ----------
    labels
        ``uint8 (z, y, x)`` label map on the scan's grid.
    volume
        The scan (enables the source guard and DICOM SEG) or its geometry.
    path
        Target; ``.nii``/``.nii.gz``, ``.nrrd``, ``.seg.nrrd``, ``.mha``, ``.dcm`` (DICOM SEG, DICOM
        scans only) or a folder name for PNG slices.
    edited_mask, edited_mask_path
        Boolean mask of the voxels a person changed, and where to write it as a separate file.
    edited
        Boolean mask of the voxels a person changed, embedded in the label file when its
        format can carry it (``.seg.nrrd``, DICOM SEG); ignored by the other formats.

    Returns
    -------
    list of Path
        The written files or folders.
    """
    from ..io import save_labels  # engine.io pulls in pydicom/SimpleITK: import on use

    report = as_progress(progress)
    target = Path(path)
    if edited_mask_path is not None and Path(edited_mask_path).resolve() == target.resolve():
        raise OverwriteError("The edited-voxel mask needs its own file name, not the labels' one.")
    if (edited_mask is None) != (edited_mask_path is None):
        raise ValueError("give both edited_mask and edited_mask_path, or neither")
    share = 0.8 if edited_mask is not None else 1.0
    out = [save_labels(labels, volume, target, table=table, progress=report.sub(0.0, share), cancel=cancel,
                       edited=edited)]
    if edited_mask is not None and edited_mask_path is not None:
        out.append(save_labels(np.asarray(edited_mask).astype(np.uint8), volume, edited_mask_path,
                               table=EDITED_TABLE, progress=report.sub(share, 1.0), cancel=cancel))
    return out
