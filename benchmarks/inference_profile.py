"""Where a warm Run AI spends its time: the reading's own phases, the host's Python functions
(cProfile) and, on a GPU, the device's kernels (torch.profiler); prints JSON.

One warm Run AI (the models loaded, the kernels tuned by a first reading of a 16-slice
phantom) of the 512x512x300 phantom, the lungs found before the clock as the app does when a
scan opens (``--found-lungs``, the default) or by the reading itself (``--no-found-lungs``).
It answers what the issue 15 GPU goal (a whole scan under 0.5 s) needs next: which host
functions and which device kernels the remaining seconds are.

Usage: ``python benchmarks/inference_profile.py [--device cuda|cpu] [--slices 300] [--top 25]
[--no-found-lungs] [--text FILE]`` (``--text`` also writes the profiler's tables).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _host_top(prof: cProfile.Profile, top: int) -> list[dict]:
    stats = pstats.Stats(prof)
    rows = []
    for (path, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(path).name}:{line}({name})", "calls": calls,
                     "self_s": round(tottime, 4), "cumulative_s": round(cumtime, 4)})
    return sorted(rows, key=lambda r: -r["self_s"])[:top]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--found-lungs", action=argparse.BooleanOptionalAction, default=True,
                    help="find the lungs before the clock, as the app does when a scan opens")
    ap.add_argument("--text", default="", help="also write the profilers' tables to this file")
    args = ap.parse_args()

    import torch

    from engine.anatomy import lung_masks
    from engine.inference import Predictor
    from engine.inference.gate import prepare_gate
    from engine.inference.nets import resolve_device
    from engine.phantom import chest_ct

    dev = resolve_device(args.device)
    cuda = dev.type == "cuda"
    volume = chest_ct((args.slices, 512, 512), (1.0, 0.7, 0.7), seed=0).volume
    predictor = Predictor(device=str(dev), findings_model=False, keep_probabilities=False)
    small = chest_ct((16, 512, 512), (1.0, 0.7, 0.7), seed=1).volume
    predictor.predict(small, order="center_out", visible_slice=8)  # models, sessions, kernels: before the clock
    lungs = None
    if args.found_lungs:
        lungs = lung_masks(volume)
        prepare_gate(volume, lungs)  # as the app does when a scan opens (both gates use it)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def read():
        return predictor.predict(volume, order="center_out", visible_slice=args.slices // 2, lungs=lungs)

    sync()
    t = time.perf_counter()
    plain = read()
    sync()
    plain_s = time.perf_counter() - t

    host = cProfile.Profile()
    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as device_prof:
        host.enable()
        profiled = read()
        sync()
        host.disable()
    key = "cuda_time_total" if cuda else "cpu_time_total"
    ops = sorted(device_prof.key_averages(), key=lambda e: -getattr(e, key, 0.0))[:args.top]
    report = {
        "device": str(dev), "gpu": torch.cuda.get_device_name() if cuda else None, "slices": args.slices,
        "found_lungs": bool(args.found_lungs), "volume_s": round(plain_s, 4),
        "timings": {k: round(v, 4) for k, v in plain.timings.items()},
        "profiled_timings": {k: round(v, 4) for k, v in profiled.timings.items()},
        "host_top": _host_top(host, args.top),
        "ops_top": [{"op": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 2),
                     "cpu_ms": round(e.cpu_time_total / 1000, 2),
                     "device_ms": round(getattr(e, "cuda_time_total", 0.0) / 1000, 2)} for e in ops],
    }
    if args.text:
        buf = io.StringIO()
        pstats.Stats(host, stream=buf).sort_stats("cumulative").print_stats(60)
        Path(args.text).write_text(device_prof.key_averages().table(sort_by=key, row_limit=40) + "\n\n" + buf.getvalue())
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
