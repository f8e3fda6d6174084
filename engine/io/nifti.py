"""NIfTI-1/-2 (``.nii``, ``.nii.gz``) reader and label writer (nibabel).

Reading streams the voxel data: nibabel parses the header, then the data block
(always Fortran order, so one ``z`` slice is one contiguous ``(y, x)`` C block) is
read in slabs of about 8 MB straight into the preallocated canonical array. A
``.nii.gz`` is decompressed once, front to back; nothing holds a second full copy.

- 4D (or more): the first volume is read, with a warning.
- 2D: a one-slice volume.
- ``scl_slope``/``scl_inter`` are applied; integer HU end up ``int16``,
  fractional values ``float32``; ``uint8`` data stays ``uint8`` with ``is_hu=False``.
"""

from __future__ import annotations

import zlib
from contextlib import closing
from pathlib import Path
from typing import Optional

import nibabel as nib
import numpy as np

from ..errors import CorruptFileError, UnsupportedFormatError
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Geometry, Volume
from ._common import HU_DOUBT, IntensityBuffer, guard_size, hu_scale_note, prefetch, read_exact, slab_size, wrap_errors
from .grid_checks import shear_note, spacing_note, unit_scale
from .orientation import canonicalize, plan_orientation
from .text_headers import LABEL_RATIO, SCAN_RATIO, check_compressed_size

__all__ = ["read_nifti", "write_nifti_labels", "read_nifti_labels"]


def _header_geometry(img: nib.Nifti1Image, shape_xyz: tuple[int, int, int], warnings: list[str],
                     name: str) -> Geometry:
    hdr = img.header
    affine = np.array(img.affine, dtype=float)
    shape_zyx = shape_xyz[::-1]
    m = affine[:3, :3]
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(m)) < 1e-12:
        zooms = [float(z) if np.isfinite(z) and z > 0 else 1.0 for z in hdr.get_zooms()[:3]]
        zooms += [1.0] * (3 - len(zooms))
        warnings.append(f"{name}: the orientation in the header is invalid; assumed an axial LPS grid "
                        f"with spacing {zooms} mm.")
        return Geometry(shape=shape_zyx, spacing=tuple(zooms[::-1]))
    try:
        unit = hdr.get_xyzt_units()[0]
    except Exception:  # noqa: BLE001 - an unknown unit code: millimetres, as the format's default
        unit = None
    affine[:3, :] *= unit_scale(unit, np.linalg.norm(m, axis=0), name, warnings)
    note = _qform_sform_note(img, name) or _orientation_note(hdr, name, img.get_filename())
    if note:
        warnings.append(note)
    geometry = Geometry.from_affine_ras(affine, shape=shape_zyx)
    for check in (spacing_note(geometry, name), shear_note(geometry, name, "a sheared affine, e.g. a gantry tilt")):
        if check:
            warnings.append(check)
    return geometry


def _orientation_note(hdr, name: str, path: Optional[str] = None) -> str:
    """A warning when the header does not say where the patient's sides are: both orientation codes 0 (ANALYZE
    style; nibabel and ITK then guess differently), or the qform's voxel sizes negative (invalid; nibabel reads
    them as positive, other tools do not: a mirror image between them)."""
    try:
        q_code, s_code = int(hdr["qform_code"]), int(hdr["sform_code"])
        pixdim = np.asarray(hdr["pixdim"][1:4], dtype=float)
        if path is not None:  # nibabel made them positive when it loaded the file: the file's own values
            with nib.openers.ImageOpener(path) as f:
                pixdim = np.asarray(type(hdr).from_fileobj(f, check=False)["pixdim"][1:4], dtype=float)
    except Exception:  # noqa: BLE001 - NIfTI-2 or an odd header: the qform/sform note covers what it can
        return ""
    if not q_code and not s_code:
        return (f"{name}: the header does not give the patient's orientation (qform and sform codes are 0): "
                "left-right and front-back are assumed as nibabel reads it, and other tools may show the image "
                "flipped. Check the side (R/L) against a known landmark, e.g. the heart or the aortic arch on the left.")
    if not s_code and np.any(pixdim < 0):
        return (f"{name}: the header's voxel sizes are negative ({', '.join(f'{v:g}' for v in pixdim)}), which "
                "NIfTI does not allow; they were read as positive, as nibabel does, and other tools may show the "
                "image mirrored. Check the side (R/L) against a known landmark.")
    return ""


