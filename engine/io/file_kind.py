"""Is a file opened over a scan its label map, or a new scan? (for "drop a file on the window")

:func:`label_or_scan` answers :data:`LABELS` for a Slicer ``.seg.nrrd`` or a DICOM SEG,
:data:`ASK` for a NIfTI/NRRD/MHA of the open scan's size that holds only a few whole values
(a label map, perhaps with stray values, on the scan's grid or not: as labels an off-grid one
is refused with the reason) or more volumes than one, and :data:`SCAN` for everything else
(folders, images, other sizes, CT values). Only headers are read, except for the one candidate on the
scan's grid.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np

from ..errors import GeometryMismatchError, LungLensError
from ..types import Volume

LABELS, SCAN, ASK = "labels", "scan", "ask"

#: a label map holds at most this many distinct values; a CT has hundreds
MAX_LABEL_VALUES = 16


def _grid_size(path: str, fmt: str) -> Optional[tuple[int, ...]]:
    """The voxel grid size a NIfTI/NRRD/MHA header declares (no voxel data read); None when unreadable."""
    try:
        if fmt == "nifti":
            import nibabel as nib
            return tuple(int(n) for n in nib.load(path).shape)
        import SimpleITK as sitk
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()
        return tuple(int(n) for n in reader.GetSize())
    except Exception:  # noqa: BLE001 - an unreadable header: the scan reader will say why
        return None


def label_or_scan(path: str, volume: Volume, progress: Any = None, cancel: Any = None) -> str:
    """How to open ``path`` over the open ``volume``: :data:`LABELS`, :data:`SCAN` or :data:`ASK`.

    A ``.seg.nrrd`` or a DICOM SEG is labels. A NIfTI/NRRD/MHA on the scan's grid, or on a crop
    of it (the header's size first, then :func:`engine.io.load_labels`' geometry check) holding a
    few non-negative integers (at most :data:`MAX_LABEL_VALUES`) is either (ask);
    everything else (folders, images, other grids, CT values) is a scan.
    """
    from . import detect_format, load_labels

    if os.path.isdir(path):
        return SCAN
    try:
        fmt = detect_format(path)
    except LungLensError:
        return SCAN  # the scan reader gives the clear error
    if fmt == "seg-nrrd":
        return LABELS
    if fmt == "dicom":
        from .dicom_scan import _SEG_SOP_CLASSES, read_header
        try:
            ds = read_header(path)
        except Exception:  # noqa: BLE001 - the scan reader gives the clear error
            return SCAN
        seg = str(ds.get("SOPClassUID", "")) in _SEG_SOP_CLASSES or str(ds.get("Modality", "")).upper() == "SEG"
        return LABELS if seg else SCAN
    if fmt not in ("nifti", "nrrd", "mha", "mhd"):
        return SCAN
    size = _grid_size(path, fmt)
    if size is None or len(size) < 3:
        return SCAN
    same = sorted(size[:3]) == sorted(volume.shape)
    # smaller in every axis: maybe a crop of the scan's grid (3D Slicer saves a segmentation's extent only)
    if not same and not all(a <= b for a, b in zip(sorted(size[:3]), sorted(volume.shape))):
        return SCAN
    if len(size) > 3:  # more volumes (one-hot labels, or a time series): the user says
        return ASK if same else SCAN
    try:
        arr = load_labels(path, volume, unknown="keep")  # a crop that lies on the scan's grid is placed
    except GeometryMismatchError:  # the scan's size, another place: label-like, it is asked (as labels it is
        if not same:               # refused with the reason), never opened as a new scan without a word
            return SCAN            # (a smaller grid that is no crop of the scan is a scan)
        try:
            arr = load_labels(path, None, unknown="keep")
        except LungLensError:
            return SCAN
    except LungLensError:
        return SCAN
    if cancel is not None and cancel.is_set():
        return SCAN
    values = np.unique(arr)
    # label-like: a few non-negative integers (a map with stray values such as 7 is labels too: opening
    # it as labels then offers to map them); a CT has hundreds of distinct values
    label_like = values.size <= MAX_LABEL_VALUES and int(values.min()) >= 0 and \
        bool(np.all(np.mod(values, 1) == 0))
    return ASK if label_like else SCAN
