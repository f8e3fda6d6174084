"""Cancel to a free GUI in the app: a stuck open and Run AI (issue 11).

``cancel_open_ms``: the app opens a huge declared scan (a sparse 1.2 GB MetaImage that
SimpleITK reads in one call no cancel token reaches, about 10 s here); 2.5 s into the
read the progress bar's Cancel is clicked; the time until the open reports "cancelled"
on the GUI thread and until its reader process is gone. ``gui_gap_ms``: the GUI thread's
largest gap between 10 ms timer ticks meanwhile. ``close_open_ms``: the same, closing the
window instead. ``close_ai_ms`` / ``ai_ended_ms``: closing the window during Run AI (the
demo model on a 96x160x160 phantom): how long ``close()`` held the GUI thread, and when
the cancelled run's worker ended.

Run::

    PYTHONPATH=$PWD QT_QPA_PLATFORM=offscreen nice python benchmarks/app_cancel.py [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable


def _huge_mhd(folder: Path, slices: int = 600) -> Path:
    (folder / "huge.raw").open("wb").truncate(slices * 1024 * 1024 * 2)
    path = folder / "huge.mhd"
    path.write_text(f"ObjectType = Image\nNDims = 3\nDimSize = 1024 1024 {slices}\nElementSpacing = 0.7 0.7 1\n"
                    "ElementType = MET_SHORT\nElementDataFile = huge.raw\n")
    return path


def _readers() -> list:
    return [p for p in mp.active_children() if p.name == "lunglens-open"]


def _spin(app, until: Callable[[], bool], timeout: float) -> None:
    end = time.perf_counter() + timeout
    while not until() and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="lunglens-bench-"))
    os.environ["LUNGLENS_SETTINGS"] = str(tmp / "settings.ini")
    os.environ["LUNGLENS_DATA_DIR"] = str(tmp / "data")
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from app.flows.ai import DEMO_MODEL
    from app.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    huge = _huge_mhd(tmp)
    out: dict[str, list[float]] = {k: [] for k in ("cancel_open_ms", "reader_gone_ms", "gui_gap_ms",
                                                   "close_open_ms", "close_ai_ms", "ai_ended_ms")}
    clock = QElapsedTimer()
    clock.start()
    gap = {"last": 0, "worst": 0}

    def tick() -> None:
        now = clock.elapsed()
        gap["worst"] = max(gap["worst"], now - gap["last"])
        gap["last"] = now
    ticker = QTimer()
    ticker.timeout.connect(tick)
    ticker.start(10)
    for _ in range(args.repeat):
        # Cancel of a stuck open
        w = MainWindow(interactive_errors=False, flows=())
        w.show()
        failed: list[str] = []
        w.scan_io.open_failed.connect(failed.append)
        w.scan_io.open_path(huge)
        _spin(app, lambda: bool(_readers()), 60)
        _spin(app, lambda: False, 2.5)
        gap["last"], gap["worst"] = clock.elapsed(), 0
        t0 = time.perf_counter()
        w.progress.cancel_button.click()
        _spin(app, lambda: bool(failed), 10)
        out["cancel_open_ms"].append(round((time.perf_counter() - t0) * 1000, 1))
        _spin(app, lambda: not _readers() and not w.runner.active, 10)
        out["reader_gone_ms"].append(round((time.perf_counter() - t0) * 1000, 1))
        out["gui_gap_ms"].append(float(gap["worst"]))
        # closing the window during a stuck open
        w.scan_io.open_path(huge)
        _spin(app, lambda: bool(_readers()), 60)
        _spin(app, lambda: False, 1.5)
        t0 = time.perf_counter()
        w.close()
        _spin(app, lambda: not _readers(), 10)
        out["close_open_ms"].append(round((time.perf_counter() - t0) * 1000, 1))
        w.deleteLater()
        # closing the window during Run AI
        w = MainWindow(interactive_errors=False)
        w.show()
        w.scan_io.open_phantom((96, 160, 160))
        _spin(app, lambda: w.session.volume is not None and not w.runner.active, 120)
        w.ai.select_model(DEMO_MODEL)
        slabs: list = []
        task = w.ai.run()
        task.signals.yielded.connect(slabs.append)
        _spin(app, lambda: bool(slabs), 60)
        t0 = time.perf_counter()
        w.close()
        out["close_ai_ms"].append(round((time.perf_counter() - t0) * 1000, 1))
        w.runner.wait(30000)
        out["ai_ended_ms"].append(round((time.perf_counter() - t0) * 1000, 1))
        w.deleteLater()
        app.processEvents()
    shutil.rmtree(tmp, ignore_errors=True)
    result = {"device": f"{os.cpu_count()}-core CPU", "repeat": args.repeat, **out,
              **{f"{k}_max": max(v) for k, v in out.items() if v}}
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
