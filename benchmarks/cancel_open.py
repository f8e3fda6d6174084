"""Cancel of a stuck open, and the cost of opening in a child process (issue 11).

``cancel_to_return_ms``: a reader blocked in a call that never returns (``time.sleep``
standing for a stuck library call) runs through :func:`engine.io.isolated.run_isolated`;
the time from ``token.cancel()`` to the call raising ``CancelledError`` (the moment the
app's worker thread is free) is measured ``--repeat`` times.
``load_s`` / ``open_isolated_s``: the same scan opened in-process and in a child process.

Run::

    PYTHONPATH=$PWD nice python benchmarks/cancel_open.py [SCAN] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path


def stuck_reader(path, progress, cancel):
    progress(0.1, "stuck")
    time.sleep(3600)


def cancel_latency(repeat: int) -> list[float]:
    from engine.errors import CancelledError
    from engine.io.isolated import run_isolated
    from engine.progress import CancelToken

    out = []
    for _ in range(repeat):
        token, started, done = CancelToken(), threading.Event(), {}

        def work() -> None:
            try:
                run_isolated(stuck_reader, "stuck", progress=lambda f, m: started.set(), cancel=token)
            except CancelledError:
                done["t"] = time.perf_counter()
        t = threading.Thread(target=work)
        t.start()
        started.wait(120)
        t0 = time.perf_counter()
        token.cancel()
        t.join(30)
        out.append(round((done["t"] - t0) * 1000, 1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scan", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" /
                                                   "dicom" / "chest_ct_99"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from engine import io
    r: dict = {"cancel_to_return_ms": cancel_latency(args.repeat)}
    if Path(args.scan).exists():
        t0 = time.perf_counter()
        a = io.load(args.scan)
        r["load_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        b = io.open_isolated(args.scan)
        r["open_isolated_s"] = round(time.perf_counter() - t0, 2)
        r["same_volume"] = bool((a.array == b.array).all() and a.geometry == b.geometry)
        r["scan_mb"] = round(a.nbytes / 1e6, 1)
    print(json.dumps(r, indent=1) if args.json else "\n".join(f"{k:22s} {v}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
