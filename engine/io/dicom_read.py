"""Read one DICOM image series (from :mod:`engine.io.dicom_scan`) into a canonical Volume.

- Slices are sorted by ``ImagePositionPatient`` projected on the slice normal
  (``row x column`` cosines), ties by ``InstanceNumber``.
- Duplicate positions: the first image (lowest InstanceNumber) is kept, with a warning.
- Before any pixel is read, every header is checked against its pixel data
  (:mod:`.dicom_checks`); positions and orientations must be finite: a slice whose
  position is not finite is left out and named in a warning.
- Missing slices (a gap that is a whole multiple of the usual one) are filled with
  air (-1024 HU, or 0 for other modalities) so that positions and volumes stay true;
  the warning names the gap, and files skipped in the folder are named too. The
  gap is never absorbed into the spacing. Uneven gaps and gantry tilt give warnings.
  The slice spacing is ``|last - first| / (n - 1)`` counting filled slices, as
  ITK/SimpleITK compute it, and the third direction is the slice normal (tilted
  series are not resampled). Filled slices have ``""`` as file and SOP instance UID
  in ``meta`` and are listed in ``meta["missing_slices"]`` (source order).
- Rescale slope/intercept are applied per slice. CT ends up ``int16`` HU when the
  values are integers (the usual case), otherwise ``float32``.
- Uncompressed little-endian pixel data is read straight from the file at the offset
  found during the header pass (``np.fromfile``; headers are parsed once, by the scan);
  other transfer syntaxes are decoded by pydicom (pylibjpeg plugins: JPEG, JPEG-LS,
  JPEG 2000, RLE) on all cores (:mod:`.dicom_decode`), each codestream checked first.
- Enhanced (multi-frame) images: per-frame positions and rescale come from the
  functional groups; legacy multi-frame files use ``GridFrameOffsetVector`` or the
  slice spacing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ..errors import CorruptFileError, SeriesError, UnsupportedFormatError
from ..progress import CancelLike, Progress, ProgressCallback, as_progress, check_cancel
from ..types import Geometry, Volume
from ._common import HU_DOUBT, IntensityBuffer, guard_size, hu_scale_note, wrap_errors
from .dicom_checks import (MAX_FRAMES, MONOCHROME1_NOTE, check_codestream, check_in_plane, check_pixel_data,
                           grey_scale, implausible_hu_warning, invert_monochrome1, pitch_change)
from .dicom_decode import decode_files
from .dicom_scan import SeriesInfo, _num, frame_count, image_orientation
from .orientation import plan_orientation

__all__ = ["read_series"]

_NATIVE_LE = {ImplicitVRLittleEndian, ExplicitVRLittleEndian}
_DUPLICATE_TOL_MM = 0.01
#: a gap within this fraction of a whole multiple of the usual gap is that many missing slices
_MISSING_TOL = 0.15
#: bytes of a compressed pixel data value read before decoding, for the codestream check
_HEAD_BYTES = 8192 + 16


@dataclass
class _Frame:
    header: Dataset
    path: str
    frame: int  # index inside a multi-frame file, 0 for single-frame files
    sop_uid: str
    instance: int
    position: Optional[np.ndarray]
    slope: float
    intercept: float
    #: the header (top level or functional groups) gives a rescale intercept
    rescaled: bool = True


def _fg(ds: Dataset, per_frame: Optional[Dataset], seq: str, attr: str) -> Any:
    """Look up a functional-group attribute in the frame's group, then the shared one."""
    for group in (per_frame, (ds.get("SharedFunctionalGroupsSequence") or [None])[0]):
        if group is not None and group.get(seq):
            value = group.get(seq)[0].get(attr)
            if value is not None:
                return value
    return None


def _position(value: Any) -> Optional[np.ndarray]:
    if value is None or len(value) != 3:
        return None
    try:
        return np.asarray([float(v) for v in value])
    except (TypeError, ValueError):
        return None


