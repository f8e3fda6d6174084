"""The one table of label-map formats: suffixes, names, reader and writer.

Everything that names a label format derives from :data:`LABEL_FORMATS`: the writer
choice of :func:`engine.io.save_labels`, the app's file dialogs (:func:`file_filter`),
the CLI's ``--format`` choices (:func:`cli_choices`) and file naming
(:func:`split_suffix`). Adding a format is one row here plus its reader/writer module
(as nnU-Net's ``imageio`` reader/writer table). ``reader`` names the
:func:`engine.io.detect.detect_format` key that :func:`engine.io.load_labels` reads;
``writer`` is ``"module:function"`` in :mod:`engine.io`, imported when used.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import UnsupportedFormatError


@dataclass(frozen=True)
class LabelFormat:
    """One label-map format.

    Attributes
    ----------
    key
        Writer key (``save_labels(fmt=...)``), e.g. ``"seg-nrrd"``.
    title
        Name shown in file dialogs.
    suffixes
        File name endings, the preferred one first (``()`` for a folder of slices).
    writer
        ``"module:function"`` under :mod:`engine.io`, or ``""`` when LungLens only reads it.
    reader
        The :func:`engine.io.detect.detect_format` key of files of this format.
    needs_dicom_scan
        The writer must reference a scan opened from DICOM (DICOM SEG); it is called as
        ``writer(labels, volume, path, table, progress=, cancel=)``.
    takes_table
        The writer stores names and colours: ``writer(labels, geometry, path, table)``;
        otherwise ``writer(labels, geometry, path)``.
    embeds_edited
        The file can carry the voxels a person edited (provenance): the writer takes
        ``edited=`` and the module has a ``read_..._edited`` reader.
    """

    key: str
    title: str
    suffixes: tuple[str, ...]
    writer: str
    reader: str
    needs_dicom_scan: bool = False
    takes_table: bool = False
    embeds_edited: bool = False

    @property
    def is_folder(self) -> bool:
        return not self.suffixes

    def write_function(self) -> Callable[..., Any]:
        """The writer, imported now."""
        if not self.writer:
            raise UnsupportedFormatError(f"LungLens cannot write {self.title} label maps.")
        module, name = self.writer.split(":")
        return getattr(import_module(f"engine.io.{module}"), name)

    def dialog_filter(self) -> str:
        """``"NIfTI (*.nii.gz *.nii)"`` for a Qt file dialog (a folder: ``(*)``)."""
        patterns = " ".join(f"*{s}" for s in self.suffixes) or "*"
        return f"{self.title} ({patterns})"


#: every label format LungLens writes or reads, in the order dialogs list them
LABEL_FORMATS: tuple[LabelFormat, ...] = (
    LabelFormat("nifti", "NIfTI", (".nii.gz", ".nii"), "nifti:write_nifti_labels", "nifti"),
    LabelFormat("seg-nrrd", "3D Slicer segmentation", (".seg.nrrd",), "seg_nrrd:write_seg_nrrd", "seg-nrrd",
                takes_table=True, embeds_edited=True),
    LabelFormat("nrrd", "NRRD", (".nrrd", ".nhdr"), "sitk_io:write_nrrd_labels", "nrrd"),
    LabelFormat("mha", "MetaImage", (".mha",), "sitk_io:write_nrrd_labels", "mha"),
    LabelFormat("dicom-seg", "DICOM SEG", (".dcm",), "dicom_seg:write_dicom_seg", "dicom", needs_dicom_scan=True,
                embeds_edited=True),
    LabelFormat("png", "PNG slices (folder)", (), "images:write_png_labels", "png", takes_table=True),
)

_BY_KEY = {f.key: f for f in LABEL_FORMATS}


def get_format(key: str) -> LabelFormat:
    """The format of writer key ``key``."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise UnsupportedFormatError(f"Unknown label format '{key}'.") from None


def all_suffixes() -> tuple[str, ...]:
    """Every label file suffix, longest first (``.seg.nrrd`` before ``.nrrd``)."""
    return tuple(sorted({s for f in LABEL_FORMATS for s in f.suffixes}, key=len, reverse=True))


def split_suffix(name: str | Path, extra: tuple[str, ...] = ()) -> tuple[str, str]:
    """``"scan.seg.nrrd"`` -> ``("scan", ".seg.nrrd")``; no known suffix -> ``(name, "")``.

    ``extra`` adds suffixes of other files (e.g. scan formats) to recognise.
    """
    n = Path(name).name
    for suffix in sorted(set(all_suffixes()) | set(extra), key=len, reverse=True):
        if n.lower().endswith(suffix):
            return n[: -len(suffix)], n[-len(suffix):]
    return n, ""


def format_for_path(path: str | Path) -> LabelFormat:
    """The format a target name asks for (a name without a suffix, or a folder: PNG slices)."""
    p = Path(path)
    n = p.name.lower()
    for f in sorted(LABEL_FORMATS, key=lambda f: -max((len(s) for s in f.suffixes), default=0)):
        if any(n.endswith(s) for s in f.suffixes):
            return f
    if p.is_dir() or "." not in n:
        return get_format("png")
    names = ", ".join(s for f in LABEL_FORMATS for s in f.suffixes)
    raise UnsupportedFormatError(f"Cannot write labels as '{p.name}': use {names} or a folder name (PNG slices).")


def file_filter(writable_only: bool = True) -> str:
    """A Qt file-dialog filter listing the formats, e.g. for File > Export labels."""
    return ";;".join(f.dialog_filter() for f in LABEL_FORMATS if f.writer or not writable_only)


def open_filter() -> str:
    """A Qt file-dialog filter for opening a label map (all formats, then all files)."""
    patterns = " ".join(f"*{s}" for f in LABEL_FORMATS for s in f.suffixes)
    return f"Label maps ({patterns});;All files (*)"


def cli_choices() -> dict[str, str]:
    """``--format`` choices of the CLI: suffix without its dot -> default file name (``labels<suffix>``)."""
    return {s.lstrip("."): f"labels{s}" for f in LABEL_FORMATS for s in f.suffixes if f.writer and s != ".nhdr"}


def default_suffix(fmt: Optional[LabelFormat]) -> str:
    """The preferred suffix of ``fmt`` (``""`` for a folder)."""
    return fmt.suffixes[0] if fmt is not None and fmt.suffixes else ""
