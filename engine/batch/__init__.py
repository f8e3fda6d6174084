"""Read whole archives: one Ray task per scan, a cohort table at the end.

Data flow
---------
SOURCE... (folder trees, list files, ``dicomweb+http(s)://`` PACS queries;
:mod:`.sources`) -> scans with ids that are safe to share (keyed hash with the
batch's salt) -> :func:`run_batch` (:mod:`.runner`) starts a local Ray or joins a
cluster and runs :func:`~.task.process_scan` per scan (read, Run AI, quantify, write
``OUT/scans/<id>/``) with at most ``workers`` scans in flight -> each row appended
to the ledger -> ``cohort.csv`` + ``cohort.parquet`` + ``failures.csv``
(:mod:`.cohort`). A rerun on the same folder resumes.

Ray is optional (``pip install 'lunglens[batch]'``); :mod:`.task` and
:mod:`.cohort` work without it.
"""

from __future__ import annotations

from .cohort import COLUMN_TYPES, Ledger
from .runner import BatchProgress, BatchSummary, run_batch
from .sources import ScanSource, discover, scan_id
from .task import COLUMNS, BatchOptions, process_scan

__all__ = ["run_batch", "BatchSummary", "BatchProgress", "BatchOptions", "process_scan", "discover",
           "ScanSource", "scan_id", "Ledger", "COLUMNS", "COLUMN_TYPES"]