def _frames(info: SeriesInfo, warnings: list[str]) -> list[_Frame]:
    frames: list[_Frame] = []
    turned: list[str] = []  # frames of a multi-frame image in another plane than its first
    for path, ds in zip(info.files, info.headers):
        n = frame_count(ds)
        per = ds.get("PerFrameFunctionalGroupsSequence")
        base_slope = _num(ds.get("RescaleSlope"), 1.0) or 1.0
        base_inter = _num(ds.get("RescaleIntercept"), 0.0) or 0.0
        instance = int(_num(ds.get("InstanceNumber"), 0) or 0)
        ipp = ds.get("ImagePositionPatient")
        if n == 1 and per is None:
            pos = _position(ipp)
            frames.append(_Frame(ds, path, 0, str(ds.get("SOPInstanceUID", "")), instance, pos,
                                 base_slope, base_inter, "RescaleIntercept" in ds))
            continue
        offsets = ds.get("GridFrameOffsetVector")
        iop0 = image_orientation(ds)
        for f in range(n):
            item = per[f] if per is not None and f < len(per) else None
            own = _fg(ds, item, "PlaneOrientationSequence", "ImageOrientationPatient")
            if own is not None and iop0 is not None and not _same_plane(own, iop0):
                turned.append(f"{Path(path).name} frame {f + 1}")  # another plane: not a slice of this stack
                continue
            pos_val = _fg(ds, item, "PlanePositionSequence", "ImagePositionPatient")
            pos = _position(pos_val)
            if pos is None and _position(ipp) is not None:
                pos = _position(ipp) + _legacy_offset(ds, f, offsets, warnings)
            slope = _num(_fg(ds, item, "PixelValueTransformationSequence", "RescaleSlope"), base_slope)
            given = _fg(ds, item, "PixelValueTransformationSequence", "RescaleIntercept")
            inter = _num(given, base_inter)
            frames.append(_Frame(ds, path, f, str(ds.get("SOPInstanceUID", "")), f, pos,
                                 slope or 1.0, inter or 0.0, given is not None or "RescaleIntercept" in ds))
    if turned:
        warnings.append(f"{len(turned)} frame(s) lie in another plane than the first frame and were left out "
                        f"({', '.join(turned[:4])}{' ...' if len(turned) > 4 else ''}): one volume holds one plane "
                        "of slices.")
    _check_rescale(frames, warnings)
    bad = [fr for fr in frames if fr.position is not None and not np.all(np.isfinite(fr.position))]
    missing = [fr for fr in frames if fr.position is None]
    if missing and 2 * len(missing) < len(frames):  # most images place the slices: one without a position is out
        names = ", ".join(_frame_name(fr) for fr in missing[:5]) + (" ..." if len(missing) > 5 else "")
        warnings.append(f"{len(missing)} image(s) were left out because they give no ImagePositionPatient while "
                        f"the others do: {names}. If they lay between other slices, their place is shown as a "
                        "missing slice.")
        frames = [fr for fr in frames if fr.position is not None]
    if bad:
        if len(bad) == len(frames):
            raise CorruptFileError(f"{Path(bad[0].path).name}: ImagePositionPatient {tuple(bad[0].position)} is "
                                   "not a finite position in any image of the series. The headers are damaged.")
        names = ", ".join(_frame_name(fr) for fr in bad[:5]) + (" ..." if len(bad) > 5 else "")
        warnings.append(f"{len(bad)} image(s) were left out because their ImagePositionPatient is not a finite "
                        f"position (NaN or infinite): {names}. Their place is shown as missing slices.")
        bad_ids = {id(fr) for fr in bad}
        frames = [fr for fr in frames if id(fr) not in bad_ids]
    return frames


def _same_plane(iop: Any, ref: tuple[float, ...]) -> bool:
    try:
        return bool(np.allclose([float(v) for v in iop], ref, atol=1e-3))
    except (TypeError, ValueError):
        return True  # unreadable: the series' orientation stands


