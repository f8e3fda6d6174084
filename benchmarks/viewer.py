"""Viewer benchmarks: slice scrolling, time to first image, start-up.

Usage::

    python benchmarks/viewer.py [--json] [--frames N] [--dicom FOLDER]

``scroll_fps``
    axial slice changes per second on a 300x512x512 HU volume with a label overlay,
    window 1600x1000 offscreen; every frame is fully rendered (``view.grab()``).
``scroll_fps_all_views``
    the same, rendering the whole window (the coronal/sagittal crosshairs move too).
``scroll_fps_mip10``
    ``scroll_fps`` with a 10 mm thick-slab MIP in every view (View > Thick slab; the
    axial slab of the 300-slice phantom is ``round(10 / sz)`` slices; goal >= 60 fps).
``scroll_fps_3d_open``
    ``scroll_fps`` with the 3D view shown (when OpenGL is available).
``open_to_first_image_s``
    ``File > Open`` of the 99-slice DICOM series until its first axial image is drawn.
``startup_s``
    launch of ``python -m app`` (a new process) until its window is shown, median of 3.
``brush_p95_ms``, ``undo_ms``, ``fill_3d_s``
    the label editing figures of ``editing.py`` (its :func:`measure`, run in this
    process after the viewer figures; see that script for their definitions).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# keep the user's settings and data (editing journals) out of the measurements
os.environ.setdefault("LUNGLENS_DATA_DIR", tempfile.mkdtemp(prefix="lunglens-bench-"))
os.environ.setdefault("LUNGLENS_SETTINGS", str(Path(os.environ["LUNGLENS_DATA_DIR"]) / "bench.ini"))
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DICOM_99 = ROOT.parent / "shared" / "data" / "dicom" / "chest_ct_99"


def _volume_with_labels():
    try:
        from engine.phantom import chest_ct
    except ModuleNotFoundError:
        import numpy as np

        from engine.types import Geometry, Volume
        rng = np.random.default_rng(0)
        arr = rng.integers(-1000, 400, size=(300, 512, 512), dtype=np.int16)
        labels = np.zeros(arr.shape, np.uint8)
        labels[:, 100:200, 100:250] = 1
        labels[:, 300:400, 250:400] = 2
        return Volume(arr, Geometry(arr.shape, (1.0, 0.7, 0.7))), labels
    ph = chest_ct(shape=(300, 512, 512))
    return ph.volume, ph.labels


def _window():
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    app = QApplication.instance() or QApplication([])
    w = MainWindow(interactive_errors=False, flows=())
    w.resize(1600, 1000)
    w.show()
    app.processEvents()  # benchmark only: let the window lay out once
    return app, w


def scroll_fps(app, w, frames: int) -> dict[str, float]:
    vol, labels = _volume_with_labels()
    w.scan_io.show_volume(vol)
    w.labels.set_array(labels, "bench")
    app.processEvents()
    axial = w.views.axial
    nz = vol.shape[0]
    out = {}
    for key, target in (("scroll_fps", axial), ("scroll_fps_all_views", w)):
        w.session.set_cursor(0, vol.shape[1] // 2, vol.shape[2] // 2)
        target.grab()
        t0 = time.perf_counter()
        for i in range(frames):
            w.session.set_cursor((i * 7) % nz, *w.session.cursor[1:])
            target.grab()
        out[key] = frames / (time.perf_counter() - t0)
    # the same axial scrolling with a 10 mm MIP slab (every frame is a fresh projection)
    w.session.set_slab(mode="mip", thickness=10.0)
    axial.grab()
    t0 = time.perf_counter()
    for i in range(frames):
        w.session.set_cursor((i * 7) % nz, *w.session.cursor[1:])
        axial.grab()
    out["scroll_fps_mip10"] = frames / (time.perf_counter() - t0)
    out["mip10_slices"] = int(round(10.0 / vol.spacing[0]))
    w.session.set_slab(mode="")
    # the same axial scrolling with the 3D view open (its surfaces are built once, not per slice)
    from PySide6.QtCore import QEventLoop, QTimer
    w.view3d.action.setChecked(True)
    if w.view3d.view is not None and w.view3d.view.available:
        loop = QEventLoop()
        QTimer.singleShot(0, w.view3d.rebuild)
        w.view3d._runner.ended.connect(lambda _t: loop.quit())
        QTimer.singleShot(60000, loop.quit)
        loop.exec()
        t0 = time.perf_counter()
        for i in range(frames):
            w.session.set_cursor((i * 7) % nz, *w.session.cursor[1:])
            axial.grab()
        out["scroll_fps_3d_open"] = frames / (time.perf_counter() - t0)
    return out


def open_to_first_image(app, w, folder: Path) -> float:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    done = {}

    def opened(_vol):
        w.views.axial.grab()
        done["t"] = time.perf_counter()
        loop.quit()

    w.scan_io.volume_opened.connect(opened)
    w.scan_io.open_failed.connect(lambda m: loop.quit())
    t0 = time.perf_counter()
    w.scan_io.open_path(folder)
    QTimer.singleShot(120000, loop.quit)
    loop.exec()
    w.scan_io.volume_opened.disconnect(opened)
    if "t" not in done:
        raise RuntimeError(f"opening {folder} failed: {w.errors}")
    return done["t"] - t0


def startup(runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            stamp = Path(tmp) / "shown"
            env = dict(os.environ, LUNGLENS_SHOWN_STAMP=str(stamp), LUNGLENS_EXIT_WHEN_SHOWN="1",
                       LUNGLENS_SETTINGS=str(Path(tmp) / "s.ini"), QT_QPA_PLATFORM="offscreen")
            t0 = time.time()
            subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=env, check=True, timeout=120,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(float(stamp.read_text()) - t0)
    return statistics.median(times)


#: figures of editing.py merged into this script's output
EDITING_KEYS = ("brush_p95_ms", "undo_ms", "fill_3d_s")


def _editing_benchmark():
    """``editing.py`` beside this script, as a module."""
    spec = importlib.util.spec_from_file_location("lunglens_bench_editing", Path(__file__).with_name("editing.py"))
    editing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(editing)
    return editing


def editing_figures() -> dict[str, object]:
    """``brush_p95_ms``, ``undo_ms`` and ``fill_3d_s`` from ``editing.py``'s :func:`measure`."""
    figures = _editing_benchmark().measure(data_dir=os.environ["LUNGLENS_DATA_DIR"])
    return {k: figures[k] for k in EDITING_KEYS}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--dicom", type=Path, default=DICOM_99)
    args = p.parse_args(argv)
    result: dict[str, object] = {"machine": f"{platform.machine()} {os.cpu_count()} CPUs",
                                 "qt_platform": os.environ["QT_QPA_PLATFORM"]}
    result["startup_s"] = startup()
    app, w = _window()
    if args.dicom.is_dir():
        result["open_to_first_image_s"] = open_to_first_image(app, w, args.dicom)
    result.update(scroll_fps(app, w, args.frames))
    w.close()
    del w
    result.update(editing_figures())
    _editing_benchmark().print_figures(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
