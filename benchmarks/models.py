"""Per-architecture inference time: ms per slice on CPU (batch of 8, fp32) and on GPU
(batch of 8, bf16 autocast) at each model's input size, plus parameters.

python benchmarks/models.py --runs runs/            # trained run folders (card.json)
python benchmarks/models.py --configs engine/training/configs --cpu-threads 2
python benchmarks/models.py --models unet_infection --tta h --size 512   # cost of test-time flips

Writes a JSON list (``--json``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.models.registry import build, count_params  # noqa: E402


def _time(model: torch.nn.Module, x: torch.Tensor, reps: int, cuda: bool) -> float:
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        model(x)
        if cuda:
            torch.cuda.synchronize()
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            model(x)
            if cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
    return best * 1000 / x.shape[0]


def bench(arch: str, config: dict, size: int, cpu: bool = True, gpu: bool = True, batch: int = 8,
          reps: int = 3, tta: tuple[str, ...] = ()) -> dict:
    model = build(arch, config).eval()
    if tta:
        from engine.models.ensemble import flip_tta

        model = flip_tta(model, tta).eval()
    row = {"params": count_params(model), "input_size": size}
    x = torch.rand(batch, int(config.get("in_channels", 1)), size, size)
    if cpu:
        row["cpu_ms_per_slice"] = round(_time(model, x, reps, False), 1)
    if gpu and torch.cuda.is_available():
        m = model.cuda().to(memory_format=torch.channels_last)
        row["gpu_ms_per_slice"] = round(_time(m, x.cuda().contiguous(memory_format=torch.channels_last), 10, True), 2)
        row["gpu"] = torch.cuda.get_device_name()
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", help="folder of run folders with card.json")
    ap.add_argument("--configs", help="folder of training configs (untrained models)")
    ap.add_argument("--cpu-threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", help="shipped model names (or 'default')")
    ap.add_argument("--tta", default="", help="test-time flips to add, e.g. h or h,v (each one more forward pass)")
    ap.add_argument("--size", type=int, help="input size instead of each model's own")
    ap.add_argument("--no-cpu", action="store_true")
    ap.add_argument("--json", help="write results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.cpu_threads)
    items = []
    if args.runs:
        for card in sorted(Path(args.runs).glob("*/card.json")):
            d = json.loads(card.read_text())
            items.append((d["name"], d["architecture"], d["config"], d["input_size"][0]))
    if args.configs:
        from engine.training.config import TrainConfig

        for f in sorted(Path(args.configs).glob("*.json")):
            c = TrainConfig.from_dict(json.loads(f.read_text()))
            items.append((c.name, c.architecture, c.model_config(), c.input_size))
    if args.models:
        from engine.models.registry import get_card

        for n in args.models:
            c = get_card(n)
            items.append((c.name, c.architecture, {**c.config, "in_channels": c.in_channels}, c.input_size[0]))
    tta = tuple(f for f in args.tta.split(",") if f)
    rows = []
    for name, arch, cfg, size in items:
        size = args.size or size
        row = {"name": name, "architecture": arch, **bench(arch, cfg, size, cpu=not args.no_cpu, tta=tta)}
        row["cpu_threads"] = args.cpu_threads
        row["tta"] = list(tta)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
