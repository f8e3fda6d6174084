"""The batch folder's records: ledger, salt, cohort table (CSV + Parquet) and failures file.

Layout of ``OUT/``::

    batch.json       salt of the scan ids + settings (private: with it ids can be linked back)
    sources.csv      scan id -> source path / PACS series (private)
    batch.jsonl      ledger: one JSON row per finished task, appended and fsynced as tasks
                     finish; the latest row of a scan wins (this is what makes a rerun resume)
    cohort.csv       one row per scan of the batch (:data:`~.task.SHARED_COLUMNS`): safe to share
    cohort.parquet   the same table, typed (pyarrow)
    failures.csv     scan id, source, stage and reason of each failed scan (private)
    scans/<scan id>/ labels.nii.gz, findings.json, report.pdf

The tables are rewritten from the ledger at the end of each run, so they always
describe every scan of the sources, finished in this run or an earlier one.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterable, Optional

from ..errors import LungLensError
from .task import COLUMNS, SHARED_COLUMNS

__all__ = ["Ledger", "batch_salt", "write_tables", "write_sources", "column_unit", "COLUMN_TYPES"]

_INT = ("slices", "rows", "cols", "severity_pan", "severity_pan_max", "severity_chung", "severity_chung_max")
_STR = ("scan_id", "status", "stage", "reason", "format", "device", "worker", "finished_utc", "segmentation_model",
        "lunglens_version", "rsna_category")
#: Parquet type of each column: string, int64, bool or float64
COLUMN_TYPES = {c: ("string" if c in _STR else "int64" if c in _INT else "bool" if c in ("is_hu", "assessed")
                     else "float64")
                for c in COLUMNS}


def column_unit(column: str) -> str:
    """The unit of a cohort column ("" when it has none), also stored in the Parquet schema."""
    for suffix, unit in (("_ml", "mL"), ("_pct_lung", "% of lung volume"), ("_probability", "probability 0-1"),
                         ("_mm", "mm"), ("_rss_mb", "MB"), ("_s", "s")):
        if column.endswith(suffix):
            return unit
    return "points" if column.startswith("severity_") else ""


def batch_salt(out: Path, settings: Optional[dict[str, Any]] = None) -> bytes:
    """The salt of this batch folder's scan ids (created once, then reused so reruns keep the ids)."""
    path = out / "batch.json"
    if path.is_file():
        try:
            return bytes.fromhex(json.loads(path.read_text())["salt"])
        except (ValueError, KeyError) as exc:
            raise LungLensError(f"{path} is damaged ({exc.__class__.__name__}): restore it, or start the batch in "
                                "a new folder (scan ids depend on it).") from None
    out.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_bytes(16)
    _atomic_text(path, json.dumps({"salt": salt.hex(), "created_utc": _now(), "settings": settings or {}},
                                  indent=1) + "\n")
    return salt


class Ledger:
    """``OUT/batch.jsonl``: the rows of finished tasks, appended durably as they arrive."""

    def __init__(self, out: Path) -> None:
        self.path = out / "batch.jsonl"

    def rows(self) -> dict[str, dict[str, Any]]:
        """The latest row of each scan id (a torn last line from a crash is ignored)."""
        latest: dict[str, dict[str, Any]] = {}
        if not self.path.is_file():
            return latest
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict) and row.get("scan_id"):
                    latest[row["scan_id"]] = row
        return latest

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())


def write_sources(out: Path, mapping: Iterable[tuple[str, str]]) -> Path:
    """``OUT/sources.csv``: scan id -> source (private; merged with earlier runs)."""
    path = out / "sources.csv"
    known: dict[str, str] = {}
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            known = {r["scan_id"]: r["source"] for r in csv.DictReader(f)}
    known.update(mapping)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["scan_id", "source"])
    w.writerows(sorted(known.items()))
    _atomic_text(path, buf.getvalue())
    return path


def write_tables(out: Path, rows: list[dict[str, Any]], sources: dict[str, str]) -> dict[str, Optional[Path]]:
    """Write ``cohort.csv``, ``cohort.parquet`` and ``failures.csv`` from ``rows``; their paths.

    ``cohort.parquet`` is ``None`` when pyarrow is not installed (``pip install pyarrow``).
    """
    rows = sorted(rows, key=lambda r: r["scan_id"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(SHARED_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: _csv_value(r.get(c)) for c in SHARED_COLUMNS})
    paths: dict[str, Optional[Path]] = {"csv": out / "cohort.csv", "parquet": out / "cohort.parquet",
                                        "failures": out / "failures.csv"}
    _atomic_text(paths["csv"], buf.getvalue())
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        paths["parquet"] = None
    else:
        types = {"string": pa.string(), "int64": pa.int64(), "bool": pa.bool_(), "float64": pa.float64()}
        from .. import __version__
        schema = pa.schema([pa.field(c, types[COLUMN_TYPES[c]], metadata={"unit": column_unit(c)})
                            for c in SHARED_COLUMNS],
                           metadata={"lunglens_version": __version__, "written_utc": _now()})
        table = pa.Table.from_pylist([{c: _typed(r.get(c), COLUMN_TYPES[c]) for c in SHARED_COLUMNS} for r in rows],
                                     schema=schema)
        tmp = paths["parquet"].with_name(".cohort.parquet.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, paths["parquet"])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["scan_id", "source", "stage", "reason"])
    for r in rows:
        if r.get("status") != "ok":
            w.writerow([r["scan_id"], sources.get(r["scan_id"], ""), r.get("stage") or "", r.get("reason") or ""])
    _atomic_text(paths["failures"], buf.getvalue())
    return paths


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def _typed(v: Any, kind: str) -> Any:
    if v is None or v == "":
        return None
    if kind == "int64":
        return int(v)
    if kind == "float64":
        return float(v)
    if kind == "bool":
        return bool(v)
    return str(v)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
