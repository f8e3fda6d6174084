"""Label editing benchmarks: brush latency, undo, 3D fill, history memory.

Usage::

    python benchmarks/editing.py [--json] [--events 200]

Runs the real main window offscreen (1600x1000, three views) on a 300x512x512 int16
volume with 0.7 x 0.7 x 1.0 mm voxels. ``viewer.py`` can merge these figures by
importing :func:`measure`.

``brush_p95_ms``
    95th percentile of one drag event of the brush tool (10 mm brush: 5 mm radius) until
    the overlay is repainted: tool -> ``LabelEditor`` stroke (the one label array) -> the label layer's
    ``changed(box)`` signal -> the views showing that box re-extract their label slice ->
    synchronous repaint of the axial view and pending paints of the others.
    ``brush_r10_p95_ms`` is the same with a 10 mm radius.
    ``brush_model_p95_ms`` is the part before painting (tool, editor, layer, slice re-extraction);
    ``axial_repaints_per_event`` checks that every event was painted.
``commit_median_ms`` / ``commit_max_ms``
    mouse release of a stroke: its undo step is built and journaled (fsync) to disk.
``undo_ms``
    Ctrl+Z of one 200-event stroke (editor undo + layer update + repaint).
``fill_3d_s``
    3D flood fill tool click on a 50 mL region (region search + paint as one undo step +
    repaint).
``history_bytes`` / ``history_budget_bytes``
    undo memory after 20 more strokes of 200 events under a 512 KiB budget (min 10 steps kept),
    and that budget; ``history_steps`` kept.
Goals (issue 6, 2-core machine): brush p95 < 16 ms, undo < 50 ms, fill < 1 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPE = (300, 512, 512)
SPACING = (1.0, 0.7, 0.7)


def _volume():
    import numpy as np

    from engine.types import Geometry, Volume
    arr = np.full(SHAPE, -1000, np.int16)
    arr[:, 40:472, 40:472] = 40
    arr[:, 100:400, 80:240] = -850
    arr[:, 100:400, 272:432] = -850
    return Volume(arr, Geometry(SHAPE, SPACING), source=None, format="phantom")


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(math.ceil(q / 100.0 * len(s))) - 1)]


def measure(events: int = 200, data_dir: str | None = None) -> dict:
    """Run every editing benchmark in this process (needs a QApplication-free start)."""
    import tempfile

    import numpy as np
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    os.environ["LUNGLENS_DATA_DIR"] = data_dir or tempfile.mkdtemp(prefix="lunglens_bench_")
    os.environ.setdefault("LUNGLENS_SETTINGS", str(Path(os.environ["LUNGLENS_DATA_DIR"]) / "settings.ini"))
    app = QApplication.instance() or QApplication([])
    from app.main_window import MainWindow
    from app.state.interaction import VoxelMouseEvent
    from engine.display import Plane
    from engine.editing import History, ops

    w = MainWindow(interactive_errors=False, flows=("editing",))
    w.resize(1600, 1000)
    w.show()
    app.processEvents()
    vol = _volume()
    w.scan_io.show_volume(vol, None)
    w.session.set_cursor(150, 256, 256)
    app.processEvents()
    ctl = w.editing
    view = w.views.axial

    def ev(kind: str, zyx) -> VoxelMouseEvent:
        return VoxelMouseEvent(Plane.AXIAL, tuple(float(v) for v in zyx), kind, Qt.MouseButton.LeftButton,
                               Qt.KeyboardModifier.NoModifier, view)

    model_ms: list[float] = []
    commit_ms: list[float] = []
    from PySide6.QtCore import QEvent, QObject

    class _PaintCounter(QObject):
        count = 0

        def eventFilter(self, obj, event):  # noqa: N802
            if event.type() == QEvent.Type.Paint:
                _PaintCounter.count += 1
            return False

    counter = _PaintCounter()
    view.viewport().installEventFilter(counter)

    def stroke(radius_mm: float, n: int, z: int = 150, phase: float = 0.0) -> list[float]:
        ctl.settings.set_radius_mm(radius_mm)
        ctl.set_tool("brush")
        tool = w.views.tool
        pts = [(z, 256 + 120 * math.sin(phase + 2 * math.pi * k / n), 256 + 120 * math.cos(phase + 2 * math.pi * k / n))
               for k in range(n + 1)]
        times = []
        tool.press(ev("press", pts[0]))
        app.processEvents()
        for p in pts[1:]:
            t0 = time.perf_counter()
            tool.drag(ev("drag", p))
            t1 = time.perf_counter()
            app.processEvents()  # delivers the views' update requests: the repaint
            t2 = time.perf_counter()
            times.append((t2 - t0) * 1000.0)
            model_ms.append((t1 - t0) * 1000.0)
        t0 = time.perf_counter()
        tool.release(ev("release", pts[-1]))
        app.processEvents()
        commit_ms.append((time.perf_counter() - t0) * 1000.0)
        return times

    stroke(5.0, 20)  # warm-up (first paint allocations)
    ctl.undo()
    model_ms.clear()
    paints0 = _PaintCounter.count
    t5 = stroke(5.0, events)
    axial_paints = _PaintCounter.count - paints0
    model_5 = list(model_ms)
    t0 = time.perf_counter()
    ctl.undo()
    app.processEvents()
    undo_ms = (time.perf_counter() - t0) * 1000.0
    t10 = stroke(10.0, events, phase=0.3)
    ed = ctl.editor
    assert ed is not None
    # 3D fill of a 50 mL ball
    r_mm = (50_000 * 3 / (4 * math.pi)) ** (1 / 3)
    ball = ops.brush_segment(SHAPE, SPACING, (150, 256, 150), (150, 256, 150), r_mm, plane_axis=None)
    ed.paint(ball, 2, name="setup ball")
    app.processEvents()
    ctl.settings.set_label(3)
    ctl.set_tool("fill3d")
    t0 = time.perf_counter()
    w.views.tool.press(ev("press", (150, 256, 150)))
    app.processEvents()
    fill_s = time.perf_counter() - t0
    filled = int(np.count_nonzero(ed.labels == 3))
    # history memory under a small budget
    ed.history.set_budget(512 * 1024, 10)
    for k in range(20):
        stroke(5.0, events, z=20 + 10 * k)
    result = {
        "brush_p95_ms": _percentile(t5, 95), "brush_median_ms": _percentile(t5, 50),
        "brush_r10_p95_ms": _percentile(t10, 95),
        "brush_model_p95_ms": _percentile(model_5, 95),
        "axial_repaints_per_event": axial_paints / events,
        "undo_ms": undo_ms, "commit_median_ms": _percentile(commit_ms, 50),
        "commit_max_ms": max(commit_ms), "undo_stroke_voxels": None,
        "fill_3d_s": fill_s, "fill_3d_ml": filled * 0.7 * 0.7 * 1.0 / 1000.0,
        "history_bytes": ed.history.nbytes, "history_budget_bytes": ed.history.max_bytes,
        "history_steps": len(ed.history), "history_evicted": ed.history.evicted,
        "volume": list(SHAPE), "spacing_mm": list(SPACING), "events_per_stroke": events,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, {platform.python_version()}",
    }
    steps = ed.history.undo_steps
    result["undo_stroke_voxels"] = steps[-1].delta.count if steps else 0
    w.recovery._close_ok = True
    w.close()
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--events", type=int, default=200, help="drag events per stroke")
    args = p.parse_args(argv)
    print_figures(measure(args.events), args.json)
    return 0


def print_figures(result: dict, as_json: bool) -> None:
    """One JSON object (floats to 3 decimals), or one aligned line per figure."""
    if as_json:
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()}))
    else:
        for k, v in result.items():
            print(f"{k:24s} {v:.3f}" if isinstance(v, float) else f"{k:24s} {v}")


if __name__ == "__main__":
    sys.exit(main())