def _frame_name(fr: _Frame) -> str:
    return Path(fr.path).name + (f" frame {fr.frame + 1}" if fr.frame else "")


def _check_rescale(frames: list[_Frame], warnings: list[str]) -> None:
    """Images whose rescale is missing, zero or not a number among images that give one take the series' value,
    and it is said (QA pass: one slice without RescaleIntercept read 1024 HU too bright, without a word)."""
    ok = [fr for fr in frames if fr.rescaled and np.isfinite(fr.intercept) and np.isfinite(fr.slope)
          and fr.slope != 0 and _given_slope(fr) != 0]
    good = {id(fr) for fr in ok}
    bad = [fr for fr in frames if id(fr) not in good]
    if frames and all(_given_slope(fr) == 0 for fr in frames):
        warnings.append("Every image gives RescaleSlope 0, which would make every voxel the same value: the header "
                        "is wrong, and the images were read with a slope of 1. Check the intensities (air about "
                        "-1000 HU, soft tissue 0 to 100 HU).")
    if not bad or not ok:  # all alike: hu_scale_note speaks of the whole series (_rescale_said)
        return
    pairs = [(fr.slope, fr.intercept) for fr in ok]
    slope, inter = max(set(pairs), key=pairs.count)
    for fr in bad:
        fr.slope, fr.intercept, fr.rescaled = slope, inter, True
    names = ", ".join(_frame_name(fr) for fr in bad[:5]) + (" ..." if len(bad) > 5 else "")
    warnings.append(f"{len(bad)} image(s) give no valid rescale (RescaleSlope / RescaleIntercept missing, zero or not "
                    f"a number): {names}. They were read with the other images' RescaleSlope {slope:g} and "
                    f"RescaleIntercept {inter:g}; check that their brightness matches the neighbouring slices.")


def _given_slope(fr: _Frame) -> Optional[float]:
    """The RescaleSlope the header itself gives (``_frames`` turns a zero into 1)."""
    return _num(fr.header.get("RescaleSlope"))


def _legacy_offset(ds: Dataset, f: int, offsets: Any, warnings: list[str]) -> np.ndarray:
    iop = image_orientation(ds) or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    normal = np.cross(iop[:3], iop[3:])
    if offsets is not None and len(offsets) > f:
        return normal * float(offsets[f])
    step = _num(ds.get("SpacingBetweenSlices")) or _num(ds.get("SliceThickness")) or 1.0
    if f == 1:
        warnings.append(f"Multi-frame file without per-frame positions: assumed {step:g} mm between frames.")
    return normal * step * f


def _pixel_spacing(ds: Dataset, warnings: list[str]) -> tuple[float, float, bool]:
    ps = ds.get("PixelSpacing")
    if ps is None:  # a multi-frame image: the shared groups, else the frames' own (allowed by the standard)
        per = ds.get("PerFrameFunctionalGroupsSequence") or [None]
        ps = _fg(ds, per[0], "PixelMeasuresSequence", "PixelSpacing")
        iop0 = image_orientation(ds)
        others = {tuple(round(float(v), 4) for v in got) for item in per[1:] if item is not None  # frames left
                  for own in [_fg(ds, item, "PlaneOrientationSequence", "ImageOrientationPatient")]  # out: not
                  if own is None or iop0 is None or _same_plane(own, iop0)  # counted (another plane)
                  for got in [_fg(ds, item, "PixelMeasuresSequence", "PixelSpacing")] if got is not None}
        if ps is not None and others - {tuple(round(float(v), 4) for v in ps)}:
            raise SeriesError(f"The frames of this image have different pixel spacings ({sorted(others)[:3]} ...): "
                              "they do not share one grid, and LungLens cannot show them as one volume.")
    if ps is None:
        ps = ds.get("ImagerPixelSpacing")
    try:
        dy, dx = float(ps[0]), float(ps[1])
        if dy > 0 and dx > 0 and np.isfinite(dy) and np.isfinite(dx):
            return dy, dx, True
    except (TypeError, ValueError, IndexError):
        pass
    warnings.append("The images give no pixel spacing: 1 mm is assumed, measurements are not in real units.")
    return 1.0, 1.0, False


