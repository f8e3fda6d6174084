"""Save and load label maps that line up with their scan.

:func:`save_labels` picks the writer from the target name through the one format table,
:data:`engine.io.label_formats.LABEL_FORMATS`:

======================  =====================================================
``*.nii`` / ``*.nii.gz``  NIfTI, uint8, RAS affine of the geometry (sform = qform)
``*.seg.nrrd``            3D Slicer segmentation (segment names, colours, values)
``*.nrrd`` / ``*.mha``    NRRD / MetaImage (SimpleITK), LPS space
``*.dcm``                 DICOM SEG (highdicom), only for a DICOM source scan
no extension              a folder of ``slice_NNNN.png`` (uint8 values 0..3)
======================  =====================================================

Every write is atomic and durable (a temporary file or folder in the target folder,
fsync-ed, then ``os.replace`` and an fsync of the folder; see :mod:`.atomic`), never
touches the source scan, and refuses with
:class:`~engine.errors.OverwriteError` to write over the scan file or into a
source folder (DICOM series, image stack). Labels are written with the exact geometry,
which is what 3D Slicer and ITK-SNAP need to overlay them on the original scan: for a
NIfTI/NRRD/MHA scan written as NIfTI/NRRD/MHA, on the scan file's own grid (its shape,
affine and voxel order: nnU-Net and anyone pairing the arrays see them voxel for voxel);
otherwise in the canonical orientation. The PNG slices of an image-stack scan follow the
stack's file order (label file N belongs to source file N; see :mod:`.images`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import (CorruptFileError, GeometryMismatchError, LungLensError, OverwriteError,
                      UnsupportedFormatError)
from ..labels import DEFAULT_TABLE, LabelTable
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Geometry, Volume
from ._common import check_readable, wrap_errors
from .atomic import fsync_dir, fsync_tree, replace_durably, temp_path
from .label_formats import LABEL_FORMATS, format_for_path, get_format

__all__ = ["LABEL_FORMATS", "save_labels", "load_labels", "load_edited", "label_format"]


def label_format(path: str | Path) -> str:
    """The label writer chosen for a target name (see :data:`.label_formats.LABEL_FORMATS`)."""
    return format_for_path(path).key


def _protected_paths(volume: Optional[Volume]) -> tuple[list[Path], list[Path]]:
    """(files that must not be overwritten, folders nothing may be written into)."""
    if volume is None or not volume.source:
        return [], []
    src = Path(volume.source).resolve()
    files, folders = [src], []
    if src.is_dir():
        folders.append(src)
    elif volume.format == "dicom":
        folders.append(src.parent)
    for key in ("dicom_files", "image_files"):
        for f in volume.meta.get(key, [])[:1]:
            folders.append(Path(f).resolve().parent)
    return files, folders


def _check_target(target: Path, volume: Optional[Volume]) -> None:
    files, folders = _protected_paths(volume)
    resolved = target.resolve()
    if resolved in files:
        raise OverwriteError(f"{target} is the scan itself: choose another file name for the labels.")
    for folder in folders:
        if resolved == folder or folder in resolved.parents:
            raise OverwriteError(f"{target} is inside the source folder {folder}: LungLens never writes into "
                                 "a scan's folder. Choose another place for the labels.")


def _tmp_name(target: Path) -> Path:
    return temp_path(target)


def _replace_folder(tmp: Path, target: Path) -> None:
    if target.exists():
        if not target.is_dir():
            raise OverwriteError(f"{target} exists and is a file, not a label folder.")
        entries = [p for p in target.iterdir()]
        ours = all(p.name == "labels.json" or (p.name.startswith("slice_") and p.suffix == ".png")
                   for p in entries)
        if entries and not ours:
            raise OverwriteError(f"{target} already holds other files: choose an empty or new folder.")
        old = _tmp_name(target)
        fsync_tree(tmp)
        os.replace(target, old)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        replace_durably(tmp, target)


def _as_labels(labels: np.ndarray, geometry: Geometry) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.shape != tuple(geometry.shape):
        raise GeometryMismatchError(f"The label map has shape {arr.shape} but the scan has {geometry.shape}.")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.size and (arr.min() < 0 or arr.max() > 255 or (arr.dtype.kind == "f" and
                                                          not np.array_equal(np.round(arr), arr))):
        raise CorruptFileError("Label values must be whole numbers from 0 to 255.")
    return arr.astype(np.uint8)


def save_labels(labels: np.ndarray, volume_or_geometry: Volume | Geometry, path: str | Path,
                table: LabelTable = DEFAULT_TABLE, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelLike] = None, format: Optional[str] = None,
                edited: Optional[np.ndarray] = None) -> Path:
    """Write a canonical ``(z, y, x)`` label map so that it lines up with its scan.

    Parameters
    ----------
    labels
        ``uint8`` (or integer) array with the scan's shape; 0 background, 1 GGO,
        2 consolidation, 3 pleural effusion.
    volume_or_geometry
        The scan (preferred: enables the source guard and DICOM SEG) or its geometry.
    path
        Target; the format follows its name (see the module table).
    table
        Names and colours for the formats that store them (.seg.nrrd, DICOM SEG, PNG sidecar).
    format
        Force a writer (``"nifti"``, ``"nrrd"``, ``"mha"``, ``"seg-nrrd"``, ``"dicom-seg"``, ``"png"``).
    edited
        Boolean mask of the voxels a person edited (provenance), embedded by the formats that
        can carry it (``embeds_edited`` in the format table: ``.seg.nrrd``, DICOM SEG); the
        other formats ignore it (write it as a separate file, see
        :func:`engine.editing.export.export_labels`).

    Returns
    -------
    Path
        The written file or folder.
    """
    report = as_progress(progress)
    volume = volume_or_geometry if isinstance(volume_or_geometry, Volume) else None
    geometry = volume.geometry if volume is not None else volume_or_geometry
    if not isinstance(geometry, Geometry):
        raise TypeError("volume_or_geometry must be a Volume or a Geometry")
    target = Path(path).expanduser()
    fmt = format or label_format(target)
    arr = _as_labels(labels, geometry)
    if fmt in ("seg-nrrd", "dicom-seg"):  # these store one segment per table entry: others would become 0
        _check_table(arr, target, table, False, writing=True)
    _check_target(target, volume)
    with wrap_errors(target.parent, "folder", action="create"):
        target.parent.mkdir(parents=True, exist_ok=True)
    check_cancel(cancel)
    report(0.0, f"Writing {target.name}")
    tmp = _tmp_name(target)
    try:
        with wrap_errors(target, "label file", action="write"):
            if fmt == "png":
                from .images import stack_slice_order, write_png_labels
                tmp.mkdir()
                # an image stack's labels follow its file order: label file N <-> source file N
                write_png_labels(arr, geometry, tmp, table, z_order=stack_slice_order(volume))
                check_cancel(cancel)
                _replace_folder(tmp, target)
            else:
                out, grid = _on_source_grid(arr, geometry, volume, fmt)
                _write_file(fmt, out, grid, volume, tmp, table, report, cancel, edited)
                check_cancel(cancel)
                replace_durably(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise
    report(1.0, f"Wrote {target.name}")
    return target


def _on_source_grid(arr: np.ndarray, geometry: Geometry, volume: Optional[Volume],
                    fmt: str) -> tuple[np.ndarray, Geometry]:
    """The labels in the voxel order and affine of the scan's own file, for a NIfTI/NRRD/MHA label map of a
    NIfTI/NRRD/MHA scan: a RAS or axis-swapped scan got a label file in LungLens' LPS order, aligned in space
    but not voxel for voxel (nnU-Net's dataset check, and anyone pairing the arrays, want the scan's grid).
    Otherwise the canonical array and geometry. Reading either back gives the same canonical labels."""
    if fmt not in ("nifti", "nrrd", "mha") or volume is None or volume.format not in ("nifti", "nrrd", "mha", "mhd"):
        return arr, geometry
    plan_dict = (volume.meta or {}).get("source_orientation")
    if not isinstance(plan_dict, dict):
        return arr, geometry
    from .orientation import SourceOrientation

    plan = SourceOrientation.from_dict(plan_dict)
    if arr.shape != plan.canonical_shape or not plan.canonical_geometry().same_grid(geometry, tol=1e-3):
        return arr, geometry
    return np.ascontiguousarray(plan.to_source(arr)), plan.source_geometry


def _write_file(fmt: str, arr: np.ndarray, geometry: Geometry, volume: Optional[Volume], tmp: Path,
                table: LabelTable, report, cancel, edited: Optional[np.ndarray] = None) -> None:
    spec = get_format(fmt)
    write = spec.write_function()
    extra = {}
    if edited is not None and spec.embeds_edited:
        mask = np.asarray(edited, bool)
        if mask.shape != arr.shape:
            raise GeometryMismatchError(f"The edited-voxel mask has shape {mask.shape} but the labels {arr.shape}.")
        extra["edited"] = mask
    if spec.needs_dicom_scan:
        if volume is None or volume.format != "dicom":
            raise UnsupportedFormatError(f"{spec.title} can only be written for a scan opened from DICOM (it must "
                                         "reference the source images). Save as .nii.gz or .seg.nrrd instead.")
        write(arr, volume, tmp, table, progress=report, cancel=cancel, **extra)
    elif spec.takes_table:
        write(arr, geometry, tmp, table, **extra)
    elif fmt == "nifti" and volume is not None and volume.format == "nifti" and volume.source:
        write(arr, geometry, tmp, like=volume.source)  # the scan's qform and sform, when on its grid
    else:
        write(arr, geometry, tmp)


def embeds_edited(path: str | Path) -> bool:
    """Whether labels written to ``path`` carry the edited-by-a-person mask inside the file."""
    return format_for_path(path).embeds_edited


def load_edited(path: str | Path, reference: Volume | Geometry | None = None) -> Optional[np.ndarray]:
    """The voxels a person edited as stored inside a label file, or None when it does not say.

    Only ``.seg.nrrd`` and DICOM SEG files carry it (written by :func:`save_labels` with
    ``edited=``); other formats return None. A DICOM SEG needs its DICOM ``reference`` scan.
    """
    from .detect import detect_format
    p = check_readable(path)
    fmt = detect_format(p)
    if fmt == "seg-nrrd":
        from .seg_nrrd import read_seg_nrrd_edited
        return read_seg_nrrd_edited(p)
    if fmt == "dicom" and isinstance(reference, Volume) and reference.format == "dicom":
        from .dicom_seg import read_dicom_seg_edited
        return read_dicom_seg_edited(p, reference)
    return None


#: what :func:`load_labels` does with values outside the label table
UNKNOWN_POLICIES = ("refuse", "background", "keep")


def load_labels(path: str | Path, reference: Volume | Geometry | None = None,
                table: LabelTable = DEFAULT_TABLE, unknown: str = "refuse") -> np.ndarray:
    """Read a label map as a canonical ``uint8 (z, y, x)`` array.

    Parameters
    ----------
    path
        NIfTI, NRRD, MHA, ``.seg.nrrd``, DICOM SEG (needs a DICOM ``reference``) or a
        folder of PNG slices (geometry taken from ``reference``).
    reference
        The scan the labels belong to. When given, a label map on another voxel grid
        raises :class:`~engine.errors.GeometryMismatchError`.
    unknown
        Values outside ``table`` (e.g. 7 or 200, or made by a NIfTI ``scl_slope``):
        ``"refuse"`` (default) raises :class:`~engine.errors.CorruptFileError` counting
        them, so that no export later writes them as 0 silently; ``"background"`` maps
        them to 0, only when the user asked for it; ``"keep"`` returns them unchanged
        (binary masks such as a lung mask).
    """
    if unknown not in UNKNOWN_POLICIES:
        raise ValueError(f"unknown must be one of {UNKNOWN_POLICIES}")
    from .detect import detect_format
    p = check_readable(path)
    ref_geom = reference.geometry if isinstance(reference, Volume) else reference
    fmt = detect_format(p)
    geometry: Optional[Geometry]
    if fmt == "nifti":
        from .nifti import read_nifti_labels
        arr, geometry = read_nifti_labels(p)
    elif fmt == "seg-nrrd":
        from .seg_nrrd import read_seg_nrrd
        arr, geometry = read_seg_nrrd(p, table, unknown)
    elif fmt in ("nrrd", "mha", "mhd"):
        from .sitk_io import read_sitk_labels
        arr, geometry = read_sitk_labels(p)
    elif fmt == "dicom":
        from .dicom_seg import read_dicom_seg
        if not isinstance(reference, Volume) or reference.format != "dicom":
            raise LungLensError("A DICOM SEG file can be read only together with the DICOM scan it refers to: "
                                "open that scan first.")
        arr, geometry = read_dicom_seg(p, reference, table, unknown), reference.geometry
    elif fmt in ("png", "png-labels", "jpeg", "image"):
        from .images import read_png_labels, stack_slice_order
        folder = p if p.is_dir() else None
        if folder is None:
            raise UnsupportedFormatError(f"{p.name}: single-image label files are not supported; "
                                         "give the folder of label slices.")
        # labels.json says how the slices run; without it, a stack's labels follow its file order
        arr, geometry = read_png_labels(
            folder, z_order=stack_slice_order(reference) if isinstance(reference, Volume) else None)
        if geometry is None and ref_geom is not None and ref_geom.shape == arr.shape:
            geometry = ref_geom  # PNG carries no geometry: the reference scan's grid is reused
    else:
        raise UnsupportedFormatError(f"{p.name}: not a label map format LungLens reads.")
    arr = _to_uint8_labels(arr, p)
    if fmt in ("nifti", "nrrd", "mha", "mhd"):
        arr = _by_descriptions(arr, p, table, unknown)  # an ITK-SNAP .label.txt beside it names the values
    if unknown != "keep":
        arr = _check_table(arr, p, table, unknown == "background")
    if ref_geom is not None and geometry is not None and arr.shape != ref_geom.shape:
        arr = _placed(arr, geometry, ref_geom, p)  # a crop of the scan's grid (Slicer's extent): padded onto it
        geometry = ref_geom if arr.shape == ref_geom.shape else geometry
    if _tilted_grid_of_before(reference, geometry, arr.shape):
        geometry = ref_geom
    if ref_geom is not None:
        if geometry is None or not ref_geom.same_grid(geometry, tol=1e-2) or arr.shape != ref_geom.shape:
            got = f"shape {arr.shape}" + (f", spacing {tuple(round(s, 3) for s in geometry.spacing)}, origin "
                                          f"{tuple(round(o, 2) for o in geometry.origin)}" if geometry else "")
            raise GeometryMismatchError(
                f"The labels in {p.name} ({got}) do not lie on the scan's voxel grid (shape {ref_geom.shape}, "
                f"spacing {tuple(round(s, 3) for s in ref_geom.spacing)}, origin "
                f"{tuple(round(o, 2) for o in ref_geom.origin)}). Open the scan they were made for.")
    return arr


def _tilted_grid_of_before(reference: Any, geometry: Optional[Geometry], shape: tuple[int, ...]) -> bool:
    """Labels saved over a gantry-tilted DICOM series by LungLens before 2026-12, which took the step along the tilted
    axis as the slice spacing (now the distance between slice planes): the same voxels, another spacing."""
    step = reference.meta.get("tilted_step_mm") if isinstance(reference, Volume) else None
    if not step or geometry is None or tuple(shape) != reference.geometry.shape:
        return False
    ref = reference.geometry
    before = Geometry(shape=ref.shape, spacing=(float(step),) + tuple(ref.spacing[1:]), origin=ref.origin,
                      direction=ref.direction_matrix)
    return before.same_grid(geometry, tol=1e-2)


def _by_descriptions(arr: np.ndarray, path: Path, table: LabelTable, unknown: str) -> np.ndarray:
    """``arr`` with its values renamed to the table's by the ITK-SNAP label description file beside ``path``
    (``labels.label.txt``), when there is one: ITK-SNAP numbers labels its own way (1 may be consolidation); a
    described label that is none of the findings is refused by name (left out when asked)."""
    from .itksnap import label_descriptions_path, read_label_descriptions

    desc = label_descriptions_path(path)
    if not desc.is_file():
        return arr
    def norm(text: str) -> str:
        return "".join(ch for ch in text.lower() if ch.isalnum())
    names = {norm(n): lab.value for lab in table if lab.value for n in (lab.name, lab.key)}
    lut = np.arange(256, dtype=np.uint8)
    counts = np.bincount(arr.reshape(-1), minlength=256)
    strangers = []
    described = read_label_descriptions(desc)
    for value in np.flatnonzero(counts[1:]) + 1:  # a value the file does not describe has no known meaning
        if int(value) not in described:
            if unknown == "refuse":
                strangers.append(f"{int(value)} (not described, {int(counts[value]):,} voxels)")
            lut[value] = 0 if unknown == "background" else value
    for value, (name, _) in described.items():
        if not 0 < value < 256 or norm(name) in ("clearlabel", "background", ""):
            continue
        if norm(name) in names:
            lut[value] = names[norm(name)]
        elif counts[value]:
            if unknown == "refuse":
                strangers.append(f"{value} '{name}' ({int(counts[value]):,} voxels)")
            lut[value] = 0 if unknown == "background" else value
    if strangers:
        raise CorruptFileError(f"{path.name}: its label descriptions ({desc.name}) name labels outside the label "
                               f"table, or do not name values it holds: {', '.join(strangers)}. Nothing was opened; "
                               "to open it without them, ask for it explicitly (--map-unknown-labels on the command "
                               "line).")
    return lut[arr]


def _placed(arr: np.ndarray, geometry: Geometry, ref: Geometry, path: Path) -> np.ndarray:
    """``arr`` padded with background onto ``ref``'s grid when it is a crop of it (same spacing and direction,
    a whole-voxel offset, inside the scan: 3D Slicer saves a segmentation's extent only); else unchanged (the
    caller then refuses it)."""
    if not (np.allclose(geometry.spacing, ref.spacing, rtol=1e-4, atol=1e-4)
            and np.allclose(geometry.direction_matrix, ref.direction_matrix, atol=1e-2)):
        return arr
    start = ref.world_to_index(np.asarray(geometry.origin, float))
    offset = np.round(start).astype(int)
    if not np.allclose(start, offset, atol=1e-2) or np.any(offset < 0) or \
            np.any(offset + np.asarray(arr.shape) > np.asarray(ref.shape)):
        return arr
    out = np.zeros(ref.shape, np.uint8)
    z, y, x = (int(v) for v in offset)
    out[z:z + arr.shape[0], y:y + arr.shape[1], x:x + arr.shape[2]] = arr
    return out


def _check_table(arr: np.ndarray, path: Path, table: LabelTable, to_background: bool,
                 writing: bool = False) -> np.ndarray:
    """Refuse (or, when asked, zero) the values outside ``table``, counting them per value."""
    counts = np.bincount(arr.reshape(-1), minlength=256)
    known = np.zeros(256, dtype=bool)
    known[[0, *table.values]] = True  # 0 is background in every table
    bad = np.nonzero((counts > 0) & ~known)[0]
    if not bad.size:
        return arr
    if to_background:
        lut = np.arange(256, dtype=np.uint8)
        lut[~known] = 0
        return lut[arr]
    total = int(counts[bad].sum())
    listing = ", ".join(f"{int(v)}: {int(counts[v]):,} voxels" for v in bad[:6]) + (" ..." if bad.size > 6 else "")
    names = "0 background, " + ", ".join(f"{lab.value} {lab.name}" for lab in table if lab.value)
    if writing:
        raise CorruptFileError(f"The labels hold {total:,} voxel(s) with values outside the label table ({listing}); "
                               f"{path.name} can store only {names}, so they would be lost. Nothing was written.")
    raise CorruptFileError(f"{path.name} holds {total:,} voxel(s) with values outside the label table ({listing}). "
                           f"LungLens labels are {names}. Nothing was opened; to open it with those voxels "
                           "set to background, ask for it explicitly (--map-unknown-labels on the command line).")


def _to_uint8_labels(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.size and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise CorruptFileError(f"{path.name} holds NaN or infinite values: it is not a label map.")
    if arr.size and (arr.min() < 0 or arr.max() > 255 or not np.array_equal(np.round(arr), arr)):
        raise CorruptFileError(f"{path.name} holds values outside 0..255 or fractions: it is not a label map.")
    return np.ascontiguousarray(arr.astype(np.uint8))
