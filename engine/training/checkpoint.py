"""Resumable checkpoints: safetensors for model and optimizer tensors, JSON for the rest.
Nothing is pickled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def _optim_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_checkpoint(folder: Path, model: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(folder / "model.tmp.safetensors"))
    tensors, meta = _optim_tensors(opt)
    save_file(tensors, str(folder / "optim.tmp.safetensors"))
    (folder / "state.tmp.json").write_text(json.dumps({**state, "optimizer": meta}, indent=1))
    for stem, ext in (("model", "safetensors"), ("optim", "safetensors"), ("state", "json")):
        (folder / f"{stem}.tmp.{ext}").replace(folder / f"{stem}.{ext}")


def load_checkpoint(folder: Path, model: nn.Module, opt: torch.optim.Optimizer, device: torch.device) -> dict[str, Any]:
    """Restore model and optimizer in place; returns the saved training state."""
    state = json.loads((folder / "state.json").read_text())
    model.load_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)))
    tensors = load_file(str(folder / "optim.safetensors"), device=str(device))
    meta = state.pop("optimizer")
    opt_state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = v
    for key, v in meta["scalars"].items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = v
    for st in opt_state.values():  # Adam keeps "step" as a CPU tensor
        if "step" in st and isinstance(st["step"], torch.Tensor):
            st["step"] = st["step"].cpu()
    opt.load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    return state


def has_checkpoint(folder: Path) -> bool:
    return all((folder / n).is_file() for n in ("model.safetensors", "optim.safetensors", "state.json"))