def _sort_and_check(frames: list[_Frame], normal: np.ndarray, warnings: list[str],
                    ) -> tuple[list[Optional[_Frame]], float]:
    """Sorted, de-duplicated frames (``None`` for a missing slice) and the slice spacing (mm, 0 when unknown)."""
    if any(fr.position is None for fr in frames):
        frames = sorted(frames, key=lambda fr: (fr.instance, fr.path, fr.frame))
        if len(frames) > 1:
            n_none = sum(fr.position is None for fr in frames)
            which = "The images give" if n_none == len(frames) else f"{n_none} of the {len(frames)} images give"
            # the stack runs along the slices' normal: which end image 1 is follows from its direction
            axial = abs(normal[2]) > 0.7
            ends = (f"image {frames[0].instance} at the {'feet' if normal[2] > 0 else 'head'} end and image "
                    f"{frames[-1].instance} at the {'head' if normal[2] > 0 else 'feet'} end" if axial else
                    f"image {frames[0].instance} first and image {frames[-1].instance} last")
            warnings.append(f"{which} no ImagePositionPatient: slices are ordered by InstanceNumber, {ends}, and the "
                            "slice spacing is taken from the header (SliceThickness or SpacingBetweenSlices). If the "
                            "anatomy runs the wrong way, the scanner numbered the images the other way; positions and "
                            "volumes across the slices are approximate.")
        return frames, 0.0
    proj = np.asarray([float(fr.position @ normal) for fr in frames])
    order = sorted(range(len(frames)), key=lambda i: (round(proj[i], 4), frames[i].instance, frames[i].path))
    frames = [frames[i] for i in order]
    proj = proj[order]
    keep = [0]
    for i in range(1, len(frames)):
        if abs(proj[i] - proj[keep[-1]]) < _DUPLICATE_TOL_MM:
            continue
        keep.append(i)
    if len(keep) < len(frames):
        dropped = len(frames) - len(keep)
        warnings.append(f"{dropped} image(s) repeat the position of another slice (duplicates or a second "
                        "acquisition); kept the first image at each position.")
        frames = [frames[i] for i in keep]
        proj = proj[keep]
    if len(frames) < 2:
        return frames, 0.0
    side_step = check_in_plane(np.asarray([fr.position for fr in frames]), [_frame_name(fr) for fr in frames],
                               proj, normal, warnings)
    gaps = np.diff(proj)
    med = float(np.median(gaps))
    fine = float(gaps.min())
    if fine < 0.75 * med and np.all(np.abs(gaps / fine - np.rint(gaps / fine)) <= _MISSING_TOL):
        med = fine  # a finer part (the thicker one is the majority): the grid is the finest gap, not the median
    big = np.nonzero(gaps > 1.5 * med)[0]
    out: list[Optional[_Frame]] = list(frames)
    pitch: set[int] = set()
    if big.size:
        whole = [int(round(gaps[i] / med)) for i in big]
        exact = all(abs(gaps[i] / med - m) <= _MISSING_TOL for i, m in zip(big, whole))
        if not exact or sum(whole) - len(whole) > 4 * len(frames):
            where = ", ".join(f"{gaps[i]:.2f} mm after slice {i}" for i in big[:3])
            raise SeriesError(f"The slices are not evenly spaced: the usual gap is {med:.2f} mm but there is "
                              f"{where}{' ...' if big.size > 3 else ''}, which is not a whole number of missing "
                              "slices. LungLens cannot place these images on one grid; open a complete series.")
        pitch = pitch_change(big, whole)
        out = []
        big_set = set(big.tolist())
        for i, fr in enumerate(frames):
            out.append(fr)
            if i in big_set:
                out.extend([None] * (int(round(gaps[i] / med)) - 1))
        lone = [i for i in big if i not in pitch]
        if lone:
            n_missing = sum(int(round(gaps[i] / med)) - 1 for i in lone)
            # named by file and position along the slice normal (the viewer's z in mm for axial slices),
            # not by a slice index, whose counting and direction differ from the viewer's
            where = ", ".join(f"{int(round(gaps[i] / med)) - 1} between {Path(frames[i].path).name} at "
                              f"{proj[i]:.1f} mm and {Path(frames[i + 1].path).name} at {proj[i + 1]:.1f} mm"
                              for i in lone[:3])
            warnings.append(f"{n_missing} slice(s) are missing ({where}{' ...' if len(lone) > 3 else ''}); the "
                            f"usual gap is {med:.2f} mm. The missing slices are shown as air so that positions and "
                            "volumes stay true; nothing can be seen or measured there. Copy the series again.")
        if pitch:
            first, last = min(pitch), max(pitch)
            n_empty = sum(int(round(gaps[i] / med)) - 1 for i in pitch)
            warnings.append(f"From {Path(frames[first].path).name} at {proj[first]:.1f} mm to "
                            f"{Path(frames[last + 1].path).name} at {proj[last + 1]:.1f} mm the slices are "
                            f"{gaps[first]:.3g} mm apart, not {med:.3g} mm: the series' slice spacing changes there, "
                            f"or every other slice is missing (the headers cannot tell which). The {n_empty} places "
                            f"between them on the {med:.3g} mm grid are shown as air: nothing can be seen or measured "
                            "there, and volumes in that part count only the slices present (half or less of it).")
    elif not pitch and gaps.max() - gaps.min() > max(0.01 * med, 0.01):
        warnings.append(f"Uneven slice gaps ({gaps.min():.3f} to {gaps.max():.3f} mm); the volume uses the "
                        "mean gap, so positions along z are approximate.")
    span = frames[-1].position - frames[0].position
    # the distance between slice planes (along the normal), not along the stack: with a gantry tilt the slice
    # origins step sideways too, and that step is no thickness (QA pass: volumes 10 % high at 25 degrees)
    spacing = abs(float(span @ normal)) / (len(out) - 1)
    frames = out  # type: ignore[assignment]
    height = abs(float(span @ normal))
    if side_step is not None:  # the robust line: a slice off sideways at either end does not make a tilt
        shift = float(np.linalg.norm(side_step)) * height
    else:
        shift = float(np.linalg.norm(span - (span @ normal) * normal))
    tilt = float(np.degrees(np.arctan2(shift, height)))
    if tilt > 30.0:  # no gantry tilts that far: the positions do not make one stack
        warnings.append(f"The slice positions step {shift:.0f} mm sideways over {height:.0f} mm of height ({tilt:.0f} "
                        "degrees), more than any gantry tilt: the series may mix acquisitions. Its slices are shown "
                        "stacked straight; check them, or open a clean series.")
    elif tilt > 0.5:
        warnings.append(f"Gantry tilt of about {tilt:.1f} degrees: slices are shown stacked straight, so the 3D "
                        f"shape is sheared (the last slice sits {shift:.0f} mm sideways of where it is shown); "
                        f"volumes use the {spacing:.3g} mm between slice planes.")
    return out, spacing


