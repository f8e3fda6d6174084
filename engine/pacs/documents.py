"""DICOM wrappers for what goes back to the PACS besides the SEG: the report as Encapsulated PDF.

Why Encapsulated PDF rather than a DICOM SR: every PACS viewer in a reading room
shows an Encapsulated PDF exactly as LungLens laid it out (tables, colours, key
images), while SR rendering differs from viewer to viewer and many show only a
tree of codes; the numbers a machine needs already travel as JSON/CSV and in the
DICOM SEG. The PDF joins the scan's study as a new series (modality ``DOC``).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Optional

from .. import __version__
from ..errors import UnsupportedFormatError

__all__ = ["encapsulated_pdf", "ENCAPSULATED_PDF_STORAGE"]

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"

#: attributes copied from the scan, so the document files into its patient and study
_FROM_SCAN = ("SpecificCharacterSet", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
              "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
              "AccessionNumber", "StudyDescription")


def _reference_dataset(reference):
    """The first DICOM header of ``reference`` (a dataset, a DICOM file or folder, or a DICOM :class:`Volume`)."""
    import pydicom

    from ..io.dicom_scan import is_dicom_file
    from ..types import Volume

    if isinstance(reference, pydicom.Dataset):
        return reference
    if isinstance(reference, Volume):
        files = reference.meta.get("dicom_files") or []
        if not files:
            raise UnsupportedFormatError("The report can go to the PACS only for a scan opened from DICOM: "
                                         "this scan has no DICOM study to join.")
        reference = files[0]
    path = Path(reference)
    if path.is_dir():
        path = next((p for p in sorted(path.rglob("*")) if p.is_file() and is_dicom_file(p)), path)
    if not path.is_file() or not is_dicom_file(path):
        raise UnsupportedFormatError(f"{reference} is not a DICOM scan: the report joins the study of the DICOM "
                                     "scan it was made on.")
    return pydicom.dcmread(path, stop_before_pixels=True)


def encapsulated_pdf(pdf: str | Path | bytes, reference, *, title: str = "LungLens chest CT report",
                     series_number: int = 9902, when: Optional[_dt.datetime] = None):
    """An Encapsulated PDF instance of ``pdf`` in the patient and study of ``reference``.

    Parameters
    ----------
    pdf
        The PDF file or its bytes (e.g. from ``python -m engine report ... --out r.pdf``).
    reference
        The scan the report is about: a pydicom dataset, a DICOM file or folder, or
        a :class:`~engine.types.Volume` read from DICOM.
    title
        Document Title shown by the PACS.
    series_number
        Series Number of the new ``DOC`` series.

    Returns
    -------
    pydicom.Dataset
        Ready for :meth:`engine.pacs.PacsClient.store`.

    Raises
    ------
    UnsupportedFormatError
        ``pdf`` is not a PDF, or ``reference`` is not a DICOM scan.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    data = pdf if isinstance(pdf, bytes) else Path(pdf).read_bytes()
    if not data.startswith(b"%PDF-"):
        raise UnsupportedFormatError(f"{pdf if not isinstance(pdf, bytes) else 'The data'} is not a PDF file.")
    scan = _reference_dataset(reference)
    now = when or _dt.datetime.now()
    ds = pydicom.Dataset()
    for key in _FROM_SCAN:
        if key in scan:
            setattr(ds, key, scan.data_element(key).value)
    for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if key not in ds:
            setattr(ds, key, "")  # type 2: present, may be empty
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DOC"
    ds.SeriesNumber = series_number
    ds.SeriesDescription = "LungLens report"
    ds.InstanceNumber = 1
    ds.Manufacturer = "LungLens"
    ds.SoftwareVersions = __version__
    ds.ConversionType = "WSD"  # workstation
    ds.ContentDate = ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.ContentTime = ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"  # the PDF names the patient
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(data)
    ds.EncapsulatedDocument = data + (b"\0" if len(data) % 2 else b"")
    if "FrameOfReferenceUID" in scan:
        ds.FrameOfReferenceUID = scan.FrameOfReferenceUID
    ref = pydicom.Dataset()
    ref.ReferencedSOPClassUID = scan.SOPClassUID
    ref.ReferencedSOPInstanceUID = scan.SOPInstanceUID
    ds.SourceInstanceSequence = [ref]  # the report was derived from this scan
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.preamble = b"\0" * 128  # a Part 10 file, as STOW-RS sends
    return ds
