"""DICOM Segmentation (SEG) objects with highdicom, for scans that were opened from DICOM.

Writing: the canonical labels are brought back to the source layout
(:meth:`SourceOrientation.to_source`), so frame ``k`` of the SEG is the segmentation
of source image ``meta["dicom_files"][k]`` (or frame ``meta["dicom_frames"][k]`` of a
multi-frame source). The SEG is ``BINARY`` (one frame per segment and slice that
holds it; empty frames omitted), one segment per finding of the label table, with
category *Morphologically abnormal structure* (SCT 49755003), the finding's SNOMED
code as property type and the lung (SCT 39607008) as anatomic region. It references
the source series (study, series, frame of reference, SOP instances).

Reading needs the DICOM scan the SEG refers to: frames are matched to the scan's
SOP instances, and segments to LungLens labels by SNOMED code, then by name, then
by segment number.

Provenance: given the voxels a person edited, one more segment, "Edited by a person
(LungLens)" (algorithm type MANUAL, property type ``EDITED`` in the local coding scheme
``99LUNGLENS``), marks them; it overlaps the findings, which BINARY segmentations allow.
:func:`read_dicom_seg` leaves it out of the labels and :func:`read_dicom_seg_edited` reads it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pydicom

from .. import __version__
from ..errors import CorruptFileError, DataError, GeometryMismatchError, UnsupportedFormatError
from ..labels import LabelTable
from ..progress import CancelLike, Progress, check_cancel
from ..types import Volume
from ._common import wrap_errors
from .orientation import SourceOrientation
from .segments import SegmentMerger

__all__ = ["write_dicom_seg", "read_dicom_seg", "read_dicom_seg_edited"]

#: the property type of the segment that marks the voxels a person edited
PROVENANCE_CODE = ("EDITED", "99LUNGLENS", "Edited by a person")
PROVENANCE_LABEL = "Edited by a person (LungLens)"


def _descriptions(table: LabelTable):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    category = hd.sr.CodedConcept("49755003", "SCT", "Morphologically abnormal structure")
    lung = hd.sr.CodedConcept("39607008", "SCT", "Lung structure")
    algorithm = hd.AlgorithmIdentificationSequence(name="LungLens", version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence)
    out = []
    findings = [lab for lab in table if lab.value != 0]
    for number, lab in enumerate(findings, start=1):
        code, meaning = lab.snomed if lab.snomed[0] else ("49755003", lab.name)
        out.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=lab.name[:64], segmented_property_category=category,
            segmented_property_type=hd.sr.CodedConcept(code, "SCT", meaning),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=algorithm, anatomic_regions=[lung],
            # the label table's colour as RecommendedDisplayCIELabValue, so OHIF and Slicer
            # show GGO yellow, consolidation red and effusion green as LungLens does
            display_color=hd.color.CIELabColor.from_rgb(*lab.color)))
    return findings, out


def _provenance_description(number: int):
    import highdicom as hd

    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=PROVENANCE_LABEL,
        segmented_property_category=hd.sr.CodedConcept("49755003", "SCT", "Morphologically abnormal structure"),
        segmented_property_type=hd.sr.CodedConcept(*PROVENANCE_CODE),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        display_color=hd.color.CIELabColor.from_rgb(204, 51, 204))


def _is_provenance(desc) -> bool:
    return str(desc.segmented_property_type.value) == PROVENANCE_CODE[0] and \
        str(desc.segmented_property_type.scheme_designator) == PROVENANCE_CODE[1]


def write_dicom_seg(labels: np.ndarray, volume: Volume, path: str | Path, table: LabelTable,
                    progress: Optional[Progress] = None, cancel: Optional[CancelLike] = None,
                    edited: Optional[np.ndarray] = None) -> None:
    """Write ``labels`` (canonical, on ``volume``'s grid) as a DICOM SEG referencing ``volume``'s images.

    ``edited`` (boolean, the labels' shape) adds the provenance segment of the voxels a person edited.
    """
    import highdicom as hd

    files = volume.meta.get("dicom_files") or []
    frames_idx = volume.meta.get("dicom_frames") or [0] * len(files)
    if not files or "source_orientation" not in volume.meta:
        raise CorruptFileError("The scan has no record of its DICOM source images; reopen it from DICOM.")
    plan = SourceOrientation.from_dict(volume.meta["source_orientation"])
    source_labels = plan.to_source(labels)
    findings, descriptions = _descriptions(table)
    seg_numbers = np.zeros(256, dtype=np.uint8)
    for number, lab in enumerate(findings, start=1):
        seg_numbers[lab.value] = number
    source_labels = seg_numbers[source_labels]
    empty = [k for k, f in enumerate(files) if not f or (k < len(frames_idx) and frames_idx[k] < 0)]
    lost = int(np.count_nonzero(source_labels[empty])) if empty else 0
    if lost:  # a DICOM SEG stores labels on the series' images only: these would vanish from the file
        raise DataError(f"{lost:,} labelled voxels lie on {sum(bool(source_labels[k].any()) for k in empty)} "
                        "slice(s) that have no image in the series (missing slices, shown as air). A DICOM SEG "
                        "can store labels only on the series' images: erase them there, or save as NIfTI or "
                        ".seg.nrrd, which keep every slice.")
    with wrap_errors(files[0], "DICOM source image"):
        if volume.meta.get("multiframe"):
            source = [pydicom.dcmread(files[0], stop_before_pixels=True)]
            n_frames = int(source[0].get("NumberOfFrames", 1))
            pixel = np.zeros((n_frames,) + source_labels.shape[1:], dtype=np.uint8)
            for k, f in enumerate(frames_idx):
                if f >= 0:  # -1: a missing slice filled by the reader, with no source image
                    pixel[f] = source_labels[k]
        else:
            source = []
            real = [k for k, f in enumerate(files) if f]
            for k in real:
                check_cancel(cancel)
                source.append(pydicom.dcmread(files[k], stop_before_pixels=True))
            pixel = source_labels[real]
            edited_pixel = None if edited is None else plan.to_source(np.asarray(edited, np.uint8))[real]
        if edited is not None and volume.meta.get("multiframe"):
            edited_source = plan.to_source(np.asarray(edited, np.uint8))
            edited_pixel = np.zeros_like(pixel)
            for k, f in enumerate(frames_idx):
                if f >= 0:
                    edited_pixel[f] = edited_source[k]
        if edited is not None:
            # one boolean plane per segment (findings, then provenance): segments may overlap
            pixel = np.stack([pixel == number for number in range(1, len(findings) + 1)] +
                             [edited_pixel.astype(bool)], axis=-1)
            descriptions = descriptions + [_provenance_description(len(findings) + 1)]
        for ds in source:
            if not str(ds.get("SOPClassUID", "")).strip() or not str(ds.get("SOPInstanceUID", "")).strip():
                raise UnsupportedFormatError(
                    "DICOM SEG cannot be written for this scan: its images have an empty SOPClassUID or "
                    "SOPInstanceUID, so a segmentation cannot reference them. Save the labels as .nii.gz or "
                    ".seg.nrrd instead.")
    if progress is not None:
        progress(0.3, "Building DICOM SEG")
    check_cancel(cancel)
    with warnings.catch_warnings():  # highdicom nags about single-component patient names
        warnings.simplefilter("ignore", UserWarning)
        seg = _build(hd, source, pixel, descriptions)
    check_cancel(cancel)
    seg.save_as(str(path))


def _build(hd, source, pixel, descriptions):
    return hd.seg.Segmentation(
        source_images=source, pixel_array=pixel, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=901,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="LungLens",
        manufacturer_model_name="LungLens", software_versions=__version__, device_serial_number="0",
        series_description="LungLens findings", content_label="FINDINGS",
        content_description="COVID-19 pneumonia findings", omit_empty_frames=True)


def _open_seg(path: Path, reference: Volume):
    import highdicom as hd

    ds = pydicom.dcmread(str(path))
    if str(ds.get("SOPClassUID", "")) != "1.2.840.10008.5.1.4.1.1.66.4":
        raise CorruptFileError(f"{path.name} is a DICOM image, not a segmentation (SEG): it cannot be "
                               "used as labels.")
    seg = hd.seg.Segmentation.from_dataset(ds)
    ref_series = {str(s.SeriesInstanceUID) for s in ds.get("ReferencedSeriesSequence", [])}
    if ref_series and reference.meta.get("series_instance_uid") not in ref_series:
        raise GeometryMismatchError(f"{path.name} refers to another series ({', '.join(sorted(ref_series))})"
                                    ", not to the open scan. Open the scan it was made for.")
    return seg


def _segment_mask(seg, path: Path, reference: Volume, number: int) -> np.ndarray:
    """Segment ``number`` as a boolean mask in the scan's source layout (a FRACTIONAL one at 0.5 or more)."""
    pix = _segment_pixels(seg, path, reference, [number], combine=False)[..., 0]
    if str(getattr(seg, "segmentation_type", "")).upper().endswith("FRACTIONAL"):
        scale = float(getattr(seg, "MaximumFractionalValue", 255) or 255)
        return pix.astype(np.float32) / (scale if pix.dtype.kind in "ui" else 1.0) >= 0.5
    return pix > 0


def _segment_pixels(seg, path: Path, reference: Volume, numbers: list[int], combine: bool = True) -> np.ndarray:
    """The segments ``numbers`` (non-overlapping) in the scan's source layout, valued by segment number (or
    ``(..., segment)`` planes as stored with ``combine=False``)."""
    plan = SourceOrientation.from_dict(reference.meta["source_orientation"])
    if reference.meta.get("multiframe"):
        sop = reference.meta["sop_instance_uids"][0]
        frames = [int(f) for f in reference.meta["dicom_frames"]]
        real = [k for k, f in enumerate(frames) if f >= 0]
        got = np.asarray(seg.get_pixels_by_source_frame(
            source_sop_instance_uid=sop, source_frame_numbers=[frames[k] + 1 for k in real],
            segment_numbers=numbers, combine_segments=combine, relabel=False,
            assert_missing_frames_are_empty=True))
        n_slices = len(frames)
    else:
        uids = reference.meta["sop_instance_uids"]
        real = [k for k, u in enumerate(uids) if u]
        got = np.asarray(seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[uids[k] for k in real], segment_numbers=numbers,
            combine_segments=combine, relabel=False, assert_missing_frames_are_empty=True))
        n_slices = len(uids)
    pix = np.zeros((n_slices,) + got.shape[1:], dtype=got.dtype)
    pix[real] = got  # missing slices (filled by the reader) have no segmentation frame
    if pix.shape[:3] != plan.source_geometry.shape:
        raise GeometryMismatchError(f"{path.name}: frames are {pix.shape[1:]} but the scan's images are "
                                    f"{plan.source_geometry.shape[1:]}.")
    return pix


def read_dicom_seg(path: str | Path, reference: Volume, table: LabelTable, unknown: str = "refuse") -> np.ndarray:
    """Read a DICOM SEG over ``reference`` (a DICOM volume) as a canonical uint8 label map.

    Segments map to the table's findings by SNOMED code or label; one that is none of them (a lung, a nodule)
    is refused by name (``unknown="background"`` leaves it out, ``"keep"`` keeps its segment number).
    Segments of different findings that overlap (BINARY SEGs allow it) are refused with the overlap; a
    FRACTIONAL segment counts where its value is 0.5 or more.
    """
    path = Path(path)
    with wrap_errors(path, "DICOM SEG file"):
        seg = _open_seg(path, reference)
        merged = SegmentMerger(path, table, unknown, "where the SEG was made")
        for number in seg.segment_numbers:
            desc = seg.get_segment_description(number)
            if _is_provenance(desc):
                continue  # who edited, not what was found
            code = str(desc.segmented_property_type.value)
            label = str(desc.segment_label).lower()
            match = next((lab.value for lab in table if lab.value and (lab.snomed[0] == code or
                                                                     lab.name.lower() == label)), None)
            merged.add(_segment_mask(seg, path, reference, number), match, str(desc.segment_label), number)
        source = merged.result(SourceOrientation.from_dict(reference.meta["source_orientation"]).source_geometry.shape)
        if not merged.seen and _findings_in_frames(seg):
            # its frames hold findings, and none lies on the scan's images: made on other images (a SEG that
            # names no series, or names it wrongly), it would open empty without a word
            raise GeometryMismatchError(f"{path.name}: none of its segmentation frames lies on the open scan's "
                                        "images (it was made on other images). Open the scan it was made for.")
    return SourceOrientation.from_dict(reference.meta["source_orientation"]).from_source(source)


def _findings_in_frames(seg: Any) -> bool:
    """Whether a frame of a finding segment (not the provenance segment) holds a voxel (all findings erased by
    a person leave only the provenance segment's frames: that SEG opened as 'made on other images')."""
    pix = np.asarray(seg.pixel_array)
    pix = pix[None] if pix.ndim == 2 else pix
    groups = getattr(seg, "PerFrameFunctionalGroupsSequence", None) or []
    provenance = {n for n in seg.segment_numbers if _is_provenance(seg.get_segment_description(n))}
    for i, frame in enumerate(pix):
        try:
            number = int(groups[i].SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        except (IndexError, AttributeError):
            number = None
        if number not in provenance and frame.any():
            return True
    return False


def read_dicom_seg_edited(path: str | Path, reference: Volume) -> Optional[np.ndarray]:
    """The voxels a person edited, as stored by :func:`write_dicom_seg`; None when the SEG does not say."""
    path = Path(path)
    with wrap_errors(path, "DICOM SEG file"):
        seg = _open_seg(path, reference)
        numbers = [n for n in seg.segment_numbers if _is_provenance(seg.get_segment_description(n))]
        if not numbers:
            return None
        source = _segment_pixels(seg, path, reference, numbers[:1]) > 0
    return SourceOrientation.from_dict(reference.meta["source_orientation"]).from_source(source)
