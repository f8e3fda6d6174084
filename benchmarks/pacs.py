"""Benchmark PACS retrieval: the 99-slice series from a local Orthanc against reading it from disk.

Starts a real Orthanc with its DICOMweb plugin (:mod:`tests.orthanc_server`) on a free
loopback port with temporary storage, stores ``../shared/data/dicom/chest_ct_99`` with
STOW-RS, then, ``--repeat`` times each (median and best reported):

``disk_load_s``
    ``engine.io.load`` of the shared folder (files in the OS page cache after the
    first run: the best case of "the files are already here");
``retrieve_s``
    :meth:`engine.pacs.PacsClient.retrieve_series` into an empty cache folder (QIDO
    series check + streamed WADO-RS + one file per instance + atomic rename);
``retrieve_load_s``
    ``retrieve_s`` plus ``engine.io.load`` of the retrieved folder: what "Open from
    PACS" costs before the first slice shows;
``cached_s``
    a second ``retrieve_series`` of a series already in the cache;
``store_s``
    the one STOW-RS upload of the 99 files (batches of 32).

The network is loopback: a hospital network adds its latency and bandwidth (99 x
0.5 MB = 52 MB; at 1 Gbit/s about 0.45 s more).

With ``--app`` the same is timed through the application (offscreen main window, the
real flows and task runner), each from the action to the ``volume_opened`` signal:

``app_disk_open_s``
    File > Open DICOM folder of the shared folder;
``app_search_s``, ``app_series_s``
    the browser's search by patient ID, then the series listing of the study;
``app_retrieve_open_s``
    Retrieve and open into an empty cache folder (retrieval + the same open as from disk);
``app_cached_open_s``
    Retrieve and open of a series already in the cache;
``app_longest_gui_stall_ms``
    the longest gap of a 10 ms GUI timer during the retrievals and opens (the GUI thread
    is free while the worker retrieves; what remains is showing the new scan);
``app_longest_gui_stall_disk_open_ms``
    the same during the opens from disk, for comparison.

Usage: ``python benchmarks/pacs.py [--repeat 5] [--app] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DICOM_99 = ROOT.parent / "shared" / "data" / "dicom" / "chest_ct_99"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "best": min(values)}


def measure(repeat: int = 5) -> dict:
    """Start Orthanc, store the series, time disk reads and PACS retrievals; the figures."""
    import numpy as np

    from engine import io
    from engine.pacs import PacsClient
    from orthanc_server import MISSING, start_orthanc

    if MISSING:
        raise SystemExit(MISSING)
    files = sorted(DICOM_99.glob("*.dcm"))
    with tempfile.TemporaryDirectory(prefix="lunglens-pacs-bench-") as tmp:
        server = start_orthanc(Path(tmp) / "orthanc")
        try:
            client = PacsClient(server.url)
            t0 = time.perf_counter()
            result = client.store(files)
            store_s = time.perf_counter() - t0
            (study,) = client.find()
            (series,) = study.series
            reference = io.load(DICOM_99)  # also warms the page cache and the imports
            disk, retrieve, retrieve_load, cached = [], [], [], []
            for i in range(repeat):
                t0 = time.perf_counter()
                io.load(DICOM_99)
                disk.append(time.perf_counter() - t0)
                cache = Path(tmp) / f"cache{i}"
                t0 = time.perf_counter()
                folder = client.retrieve_series(study.study_uid, series.series_uid, cache)
                retrieve.append(time.perf_counter() - t0)
                volume = io.load(folder)
                retrieve_load.append(time.perf_counter() - t0)
                if not np.array_equal(volume.array, reference.array):
                    raise SystemExit("retrieved voxels differ from the files on disk")
                t0 = time.perf_counter()
                client.retrieve_series(study.study_uid, series.series_uid, cache)
                cached.append(time.perf_counter() - t0)
                shutil.rmtree(cache)
            client.close()
        finally:
            server.stop()
    nbytes = sum(f.stat().st_size for f in files)
    return {
        "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared)",
        "server": "Orthanc 1.10 + DICOMweb plugin 1.7 on loopback",
        "instances": len(files), "series_mb": round(nbytes / 1e6, 1), "shape": list(reference.shape),
        "store_s": store_s, "stored": len(result.stored),
        "disk_load_s": _stats(disk), "retrieve_s": _stats(retrieve), "retrieve_load_s": _stats(retrieve_load),
        "cached_s": _stats(cached),
        "retrieve_mb_per_s": nbytes / 1e6 / statistics.median(retrieve),
        "retrieve_load_vs_disk": statistics.median(retrieve_load) / statistics.median(disk),
        "repeat": repeat,
    }


def measure_app(repeat: int = 5) -> dict:
    """Time Open DICOM folder against Open from PACS through the app (offscreen); the figures."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from engine.pacs import PacsClient, StudyQuery
    from orthanc_server import MISSING, start_orthanc

    if MISSING:
        raise SystemExit(MISSING)
    with tempfile.TemporaryDirectory(prefix="lunglens-pacs-app-") as tmp:
        os.environ["LUNGLENS_SETTINGS"] = str(Path(tmp) / "settings.ini")
        os.environ["LUNGLENS_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ["LUNGLENS_CACHE_DIR"] = str(Path(tmp) / "cache")
        qapp = QApplication.instance() or QApplication([])
        from app.main_window import MainWindow

        server = start_orthanc(Path(tmp) / "orthanc")
        window = MainWindow(interactive_errors=False, flows=("editing",))
        try:
            with PacsClient(server.url) as client:
                client.store([DICOM_99])
            window.scan_io.remember_recent = False
            window.resize(1200, 800)
            window.show()
            window.preferences.pacs.update(server.url)
            flow, clock = window.pacs, QElapsedTimer()
            stall = {"last": 0, "max": 0, "on": False}

            def tick() -> None:
                now = clock.elapsed()
                if stall["on"]:
                    stall["max"] = max(stall["max"], now - stall["last"])
                stall["last"] = now

            timer = QTimer()
            timer.setInterval(10)
            timer.timeout.connect(tick)
            clock.start()
            timer.start()

            def wait(signal=None, until=None, timeout_ms: int = 120000, what: str = "") -> float:
                loop, t0 = QEventLoop(), time.perf_counter()
                guard = QTimer()
                guard.setSingleShot(True)
                guard.timeout.connect(loop.quit)
                guard.start(timeout_ms)
                if signal is not None:
                    signal.connect(loop.quit)
                    loop.exec()
                    signal.disconnect(loop.quit)
                else:
                    poll = QTimer()
                    poll.timeout.connect(lambda: loop.quit() if until() else None)
                    poll.start(2)
                    loop.exec()
                    poll.stop()
                if not guard.isActive():
                    raise SystemExit(f"timed out waiting for {what or signal}; errors: {window.errors[-3:]}; browser: "
                                     f"{flow.browser.message_text if flow.browser else None}; tasks: "
                                     f"{[t.title for t in window.runner.active]}")
                guard.stop()
                return time.perf_counter() - t0

            def timed_open(action) -> float:
                t0 = time.perf_counter()
                action()
                wait(window.scan_io.volume_opened, what="the scan to open")
                return time.perf_counter() - t0

            disk, search, series, fresh, cached = [], [], [], [], []
            timed_open(lambda: window.scan_io.open_path(str(DICOM_99)))  # warm imports and page cache
            disk_stall = 0
            for i in range(repeat):
                stall["on"], stall["last"], stall["max"] = True, clock.elapsed(), 0
                disk.append(timed_open(lambda: window.scan_io.open_path(str(DICOM_99))))
                stall["on"], disk_stall = False, max(disk_stall, stall["max"])
                stall["max"] = pacs_stall if i else 0
                shutil.rmtree(Path(tmp) / "cache", ignore_errors=True)
                browser = flow.show_browser()
                browser.studies.clear()
                t0 = time.perf_counter()
                flow.search(StudyQuery(patient_id="C3N-00247"))
                wait(until=lambda: not flow.busy, what="the search")
                search.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                wait(until=lambda: len(browser.series_rows()) > 0, what="the series list")
                series.append(time.perf_counter() - t0)
                stall["on"], stall["last"] = True, clock.elapsed()
                fresh.append(timed_open(browser.retrieve_button.click))
                flow.show_browser()
                cached.append(timed_open(browser.retrieve_button.click))
                stall["on"] = False
                pacs_stall = stall["max"]
            timer.stop()
        finally:
            window.runner.shutdown(10000)
            window.close()
            server.stop()
            qapp.processEvents()
    return {"app_disk_open_s": _stats(disk), "app_search_s": _stats(search), "app_series_s": _stats(series),
            "app_retrieve_open_s": _stats(fresh), "app_cached_open_s": _stats(cached),
            "app_retrieve_open_vs_disk": statistics.median(fresh) / statistics.median(disk),
            "app_longest_gui_stall_ms": pacs_stall, "app_longest_gui_stall_disk_open_ms": disk_stall}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON object (the default prints it indented)")
    parser.add_argument("--app", action="store_true", help="also time Open from PACS through the app (offscreen)")
    args = parser.parse_args(argv)
    figures = measure(args.repeat)
    if args.app:
        figures.update(measure_app(args.repeat))

    def rounded(v):
        if isinstance(v, float):
            return round(v, 3)
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        return v

    figures = {k: rounded(v) for k, v in figures.items()}
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
