"""Recognise a file or folder's format from its content first, its name second.

Content wins over the extension, so a NIfTI file named ``scan.dcm`` still opens;
a file whose content matches no supported format raises
:class:`~engine.errors.UnsupportedFormatError` (or :class:`~engine.errors.CorruptFileError`
when the name promises a format the content does not deliver).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from ..errors import CorruptFileError, LungLensError, UnsupportedFormatError
from ._common import check_readable
from .dicom_scan import is_dicom_file
from .images import IMAGE_SUFFIXES, image_files

__all__ = ["detect_format", "FORMATS"]

#: format names returned by :func:`detect_format`
FORMATS = ("nifti", "dicom", "nrrd", "seg-nrrd", "mha", "mhd", "png", "jpeg", "image", "png-labels")
SUPPORTED_TEXT = ("NIfTI (.nii, .nii.gz), DICOM (file or folder), NRRD, MHA/MHD, "
                  "PNG/JPG (one slice or a folder of numbered slices)")


def _name_format(name: str) -> str | None:
    n = name.lower()
    if n.endswith(".seg.nrrd"):
        return "seg-nrrd"
    for ext, fmt in ((".nii.gz", "nifti"), (".nii", "nifti"), (".nrrd", "nrrd"), (".nhdr", "nrrd"),
                     (".mha", "mha"), (".mhd", "mhd"), (".dcm", "dicom"), (".dicom", "dicom"), (".ima", "dicom")):
        if n.endswith(ext):
            return fmt
    suffix = Path(n).suffix
    if suffix in IMAGE_SUFFIXES:
        return IMAGE_SUFFIXES[suffix]
    return None


def _is_nifti_header(head: bytes) -> bool:
    if len(head) < 348:
        return False
    sizeof = (int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big"))
    if 348 in sizeof:
        return head[344:347] in (b"n+1", b"ni1")
    if 540 in sizeof:
        return head[4:7] in (b"n+2", b"ni2")
    return False


def _sniff(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(540)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as g:
                inner = g.read(540)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorruptFileError(f"{path.name} is a damaged gzip file ({exc}). Copy it again.") from exc
        if _is_nifti_header(inner):
            return "nifti"
        return None
    if _is_nifti_header(head):
        return "nifti"
    if head.startswith(b"NRRD000"):
        return "seg-nrrd" if path.name.lower().endswith(".seg.nrrd") else "nrrd"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"BM") and path.suffix.lower() == ".bmp":
        return "image"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    first = head.lstrip()[:20]
    if any(first.startswith(k) for k in (b"ObjectType", b"NDims", b"Comment", b"ObjectSubType")) or \
            (first.startswith(b"ElementDataFile") and path.suffix.lower() == ".mhd"):
        return "mhd" if path.suffix.lower() == ".mhd" else "mha"
    return None


def detect_format(path: str | Path) -> str:
    """Name the format of ``path``: one of :data:`FORMATS`.

    A folder is ``"dicom"`` when it (or a sub-folder) holds DICOM files, ``"png"``/``"jpeg"``
    when it holds images (``"png-labels"`` for a LungLens label export).

    Raises
    ------
    LungLensError
        The path does not exist or cannot be read.
    UnsupportedFormatError
        Nothing LungLens reads was recognised.
    CorruptFileError
        The file is empty or its name promises a format its content does not match.
    """
    p = check_readable(path)
    if p.is_dir():
        return _folder_format(p)
    if p.stat().st_size == 0:
        raise CorruptFileError(f"{p.name} is empty (0 bytes). Copy the file again.")
    try:
        fmt = _sniff(p)
    except LungLensError:
        raise
    except OSError as exc:
        raise LungLensError(f"Cannot read {p}: {exc.strerror or exc}.") from exc
    if fmt is None and _name_format(p.name) == "dicom" and is_dicom_file(p):
        fmt = "dicom"
    if fmt is None and _name_format(p.name) is None and is_dicom_file(p):
        fmt = "dicom"
    if fmt is not None:
        return fmt
    expected = _name_format(p.name)
    if expected is not None:
        raise CorruptFileError(f"{p.name} is named like a {expected.upper()} file but its content is not "
                               f"{expected.upper()}: the file is damaged or mis-named.")
    raise UnsupportedFormatError(f"{p.name}: format not recognised. LungLens opens {SUPPORTED_TEXT}.")


def _folder_format(folder: Path) -> str:
    images = image_files(folder)
    if (folder / "labels.json").is_file() and images and images[0].name.startswith("slice_"):
        return "png-labels"
    files = [q for q in sorted(folder.iterdir()) if q.is_file() and not q.name.startswith(".")]
    for q in files[:64]:
        if q.suffix.lower() not in IMAGE_SUFFIXES and is_dicom_file(q):
            return "dicom"
    if images:
        return IMAGE_SUFFIXES[images[0].suffix.lower()] if images[0].suffix.lower() in (".png", ".jpg",
                                                                                       ".jpeg") else "image"
    subdirs = [q for q in folder.iterdir() if q.is_dir()]
    if subdirs:
        return "dicom"  # maybe nested DICOM (PATIENT/STUDY/SERIES); the scan says if not
    if not files:
        raise UnsupportedFormatError(f"{folder} is empty. Choose a folder with a DICOM series or numbered "
                                     "PNG/JPG slices.")
    if any(is_dicom_file(q) for q in files[64:]):
        return "dicom"
    raise UnsupportedFormatError(f"{folder} holds no scan LungLens can read ({len(files)} unrelated file(s)). "
                                 f"LungLens opens {SUPPORTED_TEXT}.")
