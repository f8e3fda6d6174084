"""Opening scans: :func:`load` (any supported format) and :func:`list_series` (DICOM folders).

Re-exported by :mod:`engine.io`; in a module of its own so that :mod:`.isolated` can run
:func:`load` in a child process without importing the package that imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import CorruptFileError, SeriesError, UnsupportedFormatError
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Volume
from ._common import check_readable, wrap_errors
from .detect import detect_format
from .dicom_scan import SeriesInfo


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
         series: Optional[str | SeriesInfo] = None, first_slice: Optional[str] = None) -> Volume:
    """Open a scan as a canonical :class:`~engine.types.Volume`.

    Parameters
    ----------
    path
        NIfTI file, DICOM file / folder / multi-frame file, NRRD, MHA/MHD, PNG/JPG
        image (with the numbered stack it belongs to) or folder of numbered images.
    progress, cancel
        See :mod:`engine.progress`.
    series
        For DICOM folders: the series key (``SeriesInfo.uid``), SeriesInstanceUID or
        series number; default the axial CT series with most slices. A
        :class:`SeriesInfo` from :func:`list_series` is read directly (no second scan).
    first_slice
        For PNG/JPG stacks, which carry no positions: where the first file lies,
        ``"superior"`` (head to feet, the default) or ``"inferior"`` (feet to head); see
        :func:`.images.read_image_stack`. Other formats place their slices themselves.

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
        return _load(p, progress, cancel, series, first_slice)


def _load(p: Path, progress: Optional[ProgressCallback], cancel: Optional[CancelLike],
          series: Optional[str], first_slice: Optional[str] = None) -> Volume:
    fmt = detect_format(p)
    check_cancel(cancel)
    if fmt == "nifti":
        from .nifti import read_nifti
        return read_nifti(p, progress, cancel)
    if fmt in ("nrrd", "seg-nrrd", "mha", "mhd"):
        from .sitk_io import read_sitk
        return read_sitk(p, "nrrd" if fmt == "seg-nrrd" else fmt, progress, cancel)
    if fmt in ("png", "jpeg", "image", "png-labels"):
        from .images import image_files, numbered_stack, read_image_stack
        # one image of a numbered stack opens the stack, as one DICOM file opens its series
        paths = image_files(p) if p.is_dir() else numbered_stack(p) if fmt != "png-labels" else [p]
        return read_image_stack(paths, p, progress, cancel, first_slice=first_slice)
    if fmt == "dicom":
        return _load_dicom(p, progress, cancel, series)
    raise UnsupportedFormatError(f"{p.name}: unsupported format '{fmt}'.")  # pragma: no cover


def _load_dicom(p: Path, progress: Optional[ProgressCallback], cancel: Optional[CancelLike],
                series: Optional[str]) -> Volume:
    from .dicom_read import read_series
    from .dicom_scan import (_SEG_SOP_CLASSES, NON_IMAGE_MODALITIES, _group, _is_image, choose_series,
                             frame_count, read_image_header, scan_folder)
    report = as_progress(progress)
    if p.is_dir():
        with wrap_errors(p, "folder"):
            infos = scan_folder(p, recursive=True, progress=report.sub(0.0, 0.3), cancel=cancel)
        info = choose_series(infos, series)
    else:
        with wrap_errors(p, "DICOM file"):
            ds = read_image_header(p)
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