def _qform_sform_note(img: nib.Nifti1Image, name: str) -> str:
    """A warning when the header's two orientations (qform and sform) both count and disagree: LungLens, like
    nibabel, uses the sform; ITK-based tools (3D Slicer, ITK-SNAP) use the qform, so the image can sit mirrored
    or elsewhere there."""
    hdr = img.header
    try:
        q, q_code = hdr.get_qform(coded=True)
        s, s_code = hdr.get_sform(coded=True)
    except Exception:  # noqa: BLE001 - a header nibabel cannot decode: its own reading stands
        return ""
    if not q_code or not s_code or q is None or s is None or np.allclose(q, s, atol=1e-3):
        return ""
    flips = [i for i in range(3) if np.dot(q[:3, i], s[:3, i]) < 0]
    what = "mirrored" if flips else "shifted or turned"
    cols = s[:3, :3] / np.linalg.norm(s[:3, :3], axis=0)
    if s_code == 1 and np.allclose(cols.T @ cols, np.eye(3), atol=1e-4):
        # ITK (5.1+) takes a rigid scanner-anatomical sform too: ITK-based tools agree with LungLens here
        return (f"{name}: the header's two orientations disagree (qform and sform): LungLens uses the sform, as "
                f"nibabel and ITK-based tools (3D Slicer, ITK-SNAP) do for this file; a tool that reads the qform "
                f"shows this image {what} against it. Check that labels made elsewhere sit where they should.")
    return (f"{name}: the header's two orientations disagree (qform and sform): LungLens uses the sform, as nibabel "
            f"does; ITK-based tools (3D Slicer, ITK-SNAP) use the qform for this file (sform code {int(s_code)}) and "
            f"show this image {what} against it. Check that labels made elsewhere sit where they should.")


class _GzipStream:
    """Forward-only reader of a (multi-member) gzip file, faster than :mod:`gzip`.

    zlib checks each member's CRC-32 and length itself (``wbits=31``), so the
    Python-level CRC of :class:`gzip.GzipFile` is not repeated; compressed input is
    read in 4 MB blocks.
    """

    _BLOCK = 4 * 1024 * 1024

    def __init__(self, path: Path) -> None:
        self._f = open(path, "rb")
        self._dec = zlib.decompressobj(31)
        self._pending = b""  # decompressed bytes not handed out yet
        self._input = b""
        self._eof = False

    def __enter__(self) -> "_GzipStream":
        return self

    def __exit__(self, *exc) -> None:
        self._f.close()

    def _more(self, want: int) -> bytes:
        while not self._eof:
            if self._dec.eof:
                rest = self._dec.unused_data
                self._dec = zlib.decompressobj(31)
                self._input = rest
                if not rest:
                    rest = self._f.read(self._BLOCK)
                    if not rest:
                        self._eof = True
                        return b""
                    self._input = rest
            if not self._input:
                self._input = self._f.read(self._BLOCK)
                if not self._input:
                    raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            out = self._dec.decompress(self._input, max(want, 1 << 16))
            self._input = self._dec.unconsumed_tail
            if out:
                return out
        return b""

    def readinto(self, view: memoryview) -> int:
        view = view.cast("B")
        got = 0
        while got < len(view):
            if not self._pending:
                self._pending = self._more(len(view) - got)
                if not self._pending:
                    break
            n = min(len(self._pending), len(view) - got)
            view[got:got + n] = self._pending[:n]
            self._pending = self._pending[n:]
            got += n
        return got

    def seek(self, offset: int) -> None:
        skip = bytearray(offset)
        read_exact(self, memoryview(skip), self._f.name)


def _open_raw(path: Path):
    return _GzipStream(path) if path.name.lower().endswith(".gz") else open(path, "rb")


