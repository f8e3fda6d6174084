"""Run a batch on Ray: :func:`run_batch`.

The driver (this process) finds the scans (:mod:`.sources`), skips those the ledger
says are finished (and, unless asked, those that failed), starts a local Ray with
``workers`` task slots or joins the cluster at ``address``, and submits one Ray task
per scan (:func:`.task.process_scan`). At most ``workers`` tasks are in flight, so
each worker holds one scan at a time and memory stays bounded; a CUDA task asks Ray
for a whole GPU. Each result is appended to the ledger as it arrives, then the
cohort table and failures file are rewritten (:mod:`.cohort`). A scan that fails,
or whose worker dies, becomes a failed row; the batch goes on.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..errors import CancelledError, LungLensError
from ..progress import CancelLike
from .cohort import Ledger, batch_salt, write_sources, write_tables
from .sources import ScanSource, discover, redact, scan_id
from .task import COLUMNS, BatchOptions, process_scan

__all__ = ["run_batch", "BatchSummary", "BatchProgress"]

log = logging.getLogger(__name__)


@dataclass
class BatchProgress:
    """Where a running batch stands (passed to the ``progress`` callback after each scan)."""

    total: int
    done: int = 0
    failed: int = 0
    elapsed_s: float = 0.0

    @property
    def rate_per_hour(self) -> float:
        return 3600.0 * self.done / self.elapsed_s if self.elapsed_s > 0 and self.done else 0.0

    @property
    def eta_s(self) -> Optional[float]:
        if not self.done:
            return None
        return (self.total - self.done) * self.elapsed_s / self.done


@dataclass
class BatchSummary:
    """What a run did. ``processed`` counts this run's tasks; ``ok``/``failed`` the whole cohort."""

    scans: int
    processed: int
    skipped: int
    ok: int
    failed: int
    seconds: float
    ray_start_s: float
    workers: int
    device: str
    tables: dict[str, Optional[Path]] = field(default_factory=dict)
    #: read, but not assessed by the AI (no lung, not axial, ...): no numbers; neither ok nor failed
    not_assessed: int = 0

    @property
    def scans_per_hour(self) -> float:
        """This run's throughput, Ray start-up excluded."""
        busy = self.seconds - self.ray_start_s
        return 3600.0 * self.processed / busy if self.processed and busy > 0 else 0.0