def _native_pixels(fr: _Frame, rows: int, cols: int) -> Optional[np.ndarray]:
    """The stored values of one frame of uncompressed little-endian data, read at the offset the scan found.

    ``None`` when the frame needs pydicom's decoders (compressed, big-endian, unusual bit depth).
    """
    ds = fr.header
    spp = int(ds.get("SamplesPerPixel", 1))
    if spp != 1:
        raise UnsupportedFormatError(f"{Path(fr.path).name} is a colour image ({spp} samples per pixel); "
                                     "LungLens reads grey-level CT.")
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    bits = int(ds.get("BitsAllocated", 16))
    stored = int(ds.get("BitsStored", bits))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    elem = ds.get_item(0x7FE00010, keep_deferred=True)
    if not (ts in _NATIVE_LE and bits in (8, 16, 32) and elem is not None):
        return None
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}").newbyteorder("<")
    count = rows * cols
    offset_in_data = fr.frame * count * dtype.itemsize
    value = getattr(elem, "value", None)
    if value is None and getattr(elem, "value_tell", None) is not None:
        arr = np.fromfile(fr.path, dtype=dtype, count=count, offset=int(elem.value_tell) + offset_in_data)
    elif isinstance(value, (bytes, bytearray)):
        arr = np.frombuffer(value, dtype=dtype, count=count, offset=offset_in_data) \
            if len(value) >= offset_in_data + count * dtype.itemsize else np.empty(0, dtype)
    else:
        return None
    if arr.size != count:
        raise CorruptFileError(f"{Path(fr.path).name} is truncated: its pixel data is shorter than "
                               f"{rows}x{cols} pixels. Copy the series again.")
    arr = arr.reshape(rows, cols)
    if stored < bits:
        if signed:  # sign-extend from the stored bits
            shift = bits - stored
            arr = (arr << shift) >> shift
        else:  # bits above BitsStored are not part of the value (old files keep overlays there), as pydicom masks them
            arr = arr & np.array((1 << stored) - 1, dtype=arr.dtype)
    return arr


