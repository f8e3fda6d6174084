"""Find the DICOM image series in a folder (headers only; pixel data is not read).

Every file is parsed once, keeping only the tags the scan and the reader use
(:data:`SCAN_TAGS`; :func:`.dicom_header.read_tags` jumps over everything else, nested
sequences included, and falls back to pydicom's ``specific_tags`` reader for files it
does not handle) and deferring large values (``defer_size``: the pixel data keeps only
its offset and length). :mod:`.dicom_read` works from these headers and never parses a header again
(uncompressed pixels are read at the stored offset; compressed files are decoded by
:mod:`._dicom_worker`). Files are grouped into :class:`SeriesInfo` by ``SeriesInstanceUID``; a series that mixes
image sizes or orientations (a scout inside the axial series, say) is split, the
largest part keeping the plain UID as its key and the others getting ``UID#2``,
``UID#3`` ... Non-image objects (SR, RTSTRUCT, SEG, presentation states, RT dose,
PDFs ...) are counted and ignored; a folder holding nothing else raises
:class:`~engine.errors.SeriesError`.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from ..errors import SeriesError
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from .dicom_header import read_tags

__all__ = ["SeriesInfo", "scan_folder", "choose_series", "read_header", "read_image_header", "is_dicom_file",
           "NON_IMAGE_MODALITIES", "SCAN_TAGS"]

#: pydicom defers values longer than this (pixel data, big private blobs)
DEFER_SIZE = 4096
MAX_FILES = 50_000
NON_IMAGE_MODALITIES = {"SR": "structured report", "RTSTRUCT": "RT structure set", "SEG": "segmentation",
                        "PR": "presentation state", "KO": "key object selection", "RTPLAN": "RT plan",
                        "RTDOSE": "RT dose", "REG": "registration", "DOC": "document", "RTRECORD": "RT record"}
_SEG_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_DICOM_SUFFIXES = {".dcm", ".dicom", ".ima", ""}
#: the top-level tags that scanning, grouping, checking and reading a series look at (sequences listed
#: here are parsed whole); everything else in a header is skipped unparsed
SCAN_TAGS: tuple[str, ...] = (
    # identity, grouping and the series list
    "SOPClassUID", "SOPInstanceUID", "Modality", "SeriesInstanceUID", "StudyInstanceUID", "SeriesNumber",
    "SeriesDescription", "StudyDescription", "PatientID", "PatientName", "PatientSex", "PatientAge",
    "StudyDate", "SeriesDate", "Manufacturer", "ConvolutionKernel", "FrameOfReferenceUID", "InstanceNumber",
    # geometry
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "ImagerPixelSpacing", "SliceThickness",
    "SpacingBetweenSlices", "GridFrameOffsetVector", "NumberOfFrames",
    "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence",
    # pixel module and values
    "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration", "Rows", "Columns", "BitsAllocated",
    "BitsStored", "HighBit", "PixelRepresentation", "RescaleSlope", "RescaleIntercept", "PixelPaddingValue",
    "PixelData",
)
_SCAN_TAG_LIST = [Tag(name) for name in SCAN_TAGS]  # converted once: pydicom's per-call keyword lookup is slow
_SCAN_TAG_SET = frozenset(int(t) for t in _SCAN_TAG_LIST)


@dataclass
class SeriesInfo:
    """One image series found in a folder (or one multi-frame file).

    ``uid`` is the key to pass as ``series=`` to :func:`engine.io.load`.
    """

    uid: str
    series_instance_uid: str
    modality: str
    description: str
    number: Optional[int]
    n_files: int
    n_slices: int
    rows: int
    columns: int
    orientation: str
    study_description: str = ""
    patient_id: str = ""
    #: StudyDate / SeriesDate as written (``YYYYMMDD``; "" when absent)
    study_date: str = ""
    series_date: str = ""
    folder: str = ""
    multiframe: bool = False
    #: files of this folder that were left out of the series, each with its reason (shown as warnings)
    notes: list[str] = field(default_factory=list, repr=False)
    files: list[str] = field(default_factory=list, repr=False)
    headers: list[Dataset] = field(default_factory=list, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "series_instance_uid": self.series_instance_uid, "modality": self.modality,
                "description": self.description, "number": self.number, "n_files": self.n_files,
                "n_slices": self.n_slices, "rows": self.rows, "columns": self.columns,
                "orientation": self.orientation, "study_description": self.study_description,
                "patient_id": self.patient_id, "study_date": self.study_date, "series_date": self.series_date,
                "multiframe": self.multiframe}

    def summary(self) -> str:
        num = f"#{self.number} " if self.number is not None else ""
        return (f"{num}{self.modality or '?'} {self.orientation} {self.n_slices} slice(s) "
                f"{self.rows}x{self.columns} '{self.description}' uid={self.uid}")


def is_dicom_file(path: str | Path) -> bool:
    """True when the file has the DICM preamble, or is a preamble-less file pydicom can parse."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    if p.suffix.lower() not in _DICOM_SUFFIXES or len(head) < 8:
        return False
    try:  # old files without preamble: the first element must be a plausible group 0008 tag
        ds = pydicom.dcmread(str(p), force=True, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        return "SOPClassUID" in ds or (0x0008, 0x0016) in ds
    except Exception:  # noqa: BLE001 - not DICOM
        return False


def read_header(path: str | Path) -> Dataset:
    """Parse a DICOM file without loading its pixel data (every tag; large values deferred)."""
    return pydicom.dcmread(str(path), defer_size=DEFER_SIZE, force=True)


def read_image_header(path: str | Path) -> Dataset:
    """Parse only the :data:`SCAN_TAGS` of a DICOM file (large values, the pixel data included, deferred).

    The pixel data element keeps its length and file offset (``value_tell``), which is
    all :mod:`.dicom_checks` and :mod:`.dicom_read` need.
    """
    ds = read_tags(path, _SCAN_TAG_SET, DEFER_SIZE)  # fast walk; None for files it leaves to pydicom
    if ds is not None:
        return ds
    return pydicom.dcmread(str(path), defer_size=DEFER_SIZE, force=True, specific_tags=_SCAN_TAG_LIST)


def _num(value: Any, default: Optional[float] = None) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def frame_count(ds: Dataset) -> int:
    n = ds.get("NumberOfFrames", 1)
    try:
        return max(1, int(n))
    except (TypeError, ValueError):
        return 1


def image_orientation(ds: Dataset) -> Optional[tuple[float, ...]]:
    """The 6 direction cosines of a (single- or multi-frame) image, or None."""
    iop = ds.get("ImageOrientationPatient")
    if iop is None:
        for seq_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            seq = ds.get(seq_name)
            if seq:
                po = seq[0].get("PlaneOrientationSequence")
                if po and po[0].get("ImageOrientationPatient") is not None:
                    iop = po[0].ImageOrientationPatient
                    break
    if iop is None:
        return None
    try:
        vals = tuple(float(v) for v in iop)
    except (TypeError, ValueError):
        return None
    return vals if len(vals) == 6 and all(np.isfinite(vals)) else None


def orientation_name(iop: Optional[tuple[float, ...]]) -> str:
    """axial / coronal / sagittal / oblique (normal within ~20 degrees of an axis) or unknown."""
    if iop is None:
        return "unknown"
    normal = np.cross(iop[:3], iop[3:])
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        return "unknown"
    normal = np.abs(normal / norm)
    axis = int(np.argmax(normal))
    if normal[axis] < 0.94:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def _is_image(ds: Dataset) -> bool:
    if str(ds.get("SOPClassUID", "")) in _SEG_SOP_CLASSES:
        return False
    if str(ds.get("Modality", "")).upper() in NON_IMAGE_MODALITIES:
        return False
    return "PixelData" in ds or (0x7FE0, 0x0010) in ds


def is_regular_file(path: str | Path) -> bool:
    """True for a regular file (following links); False for FIFOs, sockets, devices, folders.

    Opening a named pipe blocks until a writer appears, so nothing that is not a
    regular file is ever opened by a reader.
    """
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _walk(folder: Path, recursive: bool) -> Iterable[Path]:
    """Regular files below ``folder`` (FIFOs, sockets and devices are never listed)."""
    if not recursive:
        yield from sorted(p for p in folder.iterdir() if is_regular_file(p))
        return
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            if is_regular_file(p):
                yield p


def scan_folder(folder: str | Path, recursive: bool = True, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelLike] = None) -> list[SeriesInfo]:
    """All image series below ``folder``, largest first.

    Raises
    ------
    SeriesError
        The folder holds no DICOM image (message says what it did find).
    """
    folder = Path(folder)
    report = as_progress(progress)
    paths = []
    for i, p in enumerate(_walk(folder, recursive)):
        if i >= MAX_FILES:
            raise SeriesError(f"{folder} holds more than {MAX_FILES} files: choose the folder of one study.")
        paths.append(p)
    images: list[tuple[Path, Dataset]] = []
    skipped: Counter[str] = Counter()
    problems: list[tuple[Path, str]] = []  # DICOM-looking files left out, with the reason
    n_other = 0
    for i, p in enumerate(paths):
        check_cancel(cancel)
        if i % 16 == 0:
            report(i / max(1, len(paths)), f"Scanning {folder.name}")
        if not is_dicom_file(p):
            n_other += 1
            if p.suffix.lower() in (".dcm", ".dicom", ".ima"):
                size = p.stat().st_size
                problems.append((p, "empty file (0 bytes)" if size == 0 else "not a readable DICOM file"))
            continue
        try:
            ds = read_image_header(p)
            if str(ds.get("SOPClassUID", "")) == _DICOMDIR_CLASS or \
                    str(getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", "")) == _DICOMDIR_CLASS:
                continue
            if not _is_image(ds):
                modality = str(ds.get("Modality", "")).upper() or "non-image"
                if modality in NON_IMAGE_MODALITIES or str(ds.get("SOPClassUID", "")) in _SEG_SOP_CLASSES:
                    skipped[NON_IMAGE_MODALITIES.get(modality, modality)] += 1
                else:
                    skipped["image without pixel data"] += 1
                    problems.append((p, "no pixel data (truncated file?)"))
                continue
            int(ds.Rows), int(ds.Columns)  # noqa: B018 - must exist
        except Exception as exc:  # noqa: BLE001 - a damaged file is skipped, counted and named
            skipped["unreadable DICOM"] += 1
            problems.append((p, f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''})"))
            continue
        images.append((p, ds))
    report(1.0, f"Scanned {folder.name}")
    if not images:
        found = ", ".join(f"{n} {k}" for k, n in skipped.items())
        what = f"no DICOM image series, only {found}" if found else \
            f"no DICOM image ({n_other} other file(s))"
        raise SeriesError(f"{folder} holds {what}. Choose a folder with a CT image series, or the "
                          "folder of one stack of PNG/JPG slices.")
    infos = _group(images, folder)
    if problems:
        _attach_problems(infos, problems)
    return infos


def _attach_problems(infos: list[SeriesInfo], problems: list[tuple[Path, str]]) -> None:
    """Name the left-out files in the notes of each series that lives in the same folder."""
    for info in infos:
        dirs = {str(Path(f).parent) for f in info.files}
        mine = [(p, why) for p, why in problems if str(p.parent) in dirs]
        if not mine:
            continue
        listed = "; ".join(f"{p.name}: {why}" for p, why in mine[:8])
        more = f" and {len(mine) - 8} more" if len(mine) > 8 else ""
        info.notes.append(f"{len(mine)} file(s) next to this series were skipped ({listed}{more}). "
                          "If they belong to the series, slices are missing: copy the series again.")


def _group(images: list[tuple[Path, Dataset]], folder: Path) -> list[SeriesInfo]:
    groups: dict[tuple, list[tuple[Path, Dataset]]] = {}
    for p, ds in images:
        uid = str(ds.get("SeriesInstanceUID", "")) or "no-series-uid"
        iop = image_orientation(ds)
        iop_key = tuple(round(v, 3) for v in iop) if iop else None
        mf = frame_count(ds) > 1 or "PerFrameFunctionalGroupsSequence" in ds
        # who and where: two patients (or studies, or frames of reference) under one SeriesInstanceUID, or
        # none (anonymisers drop it), must not become one volume (QA pass: two patients alternated slice by slice)
        # (study and frame of reference only without a series UID: a series UID already names one of each)
        origin = tuple(str(ds.get(tag, "")) if tag == "PatientID" or uid == "no-series-uid" else ""
                       for tag in ("PatientID", "StudyInstanceUID", "FrameOfReferenceUID"))
        key = (uid, int(ds.Rows), int(ds.Columns), iop_key, str(ds.get("SOPInstanceUID", "")) if mf else "",
               pixel_spacing_key(ds), origin)
        groups.setdefault(key, []).append((p, ds))
    by_uid: dict[str, list[tuple]] = {}
    for key in groups:
        by_uid.setdefault(key[0], []).append(key)
    infos: list[SeriesInfo] = []
    for uid, keys in by_uid.items():
        keys.sort(key=lambda k: -sum(frame_count(ds) for _, ds in groups[k]))
        split_note = _split_note(uid, keys, groups)
        for n, key in enumerate(keys):
            members = groups[key]
            members.sort(key=lambda m: str(m[0]))
            first = members[0][1]
            n_slices = sum(frame_count(ds) for _, ds in members)
            number = first.get("SeriesNumber")
            infos.append(SeriesInfo(
                uid=uid if n == 0 else f"{uid}#{n + 1}", series_instance_uid=uid,
                modality=str(first.get("Modality", "")), description=str(first.get("SeriesDescription", "")),
                number=int(number) if _num(number) is not None else None, n_files=len(members),
                n_slices=n_slices, rows=int(first.Rows), columns=int(first.Columns),
                orientation=orientation_name(image_orientation(first)),
                study_description=str(first.get("StudyDescription", "")),
                patient_id=str(first.get("PatientID", "")), study_date=str(first.get("StudyDate", "") or ""),
                series_date=str(first.get("SeriesDate", "") or ""), folder=str(folder),
                multiframe=bool(key[4]), files=[str(m[0]) for m in members], headers=[m[1] for m in members],
                notes=[split_note] if split_note and not key[4] else []))
    infos.sort(key=lambda s: (-s.n_slices, s.uid))
    return infos


def pixel_spacing_key(ds: Dataset) -> Optional[tuple[float, float]]:
    """PixelSpacing rounded to 0.1 micrometre (images with another spacing form another series)."""
    ps = ds.get("PixelSpacing")
    try:
        return (round(float(ps[0]), 4), round(float(ps[1]), 4)) if ps is not None and len(ps) == 2 else None
    except (TypeError, ValueError):
        return None


def _split_note(uid: str, keys: list[tuple], groups: dict[tuple, list]) -> str:
    """Say which files of one SeriesInstanceUID were put into separate series, and why."""
    single = [k for k in keys if not k[4]]
    if len(single) < 2:
        return ""
    main = single[0]
    parts, other_scan = [], 0
    for n, key in enumerate(keys):
        if key == main or key[4]:
            continue
        why = []
        if key[1:3] != main[1:3]:
            why.append(f"size {key[1]}x{key[2]} instead of {main[1]}x{main[2]}")
        if key[3] != main[3]:
            a, b = orientation_name(key[3]), orientation_name(main[3])
            why.append(f"{a} instead of {b} slices" if a != b else
                       f"orientation {tuple(round(float(v), 3) for v in key[3])} instead of "
                       f"{tuple(round(float(v), 3) for v in main[3])}")
        if key[5] != main[5]:
            why.append(f"pixel spacing {key[5]} instead of {main[5]}")
        for i, what in enumerate(("another patient (a different Patient ID)", "another study",
                                  "another frame of reference (another scan of the patient)")):
            if key[6][i] != main[6][i]:
                why.append(what)
                other_scan += 1
                break
        names = ", ".join(Path(m[0]).name for m in groups[key][:3]) + (" ..." if len(groups[key]) > 3 else "")
        parts.append(f"{names} ({'; '.join(why)}): listed as a separate series, part {n + 1} of this one")
    end = (" If they belong between the other slices, those slices are missing here." if other_scan < len(parts)
           else " Images of another patient, study or scan are never mixed into one volume.")
    return ("Images of this series differ from the others and were split off: " + "; ".join(parts) + "." + end
            ) if parts else ""


def choose_series(infos: list[SeriesInfo], series: Optional[str] = None) -> SeriesInfo:
    """The series named ``series`` (a key, a SeriesInstanceUID or a series number), else the default.

    The default is the axial CT series with most slices (then any CT, then any series).
    """
    if not infos:
        raise SeriesError("No DICOM image series found.")
    if series is not None:
        wanted = str(series).strip()
        for info in infos:
            if wanted in (info.uid, info.series_instance_uid) or \
                    (info.number is not None and wanted == str(info.number)):
                return info
        listing = "; ".join(i.summary() for i in infos[:10])
        raise SeriesError(f"Series '{wanted}' is not in {infos[0].folder}. Available: {listing}")

    def score(info: SeriesInfo) -> tuple:
        return (info.modality.upper() == "CT", info.orientation == "axial", info.n_slices)
    return max(infos, key=score)
