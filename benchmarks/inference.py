"""Benchmark Run AI (``engine.inference.Predictor``) on a whole scan; prints JSON.

Cases: the phantom at 512x512x300 (1 x 0.7 x 0.7 mm) and the real 99-slice DICOM
series ``../shared/data/dicom/chest_ct_99``. Each case runs in a fresh subprocess
(imports and scan loading done before the clock starts) and reports:

``visible_slice_s``
    from pressing Run AI (predictor created, models loaded from disk) to the visible
    slice's labels (the first slab; the visible slice is the middle of the scan);
``volume_s``
    the whole scan: lungs, labels, anatomy rules, finding probabilities, COVID classifier;
``slices_per_s``
    slices of the scan per second of ``volume_s`` (and ``segmented_per_s``: slices that
    went through the model per second of segmentation);
``without_lung_gate``
    one more run with the lung gate off (``Predictor(lung_gate=False)``): the gate's
    cost is ``timings.gate_s`` and the difference of the two ``volume_s``;
``peak_mem_mb``
    peak resident memory of the process (``ru_maxrss``) and its increase over the
    loaded scan (``peak_mem_increase_mb``); on CUDA also the peak GPU memory.

The models are the registry defaults. When a default's weights are not installed,
the same architecture is built untrained from its card (or default configuration):
the timing is representative, the labels are not (``"weights": "untrained"``).

Usage: ``python benchmarks/inference.py [--device cpu|cuda|auto] [--json] [--threads N]
[--cases phantom,dicom99] [--batch-size 0] [--repeat 0]``

Each run starts from "press Run AI": models are loaded from disk inside the timed span.
On CUDA the one-time driver start (``cuda_init_s``) is measured apart, before the first
run; ``first_run`` gives the first run's figures (cold caches), the top-level figures are
the fastest run's.

Goals (issue 5): on the 2-core CPU, visible slice < 0.5 s and a 300-slice scan < 60 s;
on an H100, a 300-slice scan < 0.5 s end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DICOM_99 = ROOT.parent / "shared" / "data" / "dicom" / "chest_ct_99"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


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
    if case == "phantom":
        from engine.phantom import chest_ct
        return chest_ct((300, 512, 512), (1.0, 0.7, 0.7), seed=0).volume
    if case == "dicom99":
        from engine import io
        return io.load(DICOM_99)
    raise SystemExit(f"unknown case {case}")


def child(case: str, device: str, threads: int, batch_size: int, repeat: int) -> dict:
    import torch

    from engine.inference import Predictor
    from engine.inference.nets import resolve_device

    if threads:
        torch.set_num_threads(threads)
    dev = str(resolve_device(device))
    volume = _load_case(case)
    cuda_init_s = None
    if dev.startswith("cuda"):  # one-time driver/context start, reported apart from Run AI
        t = time.perf_counter()
        torch.zeros(1, device=dev)
        torch.cuda.synchronize()
        cuda_init_s = round(time.perf_counter() - t, 3)
    base_mb = _rss_mb()
    def run_once(gate: bool) -> dict:
        t_press = time.perf_counter()
        seg, seg_w = _model("segmentation", dev)
        fnd = False  # the finding classifier is no longer part of Run AI (issue 10)
        cov, cov_w = _model("covid", dev)
        predictor = Predictor(seg, device=dev, findings_model=fnd, covid_model=cov, batch_size=batch_size,
                              lung_gate=gate)
        first: list[float] = []

        def on_slab(z, labels, probs):
            if not first:
                if dev.startswith("cuda"):
                    torch.cuda.synchronize()
                first.append(time.perf_counter() - t_press)
        if dev.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        visible = volume.shape[0] // 2
        pred = predictor.predict(volume, order="center_out", visible_slice=visible, on_slab=on_slab)
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        volume_s = time.perf_counter() - t_press
        t = pred.timings
        return {"visible_slice_s": round(first[0], 4), "volume_s": round(volume_s, 3),
                "slices_per_s": round(volume.shape[0] / volume_s, 2),
                "segmented_per_s": round(t["slices_segmented"] / max(t["segmentation_s"], 1e-9), 2),
                "slices": volume.shape[0], "slices_segmented": int(t["slices_segmented"]),
                "timings": {k: round(v, 4) for k, v in t.items()},
                "_pred": pred, "_predictor": predictor, "_weights": (seg_w, "not run", cov_w)}

    results = [run_once(True) for _ in range(max(1, repeat))]
    # the same run without the lung gate (engine.inference.gate): what the gate costs
    no_gate = run_once(False)
    pred, predictor = results[0]["_pred"], results[0]["_predictor"]
    seg_w, fnd_w, cov_w = results[0]["_weights"]
    for r in results + [no_gate]:
        for k in ("_pred", "_predictor", "_weights"):
            r.pop(k)
    best = min(results, key=lambda r: r["volume_s"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out = {"case": case, "shape": list(volume.shape), "device": dev, **best,
           "first_run": {k: results[0][k] for k in ("visible_slice_s", "volume_s")}, "cuda_init_s": cuda_init_s,
           "peak_mem_mb": round(peak, 1), "peak_mem_increase_mb": round(peak - base_mb, 1),
           "weights": {"segmentation": seg_w, "findings": fnd_w, "covid": cov_w},
           "models": pred.models, "batch_size": predictor.batch_size, "runs": len(results),
           "restrict_to_lungs": predictor.restrict_to_lungs,
           "without_lung_gate": {k: no_gate[k] for k in ("visible_slice_s", "volume_s", "slices_per_s")}}
    if dev.startswith("cuda"):
        out["gpu_peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 1e6, 1)
        out["gpu"] = torch.cuda.get_device_name()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--json", action="store_true", help="print only the JSON document")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--batch-size", type=int, default=0, help="slices per forward pass (0: 8 on CPU, 32 on CUDA)")
    ap.add_argument("--cases", default="phantom,dicom99")
    ap.add_argument("--repeat", type=int, default=0,
                    help="runs per case, the fastest reported (0: 1 on CPU, 3 on CUDA, where the first run "
                         "also pays for cuDNN autotuning)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.device, args.threads, args.batch_size, args.repeat)))
        return 0
    import torch
    if not args.repeat:
        cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
        args.repeat = 3 if cuda else 1
    cases = [c for c in args.cases.split(",") if c]
    if "dicom99" in cases and not DICOM_99.is_dir():
        cases.remove("dicom99")
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "torch": torch.__version__, "python": platform.python_version()},
              "cases": []}
    for case in cases:
        cmd = [sys.executable, __file__, "--child", case, "--device", args.device, "--threads", str(args.threads),
               "--batch-size", str(args.batch_size), "--repeat", str(args.repeat)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            report["cases"].append({"case": case, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        report["cases"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        if not args.json:
            r = report["cases"][-1]
            print(f"{case:8s} {r['device']:6s} visible {r['visible_slice_s']:.3f} s  volume {r['volume_s']:.2f} s  "
                  f"{r['slices_per_s']:.1f} slices/s  peak {r['peak_mem_mb']:.0f} MB", file=sys.stderr)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