def _pixel_data_head(fr: _Frame) -> bytes:
    """The first bytes of the pixel data element's value (enough for :func:`check_codestream`)."""
    elem = fr.header.get_item(0x7FE00010, keep_deferred=True)
    if elem is None:
        raise CorruptFileError(f"{Path(fr.path).name} has no pixel data: the file is truncated.")
    value = getattr(elem, "value", None)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[:_HEAD_BYTES])
    tell = getattr(elem, "value_tell", None)
    if tell is None:
        return b""
    with open(fr.path, "rb") as f:
        f.seek(int(tell))
        return f.read(_HEAD_BYTES)


def _decoded_frame(fr: _Frame, pix: np.ndarray, j: int, rows: int, cols: int) -> np.ndarray:
    """Image ``j`` of decoded pixels ``pix`` (frame ``fr``), after checking its size against the header."""
    if pix.shape[-2:] != (rows, cols) or j >= pix.shape[0]:
        raise CorruptFileError(f"{Path(fr.path).name}: the decoded image is {pix.shape[-2:]} but the header "
                               f"says {rows}x{cols}.")
    return pix[j]


def read_series(info: SeriesInfo, progress: Optional[ProgressCallback] = None,
                cancel: Optional[CancelLike] = None) -> Volume:
    """Read the series ``info`` into a canonical :class:`Volume`."""
    report = as_progress(progress)
    warnings: list[str] = []
    folder = Path(info.folder)
    with wrap_errors(folder / Path(info.files[0]).name, "DICOM series"):
        first = info.headers[0]
        rows, cols = int(first.Rows), int(first.Columns)
        warnings.extend(info.notes)
        total = 0
        monochrome1 = False
        for path, ds in zip(info.files, info.headers):  # every size check before any per-frame work
            total += check_pixel_data(path, ds, rows, cols)
            monochrome1 |= grey_scale(path, ds) == "MONOCHROME1"
            if total > MAX_FRAMES:
                raise CorruptFileError(f"Series {info.uid} has more than {MAX_FRAMES} images: the headers are "
                                       "damaged, or the folder mixes many series with one UID.")
        guard_size((total, rows, cols), 2, info.files[0])
        frames = _frames(info, warnings)
        iop = image_orientation(first)
        if iop is None:
            iop = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
            warnings.append("The images give no orientation (ImageOrientationPatient): assumed axial.")
        r, c = np.asarray(iop[:3]), np.asarray(iop[3:])
        nr, nc = float(np.linalg.norm(r)), float(np.linalg.norm(c))
        if not (0.9 < nr < 1.1 and 0.9 < nc < 1.1) or abs(float(r @ c)) > 0.05 * nr * nc:
            raise CorruptFileError(f"{Path(info.files[0]).name}: ImageOrientationPatient {tuple(iop)} is not two "
                                   "perpendicular unit vectors, so the image has no valid orientation. The header "
                                   "is damaged.")
        r, c = r / nr, c / nc
        normal = np.cross(r, c)
        normal /= np.linalg.norm(normal)
        frames, dz = _sort_and_check(frames, normal, warnings)
        if not frames:
            raise SeriesError(f"Series {info.uid} has no usable image.")
        if dz <= 0:
            dz = _num(first.get("SpacingBetweenSlices")) or _num(first.get("SliceThickness")) or 1.0
            dz = dz if dz > 0 else 1.0
        dy, dx, known = _pixel_spacing(first, warnings)
        origin = frames[0].position if frames[0].position is not None else np.zeros(3)
        source_geom = Geometry(shape=(len(frames), rows, cols), spacing=(dz, dy, dx), origin=tuple(origin),
                               direction=np.stack([r, c, normal], axis=1), spacing_known=known)
        plan = plan_orientation(source_geom)
        modality = str(first.get("Modality", "")).upper()
        is_hu = modality == "CT"
        buffer = IntensityBuffer(plan, np.int16)
        scale: Optional[str] = None
        # CT values are Hounsfield units whatever the display convention; other images follow it
        invert = monochrome1 and not is_hu
        if invert:
            warnings.append(MONOCHROME1_NOTE)
        _read_pixels(frames, rows, cols, buffer, -1024 if is_hu else 0, report, cancel, invert)
        array = buffer.finish(warnings, info.files[0])
        if is_hu:
            pad = _num(first.get("PixelPaddingValue"))
            pad_hu = None if pad is None else pad * (_num(first.get("RescaleSlope"), 1.0) or 1.0) + \
                (_num(first.get("RescaleIntercept"), 0.0) or 0.0)
            note = implausible_hu_warning(array, int(first.get("PixelRepresentation", 0) or 0) == 1, pad_hu)
            if note:
                warnings.append(note)
            scale = hu_scale_note(array, _rescale_said(frames))
            if scale:
                warnings.append(scale)
    meta = _meta(first, info, frames, plan)
    if len(frames) > 1 and frames[0].position is not None and frames[-1].position is not None:
        step = float(np.linalg.norm(frames[-1].position - frames[0].position)) / (len(frames) - 1)
        if abs(step - dz) > 1e-3 * dz:  # tilted: versions before 2026-12 took this step as the slice spacing
            meta["tilted_step_mm"] = step
    if buffer.filled:
        meta["filled"] = buffer.filled
    if is_hu and scale:
        meta[HU_DOUBT] = True
    return Volume(array=array, geometry=plan.canonical_geometry(), is_hu=is_hu, source=str(folder)
                  if not info.multiframe else info.files[0], format="dicom", meta=meta, warnings=warnings)


