"""Benchmark Run AI (``engine.inference.Predictor``) on a whole scan; prints JSON.

Cases: the phantom at 512x512x300 (1 x 0.7 x 0.7 mm) and the real 99-slice DICOM
series ``../shared/data/dicom/chest_ct_99``. Each case runs once per runtime
(``--runtimes``, default ``fp32`` and ``auto``, the chosen one) and, with
``--baseline DIR``, once with the code of another checkout (``today``: e.g. the main
branch), all in the same session: repetitions are interleaved (fp32, auto, today,
fp32, ...) and the median of each figure reported, so a machine shared with other jobs
slows all alike. Every run is a fresh subprocess (imports and scan loading done before
the clock starts) and reports:

``visible_slice_s``
    from pressing Run AI (predictor created, models loaded from disk) to the visible
    slice's labels (the first slab; the visible slice is the middle of the scan);
``volume_s``
    the whole scan: lungs, labels, anatomy rules, finding probabilities, COVID classifier;
``network_s``
    the time spent inside the networks (``timings.network_s``; all models, all slabs);
    ``volume_over_network`` is ``volume_s / network_s`` (``None`` for a baseline that
    does not measure it);
``volume_cpu_s``, ``network_cpu_s``
    the same spans in CPU time of the process (all its threads): on a machine shared
    with other jobs these move less than wall-clock times;
``peak_mem_mb``
    the peak resident memory *added* by Run AI over the loaded scan (the process's
    high-water mark is reset just before pressing Run AI, ``/proc/self/clear_refs``);
    ``scan_mb`` the scan's own array, ``peak_over_scan`` their ratio;
    ``peak_mem_by_phase_mb`` the same per phase (read and reset at each progress message:
    models and visible slice, lungs and ROI, segmentation, anatomy rules and presence, COVID);
``without_lung_gate``
    one more run with the lung gate off (``Predictor(lung_gate=False)``): the gate's
    cost is ``timings.gate_s`` and the difference of the two ``volume_s``.

``--warm``
    before the timed run, each child runs Run AI once untimed on a 16-slice phantom of the
    case's slice size with the same predictor, which the timed run then reuses: the
    figures exclude one-off costs (model loading, ONNX Runtime session build, CUDA
    context, cuDNN autotuning of the first shapes), so ``visible_slice_s`` and
    ``volume_s`` start at ``predict()``; the JSON says ``"warm": true``. Without it
    (``"warm": false``) the clock starts before the models are loaded, as when Run AI is
    pressed the first time.

``--given-lungs``
    the lungs are found before the clock and given to Run AI, as the app does: it finds
    them when a scan opens (``app/state/case.py``), with the gate's lung part
    (``prepare_gate``) where the code has it, so Run AI in the app does neither. With ``--threads`` one fewer than the cores (the app's
    setting) and ``--warm`` (a second press) the figures are the app's.

``--before DIR``
    one more row, ``before``: the chosen runtime with the code of another checkout (e.g. the
    commit before a change), interleaved like the others; ``speedup_vs_before`` compares.

``--slices 100,200,300,400`` adds the phantom at those slice counts (the chosen runtime
and fp32): ``scaling`` gives time and added memory per slice.

The models are the registry defaults. When a default's weights are not installed,
the same architecture is built untrained from its card (or default configuration):
the timing is representative, the labels are not (``"weights": "untrained"``).
Run AI keeps no probability maps (as the app now does); ``today`` keeps them, as the app
did before issue 15.

Usage: ``python benchmarks/inference.py [--device cpu|cuda|auto] [--json] [--threads N]
[--cases phantom,dicom99] [--runtimes fp32,auto] [--baseline ../main] [--before DIR] [--repeat 3]
[--slices 100,200,300,400] [--no-gate-run] [--warm] [--given-lungs]``

Goals (issue 15): on the 2-core CPU a whole Run AI at most 1.25x its networks' own
time, peak memory at most 3x the scan, 300 slices at least 1.6x faster than today.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DICOM_99 = ROOT.parent / "shared" / "data" / "dicom" / "chest_ct_99"
#: slices of the small phantom a ``--warm`` run reads untimed first
WARM_SLICES = 16
FIGURES = ("visible_slice_s", "volume_s", "network_s", "volume_cpu_s", "network_cpu_s", "peak_mem_mb")


def _reset_peak() -> bool:
    """Reset the process's resident-memory high-water mark (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


#: Run AI's progress messages -> the phase of the work that follows them
PHASES = (("Loading", "models_and_visible_slice"), ("Finding", "lungs_roi"), ("Segmented", "segmentation"),
          ("Keeping", "rules_and_presence"), ("Estimating", "covid"))


