"""Read only chosen top-level tags of a DICOM file, fast, and fall back to pydicom when unsure.

A folder scan parses one header per slice, and pydicom spends most of that time
building elements and nested sequences (``ReferencedImageSequence``, de-identification
codes ...) that LungLens never looks at, even with ``specific_tags`` (it still parses
every sequence of undefined length). :func:`read_tags` walks the top-level elements
of a memory-mapped file with :mod:`struct`, jumps over unwanted values and sequences
(item by item for undefined lengths), and hands the wanted ones to pydicom as raw
elements, exactly as pydicom's own reader would have made them (same VR, length,
value and ``value_tell``; values longer than ``defer_size``, such as the pixel data,
are deferred). pydicom converts them when they are first used.

It is more lenient than pydicom in one way: an unused sequence is only checked for
its item structure, so damage inside it (which makes pydicom refuse the whole file)
does not stop LungLens from reading the tags it uses.

It returns ``None`` (and the caller uses pydicom's reader) for anything it does not
handle exactly like pydicom: no ``DICM`` preamble, big-endian or deflated transfer
syntaxes, a malformed or truncated element, a VR that is not two capital letters
(pydicom's implicit-VR switch), or a wanted sequence of undefined length (enhanced
multi-frame functional groups).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Optional

from pydicom.dataelem import RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.tag import BaseTag

__all__ = ["read_tags"]

_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_CHARSET = 0x00080005
_PIXEL_DATA = 0x7FE00010
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_IMPLICIT_LE = "1.2.840.10008.1.2"
_NOT_EXPLICIT_LE = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.99"}  # BE, deflated
_TAG = struct.Struct("<HH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_ITEM_HEAD = struct.Struct("<HHI")
_MAX_DEPTH = 32


class _Unsure(Exception):
    """Something pydicom's reader should decide."""


def _header(buf: mmap.mmap, pos: int, implicit: bool) -> tuple[int, Optional[str], int, int]:
    """(tag, VR or None, length, value position) of the element starting at ``pos``."""
    n = len(buf)
    if pos + 8 > n:
        raise _Unsure
    group, elem = _TAG.unpack_from(buf, pos)
    if implicit or group == 0xFFFE:
        return group << 16 | elem, None, _U32.unpack_from(buf, pos + 4)[0], pos + 8
    vr = buf[pos + 4:pos + 6]
    if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
        raise _Unsure  # pydicom would switch to implicit VR here
    if vr in _LONG_VRS:
        if pos + 12 > n:
            raise _Unsure
        return group << 16 | elem, vr.decode("ascii"), _U32.unpack_from(buf, pos + 8)[0], pos + 12
    return group << 16 | elem, vr.decode("ascii"), _U16.unpack_from(buf, pos + 6)[0], pos + 8


def _skip_items(buf: mmap.mmap, pos: int, implicit: bool, depth: int) -> int:
    """Position after the sequence delimiter of an undefined-length value whose items start at ``pos``."""
    if depth > _MAX_DEPTH:
        raise _Unsure
    n = len(buf)
    while True:
        if pos + 8 > n:
            raise _Unsure
        group, elem, length = _ITEM_HEAD.unpack_from(buf, pos)
        tag = group << 16 | elem
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Unsure
        if length != _UNDEFINED:
            pos += length
            continue
        while True:  # an item of undefined length: its elements, then the item delimiter
            tag, vr, length, vpos = _header(buf, pos, implicit)
            if tag == _ITEM_END:
                pos = vpos
                break
            pos = _skip_items(buf, vpos, implicit or vr == "UN", depth + 1) if length == _UNDEFINED \
                else vpos + length


def read_tags(path: str | Path, tags: frozenset[int], defer_size: int) -> Optional[FileDataset]:
    """The file's meta information and its top-level elements in ``tags``, or ``None`` (see the module doc)."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _read(buf, str(path), tags, defer_size)
    except Exception:  # noqa: BLE001 - _Unsure, or anything odd: pydicom's reader decides
        return None


def _read(buf: mmap.mmap, path: str, tags: frozenset[int], defer_size: int) -> FileDataset:
    n = len(buf)
    if n < 132 or buf[128:132] != b"DICM":
        raise _Unsure
    meta: dict[BaseTag, RawDataElement] = {}
    pos = 132
    while pos + 8 <= n and _U16.unpack_from(buf, pos)[0] == 0x0002:
        tag, vr, length, vpos = _header(buf, pos, False)
        if length == _UNDEFINED or vpos + length > n:
            raise _Unsure
        meta[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, length, buf[vpos:vpos + length], vpos, False, True)
        pos = vpos + length
    ts_elem = meta.get(BaseTag(0x00020010))
    if ts_elem is None:
        raise _Unsure
    ts = ts_elem.value.decode("ascii").strip("\0 ")
    if ts in _NOT_EXPLICIT_LE:
        raise _Unsure
    implicit = ts == _IMPLICIT_LE
    wanted = tags | {_CHARSET}
    elems: dict[BaseTag, RawDataElement] = {}
    while pos < n:
        tag, vr, length, vpos = _header(buf, pos, implicit)
        if tag >> 16 == 0xFFFE:
            raise _Unsure
        if length == _UNDEFINED:
            end = _skip_items(buf, vpos, implicit or vr == "UN", 0)
            if tag in wanted:
                if tag != _PIXEL_DATA:
                    raise _Unsure  # a sequence we want whole: pydicom parses it
                value = None if end - 4 - vpos >= defer_size else buf[vpos:end - 8]  # as pydicom counts
                elems[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, length, value, vpos, implicit, True)
            pos = end
            continue
        if vpos + length > n:
            raise _Unsure  # truncated: pydicom decides what is left
        if tag in wanted:
            if length > defer_size and tag != _CHARSET:
                value = None
            else:
                value = buf[vpos:vpos + length] if length else empty_value_for_VR(vr, raw=True)
            elems[BaseTag(tag)] = RawDataElement(BaseTag(tag), vr, length, value, vpos, implicit, True)
        pos = vpos + length
    ds = FileDataset(path, Dataset(elems), preamble=buf[:128], file_meta=FileMetaDataset(meta),
                     is_implicit_VR=implicit, is_little_endian=True)
    ds.set_original_encoding(implicit, True, ds._character_set)
    return ds