def read_nifti(path: str | Path, progress: Optional[ProgressCallback] = None,
               cancel: Optional[CancelLike] = None) -> Volume:
    """Read a NIfTI file into a canonical :class:`Volume` (see the module doc)."""
    path = Path(path)
    report = as_progress(progress)
    warnings: list[str] = []
    with wrap_errors(path, "NIfTI file"):
        img = nib.load(str(path))
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise UnsupportedFormatError(f"{path.name} is not a single-file NIfTI image.")
        hdr = img.header
        full_shape = tuple(int(s) for s in hdr.get_data_shape())
        dtype = hdr.get_data_dtype()
        if dtype.fields is not None or dtype.kind == "c":
            raise UnsupportedFormatError(f"{path.name} stores {dtype} voxels (colour or complex); "
                                         "LungLens reads grey-level scans only.")
        if len(full_shape) == 0:
            raise CorruptFileError(f"{path.name}: the header gives no image dimensions.")
        guard_size(full_shape, dtype.itemsize, path)
        if len(full_shape) > 3:
            n_extra = int(np.prod(full_shape[3:]))
            if n_extra > 1:
                warnings.append(f"The file is {len(full_shape)}D with {n_extra} volumes; "
                                "only the first volume is shown.")
        shape_xyz = (tuple(full_shape[:3]) + (1, 1, 1))[:3]
        if len(full_shape) < 3:
            shape_xyz = (full_shape + (1, 1))[:2] + (1,)
        nx, ny, nz = shape_xyz
        slope = float(getattr(img.dataobj, "slope", 1.0))
        inter = float(getattr(img.dataobj, "inter", 0.0))
        scaled = slope != 1.0 or inter != 0.0
        source_geom = _header_geometry(img, shape_xyz, warnings, path.name)
        plan = plan_orientation(source_geom)
        is_hu = not (dtype == np.uint8 and not scaled)
        proxy = img.dataobj
        offset = int(getattr(proxy, "offset", hdr.get_data_offset()))
        _check_data_size(path, offset + nx * ny * nz * dtype.itemsize)
        buffer = IntensityBuffer(plan, np.uint8 if not is_hu else np.int16)
        if getattr(proxy, "order", "F") != "F":
            raise UnsupportedFormatError(f"{path.name}: unexpected data order.")
        dt = dtype
        slice_bytes = nx * ny * dt.itemsize
        step = slab_size(slice_bytes)
        counts = [min(step, nz - k0) * nx * ny for k0 in range(0, nz, step)]
        buffers = [np.empty(counts[0], dtype=dt) for _ in range(min(3, len(counts)))]
        with _open_raw(path) as f:
            f.seek(offset)
            k0 = 0
            with closing(prefetch(lambda view: read_exact(f, memoryview(view), path), buffers, counts)) as slabs:
                for chunk in slabs:
                    check_cancel(cancel)
                    n = chunk.size // (nx * ny)
                    slab = chunk.reshape(n, ny, nx)
                    if not dt.isnative:
                        slab = slab.astype(dt.newbyteorder("="))
                    if scaled:
                        slab = slab.astype(np.float64 if dt.itemsize > 4 else np.float32) * np.float32(slope) \
                            + np.float32(inter)
                    buffer.put(slab, k0)
                    k0 += n
                    report(k0 / nz, f"Reading {path.name}")
        array = buffer.finish(warnings, path)
        note = hu_scale_note(array, "a NIfTI file does not name its scale: values other than unscaled 8-bit are read "
                             "as HU") if is_hu else None
        if note:
            warnings.append(note)
    geometry = plan.canonical_geometry()
    meta = {"source_orientation": plan.to_dict(), "modality": "CT" if is_hu else "",
            "nifti_descrip": _descrip(hdr), **({"filled": buffer.filled} if buffer.filled else {})}
    if note:
        meta[HU_DOUBT] = True
    return Volume(array=array, geometry=geometry, is_hu=is_hu, source=str(path), format="nifti",
                  meta=meta, warnings=warnings)