class PhasePeaks:
    """Peak added memory per phase of Run AI: the high-water mark is read and reset at each
    progress message (``peak_mem_by_phase_mb``)."""

    def __init__(self, base_mb: float) -> None:
        self.base, self.phase, self.peaks = base_mb, "models_and_visible_slice", {}

    def close(self) -> None:
        self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), round(_status_mb("VmHWM") - self.base, 1))
        _reset_peak()

    def __call__(self, fraction: float, message: str = "") -> None:
        self.close()
        self.phase = next((name for key, name in PHASES if message.startswith(key)), self.phase)


def _model(task: str, device: str):
    """The registry default for ``task``, or the same architecture untrained."""
    import torch

    from engine.errors import ModelError
    from engine.models import registry
    from engine.models.card import ModelCard

    name = registry.default_model(task)
    try:
        return registry.load(name, device=device), "trained"
    except ModelError:
        pass
    try:
        card = registry.get_card(name)
    except ModelError:
        arch = {"segmentation": "unet", "findings": "classifier", "covid": "classifier", "lung": "unet"}[task]
        config = {"num_outputs": 1} if task == "covid" else {}
        classes = {"segmentation": ("background", "ggo", "consolidation", "effusion"),
                   "findings": ("ggo", "consolidation", "effusion"), "covid": ("covid",),
                   "lung": ("background", "lung")}[task]
        card = ModelCard(name=f"{name}_untrained", task=task, architecture=arch, config=config, classes=classes)
    torch.manual_seed(0)
    module = registry.build(card.architecture, {**card.config, "in_channels": card.in_channels}).eval()
    return registry.LoadedModel(module, card, torch.device(device), torch.float32), "untrained"


def _load_case(case: str):
    if case.startswith("phantom"):
        from engine.phantom import chest_ct
        n = int(case.split(":")[1]) if ":" in case else 300
        return chest_ct((n, 512, 512), (1.0, 0.7, 0.7), seed=0).volume
    if case == "dicom99":
        from engine import io
        return io.load(DICOM_99)
    raise SystemExit(f"unknown case {case}")


