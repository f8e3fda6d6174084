"""Consistency checks of DICOM image headers against their pixel data, run before any pixel is read.

A header that does not describe its pixels must never give a silently wrong image:

- :func:`check_pixel_data` compares the native pixel data length with
  ``Rows x Columns x NumberOfFrames x SamplesPerPixel x BitsAllocated / 8`` (a 1x512
  image, a sheared 512x511 one, an 8-bit read of 16-bit data are all refused) and
  refuses absurd frame counts before any per-frame work.
- :func:`check_codestream` compares an encapsulated transfer syntax with the first
  bytes of the codestream (JPEG 2000 labelled JPEG Baseline is an error; no decoder
  is tried as a fallback).
- :func:`implausible_hu_warning` says when CT values cannot be Hounsfield units, which
  is what a wrong ``PixelRepresentation`` produces.
- :func:`grey_scale` reads the grey-scale convention (``PhotometricInterpretation``):
  a colour-palette image is refused (its values are indices into a colour table, not
  intensities); :func:`invert_monochrome1` turns ``MONOCHROME1`` (the lowest value shown
  white) into the usual convention for images that are not CT (CT values are Hounsfield
  units whatever the display convention, and are kept).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from pydicom.dataset import Dataset

from ..errors import CorruptFileError, UnsupportedFormatError
from ._common import guard_size

__all__ = ["check_pixel_data", "check_codestream", "implausible_hu_warning", "grey_scale", "invert_monochrome1",
           "MONOCHROME1_NOTE", "MAX_FRAMES", "NATIVE_SYNTAXES"]

#: most frames (slices) one series or multi-frame file may have
MAX_FRAMES = 20_000
NATIVE_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
_UNDEFINED = 0xFFFFFFFF

# transfer syntax -> (name, codestream kind, allowed JPEG SOF markers)
_JPEG = {
    "1.2.840.10008.1.2.4.50": ("JPEG Baseline", "jpeg", {0xC0}),
    "1.2.840.10008.1.2.4.51": ("JPEG Extended", "jpeg", {0xC0, 0xC1}),
    "1.2.840.10008.1.2.4.57": ("JPEG Lossless", "jpeg", {0xC3}),
    "1.2.840.10008.1.2.4.70": ("JPEG Lossless SV1", "jpeg", {0xC3}),
    "1.2.840.10008.1.2.4.80": ("JPEG-LS Lossless", "jpeg", {0xF7}),
    "1.2.840.10008.1.2.4.81": ("JPEG-LS Near-lossless", "jpeg", {0xF7}),
    "1.2.840.10008.1.2.4.90": ("JPEG 2000 Lossless", "j2k", set()),
    "1.2.840.10008.1.2.4.91": ("JPEG 2000", "j2k", set()),
    "1.2.840.10008.1.2.4.201": ("HTJ2K Lossless", "j2k", set()),
    "1.2.840.10008.1.2.4.202": ("HTJ2K Lossless RPCL", "j2k", set()),
    "1.2.840.10008.1.2.4.203": ("HTJ2K", "j2k", set()),
    "1.2.840.10008.1.2.5": ("RLE Lossless", "rle", set()),
}
_SOF_NAMES = {0xC0: "JPEG Baseline", 0xC1: "JPEG Extended", 0xC2: "progressive JPEG", 0xC3: "JPEG Lossless",
              0xF7: "JPEG-LS"}


def transfer_syntax(ds: Dataset) -> str:
    return str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "1.2.840.10008.1.2")


def _int(ds: Dataset, name: str, default: int) -> int:
    try:
        return int(ds.get(name, default))
    except (TypeError, ValueError):
        return default


def check_pixel_data(path: str | Path, ds: Dataset, rows: int, cols: int) -> int:
    """Refuse a file whose native pixel data length disagrees with its header; return its frame count.

    Raises
    ------
    CorruptFileError
        Absurd frame count or size, or pixel data of another length than the header says.
    """
    name = Path(path).name
    raw_frames = ds.get("NumberOfFrames", 1)
    try:
        n = int(raw_frames) if raw_frames not in (None, "") else 1
    except (TypeError, ValueError):
        raise CorruptFileError(f"{name}: NumberOfFrames '{raw_frames}' is not a number. The header is damaged.")
    if n < 1 or n > MAX_FRAMES:
        raise CorruptFileError(f"{name}: the header claims {n} frames (LungLens opens 1 to {MAX_FRAMES}). "
                               "The header is damaged.")
    bits = _int(ds, "BitsAllocated", 16)
    spp = _int(ds, "SamplesPerPixel", 1)
    if bits not in (1, 8, 16, 32, 64):
        raise CorruptFileError(f"{name}: BitsAllocated {bits} is not a valid DICOM value. The header is damaged.")
    stored = _int(ds, "BitsStored", bits)
    if not 1 <= stored <= bits:
        raise CorruptFileError(f"{name}: BitsStored {stored} does not fit BitsAllocated {bits}. "
                               "The header is damaged.")
    guard_size((n, rows, cols, max(spp, 1)), max(1, bits // 8), path)
    if transfer_syntax(ds) not in NATIVE_SYNTAXES:
        return n
    elem = ds.get_item(0x7FE00010, keep_deferred=True)
    if elem is None:
        raise CorruptFileError(f"{name} has no pixel data: the file is truncated or holds no image.")
    value = getattr(elem, "value", None)
    length = len(value) if isinstance(value, (bytes, bytearray)) else getattr(elem, "length", None)
    if length is None:
        return n
    expected = (rows * cols * n * spp * bits + 7) // 8
    if length == _UNDEFINED:
        raise CorruptFileError(f"{name}: the pixel data is encapsulated but the transfer syntax says it is not "
                               "compressed. The file is damaged.")
    if length not in (expected, expected + (expected % 2)):
        raise CorruptFileError(
            f"{name}: its pixel data has {length} bytes but the header describes {rows} rows x {cols} columns x "
            f"{n} frame(s) x {bits} bits = {expected} bytes. The header does not describe the pixels "
            "(damaged or badly converted file); LungLens does not guess the image size.")
    return n


def first_fragment(data: bytes) -> Optional[bytes]:
    """The first bytes (up to 4 kB) of the first codestream fragment of encapsulated pixel data."""
    pos = 0
    for _ in range(2):  # basic offset table item, then the first fragment item
        if len(data) < pos + 8 or data[pos:pos + 4] != b"\xfe\xff\x00\xe0":
            return None
        length = int.from_bytes(data[pos + 4:pos + 8], "little")
        if _ == 0:
            pos += 8 + length
        else:
            return data[pos + 8:pos + 8 + min(length, 4096)]
    return None  # pragma: no cover


def _jpeg_sof(head: bytes) -> Optional[int]:
    """The SOF marker of a JPEG / JPEG-LS codestream, or None when none is found in ``head``."""
    pos = 2
    while pos + 4 <= len(head):
        if head[pos] != 0xFF:
            return None
        marker = head[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)) or marker == 0xF7:
            return marker
        pos += 2 + int.from_bytes(head[pos + 2:pos + 4], "big")
    return None


def _kind(head: bytes) -> str:
    if head.startswith(b"\xff\x4f\xff\x51") or head.startswith(b"\x00\x00\x00\x0cjP  "):
        return "a JPEG 2000 codestream"
    if head.startswith(b"\xff\xd8"):
        sof = _jpeg_sof(head)
        return f"a {_SOF_NAMES.get(sof, 'JPEG')} codestream" if sof is not None else "a JPEG codestream"
    return "not a known codestream"


def check_codestream(path: str | Path, ds: Dataset, pixel_data: bytes) -> None:
    """Refuse encapsulated pixel data whose codestream is not what the transfer syntax says.

    Raises
    ------
    CorruptFileError
        The first fragment is missing or is another kind of codestream.
    UnsupportedFormatError
        The transfer syntax is one LungLens does not decode.
    """
    name = Path(path).name
    ts = transfer_syntax(ds)
    if ts in NATIVE_SYNTAXES:
        return
    if ts not in _JPEG:
        raise UnsupportedFormatError(f"{name}: transfer syntax {ts} is not one LungLens decodes (JPEG, JPEG-LS, "
                                     "JPEG 2000, RLE or uncompressed). Convert the series with your PACS export.")
    label, kind, sofs = _JPEG[ts]
    head = first_fragment(bytes(pixel_data[:8192 + 16]))
    if not head:
        raise CorruptFileError(f"{name}: the transfer syntax says {label} but the pixel data holds no "
                               "compressed fragment. The file is damaged.")
    ok = False
    if kind == "j2k":
        ok = head.startswith(b"\xff\x4f\xff\x51") or head.startswith(b"\x00\x00\x00\x0cjP  ")
    elif kind == "jpeg":
        ok = head.startswith(b"\xff\xd8") and _jpeg_sof(head) in sofs
    elif kind == "rle":
        segments = int.from_bytes(head[:4], "little") if len(head) >= 64 else 0
        ok = 1 <= segments <= 15 and int.from_bytes(head[4:8], "little") == 64
    if not ok:
        found = _kind(head) if kind != "rle" else "not an RLE segment table"
        raise CorruptFileError(f"{name}: the transfer syntax says {label} but the pixel data is {found}. "
                               "The file was mislabelled by the software that wrote it; LungLens refuses it "
                               "rather than decode it with a guess (values could be wrong).")


def implausible_hu_warning(array: np.ndarray, signed: bool, padding_hu: Optional[float]) -> Optional[str]:
    """A warning when CT values cannot be Hounsfield units (the sign of a wrong PixelRepresentation).

    Real CT lies between about -1024 and +3071 HU (metal up to ~30000); padding and
    outside-the-field values are one constant. Many distinct values far below air, or
    values above 30000, mean the stored values were read with the wrong sign rule.
    """
    n = array.size
    if n == 0:
        return None
    high = int(np.count_nonzero(array > 30000))
    flat = array.reshape(-1)
    step = max(1, flat.size // 2_000_000)  # the spread below air is judged on ~2 million voxels
    sample = flat[::step]
    low_values = sample[sample < -1100]
    if padding_hu is not None:
        low_values = low_values[low_values != padding_hu]
    low = 0
    if low_values.size:
        values, counts = np.unique(low_values, return_counts=True)
        low = int(low_values.size - counts.max()) * step  # one constant (outside the field of view) is allowed
        low = low if values.size > 3 else 0
    if high == 0 and low <= max(10, n // 2000):
        return None
    what = "signed" if signed else "unsigned"
    other = "unsigned" if signed else "signed"
    detail = (f"{high} voxel(s) above 30000 HU" if high else "") + (" and " if high and low else "") + \
        (f"{'about ' if step > 1 else ''}{low} voxel(s) spread below -1100 HU" if low else "")
    return (f"The CT values are not plausible Hounsfield units ({detail}): the header says the stored values "
            f"are {what} (PixelRepresentation), but they may be {other}. Check the scan with the PACS before "
            "measuring anything.")


MONOCHROME1_NOTE = ("The images are stored as MONOCHROME1 (the lowest value is meant to be shown white): "
                    "their grey values were inverted on reading, so that dense tissue is bright as usual.")


def grey_scale(path: str | Path, ds: Dataset) -> str:
    """The image's ``PhotometricInterpretation`` (``MONOCHROME2`` when absent).

    Raises
    ------
    UnsupportedFormatError
        A ``PALETTE COLOR`` image: its values index a colour table; read as grey they would
        give a wrong image without any sign of it.
    """
    value = str(ds.get("PhotometricInterpretation", "") or "MONOCHROME2").strip().upper()
    if value == "PALETTE COLOR":
        raise UnsupportedFormatError(f"{Path(path).name} is a colour-palette image (PhotometricInterpretation "
                                     "PALETTE COLOR): its values are colour-table indices, not intensities. "
                                     "LungLens reads grey-level CT.")
    return value


def invert_monochrome1(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """Stored values of a ``MONOCHROME1`` image inverted within their range (``BitsStored``, signed or
    not): the lowest becomes the highest, so that the usual convention (low = dark) shows the image
    as its writer meant it. int64. 16-bit unsigned data inverts into the top of its range (0..4095 ->
    61440..65535), which makes the volume float32 (values above int16)."""
    bits = _int(ds, "BitsStored", _int(ds, "BitsAllocated", 16))
    if not 1 <= bits <= 32:
        raise UnsupportedFormatError(f"A MONOCHROME1 image with {bits} bits stored: LungLens inverts 1 to 32 bits.")
    if _int(ds, "PixelRepresentation", 0) == 1:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        lo, hi = 0, (1 << bits) - 1
    return (lo + hi) - stored.astype(np.int64)


# ---------------------------------------------------------------- the slices' positions
def pitch_change(big: np.ndarray, whole: list[int]) -> set[int]:
    """The wide gaps that run on (at least 3 consecutive gaps of the same whole multiple of the usual one): the
    series' spacing changes there, or every other slice is missing, and the headers cannot tell which (QA pass:
    1 mm then 2 mm slices were named "8 slices missing, copy the series again")."""
    out: set[int] = set()
    run = [0]
    for j in range(1, len(big) + 1):
        if j < len(big) and big[j] == big[j - 1] + 1 and whole[j] == whole[j - 1]:
            run.append(j)
            continue
        if len(run) >= 3:
            out.update(int(big[r]) for r in run)
        run = [j]
    return out


def check_in_plane(positions: np.ndarray, names: list[str], proj: np.ndarray, normal: np.ndarray,
                   warnings: list[str]) -> Optional[np.ndarray]:
    """Say which slices lie sideways off the line of the others (a straight or tilted stack): they are shown aligned
    with the others, so what they hold is misplaced (QA pass: a slice 20 mm off was stacked without a word).

    Returns the line's sideways step per mm along the normal (a gantry tilt; zero for a straight stack), fitted
    by medians so that one slice far off does not bend it; ``None`` under 5 slices, too few to tell which is off.
    """
    if len(names) < 5:
        return None
    pos = np.asarray(positions, dtype=float)
    side = pos - np.outer(proj, normal)  # the in-plane part of each position
    # constant, or linear along the stack (a gantry tilt), fitted robustly (medians): one slice far off must not
    # bend the line towards it
    h = len(names) // 2  # slopes between slices half the stack apart: one slice off moves at most two of them
    step = np.median((side[h:] - side[:-h]) / np.maximum(proj[h:] - proj[:-h], 1e-6)[:, None], axis=0)
    base = np.median(side - np.outer(proj, step), axis=0)
    off = np.linalg.norm(side - base - np.outer(proj, step), axis=1)
    odd = np.nonzero(off > max(2.0, 5.0 * float(np.median(off))))[0]  # clearly off: not a rounding or jitter
    if odd.size and odd.size <= len(names) // 2:
        listed = ", ".join(names[i] for i in odd[:5]) + (" ..." if odd.size > 5 else "")
        warnings.append(f"{odd.size} slice(s) lie up to {off.max():.0f} mm sideways off the line of the other slices "
                        f"({listed}); they are shown aligned with the others, so what they show is misplaced by that "
                        "much. The series may mix two acquisitions: check those slices, or open a clean series.")
    return step
