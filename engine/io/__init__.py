"""Read CT scans and write label maps that line up with them.

Data flow
---------
``load(path)`` -> :func:`detect_format` (content first, then name) -> one reader
(:mod:`.nifti`, :mod:`.dicom_scan` + :mod:`.dicom_read`, :mod:`.sitk_io`,
:mod:`.images`) -> a :class:`~engine.types.Volume` whose array is canonical
``(z, y, x)`` with index axes closest to LPS (see :mod:`.orientation`, the only
module that swaps axes) and whose ``meta["source_orientation"]`` can restore the
source layout. ``save_labels`` / ``load_labels`` (:mod:`.labels_io`) write and read
label maps on that grid (NIfTI, NRRD/MHA, Slicer ``.seg.nrrd``, DICOM SEG, PNG
folder).

Checks before any voxel is read: :mod:`.dicom_checks` (pixel data length against
Rows x Columns x frames x bits, frame counts, transfer syntax against the codestream,
implausible HU), :mod:`.text_headers` (NRRD/MHA data files only in the header's
folder, compression claims, decompression bombs) and the size guard of
:mod:`._common`. Skipped or missing DICOM slices are named in ``volume.warnings`` and
filled with air, never absorbed into the spacing. Writes go through :mod:`.atomic`.

Errors
------
Every failure is an :class:`engine.errors.LungLensError` with a message a user can
act on: third-party exceptions (nibabel, pydicom, SimpleITK, Pillow) are wrapped.
Readers take ``progress`` and ``cancel`` (see :mod:`engine.progress`) and check the
cancel token per slice or slab.

:func:`open_isolated` runs ``load`` in a child process that Cancel ends at once
(the way the app opens files: a stuck library call cannot hold it).

Non-finite voxels are replaced (NaN/-inf by the lowest finite value, +inf by the
highest) with a warning in ``volume.warnings``; see :mod:`._common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import CorruptFileError, SeriesError, UnsupportedFormatError
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Volume
from ._common import MAX_VOLUME_BYTES, check_readable, wrap_errors
from .detect import FORMATS, detect_format
from .dicom_scan import SeriesInfo
from .isolated import open_isolated
from .labels_io import label_format, load_labels, save_labels

__all__ = ["load", "open_isolated", "list_series", "save_labels", "load_labels", "detect_format", "label_format",
           "SeriesInfo", "FORMATS", "MAX_VOLUME_BYTES"]


def list_series(folder: str | Path, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelLike] = None) -> list[SeriesInfo]:
    """The DICOM image series in ``folder`` (recursively), largest first.

    A single DICOM file lists the series of its folder.

    Raises
    ------
    SeriesError
        No DICOM image series is there.
    """
    from .dicom_scan import scan_folder
    p = check_readable(folder)
    if p.is_file():
        p = p.parent
    with wrap_errors(p, "folder"):
        return scan_folder(p, recursive=True, progress=progress, cancel=cancel)


def load(path: str | Path, progress: Optional[ProgressCallback] = None, cancel: Optional[CancelLike] = None,
         series: Optional[str | SeriesInfo] = None) -> Volume:
    """Open a scan as a canonical :class:`~engine.types.Volume`.

    Parameters
    ----------
    path
        NIfTI file, DICOM file / folder / multi-frame file, NRRD, MHA/MHD, PNG/JPG
        image or folder of numbered images.
    progress, cancel
        See :mod:`engine.progress`.
    series
        For DICOM folders: the series key (``SeriesInfo.uid``), SeriesInstanceUID or
        series number; default the axial CT series with most slices. A
        :class:`SeriesInfo` from :func:`list_series` is read directly (no second scan).

    Raises
    ------
    engine.errors.LungLensError
        (or a subclass) with a message for the user; never a third-party exception.
    """
    if isinstance(series, SeriesInfo):
        from .dicom_read import read_series
        return read_series(series, progress=progress, cancel=cancel)
    p = check_readable(path)
    with wrap_errors(p, "file"):  # safety net: readers wrap their own errors already
        return _load(p, progress, cancel, series)


def _load(p: Path, progress: Optional[ProgressCallback], cancel: Optional[CancelLike],
          series: Optional[str]) -> Volume:
    fmt = detect_format(p)
    check_cancel(cancel)
    if fmt == "nifti":
        from .nifti import read_nifti
        return read_nifti(p, progress, cancel)
    if fmt in ("nrrd", "seg-nrrd", "mha", "mhd"):
        from .sitk_io import read_sitk
        return read_sitk(p, "nrrd" if fmt == "seg-nrrd" else fmt, progress, cancel)
    if fmt in ("png", "jpeg", "image", "png-labels"):
        from .images import image_files, read_image_stack
        paths = image_files(p) if p.is_dir() else [p]
        return read_image_stack(paths, p, progress, cancel)
    if fmt == "dicom":
        return _load_dicom(p, progress, cancel, series)
    raise UnsupportedFormatError(f"{p.name}: unsupported format '{fmt}'.")  # pragma: no cover


def _load_dicom(p: Path, progress: Optional[ProgressCallback], cancel: Optional[CancelLike],
                series: Optional[str]) -> Volume:
    from .dicom_read import read_series
    from .dicom_scan import (_SEG_SOP_CLASSES, NON_IMAGE_MODALITIES, _group, _is_image, choose_series,
                             frame_count, read_header, scan_folder)
    report = as_progress(progress)
    if p.is_dir():
        with wrap_errors(p, "folder"):
            infos = scan_folder(p, recursive=True, progress=report.sub(0.0, 0.3), cancel=cancel)
        info = choose_series(infos, series)
    else:
        with wrap_errors(p, "DICOM file"):
            ds = read_header(p)
            if "SOPClassUID" not in ds and "Rows" not in ds:
                raise CorruptFileError(f"{p.name} is not a readable DICOM file.")
            if not _is_image(ds):
                modality = str(ds.get("Modality", "")).upper()
                if modality in NON_IMAGE_MODALITIES or str(ds.get("SOPClassUID", "")) in _SEG_SOP_CLASSES:
                    kind = NON_IMAGE_MODALITIES.get(modality, "segmentation")
                    raise SeriesError(f"{p.name} holds a DICOM {kind}, not an image: open the CT series it "
                                      "belongs to (a segmentation can be opened as labels over its scan).")
                raise CorruptFileError(f"{p.name} has no pixel data: the file is truncated or holds no image.")
            if frame_count(ds) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
                infos = _group([(p, ds)], p.parent)
                info = infos[0]
            else:
                sop = str(ds.get("SOPInstanceUID", ""))
                try:
                    infos = scan_folder(p.parent, recursive=False, progress=report.sub(0.0, 0.3), cancel=cancel)
                except SeriesError:
                    infos = _group([(p, ds)], p.parent)
                if series is not None:
                    info = choose_series(infos, series)
                else:
                    info = next((i for i in infos if str(p) in i.files or
                                 any(str(h.get("SOPInstanceUID", "")) == sop for h in i.headers)), None) \
                        or _group([(p, ds)], p.parent)[0]
    return read_series(info, progress=report.sub(0.3, 1.0), cancel=cancel)
