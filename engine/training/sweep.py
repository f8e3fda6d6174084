"""Train several configs at once, each in its own process on the same device.

``python -m engine.training.sweep --configs DIR --data-root DIR --out DIR [--only a,b] [--budget S]``
launches ``python -m engine train`` per config (one CPU thread each, output to
``OUT/NAME/log.txt``) and waits, killing a process that overruns its time budget by more
than ``--grace`` seconds. Used to train the whole comparison on one GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configs", default=str(Path(__file__).with_name("configs")))
    ap.add_argument("--data-root", default="../shared/data")
    ap.add_argument("--out", default="runs")
    ap.add_argument("--only", default="", help="comma-separated config names")
    ap.add_argument("--budget", type=float, default=None, help="override every time_budget_s")
    ap.add_argument("--grace", type=float, default=150.0)
    ap.add_argument("--extra", default="", help="extra flags passed to every train command")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    files = sorted(Path(args.configs).glob("*.json"))
    if names:
        files = [f for f in files if f.stem in names]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for f in files:
        cfg = json.loads(f.read_text())
        budget = args.budget if args.budget is not None else cfg.get("time_budget_s") or 600
        run_dir = out / f.stem
        run_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "engine", "train", "--config", str(f), "--data-root", args.data_root,
               "--out", str(run_dir), "--time-budget", str(budget), "--quiet", *args.extra.split()]
        log = open(run_dir / "log.txt", "w")
        procs.append((f.stem, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), time.monotonic(), budget))
    status = {}
    while procs:
        time.sleep(2)
        for item in list(procs):
            name, p, t0, budget = item
            if p.poll() is not None:
                status[name] = p.returncode
                procs.remove(item)
                print(f"{name}: exit {p.returncode} after {time.monotonic() - t0:.0f}s", flush=True)
            elif time.monotonic() - t0 > budget + args.grace:
                p.kill()
                print(f"{name}: killed after {time.monotonic() - t0:.0f}s", flush=True)
    (out / "sweep_status.json").write_text(json.dumps(status, indent=1))
    return 0 if all(v == 0 for v in status.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
