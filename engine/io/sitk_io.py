"""NRRD, MHA and MHD through SimpleITK: volume reader, label reader and NRRD label writer.

SimpleITK reports geometry in LPS with direction columns per index axis, which is
exactly :class:`~engine.types.Geometry`'s convention. The header is read first
(``ReadImageInformation``) so an absurd size is refused before any allocation.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from ..errors import CorruptFileError, UnsupportedFormatError
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Geometry, Volume
from ._common import HU_DOUBT, IntensityBuffer, guard_size, hu_scale_note, native_stderr_quiet, slab_size, wrap_errors
from .grid_checks import shear_note, spacing_note, unit_scale
from .orientation import canonicalize, plan_orientation
from .text_headers import LABEL_RATIO, SCAN_RATIO, check_text_header, header_fields

__all__ = ["read_sitk", "read_sitk_labels", "write_nrrd_labels", "geometry_from_sitk"]

# ITK prints its warnings straight to stderr from C++; LungLens reports problems itself
sitk.ProcessObject_SetGlobalWarningDisplay(False)


def geometry_from_sitk(img: "sitk.Image | sitk.ImageFileReader", shape_zyx: tuple[int, int, int]) -> Geometry:
    """Geometry (first three dimensions) of a SimpleITK image or file reader."""
    dim = img.GetDimension()
    spacing = list(img.GetSpacing())[:3] + [1.0] * max(0, 3 - dim)
    origin = list(img.GetOrigin())[:3] + [0.0] * max(0, 3 - dim)
    d = np.asarray(img.GetDirection(), dtype=float).reshape(dim, dim)
    direction = np.eye(3)
    m = min(dim, 3)
    direction[:m, :m] = d[:m, :m]
    return Geometry(shape=shape_zyx, spacing=tuple(spacing[::-1]), origin=tuple(origin), direction=direction)


def _check_mhd_data_file(path: Path) -> None:
    """A .mhd header names a separate data file: say clearly when it is missing."""
    if path.suffix.lower() != ".mhd":
        return
    with open(path, "rb") as f:
        head = f.read(4096).decode("latin-1", "replace")
    for line in head.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "ElementDataFile":
            name = value.strip()
            if name and name.upper() not in ("LOCAL", "LIST") and "%" not in name \
                    and not (path.parent / name).is_file():
                raise CorruptFileError(f"{path.name} points to the data file '{name}', which is missing. "
                                       f"Put it next to {path.name}.")


def _source_array(path: Path, warnings: list[str], ratio: int = SCAN_RATIO,
                  ) -> tuple[np.ndarray, Geometry, sitk.Image]:
    _check_mhd_data_file(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    # the format is known: never let ITK try every ImageIO on a damaged file (one of them
    # allocated 1.7 GB on a 1 kB input found by fuzzing)
    with open(path, "rb") as f:
        reader.SetImageIO("NrrdImageIO" if f.read(4) == b"NRRD" else "MetaImageIO")
    _check_directions(path)
    with native_stderr_quiet():
        reader.ReadImageInformation()
    size = tuple(int(s) for s in reader.GetSize())
    ncomp = int(reader.GetNumberOfComponents())
    pixel_name = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    pixel_bytes = next((b for bits, b in (("64", 8), ("32", 4), ("16", 2)) if bits in pixel_name), 1)
    guard_size(size + (ncomp,), pixel_bytes, path)
    check_text_header(path, int(np.prod(np.asarray(size + (ncomp,), dtype=object))) * pixel_bytes, ratio)
    if len(size) > 3 and int(np.prod(size[3:])) > 1:
        warnings.append(f"{path.name} has {len(size)} dimensions; only the first 3D volume is shown.")
        index = [0] * len(size)
        extract = list(size[:3]) + [0] * (len(size) - 3)
        reader.SetExtractIndex(index)
        reader.SetExtractSize(extract)
    with native_stderr_quiet():
        img = reader.Execute()
    if img.GetDimension() > 3:
        img = sitk.Extract(img, list(img.GetSize()[:3]) + [0] * (img.GetDimension() - 3),
                           [0] * img.GetDimension())
    if img.GetNumberOfComponentsPerPixel() > 1:
        warnings.append(f"{path.name} has {img.GetNumberOfComponentsPerPixel()} components per voxel; "
                        "only the first is shown.")
        img = sitk.VectorIndexSelectionCast(img, 0)
    arr = sitk.GetArrayViewFromImage(img)
    if arr.dtype.kind == "c":
        raise UnsupportedFormatError(f"{path.name} holds complex voxels; LungLens reads grey-level scans.")
    while arr.ndim < 3:
        arr = arr[None]
    geom = _checked_grid(path, geometry_from_sitk(img, tuple(arr.shape)), warnings)
    return arr, geom, img


#: NRRD spaces that name the patient's axes (the others, ``scanner-xyz`` and ``3D-*-handed``, do not)
_ANATOMICAL = {"right-anterior-superior", "left-anterior-superior", "left-posterior-superior", "ras", "las", "lps",
               "right-anterior-superior-time", "left-anterior-superior-time", "left-posterior-superior-time",
               "rast", "last", "lpst"}


def _check_directions(path: Path) -> None:
    """An NRRD whose ``space directions`` give an axis no length: a clear error, not ITK's "Refusing to change
    spacing from [1, 1, 1] to [0.8, 0.8, 0]"."""
    kind, fields = header_fields(path)
    if kind != "nrrd" or "space directions" not in fields:
        return
    for axis, vector in enumerate(fields["space directions"].split()):
        values = vector.strip("()").split(",")
        try:
            zero = len(values) > 1 and all(float(v) == 0.0 for v in values)
        except ValueError:  # "none" (a vector axis) or a form ITK judges itself
            continue
        if zero:
            raise CorruptFileError(f"{path.name}: its header gives axis {axis + 1} a length of 0 mm (space "
                                   f"directions {fields['space directions']}), so the voxels have no size along it. "
                                   "The file is damaged or was written wrongly: export it again.")


