"""Compare the CPU runtimes of the networks side by side; prints JSON.

For the default segmentation U-Net and the finding classifier, one batch of real
model input (8 slices of the phantom, lung-windowed, at the model's input size; for
the U-Net the torso crop Run AI feeds it) goes through

``fp32``
    float32, channels-last, batch norm folded (today's CPU path);
``bf16``
    the same module under ``torch.autocast(cpu, bfloat16)`` (what ``--precision bf16``
    runs);
``onnx``
    ONNX Runtime on the same folded module exported to ONNX (only when ``onnx`` and
    ``onnxruntime`` are installed; exported to a temporary folder, not kept).

Repetitions are interleaved (fp32, bf16, onnx, fp32, ...) and the medians reported,
so a machine shared with other jobs slows all runtimes alike. ``max_abs_diff`` is the
largest change of the output probabilities (softmax / sigmoid) against fp32 and
``label_change`` the fraction of pixels whose argmax class changes.

Usage: ``python benchmarks/runtimes.py [--repeat 15] [--batch 8] [--threads 0]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _inputs(batch: int, size: int, crop: bool) -> torch.Tensor:
    from engine.inference import nets as N
    from engine.phantom import chest_ct

    vol = chest_ct((64, 512, 512), (5.0, 0.7, 0.7), seed=0).volume
    mid = vol.shape[0] // 2 - batch // 2
    x = N.to_unit(torch.from_numpy(vol.array[mid:mid + batch]), True).unsqueeze(1)
    x = N.resize(x, (size, size))
    if crop:  # Run AI's torso crop of the phantom: 256 x 192 of the 256 x 256 input
        x = x[..., 32:224, 0:256]
    return x.contiguous(memory_format=torch.channels_last)


def _onnx_session(module: torch.nn.Module, x: torch.Tensor, folder: Path):
    """The ONNX Runtime twin Run AI uses (:class:`engine.inference.runtime.OnnxNet`), exported to ``folder``."""
    from engine.inference import runtime as R

    if not R.onnx_available():
        return None
    path = R.export(module, x.shape[1], tuple(x.shape[-2:]), folder / "m.onnx")
    return R.OnnxNet(path, torch.get_num_threads())


def measure(role: str, repeat: int, batch: int) -> dict:
    from engine.inference import nets as N

    net = N.load_net(None, role, torch.device("cpu"), channels_last=True, required=True)
    x = _inputs(batch, net.input_size[0], crop=role == "segmentation")
    act = (lambda t: torch.softmax(t, 1)) if role == "segmentation" else torch.sigmoid
    runners = {}

    def fp32():
        with torch.inference_mode():
            return net.module(x).float()

    def bf16():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return net.module(x).float()

    runners["fp32"], runners["bf16"] = fp32, bf16
    tmp = tempfile.TemporaryDirectory()
    import copy
    sess = _onnx_session(copy.deepcopy(net.module), x, Path(tmp.name))
    if sess is not None:
        runners["onnx"] = lambda: sess(x)
    outs = {k: act(f()) for k, f in runners.items()}  # warm-up, and the outputs compared
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(repeat):
        for k, f in runners.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    ref = outs["fp32"]
    res = {"model": net.name, "input": list(x.shape), "runtimes": {}}
    for k in runners:
        med = statistics.median(times[k])
        entry = {"median_s": round(med, 4), "speedup_vs_fp32": round(statistics.median(times["fp32"]) / med, 2),
                 "max_abs_diff": float((outs[k] - ref).abs().max())}
        if role == "segmentation":
            entry["label_change"] = float((outs[k].argmax(1) != ref.argmax(1)).float().mean())
        res["runtimes"][k] = entry
    tmp.cleanup()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__,
           "cpu_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
           "models": [measure(r, args.repeat, args.batch) for r in ("segmentation", "findings")]}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
