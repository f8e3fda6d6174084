"""Checks of NRRD and MetaImage (MHA/MHD) text headers before SimpleITK reads any voxel.

- A detached header (``.nhdr``, ``.mhd``, or ``data file:`` in an NRRD) may only name
  data files in its own folder: no path separators, no ``..`` (a header naming
  ``/etc/passwd`` must not turn it into an image).
- A header that claims compression must sit over compressed data (zlib, gzip or
  bzip2 magic bytes): raw data under ``CompressedData = True`` is an error, not an
  all-zero image.
- Decompression is bounded: a scan declaring more than :data:`SCAN_RATIO` times
  its compressed size (and over 64 MB) is refused before anything is allocated; a
  CT scan does not compress like that, a decompression bomb does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import CorruptFileError

__all__ = ["check_text_header", "check_compressed_size", "header_fields", "SCAN_RATIO", "LABEL_RATIO"]

#: most a scan may expand on decompression (CT compresses about 2-5:1; padding-heavy scans ~20:1)
SCAN_RATIO = 200
#: deflate's own limit: label maps can be almost all zeros
LABEL_RATIO = 1032
_SMALL = 64 * 1024 ** 2
_HEAD_BYTES = 64 * 1024


def _parse(path: Path) -> tuple[str, dict[str, str], int, list[str]]:
    """(kind, fields with lower-case keys, offset of attached data, extra lines after the header)."""
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    fields: dict[str, str] = {}
    extra: list[str] = []
    if head.startswith(b"NRRD"):
        end = head.find(b"\n\n")
        text = head[:end if end >= 0 else len(head)].decode("latin-1")
        lines = text.splitlines()[1:]
        listing = False
        for line in lines:
            if listing:
                extra.append(line.strip())
                continue
            if line.startswith("#") or ":=" in line:
                continue
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
                if key.strip().lower() in ("data file", "datafile") and value.strip().upper().startswith("LIST"):
                    listing = True
        return "nrrd", fields, (end + 2 if end >= 0 else len(head)), extra
    offset = 0
    for raw in head.split(b"\n"):
        offset += len(raw) + 1
        key, sep, value = raw.decode("latin-1").partition("=")
        if not sep:
            continue
        fields[key.strip().lower()] = value.strip()
        if key.strip() == "ElementDataFile":
            break
    return "meta", fields, offset, extra


def header_fields(path: str | Path) -> tuple[str, dict[str, str]]:
    """``("nrrd" | "meta", fields)`` of a text header, keys in lower case (values as written)."""
    kind, fields, _, _ = _parse(Path(path))
    return kind, fields


def _data_names(kind: str, fields: dict[str, str], extra: list[str]) -> list[str]:
    value = fields.get("data file") or fields.get("datafile") if kind == "nrrd" else fields.get("elementdatafile")
    if not value or value.upper() == "LOCAL":
        return []
    first = value.split()[0]
    if first.upper() == "LIST":
        return [e for e in extra if e]
    if "%" in first:  # a printf pattern: the pattern itself must stay in the folder
        return [first]
    return [value if kind == "meta" else first]


def _check_names(path: Path, names: list[str]) -> list[Path]:
    files = []
    for name in names:
        if "/" in name or "\\" in name or name in (".", "..") or Path(name).is_absolute():
            raise CorruptFileError(f"{path.name} names '{name[:120]}' as its data file, outside its own folder: "
                                   "LungLens reads detached data only from the header's folder. Put the data file "
                                   f"next to {path.name} and name it without a path.")
        files.append(path.parent / name)
    return files


def _compressed(kind: str, fields: dict[str, str]) -> Optional[str]:
    if kind == "nrrd":
        enc = fields.get("encoding", "raw").lower()
        return {"gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}.get(enc)
    return "zlib" if fields.get("compresseddata", "false").lower() == "true" else None


def _magic_ok(codec: str, head: bytes) -> bool:
    if codec == "gzip":
        return head[:2] == b"\x1f\x8b"
    if codec == "bzip2":
        return head[:3] == b"BZh"
    # zlib (MetaImage): CMF 0x?8 with a valid check value; ITK also accepts a gzip header
    return head[:2] == b"\x1f\x8b" or (len(head) >= 2 and head[0] & 0x0F == 8
                                        and (head[0] * 256 + head[1]) % 31 == 0)


def check_compressed_size(path: str | Path, compressed_bytes: int, declared_bytes: int,
                          ratio: int = SCAN_RATIO) -> None:
    """Refuse data that would expand more than ``ratio`` times (only above 64 MB declared)."""
    if declared_bytes > _SMALL and declared_bytes > ratio * max(compressed_bytes, 1):
        raise CorruptFileError(
            f"{Path(path).name}: the header declares {declared_bytes / 1024 ** 2:.0f} MB of voxels but the file holds "
            f"only {compressed_bytes / 1024 ** 2:.1f} MB of compressed data (over {ratio}:1). A scan does not "
            "compress like that: the file is damaged or built to exhaust memory, so LungLens does not expand it.")


def check_text_header(path: str | Path, declared_bytes: int, ratio: int = SCAN_RATIO) -> None:
    """Run the module's checks on an NRRD / MHA / MHD header (see the module doc).

    Raises
    ------
    CorruptFileError
        Data file outside the folder, compression claimed over raw data, or a bomb.
    """
    path = Path(path)
    kind, fields, offset, extra = _parse(path)
    data_files = _check_names(path, _data_names(kind, fields, extra))
    codec = _compressed(kind, fields)
    if codec is None:
        return
    if data_files:
        target, start = data_files[0], 0
        if not target.is_file():
            return  # SimpleITK (and the missing-file check) report it
        size = sum(f.stat().st_size for f in data_files if f.is_file())
    else:
        target, start = path, offset
        size = path.stat().st_size - offset
    with open(target, "rb") as f:
        f.seek(start)
        head = f.read(4)
    if not _magic_ok(codec, head):
        what = "CompressedData = True" if kind == "meta" else f"encoding: {fields.get('encoding')}"
        raise CorruptFileError(f"{path.name}: the header says the voxels are compressed ({what}) but the data is "
                               "not compressed. The header does not describe the data; the file is damaged.")
    check_compressed_size(path, size, declared_bytes, ratio)