def _checked_grid(path: Path, geom: Geometry, warnings: list[str]) -> Geometry:
    """The grid with the header's length unit applied (ITK ignores NRRD's ``space units``), and warnings for a
    grid whose patient axes are not given, implausible voxel sizes, a sheared grid (:mod:`.grid_checks`)."""
    kind, fields = header_fields(path)
    if kind == "nrrd":
        units = {u.strip('" ') for u in fields.get("space units", "").split('" "') if u.strip('" ')}
        scale = unit_scale(units.pop(), np.asarray(geom.spacing_xyz), path.name, warnings) if len(units) == 1 else 1.0
        if scale != 1.0:
            geom = replace(geom, spacing=tuple(v * scale for v in geom.spacing),
                           origin=tuple(v * scale for v in geom.origin))
        space = fields.get("space", "").strip().lower()
        if space not in _ANATOMICAL:
            given = f"its space is '{fields['space']}'" if space else "it gives no space"
            warnings.append(f"{path.name} does not say where the patient's sides are ({given}): its axes were read "
                            "as left, posterior, superior (LPS), and other tools may show it flipped. Check the side "
                            "(R/L) against a known landmark, e.g. the heart or the aortic arch on the left.")
    for note in (spacing_note(geom, path.name), shear_note(geom, path.name)):
        if note:
            warnings.append(note)
    return geom


def read_sitk(path: str | Path, fmt: str, progress: Optional[ProgressCallback] = None,
              cancel: Optional[CancelLike] = None) -> Volume:
    """Read an NRRD/MHA/MHD volume into a canonical :class:`Volume`."""
    path = Path(path)
    report = as_progress(progress)
    warnings: list[str] = []
    with wrap_errors(path, f"{fmt.upper()} file"):
        report(0.0, f"Reading {path.name}")
        arr, geom, img = _source_array(path, warnings)
        check_cancel(cancel)
        is_hu = arr.dtype != np.uint8
        plan = plan_orientation(geom)
        buffer = IntensityBuffer(plan, np.int16 if is_hu else np.uint8)
        step = slab_size(arr[0].nbytes)
        n = arr.shape[0]
        for k0 in range(0, n, step):
            check_cancel(cancel)
            buffer.put(arr[k0:k0 + step], k0)
            report(min(1.0, (k0 + step) / n), f"Reading {path.name}")
        array = buffer.finish(warnings, path)
        note = hu_scale_note(array, f"an {fmt.upper()} file does not name its scale: values other than 8-bit are "
                             "read as HU") if is_hu else None
        if note:
            warnings.append(note)
        del arr, img
    meta = {"source_orientation": plan.to_dict(), "modality": "CT" if is_hu else "",
            **({"filled": buffer.filled} if buffer.filled else {})}
    if note:
        meta[HU_DOUBT] = True
    return Volume(array=array, geometry=plan.canonical_geometry(), is_hu=is_hu, source=str(path),
                  format=fmt, meta=meta, warnings=warnings)


def read_sitk_labels(path: str | Path) -> tuple[np.ndarray, Geometry]:
    """Read a label map (NRRD/MHA); the canonical array (any integer dtype) and its geometry."""
    path = Path(path)
    with wrap_errors(path, "label file"):
        arr, geom, _img = _source_array(path, [], LABEL_RATIO)
        arr = np.array(arr)
    out, geometry, _ = canonicalize(arr, geom)
    return out, geometry


def write_nrrd_labels(labels: np.ndarray, geometry: Geometry, path: str | Path) -> None:
    """Write a canonical uint8 label map as compressed NRRD (LPS space, ITK conventions)."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(labels, dtype=np.uint8))
    img.SetSpacing(geometry.spacing_xyz)
    img.SetOrigin(geometry.origin)
    img.SetDirection(tuple(geometry.direction_matrix.ravel()))
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(path))
    writer.UseCompressionOn()
    writer.Execute(img)
    if not Path(path).exists():
        raise CorruptFileError(f"SimpleITK did not write {path}.")