def _resolve_device(device: str, address: Optional[str]) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise LungLensError(f"Unknown device {device!r}: use auto, cpu or cuda.")
    if device != "auto":
        return device
    if address:
        import ray
        return "cuda" if ray.cluster_resources().get("GPU", 0) >= 1 else "cpu"
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def run_batch(sources: Sequence[str], out: str | Path, *, workers: Optional[int] = None,
              address: Optional[str] = None, device: str = "auto", retry_failed: bool = False,
              options: Optional[BatchOptions] = None, cpus_per_task: Optional[int] = None,
              task_timeout: Optional[float] = None, memory_per_task: Optional[float] = None,
              progress: Optional[Callable[[BatchProgress], None]] = None,
              cancel: Optional[CancelLike] = None) -> BatchSummary:
    """Process every scan of ``sources`` into ``out`` on Ray; the summary.

    Parameters
    ----------
    sources
        Folder trees, scan files, list files or ``dicomweb+http(s)://`` queries (:mod:`.sources`).
    out
        The batch folder (:mod:`.cohort` describes its layout). Rerunning on the same
        folder resumes: finished scans are skipped. One batch at a time per folder.
    workers
        Tasks in flight at once (one scan each). Default: the local CPU count, or on
        a cluster its CPUs divided by ``cpus_per_task`` (its GPUs for CUDA).
    address
        A running Ray cluster to join (``ray://host:10001`` or ``host:6379``); none:
        start a local Ray on this machine.
    device
        ``"auto"`` (CUDA when the machine or cluster has a GPU), ``"cpu"`` or ``"cuda"``.
    retry_failed
        Run again the scans that failed in an earlier run.
    options
        Models, report format and the like (:class:`~.task.BatchOptions`).
    cpus_per_task
        CPUs (and torch threads) per task; default: local cores / workers, or 1 on a cluster.
    task_timeout
        Seconds after which a scan's task is stopped and recorded as failed (none: no limit).
    memory_per_task
        GB of memory Ray reserves per task, so a node runs no more scans than fit
        (a 99-slice CT needed 1.1 GB here).
    progress, cancel
        Called after each scan; checked while waiting (pending tasks are cancelled).

    Raises
    ------
    LungLensError
        No scan in ``sources``, Ray is not installed, or the cluster cannot be joined.
    CancelledError
        ``cancel`` was set (finished scans are kept and the tables written).
    """
    t0 = time.perf_counter()
    out = Path(out).expanduser()
    opts = options or BatchOptions()
    scans = discover(sources)
    salt = batch_salt(out, {"sources": [redact(s) for s in sources]})
    ids = {s.key: scan_id(s.key, salt) for s in scans}
    source_text = {ids[s.key]: s.key for s in scans}
    write_sources(out, source_text.items())
    ledger = Ledger(out)
    previous = ledger.rows()

    def finished(s: ScanSource) -> bool:
        row = previous.get(ids[s.key])
        if row is None:
            return False
        if row.get("status") == "ok":
            return (out / "scans" / ids[s.key] / "findings.json").is_file()
        return not retry_failed

    todo = [s for s in scans if not finished(s)]
    for leftover in (out / "scans").glob(".*.partial-*"):  # from a worker killed mid-write in an earlier run
        shutil.rmtree(leftover, ignore_errors=True)
    ray_start = 0.0
    processed = 0
    resolved = device
    n_workers = workers or 0
    try:
        if todo:
            ray, started, ray_start = _start_ray(address, workers, device, cpus_per_task)
            try:
                resolved = _resolve_device(device, address)
                cpt = cpus_per_task or (max(1, (os.cpu_count() or 1) // max(workers or 1, 1)) if not address else 1)
                n_workers = workers or _cluster_slots(ray, resolved, cpt)
                opts = BatchOptions(**{**opts.__dict__, "device": resolved, "threads": cpt,
                                       "cache_dir": opts.cache_dir or str(out / "pacs-cache")})
                processed = _run(ray, todo, ids, out, opts, n_workers, cpt, resolved, ledger, progress, cancel,
                                 task_timeout, memory_per_task)
            finally:
                if started:
                    ray.shutdown()
    finally:
        rows = ledger.rows()
        cohort = [rows[ids[s.key]] for s in scans if ids[s.key] in rows]
        tables = write_tables(out, cohort, source_text)
    ok = sum(1 for r in cohort if r.get("status") == "ok")
    unread = sum(1 for r in cohort if r.get("status") == "not_assessed")
    return BatchSummary(scans=len(scans), processed=processed, skipped=len(scans) - len(todo), ok=ok,
                        failed=len(cohort) - ok - unread, seconds=time.perf_counter() - t0, ray_start_s=ray_start,
                        workers=n_workers, device=resolved, tables=tables, not_assessed=unread)


def _start_ray(address: Optional[str], workers: Optional[int], device: str, cpus_per_task: Optional[int]):
    try:
        import ray
    except ImportError:
        raise LungLensError("Batch reading needs Ray: pip install 'lunglens[batch]' (or pip install ray "
                            "pyarrow).") from None
    t = time.perf_counter()
    if ray.is_initialized():
        return ray, False, 0.0
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            n = workers or (os.cpu_count() or 1)
            cpt = cpus_per_task or max(1, (os.cpu_count() or 1) // n)
            gpus = None if device != "cpu" else 0
            ray.init(num_cpus=n * cpt, num_gpus=gpus, object_store_memory=128 * 1024 ** 2, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise LungLensError(f"Could not start or join {where} ({exc.__class__.__name__}: {str(exc)[:200]}). "
                            + ("Check the address (ray://head:10001 or head:6379) and that the cluster runs "
                               "the same Ray and Python versions." if address else
                               "Check free memory and /tmp space, or stop other Ray instances.")) from None
    return ray, True, time.perf_counter() - t


def _cluster_slots(ray, device: str, cpus_per_task: int) -> int:
    res = ray.cluster_resources()
    if device == "cuda":
        return max(1, int(res.get("GPU", 0)))
    return max(1, int(res.get("CPU", 1)) // cpus_per_task)


def _run(ray, todo: list[ScanSource], ids: dict[str, str], out: Path, opts: BatchOptions, n_workers: int,
         cpus_per_task: int, device: str, ledger: Ledger, progress, cancel: Optional[CancelLike],
         task_timeout: Optional[float], memory_per_task: Optional[float]) -> int:
    remote = ray.remote(process_scan).options(
        num_cpus=cpus_per_task, num_gpus=1 if device == "cuda" else 0,
        memory=int(memory_per_task * 1024 ** 3) if memory_per_task else None,
        max_retries=1,  # once more when the worker process dies (not for a scan that fails)
        retry_exceptions=False)
    state = BatchProgress(total=len(todo))
    pending: dict = {}  # ref -> (scan, submitted at)
    timed_out: set = set()
    queue = list(todo)
    t_run = time.perf_counter()
    try:
        while queue or pending:
            while queue and len(pending) < n_workers:
                scan = queue.pop(0)
                pending[remote.remote(scan, ids[scan.key], str(out), opts)] = (scan, time.monotonic())
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            if cancel is not None and cancel.is_set():
                raise CancelledError()
            if task_timeout:
                now = time.monotonic()
                for ref, (_, since) in pending.items():
                    if ref not in timed_out and ref not in ready and now - since > task_timeout:
                        timed_out.add(ref)
                        ray.cancel(ref, force=True)  # kills the worker: a hung scan frees its slot
            for ref in ready:
                scan, _ = pending.pop(ref)
                row = _result(ray, ref, ids[scan.key], task_timeout if ref in timed_out else None)
                ledger.append(row)
                state.done += 1
                state.failed += row["status"] == "failed"
                state.elapsed_s = time.perf_counter() - t_run
                if progress is not None:
                    progress(state)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return state.done


def _result(ray, ref, sid: str, timed_out: Optional[float]) -> dict:
    """The task's row, or a failed row when its worker died or it ran out of time."""
    try:
        return ray.get(ref)
    except Exception as exc:  # ray.exceptions.RayError and friends: the worker, not the scan, failed
        name = exc.__class__.__name__
        if timed_out:
            reason = (f"The scan took longer than {timed_out:g} s (--task-timeout) and was stopped: check it, or "
                      "raise the limit.")
        elif "Memory" in name or "memory" in str(exc)[:500]:
            reason = (f"The worker processing this scan ran out of memory ({name}): run fewer workers or give "
                      "each more memory (--memory-per-task).")
        else:
            reason = (f"The worker processing this scan died twice ({name}): see the Ray logs "
                      "(/tmp/ray/session_latest/logs).")
        row = {c: None for c in COLUMNS}
        row.update(scan_id=sid, status="failed", stage="worker", reason=reason)
        return row
