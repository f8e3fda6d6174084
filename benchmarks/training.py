"""Seconds per training step of a segmentation network, fp32 against bf16 autocast.

One step is what the trainer does: draw an augmented batch (dihedral + affine + window
presets + noise), forward in channels-last, the Dice + cross-entropy loss (with deep
supervision when the model has it), backward, gradient clipping, AdamW. Synthetic slices
(so no data is read); the best of ``--steps`` timed steps after one warm-up step.

python benchmarks/training.py --sizes 256 512 --batch 16 --threads 2 --json out.json
python benchmarks/training.py --config engine/training/configs/unet_s16_nopseudo.json --device cuda --batch 32
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.models.registry import build, count_params  # noqa: E402
from engine.training.augment import AugmentConfig, geometric, intensity  # noqa: E402
from engine.training.objective import labelled_loss  # noqa: E402

DEFAULT_CONFIG = ROOT / "engine" / "training" / "configs" / "unet_s16_nopseudo.json"
RECIPE_AUGMENT = {"flip": 0.5, "flip_v": 0.5, "transpose": 0.5, "rotate_deg": 15, "elastic_p": 0.2,
                  "windows": {"lung": 0.2, "lung_narrow": 0.15, "lung_wide": 0.15, "soft_tissue": 0.05},
                  "noise": 0.04, "blur_p": 0.2, "clahe_p": 0.0}


def step_time(arch: str, model_cfg: dict, size: int, batch: int, bf16: bool, device: torch.device,
              steps: int = 3) -> float:
    """Best wall time of one training step (seconds)."""
    torch.manual_seed(0)
    model = build(arch, model_cfg).to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    aug = AugmentConfig.from_dict(RECIPE_AUGMENT)
    g = torch.Generator().manual_seed(0)
    base = torch.rand(batch, 1, size, size, device=device)
    lab = torch.zeros(batch, size, size, dtype=torch.uint8, device=device)
    lab[:, size // 4:size // 2, size // 4:size // 2] = 1
    lab[:, size // 2:3 * size // 4, size // 3:size // 2] = 2
    best = float("inf")
    for i in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        x, (y,) = geometric(base, [lab], aug, g)
        x = intensity(x, aug, g).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = labelled_loss(out, y.long(), None, None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up
            best = min(best, time.perf_counter() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="training config whose model is timed")
    ap.add_argument("--deep-supervision", action="store_true", help="time the model with deep supervision heads")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--modes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--json", help="write the rows as JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = json.loads(Path(args.config).read_text())
    model_cfg = dict(cfg.get("model", {}))
    if args.deep_supervision:
        model_cfg["deep_supervision"] = True
    device = torch.device(args.device)
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU {platform.processor() or platform.machine()}, {args.threads} threads")
    rows = []
    for size in args.sizes:
        for mode in args.modes:
            s = step_time(cfg.get("architecture", "unet"), model_cfg, size, args.batch, mode == "bf16", device,
                          args.steps)
            row = {"config": Path(args.config).stem, "size": size, "batch": args.batch, "mode": mode,
                   "s_per_step": round(s, 3), "params": count_params(build(cfg.get("architecture", "unet"), model_cfg)),
                   "device": where, "deep_supervision": bool(model_cfg.get("deep_supervision"))}
            rows.append(row)
            print(f"{row['config']:<22} {size:>4} px  batch {args.batch:>3}  {mode:<5} {s:7.3f} s/step  ({where})",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
