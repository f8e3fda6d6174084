"""Tiny synthetic DICOM files for the I/O tests (pydicom Dataset + FileMetaDataset).

Nothing here is a valid clinical object in every detail; the files carry what
readers look at: SOP class/instance, series/study UIDs, geometry, rescale, pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
RTSTRUCT_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
ENHANCED_CT_CLASS = "1.2.840.10008.5.1.4.1.1.2.1"


def _base(sop_class: str, modality: str, series_uid: str, study_uid: str, sop_uid: Optional[str] = None,
          transfer_syntax: str = ExplicitVRLittleEndian) -> Dataset:
    meta = FileMetaDataset()
    sop_uid = sop_uid or generate_uid()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = study_uid
    ds.PatientID = "TEST001"
    ds.PatientName = "Test^Phantom"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.Manufacturer = "LungLens tests"
    return ds


def ct_slice(*, rows: int = 12, cols: int = 10, position: Sequence[float] = (0.0, 0.0, 0.0),
             orientation: Sequence[float] = (1, 0, 0, 0, 1, 0), spacing: Sequence[float] = (0.8, 0.7),
             stored: Optional[np.ndarray] = None, slope: float = 1.0, intercept: float = -1024.0,
             series_uid: Optional[str] = None, study_uid: Optional[str] = None, instance: int = 1,
             frame_uid: str = "1.2.826.0.1.3680043.8.498.1", modality: str = "CT",
             description: str = "test series", signed: bool = False, thickness: float = 2.0,
             photometric: str = "MONOCHROME2") -> Dataset:
    """One CT Image Storage slice; ``stored`` (rows, cols) are the raw stored values."""
    ds = _base(CTImageStorage, modality, series_uid or generate_uid(), study_uid or generate_uid())
    ds.SeriesDescription = description
    ds.FrameOfReferenceUID = frame_uid
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in spacing]
    ds.SliceThickness = thickness
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.RescaleType = "HU"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16 if signed else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if stored is None:
        stored = np.zeros((rows, cols))
    stored = np.asarray(stored).astype(np.int16 if signed else np.uint16)
    ds.PixelData = stored.tobytes()
    return ds


def write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def ct_series(folder: Path, n: int = 6, rows: int = 12, cols: int = 10, z0: float = -50.0, dz: float = 2.5,
              orientation: Sequence[float] = (1, 0, 0, 0, 1, 0), origin_xy: Sequence[float] = (-20.0, -30.0),
              positions: Optional[Sequence[Sequence[float]]] = None, shuffle: bool = True, prefix: str = "img",
              series_uid: Optional[str] = None, study_uid: Optional[str] = None, **kw) -> tuple[list[Path], np.ndarray]:
    """Write an ``n``-slice series; returns the paths and the expected HU (in position order).

    Voxel (k, j, i) holds stored value ``100 * k + 10 * j + i`` (so HU = that - 1024),
    with positions ``origin + k * dz * normal`` unless ``positions`` is given.
    """
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    r, c = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(r, c)
    if positions is None:
        base = np.asarray([origin_xy[0], origin_xy[1], 0.0]) + z0 * np.asarray([0, 0, 1.0])
        positions = [base + k * dz * normal for k in range(n)]
    jj, ii = np.mgrid[0:rows, 0:cols]
    expected = np.empty((len(positions), rows, cols), dtype=np.int16)
    order = list(range(len(positions)))
    if shuffle:
        order = order[::2] + order[1::2]
    paths = []
    for idx, k in enumerate(order):
        stored = 100 * k + 10 * jj + ii
        expected[k] = stored - 1024
        ds = ct_slice(rows=rows, cols=cols, position=positions[k], orientation=orientation, stored=stored,
                      series_uid=series_uid, study_uid=study_uid, instance=k + 1, **kw)
        paths.append(write(ds, folder / f"{prefix}{idx:03d}.dcm"))
    return paths, expected


def non_image(path: Path, kind: str = "SR", series_uid: Optional[str] = None) -> Path:
    """A structured report or an RT structure set (no pixel data)."""
    if kind == "SR":
        ds = _base(SR_CLASS, "SR", series_uid or generate_uid(), generate_uid())
        ds.ValueType = "CONTAINER"
        ds.ContinuityOfContent = "SEPARATE"
        ds.CompletionFlag = "COMPLETE"
        ds.VerificationFlag = "UNVERIFIED"
    else:
        ds = _base(RTSTRUCT_CLASS, "RTSTRUCT", series_uid or generate_uid(), generate_uid())
        ds.StructureSetLabel = "lungs"
        roi = Dataset()
        roi.ROINumber = 1
        roi.ROIName = "Lung"
        ds.StructureSetROISequence = DicomSequence([roi])
    return write(ds, path)


def enhanced_ct(path: Path, n: int = 5, rows: int = 8, cols: int = 9, dz: float = 3.0,
                z0: float = 10.0, descending: bool = True) -> tuple[Path, np.ndarray]:
    """A multi-frame Enhanced CT file; frames stored in descending z when ``descending``.

    Returns the path and the expected HU in ascending-z order.
    """
    ds = _base(ENHANCED_CT_CLASS, "CT", generate_uid(), generate_uid())
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.FrameOfReferenceUID = generate_uid()
    ds.InstanceNumber = 1
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [0.5, 0.6]
    pm.SliceThickness = dz
    shared.PixelMeasuresSequence = DicomSequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = DicomSequence([po])
    pvt = Dataset()
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = 1, -1000, "HU"
    shared.PixelValueTransformationSequence = DicomSequence([pvt])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per = []
    frames = np.empty((n, rows, cols), dtype=np.int16)
    expected = np.empty((n, rows, cols), dtype=np.int16)
    jj, ii = np.mgrid[0:rows, 0:cols]
    for f in range(n):
        k = n - 1 - f if descending else f  # ascending-z index of this frame
        item = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [-5.0, -6.0, z0 + k * dz]
        item.PlanePositionSequence = DicomSequence([pp])
        per.append(item)
        frames[f] = 50 * k + 3 * jj + ii
        expected[k] = frames[f] - 1000
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per)
    ds.PixelData = frames.tobytes()
    return write(ds, path), expected
