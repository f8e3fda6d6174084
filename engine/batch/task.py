"""One scan of a batch, start to end: :func:`process_scan`.

read (``engine.io.load``; a PACS series is retrieved into the batch's cache first)
-> Run AI (:class:`engine.inference.Predictor`, the pipeline of ``python -m engine
predict``) -> lungs and numbers (:func:`engine.inference.summary.quantify_prediction`)
-> ``labels.nii.gz``, ``findings.json`` and the report written into the scan's own
folder ``OUT/scans/<scan id>/`` (staged, then renamed: a folder there is complete)
-> one cohort row (:data:`COLUMNS`).

It never raises for a bad scan: the row says ``status="failed"``, the stage and the
reason, so one scan never stops the batch. A scan the AI did not assess (no lung, not axial, ...)
gets ``status="not_assessed"``, the reason, no label map and no volumes (0 mL would count as "no
disease" in a cohort). This module knows nothing of Ray; the
runner ships :func:`process_scan` to Ray workers, each of which keeps its loaded
models between scans (:func:`_predictor`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import socket
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from .. import __version__
from ..errors import LungLensError
from .sources import ScanSource

__all__ = ["BatchOptions", "process_scan", "COLUMNS", "PRIVATE_COLUMNS", "SHARED_COLUMNS", "FINDING_KEYS"]

FINDING_KEYS = ("ggo", "consolidation", "effusion")

#: columns of a task's row, in order; the cohort table shares all but :data:`PRIVATE_COLUMNS`
COLUMNS = (
    "scan_id", "status", "stage", "reason",
    "format", "slices", "rows", "cols", "spacing_z_mm", "spacing_y_mm", "spacing_x_mm", "is_hu",
    "lung_ml",
    *[f"{k}_{m}" for k in FINDING_KEYS for m in ("ml", "pct_lung", "probability")],
    "involved_ml", "involved_pct_lung", "severity_pan", "severity_pan_max", "severity_chung", "severity_chung_max",
    "covid_probability", "assessed", "rsna_category",
    "read_s", "ai_s", "quantify_s", "write_s", "total_s", "worker_peak_rss_mb",
    "device", "worker", "finished_utc", "segmentation_model", "lunglens_version",
)

#: left out of the shared cohort table: a failure's reason quotes file names (in ``failures.csv``)
PRIVATE_COLUMNS = ("reason",)
SHARED_COLUMNS = tuple(c for c in COLUMNS if c not in PRIVATE_COLUMNS)


@dataclass(frozen=True)
class BatchOptions:
    """How each scan is read and written (the same for every scan of a batch).

    Attributes
    ----------
    model, findings_model, covid_model
        As for ``python -m engine predict`` (registry names, weight paths, ``None``
        for the default, ``"none"`` for no classifier).
    device
        ``"cpu"`` or ``"cuda"`` (the runner resolves ``"auto"``).
    threads
        Torch CPU threads per task.
    batch_size
        Slices per forward pass (``None``: the predictor's default).
    report
        ``"pdf"``, ``"json"`` or ``"none"``.
    cache_dir
        Where PACS series are retrieved.
    keep_retrieved
        Keep a retrieved PACS series in ``cache_dir`` after reading it (by default it
        is deleted once in memory: 100,000 CT series are about 5 TB).
    """

    model: Optional[str] = None
    findings_model: Optional[str] = None
    covid_model: Optional[str] = None
    device: str = "cpu"
    threads: Optional[int] = None
    batch_size: Optional[int] = None
    report: str = "pdf"
    cache_dir: str = ""
    keep_retrieved: bool = False


_PREDICTORS: dict[tuple, Any] = {}


def _model_arg(value: Optional[str]):
    if value is None:
        return None
    return False if value.lower() == "none" else value


def _predictor(opts: BatchOptions):
    """The worker's predictor for ``opts``, loaded once per process and kept between scans."""
    key = (opts.model, opts.findings_model, opts.covid_model, opts.device, opts.threads, opts.batch_size)
    if key not in _PREDICTORS:
        from ..inference import Predictor

        if opts.threads:
            import torch
            torch.set_num_threads(int(opts.threads))
        predictor = Predictor(opts.model, device=opts.device, findings_model=_model_arg(opts.findings_model),
                              covid_model=_model_arg(opts.covid_model), batch_size=opts.batch_size,
                              threads=opts.threads, keep_probabilities=False)
        predictor.load()
        _PREDICTORS.clear()  # one set of models per worker: memory stays bounded
        _PREDICTORS[key] = predictor
    return _PREDICTORS[key]


def process_scan(scan: ScanSource, scan_id: str, out_root: str, opts: BatchOptions) -> dict[str, Any]:
    """Read, Run AI, quantify and write one scan; its cohort row (never raises for a bad scan)."""
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(scan_id=scan_id, status="failed", lunglens_version=__version__,
               worker=f"{socket.gethostname()}:{os.getpid()}")
    t_start = time.perf_counter()
    target = Path(out_root) / "scans" / scan_id
    stage_dir = target.parent / f".{scan_id}.partial-{os.getpid()}"
    stage = "read"
    try:
        t = time.perf_counter()
        volume = _read(scan, opts)
        row["read_s"] = time.perf_counter() - t
        g = volume.geometry
        row.update(format=volume.format, slices=volume.shape[0], rows=volume.shape[1], cols=volume.shape[2],
                   spacing_z_mm=g.spacing[0], spacing_y_mm=g.spacing[1], spacing_x_mm=g.spacing[2],
                   is_hu=bool(volume.is_hu))

        stage = "ai"
        t = time.perf_counter()
        predictor = _predictor(opts)
        from ..inference.pipeline import read
        reading = read(volume, predictor)  # the one reading pipeline of the app and 'predict'
        prediction = reading.prediction
        row["ai_s"] = time.perf_counter() - t
        row["device"] = str(prediction.device)
        row["segmentation_model"] = (prediction.models.get("segmentation") or {}).get("name")

        stage = "quantify"
        t = time.perf_counter()
        from ..inference.summary import findings_document
        lungs, quant = reading.lungs, reading.quantification  # found once, by the predictor
        doc = findings_document(prediction, volume, quant, labels_file="labels.nii.gz" if prediction.assessed else None,
                                notes=reading.notes)
        row["quantify_s"] = time.perf_counter() - t

        stage = "write"
        t = time.perf_counter()
        from .. import io
        shutil.rmtree(stage_dir, ignore_errors=True)
        stage_dir.mkdir(parents=True)
        if prediction.assessed:  # no label map for a scan the AI did not read: an empty one reads "no findings"
            io.save_labels(prediction.labels, volume, stage_dir / "labels.nii.gz")
        if lungs is not None and hasattr(lungs, "label_map"):
            io.save_labels(lungs.label_map(), volume, stage_dir / "lungs.nii.gz")  # 1 right, 2 left
        (stage_dir / "findings.json").write_text(json.dumps(doc, indent=1) + "\n")
        if opts.report != "none" and quant is not None:
            from ..quantification.report import write_report
            write_report(stage_dir / f"report.{opts.report}", volume, prediction.labels, lungs, quant=quant,
                         models=prediction.models, findings_doc=doc, labels_source="LungLens batch (AI)")
        if target.exists():
            shutil.rmtree(target)  # a retried scan replaces its earlier, failed or partial result
        os.replace(stage_dir, target)
        row["write_s"] = time.perf_counter() - t
        _fill_numbers(row, doc)
        if row["assessed"]:
            row.update(status="ok", stage=None, reason=None)
        else:  # read, but the AI did not assess it: no numbers, and the row says why (not "ok")
            row.update(status="not_assessed", stage="ai",
                       reason="not assessed: " + "; ".join(doc["assessment"]["reasons"]))
    except LungLensError as exc:
        row.update(stage=stage, reason=str(exc))
    except MemoryError:
        row.update(stage=stage, reason="Out of memory: give each worker more memory or run fewer workers.")
    except Exception as exc:  # a bug must not stop the batch either; keep the cause for the report
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" at {Path(last.filename).name}:{last.lineno}" if last else ""
        row.update(stage=stage, reason=f"Internal error {exc.__class__.__name__}{where}: {exc}")
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)
    row["total_s"] = time.perf_counter() - t_start
    row["worker_peak_rss_mb"] = _peak_rss_mb()
    row["finished_utc"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return row


def _peak_rss_mb() -> Optional[float]:
    """The worker process's peak resident memory so far (MB), where the OS reports it."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if os.uname().sysname == "Darwin" else peak / 1024, 1)


def _read(scan: ScanSource, opts: BatchOptions):
    from .. import io

    if scan.kind == "pacs":
        from ..pacs import PacsClient
        with PacsClient(scan.server) as client:
            folder = client.retrieve_series(scan.study_uid, scan.series_uid, opts.cache_dir or None)
        try:
            return io.load(folder)
        finally:
            if not opts.keep_retrieved:
                shutil.rmtree(folder, ignore_errors=True)
                try:
                    folder.parent.rmdir()  # the study folder, when this was its last series
                except OSError:
                    pass
    return io.load(scan.path)


def _fill_numbers(row: dict[str, Any], doc: dict[str, Any]) -> None:
    """The cohort numbers of one ``findings.json`` document (the same numbers ``predict`` writes)."""
    for key in FINDING_KEYS:
        f = doc["findings"][key]
        row[f"{key}_ml"] = f["volume_ml"]
        row[f"{key}_pct_lung"] = f["percent_of_lung"]
        row[f"{key}_probability"] = f["probability"]
    row["lung_ml"] = (doc.get("lung") or {}).get("volume_ml")
    quant = doc.get("quantification") or {}
    total = (quant.get("findings") or {}).get("total") or {}
    # rounded as findings.json rounds each finding (mL to 0.001, % to 0.001): not more digits than it has
    row["involved_ml"] = round(total["ml"], 3) if total.get("ml") is not None else None
    row["involved_pct_lung"] = doc.get("involvement_percent_of_lung")
    for score in quant.get("severity") or []:
        name = str(score.get("key", "")).lower().split("_")[0]  # "pan_zones" -> "pan"
        if name in ("pan", "chung"):
            row[f"severity_{name}"] = score.get("total")
            row[f"severity_{name}_max"] = score.get("maximum")
    row["covid_probability"] = (doc.get("covid") or {}).get("probability")
    row["assessed"] = bool((doc.get("assessment") or {}).get("assessed", True))
    row["rsna_category"] = (doc.get("rsna_category") or {}).get("category")


def options_dict(opts: BatchOptions) -> dict[str, Any]:
    return asdict(opts)