def _check_data_size(path: Path, needed: int, ratio: int = SCAN_RATIO) -> None:
    """Refuse a file too short for the data its header announces, before allocating.

    A ``.gz`` file declaring more than ``ratio`` times its size (above 64 MB) is
    refused as a decompression bomb (see :mod:`.text_headers`).
    """
    size = path.stat().st_size
    if path.name.lower().endswith(".gz"):
        if size < 18:
            raise CorruptFileError(f"{path.name} is truncated (only {size} bytes).")
        # deflate cannot expand more than ~1032:1, so a header asking for more is impossible
        if needed > 1032 * size + 1024:
            raise CorruptFileError(f"{path.name} is truncated or damaged: {size} compressed bytes cannot hold "
                                   f"the {needed} bytes the header announces. Copy the file again.")
        check_compressed_size(path, size, needed, ratio)
    elif size < needed:
        raise CorruptFileError(f"{path.name} is truncated: it has {size} bytes but the header announces "
                               f"{needed}. Copy the file again.")


def _descrip(hdr) -> str:
    try:
        return bytes(hdr["descrip"]).split(b"\0")[0].decode("latin-1")
    except Exception:  # noqa: BLE001 - cosmetic field
        return ""


def write_nifti_labels(labels: np.ndarray, geometry: Geometry, path: str | Path,
                       like: Optional[str | Path] = None) -> None:
    """Write a ``(z, y, x)`` uint8 label map as NIfTI with the RAS affine of ``geometry``.

    ``like``: the scan's NIfTI file, when the labels lie on its grid: its qform and sform (with their codes)
    are copied, so every tool places the labels as it places the scan, whichever of the two it reads.
    """
    affine = geometry.affine_ras()
    img = nib.Nifti1Image(np.asarray(labels, dtype=np.uint8).T, affine)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    try:
        scan = nib.load(str(like)).header if like else None
        q, q_code = scan.get_qform(coded=True) if scan is not None else (None, 0)
        sf, s_code = scan.get_sform(coded=True) if scan is not None else (None, 0)
    except Exception:  # noqa: BLE001 - the scan file moved or cannot be read: the labels' own forms stand
        scan = None
    used = (sf if s_code else q) if scan is not None else None  # the form LungLens (nibabel) read the scan by
    if used is not None and np.allclose(used, affine, atol=1e-4):
        img.header.set_qform(q if q_code else affine, code=int(q_code) or 1)
        img.header.set_sform(sf if s_code else affine, code=int(s_code))
    img.header.set_intent("label", name="lunglens")
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = b"LungLens labels 0 bg 1 GGO 2 consol 3 effusion"
    nib.save(img, str(path))


def read_nifti_labels(path: str | Path) -> tuple[np.ndarray, Geometry]:
    """Read a NIfTI label map; returns the canonical uint8 array and its geometry."""
    path = Path(path)
    with wrap_errors(path, "NIfTI label file"):
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.header.get_data_shape())
        dtype = img.header.get_data_dtype()
        if dtype.fields is not None or dtype.kind == "c":
            raise UnsupportedFormatError(f"{path.name} stores {dtype} voxels (colour or complex): it is not a "
                                         "label map.")
        guard_size(shape, dtype.itemsize, path)  # the scan reader's guards, before anything is read
        if len(shape) > 3 and int(np.prod(shape[3:])) > 1:  # one-hot channels, several label maps: not one
            raise CorruptFileError(f"{path.name} holds {int(np.prod(shape[3:]))} volumes ({len(shape)}D, shape "
                                   f"{shape}): a label map is one 3D volume of values 0-3, so reading only the "
                                   "first would drop the others. Save the labels as one volume (e.g. the argmax of "
                                   "one-hot channels).")
        offset = int(getattr(img.dataobj, "offset", img.header.get_data_offset()))
        _check_data_size(path, offset + int(np.prod(np.asarray(shape, dtype=object))) * dtype.itemsize,
                         LABEL_RATIO)
        # scl_slope / scl_inter are applied (NIfTI semantics); the label-table check then sees real values
        data = np.asanyarray(img.dataobj)
        while data.ndim > 3:
            data = data[..., 0]
        while data.ndim < 3:
            data = data[..., None]
        geom = _header_geometry(img, tuple(data.shape), [], path.name)
        source = np.ascontiguousarray(data.T)
    arr, geometry, _ = canonicalize(source, geom)
    return arr, geometry