def child(case: str, device: str, threads: int, batch_size: int, runtime: str, gate_run: bool,
          warm: bool = False, given_lungs: bool = False) -> dict:
    import torch

    from engine.inference import Predictor
    from engine.inference.nets import resolve_device

    if threads:
        torch.set_num_threads(threads)
    dev = str(resolve_device(device))
    volume = _load_case(case)
    takes_precision = "precision" in inspect.signature(Predictor).parameters
    extra = {"precision": runtime} if takes_precision and runtime != "today" else {}
    if dev.startswith("cuda"):  # one-time driver/context start, outside Run AI
        torch.zeros(1, device=dev)
        torch.cuda.synchronize()

    predictors: dict = {}
    lungs = None
    if given_lungs:  # found before the clock, as the app does when a scan opens
        from engine.anatomy import lung_masks
        lungs = lung_masks(volume)
        try:  # the app also prepares the gate's lung part then (app/state/case.py)
            from engine.inference.gate import prepare_gate
        except ImportError:  # older code: its gate makes it in Run AI
            pass
        else:
            prepare_gate(volume, lungs)

    def make_predictor(gate: bool):
        seg, seg_w = _model("segmentation", dev)
        cov, cov_w = _model("covid", dev)
        predictor = Predictor(seg, device=dev, findings_model=False, covid_model=cov, batch_size=batch_size,
                              lung_gate=gate, keep_probabilities=runtime == "today", **extra)
        return predictor, {"segmentation": seg_w, "covid": cov_w}

    def warmed(gate: bool):
        """A predictor that already ran once, untimed, on a small phantom of the case's slice size."""
        if gate not in predictors:
            from engine.phantom import chest_ct
            predictor, weights = make_predictor(gate)
            small = chest_ct((WARM_SLICES, *volume.shape[1:]), volume.geometry.spacing, seed=1).volume
            predictor.predict(small, order="center_out", visible_slice=WARM_SLICES // 2)
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
            predictors[gate] = (predictor, weights)
        return predictors[gate]

    def run_once(gate: bool) -> dict:
        import gc
        if warm:  # models loaded, sessions built, kernels tuned before the clock
            predictor, weights = warmed(gate)
        gc.collect()
        base = _status_mb("VmRSS")
        reset = _reset_peak()
        t_press, c_press = time.perf_counter(), time.process_time()
        if not warm:
            predictor, weights = make_predictor(gate)
        first: list[float] = []

        def on_slab(z, labels, probs):
            if not first:
                if dev.startswith("cuda"):
                    torch.cuda.synchronize()
                first.append(time.perf_counter() - t_press)
        if dev.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        phases = PhasePeaks(base) if reset else None
        pred = predictor.predict(volume, order="center_out", visible_slice=volume.shape[0] // 2, on_slab=on_slab,
                                 progress=phases, **({"lungs": lungs} if gate and lungs is not None else {}))
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        volume_s = time.perf_counter() - t_press
        volume_cpu_s = time.process_time() - c_press
        if phases is not None:
            phases.close()
        peak = max(phases.peaks.values()) if phases is not None else float("nan")
        t = pred.timings
        net_s, net_cpu = t.get("network_s"), t.get("network_cpu_s")
        return {"load_avg_1min": round(os.getloadavg()[0], 2), "visible_slice_s": round(first[0], 4),
                "volume_s": round(volume_s, 3),
                "network_s": round(net_s, 3) if net_s is not None else None,
                "volume_cpu_s": round(volume_cpu_s, 3),
                "network_cpu_s": round(net_cpu, 3) if net_cpu is not None else None,
                "peak_mem_mb": round(peak, 1), "peak_mem_by_phase_mb": phases.peaks if phases else None,
                # warm: the models were loaded before the clock (load_s is that earlier load)
                "timings": {k: round(v, 4) for k, v in t.items() if not (warm and k == "load_s")},
                "runtimes": {r: (m or {}).get("runtime", "fp32") for r, m in pred.models.items() if m},
                "weights": weights}

    out = {"case": case, "runtime": runtime, "shape": list(volume.shape), "device": dev, "warm": warm,
           "given_lungs": given_lungs,
           "scan_mb": round(volume.array.nbytes / 2 ** 20, 1), **run_once(True)}
    if gate_run:
        out["without_lung_gate"] = {k: v for k, v in run_once(False).items() if k in FIGURES}
    if dev.startswith("cuda"):
        out["gpu_peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 1e6, 1)
        out["gpu"] = torch.cuda.get_device_name()
    return out


def _spawn(case: str, runtime: str, args: argparse.Namespace, gate_run: bool) -> dict:
    env = dict(os.environ)
    code_root, child_runtime = ROOT, runtime
    if runtime == "today":
        code_root = Path(args.baseline).resolve()
    elif runtime == "before":  # another checkout of this work, with the chosen runtime
        code_root, child_runtime = Path(args.before).resolve(), "auto"
    env["PYTHONPATH"] = str(code_root)
    cmd = [sys.executable, __file__, "--child", case, "--device", args.device, "--threads", str(args.threads),
           "--batch-size", str(args.batch_size), "--runtimes", child_runtime] \
        + ([] if gate_run else ["--no-gate-run"]) + (["--warm"] if args.warm else []) \
        + (["--given-lungs"] if args.given_lungs else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=code_root, env=env)
    if proc.returncode != 0:
        return {"case": case, "runtime": runtime, "error": proc.stderr.strip().splitlines()[-3:]}
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "runtime": runtime}


def _median(runs: list[dict]) -> dict:
    """One entry of figures: the median of each over the runs (the rest from the first run)."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    out = dict(ok[0])
    for k in FIGURES:
        vals = [r[k] for r in ok if r.get(k) is not None]
        out[k] = round(statistics.median(vals), 4) if vals else None
    if "without_lung_gate" in ok[0]:
        out["without_lung_gate"] = {k: round(statistics.median([r["without_lung_gate"][k] for r in ok
                                                                 if r["without_lung_gate"].get(k) is not None]), 4)
                                    for k in FIGURES if ok[0]["without_lung_gate"].get(k) is not None}
    out["runs"] = len(ok)
    out["volume_s_all"] = [r["volume_s"] for r in ok]
    out["volume_cpu_s_all"] = [r["volume_cpu_s"] for r in ok]
    out["load_avg_all"] = [r.get("load_avg_1min") for r in ok]  # the machine's load at the end of each run
    net, net_cpu = out.get("network_s"), out.get("network_cpu_s")
    out["volume_over_network"] = round(out["volume_s"] / net, 3) if net else None
    out["volume_over_network_cpu"] = round(out["volume_cpu_s"] / net_cpu, 3) if net_cpu else None
    out["peak_over_scan"] = round(out["peak_mem_mb"] / out["scan_mb"], 2) if out.get("scan_mb") else None
    out["slices_per_s"] = round(out["shape"][0] / out["volume_s"], 2)
    return out


def _speedups(cases: list[dict], case: str, name: str) -> None:
    """Add ``speedup_vs_<name>`` (wall) and ``speedup_vs_<name>_cpu`` to every row of ``case``
    against its row of runtime ``name``."""
    ref = next(c for c in cases if c["case"] == case and c["runtime"] == name)
    for c in cases:
        if c["case"] == case and "volume_s" in c and "volume_s" in ref:
            c[f"speedup_vs_{name}"] = round(ref["volume_s"] / c["volume_s"], 2)
            c[f"speedup_vs_{name}_cpu"] = round(ref["volume_cpu_s"] / c["volume_cpu_s"], 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--json", action="store_true", help="print only the JSON document")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--batch-size", type=int, default=0, help="slices per forward pass (0: the Predictor's default)")
    ap.add_argument("--cases", default="phantom,dicom99", help="phantom (300 slices), phantom:N, dicom99")
    ap.add_argument("--runtimes", default="fp32,auto", help="precisions to compare (fp32, bf16, onnx, auto)")
    ap.add_argument("--baseline", default="", help="another checkout (e.g. ../main) whose code runs as 'today'")
    ap.add_argument("--before", default="", help="another checkout whose code runs as 'before' (chosen runtime)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs per case and runtime (median)")
    ap.add_argument("--slices", default="", help="phantom slice counts for scaling, e.g. 100,200,300,400")
    ap.add_argument("--no-gate-run", action="store_true", help="skip the extra run without the lung gate")
    ap.add_argument("--warm", action="store_true",
                    help=f"run Run AI once untimed on a {WARM_SLICES}-slice phantom first (no one-off costs)")
    ap.add_argument("--given-lungs", action="store_true",
                    help="find the lungs before the clock and pass them to Run AI, as the app does when a scan opens")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.device, args.threads, args.batch_size, args.runtimes,
                               not args.no_gate_run, args.warm, args.given_lungs)))
        return 0
    import torch

    cases = [c for c in args.cases.split(",") if c]
    if "dicom99" in cases and not DICOM_99.is_dir():
        cases.remove("dicom99")
    runtimes = [r for r in args.runtimes.split(",") if r] + (["before"] if args.before else []) \
        + (["today"] if args.baseline else [])
    # export the ONNX models once before the clock (a first Run AI on a new install pays ~1.5 s per model)
    from engine.inference import Predictor
    Predictor(device=args.device, covid_model=None).load()
    report = {"warm": bool(args.warm), "given_lungs": bool(args.given_lungs),
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "load_avg_at_start": list(os.getloadavg()), "torch": torch.__version__,
                          "python": platform.python_version()},
              "baseline": str(Path(args.baseline).resolve()) if args.baseline else None, "cases": []}
    for case in cases:
        runs: dict[str, list[dict]] = {r: [] for r in runtimes}
        for _ in range(max(1, args.repeat)):
            for r in runtimes:
                runs[r].append(_spawn(case, r, args, not args.no_gate_run))
        for r in runtimes:
            res = _median(runs[r])
            report["cases"].append(res)
            if not args.json and "error" not in res:
                print(f"{case:12s} {r:6s} visible {res['visible_slice_s']:.3f} s  volume {res['volume_s']:.2f} s  "
                      f"network {res['network_s'] or float('nan'):.2f} s  peak +{res['peak_mem_mb']:.0f} MB "
                      f"({res['peak_over_scan']}x scan)", file=sys.stderr)
        for ref, wanted in (("fp32", "fp32" in runtimes), ("before", args.before), ("today", args.baseline)):
            if wanted:
                _speedups(report["cases"], case, ref)
    if args.slices:
        scaling = []
        sizes = [int(s) for s in args.slices.split(",") if s]
        rts = [r for r in runtimes if r not in ("today", "before")]
        runs = {(n, r): [] for n in sizes for r in rts}
        for _ in range(max(1, args.repeat)):
            for n in sizes:
                for r in rts:
                    runs[(n, r)].append(_spawn(f"phantom:{n}", r, args, False))
        for (n, r), rr in runs.items():
            m = _median(rr)
            if "error" in m:
                scaling.append(m)
                continue
            seg = m["timings"].get("slices_segmented", n)
            scaling.append({"slices": n, "runtime": r, "volume_s": m["volume_s"], "network_s": m["network_s"],
                            "volume_cpu_s": m["volume_cpu_s"], "network_cpu_s": m["network_cpu_s"],
                            "cpu_ms_per_slice": round(1000 * m["volume_cpu_s"] / n, 2),
                            "ms_per_slice": round(1000 * m["volume_s"] / n, 2),
                            "network_ms_per_segmented_slice": round(1000 * m["network_s"] / seg, 2)
                            if m["network_s"] else None,
                            "peak_mem_mb": m["peak_mem_mb"], "mb_per_slice": round(m["peak_mem_mb"] / n, 3),
                            "peak_over_scan": m["peak_over_scan"], "slices_segmented": int(seg),
                            "gate_s": m["timings"].get("gate_s"), "lungs_s": m["timings"].get("lungs_s")})
        report["scaling"] = scaling
    report["machine"]["load_avg_at_end"] = list(os.getloadavg())
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