def _rescale_said(frames: list[Optional[_Frame]]) -> str:
    """What the images' headers say of their rescale (the frames' own values, functional groups included;
    ``None``: a missing slice)."""
    frames = [fr for fr in frames if fr is not None]
    if not any(fr.rescaled for fr in frames):
        return "the header gives no RescaleIntercept"
    pairs = sorted({(fr.slope, fr.intercept) for fr in frames})
    if len(pairs) == 1:
        return f"RescaleSlope {pairs[0][0]:g}, RescaleIntercept {pairs[0][1]:g}"
    inter = [p[1] for p in pairs]
    return f"RescaleIntercept {min(inter):g} to {max(inter):g} across the images"


def _read_pixels(frames: list[Optional[_Frame]], rows: int, cols: int, buffer: IntensityBuffer, fill_value: int,
                 report: Progress, cancel: Optional[CancelLike], invert: bool = False) -> None:
    """Put every frame's physical values into ``buffer``: uncompressed ones here, compressed ones in parallel.

    Uncompressed frames are read at the offset the header pass found (no second parse).
    Every compressed file's codestream is checked before any of them is decoded; the
    files (the frames of a multi-frame file one by one) are then decoded by
    :func:`.dicom_decode.decode_files` (all cores, each result placed at its slice
    index, ``cancel`` checked between files). ``invert``: ``MONOCHROME1`` frames are inverted
    (:func:`.dicom_checks.invert_monochrome1`; images that are not CT).
    """
    n = len(frames)
    count = [0]

    def put(k: int, fr: _Frame, stored: np.ndarray) -> None:
        if invert and str(fr.header.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
            stored = invert_monochrome1(stored, fr.header)
        if fr.slope == 1.0 and float(fr.intercept).is_integer():
            values = stored.astype(np.int32)
            if fr.intercept:
                values += int(fr.intercept)
        else:
            values = stored.astype(np.float32) * np.float32(fr.slope) + np.float32(fr.intercept)
        buffer.put(values[None], k)
        count[0] += 1
        if count[0] % 4 == 0 or count[0] == n:
            report(count[0] / n, f"Reading slice {count[0]}/{n}")

    fill = np.full((1, rows, cols), fill_value, dtype=np.int16)
    by_file: dict[str, list[tuple[int, _Frame]]] = {}
    for k, fr in enumerate(frames):
        check_cancel(cancel)
        if fr is None:
            buffer.put(fill, k)
            count[0] += 1
            continue
        stored = _native_pixels(fr, rows, cols)
        if stored is None:
            by_file.setdefault(fr.path, []).append((k, fr))
        else:
            put(k, fr, stored)
    if not by_file:
        return
    tasks: list[tuple[int, str, Optional[int]]] = []
    targets: list[list[tuple[int, _Frame, int]]] = []  # per task: (slice index, frame, index in the result)
    for path, members in by_file.items():
        check_codestream(path, members[0][1].header, _pixel_data_head(members[0][1]))  # all before decoding
        if len(members) > 1:  # a multi-frame file: its frames decode in parallel
            for k, fr in members:
                tasks.append((len(tasks), path, fr.frame))
                targets.append([(k, fr, 0)])
        else:
            tasks.append((len(tasks), path, None))
            targets.append([(k, fr, fr.frame) for k, fr in members])
    with contextlib.closing(decode_files(tasks, cancel=cancel)) as decoded:
        for i, pix in decoded:
            for k, fr, j in targets[i]:
                put(k, fr, _decoded_frame(fr, pix, j, rows, cols))


def _meta(ds: Dataset, info: SeriesInfo, frames: list[Optional[_Frame]], plan) -> dict[str, Any]:
    def s(name: str) -> str:
        return str(ds.get(name, "") or "")
    return {
        "modality": s("Modality"), "patient_id": s("PatientID"), "patient_name": s("PatientName"),
        "patient_sex": s("PatientSex"), "patient_age": s("PatientAge"), "study_date": s("StudyDate"),
        "study_description": s("StudyDescription"), "series_description": s("SeriesDescription"),
        "series_number": info.number, "manufacturer": s("Manufacturer"),
        "convolution_kernel": s("ConvolutionKernel"), "slice_thickness": _num(ds.get("SliceThickness")),
        "study_instance_uid": s("StudyInstanceUID"), "series_instance_uid": info.series_instance_uid,
        "series_key": info.uid, "frame_of_reference_uid": s("FrameOfReferenceUID"),
        "sop_class_uid": s("SOPClassUID"),
        # in source-slice order (source array axis 0); see meta["source_orientation"]
        "sop_instance_uids": [fr.sop_uid if fr else "" for fr in frames],
        "dicom_files": [fr.path if fr else "" for fr in frames],
        "dicom_frames": [fr.frame if fr else -1 for fr in frames],
        "missing_slices": [k for k, fr in enumerate(frames) if fr is None],
        "multiframe": info.multiframe,
        "source_orientation": plan.to_dict(),
    }
