"""What a batch reads: scans found in folder trees, list files and PACS queries.

A SOURCE on the command line is one of

- a **folder tree**: every scan below it. A folder that holds DICOM files (directly)
  or numbered image slices is one scan; a scan file (``.nii``, ``.nii.gz``, ``.nrrd``,
  ``.mha``, ``.mhd``, ``.dcm`` alone in its folder is still a DICOM folder) is one scan;
  hidden entries are skipped;
- a **list file** (``.txt`` / ``.lst``): one scan path per line (relative paths are
  relative to the list file; ``#`` starts a comment);
- a **PACS query**: ``dicomweb+http://host/dicom-web?modality=CT&date=2020-01-01..2020-12-31``
  (or ``dicomweb+https://``; keys ``patient``, ``date``, ``modality``, ``accession``,
  ``limit``, default 1000 studies): every CT series of the matching studies, retrieved
  by the task that reads it (credentials from ``LUNGLENS_PACS_*``). A query that
  reaches its limit is an error rather than a silently incomplete cohort.

Each scan gets a ``key`` (its absolute path, or server + series UID) from which the
batch derives an id that is safe to share (:func:`scan_id`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ..errors import LungLensError

__all__ = ["ScanSource", "discover", "scan_id", "redact", "SCAN_SUFFIXES", "LIST_SUFFIXES"]

SCAN_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
LIST_SUFFIXES = (".txt", ".lst")
_SKIP_SUFFIXES = (".seg.nrrd", ".json", ".csv", ".md", ".raw", ".zraw", ".pdf", ".parquet", ".jsonl")
PACS_PREFIXES = ("dicomweb+http://", "dicomweb+https://")


@dataclass(frozen=True)
class ScanSource:
    """One scan of a batch.

    Attributes
    ----------
    key
        Stable identity: the absolute path, or ``<server>#<study>/<series>`` for PACS.
    kind
        ``"path"`` or ``"pacs"``.
    path
        The file or folder (``kind == "path"``).
    server, study_uid, series_uid
        Where to retrieve it (``kind == "pacs"``).
    """

    key: str
    kind: str = "path"
    path: str = ""
    server: str = ""
    study_uid: str = ""
    series_uid: str = ""


def scan_id(key: str, salt: bytes) -> str:
    """An id for ``key`` that is safe to share: a keyed hash (HMAC-SHA256 with the batch's salt).

    Without the salt (kept in the batch folder, not in the cohort table) the id
    reveals nothing about the path or UIDs it came from.
    """
    return "s" + hmac.new(salt, key.encode("utf-8"), hashlib.sha256).hexdigest()[:15]


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` of a ``dicomweb+`` source removed (for files and messages)."""
    if not text.lower().startswith(PACS_PREFIXES):
        return text
    parts = urlsplit(text)
    if "@" not in parts.netloc:
        return text
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, parts.query, parts.fragment))


def discover(sources: Iterable[str]) -> list[ScanSource]:
    """The scans of every SOURCE, in a stable order, each once.

    Raises
    ------
    LungLensError
        A SOURCE does not exist or holds no scan.
    """
    out: dict[str, ScanSource] = {}
    for text in sources:
        found = _one(text)
        if not found:
            raise LungLensError(f"{redact(text)} holds no scan: give folders of scans, scan files, a list file or "
                                "a dicomweb+http(s):// query.")
        for scan in found:
            out.setdefault(scan.key, scan)
    return list(out.values())


def _one(text: str) -> list[ScanSource]:
    if text.lower().startswith(PACS_PREFIXES):
        return _pacs(text)
    path = Path(text).expanduser()
    if not path.exists():
        raise LungLensError(f"{path} does not exist: give a folder of scans, a scan, a list file or a "
                            "dicomweb+http(s):// query.")
    if path.is_file() and path.name.lower().endswith(LIST_SUFFIXES):
        return _list_file(path)
    if path.is_file():
        return [_path_source(path)]
    return _tree(path)


def _path_source(path: Path) -> ScanSource:
    p = path.resolve()
    return ScanSource(key=str(p), kind="path", path=str(p))


def _list_file(path: Path) -> list[ScanSource]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.lower().startswith(PACS_PREFIXES):
            out += _pacs(line)
            continue
        p = Path(line).expanduser()
        p = p if p.is_absolute() else path.parent / p
        # a missing scan is listed anyway: its task fails with the reason, the batch goes on
        out.append(_path_source(p) if p.exists() else ScanSource(key=str(p.absolute()), path=str(p.absolute())))
    return out


def _is_scan_file(p: Path) -> bool:
    n = p.name.lower()
    return n.endswith(SCAN_SUFFIXES) and not n.endswith(_SKIP_SUFFIXES)


def _tree(root: Path) -> list[ScanSource]:
    from ..io.dicom_scan import is_dicom_file
    from ..io.images import image_files

    out: list[ScanSource] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(folder)
        names = sorted(f for f in files if not f.startswith("."))
        plain = [here / f for f in names if not f.lower().endswith(_SKIP_SUFFIXES)]
        if any(is_dicom_file(p) for p in plain[:16] if not _is_scan_file(p)) or image_files(here):
            out.append(_path_source(here))  # a DICOM series or an image stack: one scan
            dirs[:] = []  # its sub-folders belong to it
            continue
        out += [_path_source(p) for p in plain if _is_scan_file(p)]
    return out


def _pacs(text: str) -> list[ScanSource]:
    """The CT series of the studies a ``dicomweb+http(s)://...?query`` finds."""
    from ..pacs import PacsClient, StudyQuery, parse_date_range

    raw = text[len("dicomweb+"):]
    parts = urlsplit(raw)
    if "@" in parts.netloc:
        raise LungLensError(f"Give the PACS credentials of {redact(text).split('?')[0]} in LUNGLENS_PACS_USERNAME "
                            "and LUNGLENS_PACS_PASSWORD (or LUNGLENS_PACS_TOKEN), not in the source URL: every "
                            "worker reads them from there, and a URL would be written to the batch folder.")
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    params = dict(parse_qsl(parts.query))
    unknown = set(params) - {"patient", "date", "modality", "accession", "limit"}
    if unknown:
        raise LungLensError(f"Unknown PACS query key(s) {', '.join(sorted(unknown))}: use patient, date, "
                            "modality, accession, limit.")
    lo, hi = parse_date_range(params["date"]) if params.get("date") else (None, None)
    modality = params.get("modality", "CT")
    query = StudyQuery(patient=params.get("patient", ""), date_from=lo, date_to=hi, modality=modality,
                       accession=params.get("accession", ""), limit=int(params.get("limit", 1000)))
    with PacsClient(url) as client:
        studies = client.find(query)
        url = client.server.url
    if len(studies) >= query.limit:
        raise LungLensError(f"The PACS query {url} found {len(studies)} studies, its limit: there may "
                            f"be more. Narrow it (date=..., modality=...) or raise limit= (now {query.limit}).")
    out = []
    for study in studies:
        for series in study.series:
            if series.modality.upper() != modality.upper():
                continue
            out.append(ScanSource(key=f"{url}#{study.study_uid}/{series.series_uid}", kind="pacs", server=url,
                                  study_uid=study.study_uid, series_uid=series.series_uid))
    return out


def describe(scan: ScanSource, root: Optional[Path] = None) -> str:
    """A short name for messages on this machine (never in the shared table)."""
    if scan.kind == "pacs":
        return f"series {scan.series_uid}"
    p = Path(scan.path)
    if root is not None:
        try:
            return str(p.relative_to(root))
        except ValueError:
            pass
    return p.name
