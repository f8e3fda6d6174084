"""Resumable checkpoints: safetensors for model, optimizer and random-generator states, JSON
for the rest. Nothing is pickled.

A checkpoint is a folder holding step-tagged files (``model-00000120.safetensors``,
``optim-...``, ``rng-...``) and ``state.json``, which names them. ``state.json`` is written
last and moved into place with an atomic rename, so an interruption at any moment leaves
either the previous checkpoint or the new one, never a mix; files no longer named are
deleted afterwards.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import load_file, save_file
from torch import nn

STATE = "state.json"


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


def rng_tensors(generator: Optional[torch.Generator] = None) -> dict[str, torch.Tensor]:
    """The global CPU (and CUDA) random states, and ``generator``'s, as uint8 tensors."""
    out = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            out[f"torch_cuda{i}"] = st
    if generator is not None:
        out["augment"] = generator.get_state()
    return out


def restore_rng(tensors: dict[str, torch.Tensor], generator: Optional[torch.Generator] = None) -> None:
    """Put back the states :func:`rng_tensors` saved (CUDA ones only where that GPU exists)."""
    if "torch_cpu" in tensors:
        torch.set_rng_state(tensors["torch_cpu"].cpu())
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            if f"torch_cuda{i}" in tensors:
                torch.cuda.set_rng_state(tensors[f"torch_cuda{i}"].cpu(), i)
    if generator is not None and "augment" in tensors:
        generator.set_state(tensors["augment"].cpu())


def save_checkpoint(folder: Path, model: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any],
                    generator: Optional[torch.Generator] = None) -> None:
    """Write a checkpoint of ``model``, ``opt``, the random states and ``state`` (JSON-able)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"{int(state.get('step', 0)):08d}"
    files = {"model": f"model-{tag}.safetensors", "optim": f"optim-{tag}.safetensors", "rng": f"rng-{tag}.safetensors"}
    tensors, meta = _optim_tensors(opt)
    parts = {"model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
             "optim": tensors, "rng": rng_tensors(generator)}
    for key, name in files.items():
        tmp = folder / f".{name}.tmp"
        save_file(parts[key], str(tmp))
        os.replace(tmp, folder / name)
    tmp = folder / f".{STATE}.tmp"
    with open(tmp, "w") as f:
        json.dump({**state, "optimizer": meta, "files": files}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / STATE)
    keep = set(files.values()) | {STATE}
    for p in folder.iterdir():
        if p.name not in keep and p.suffix == ".safetensors" and not p.name.startswith("."):
            p.unlink(missing_ok=True)


def _files(state: dict[str, Any]) -> dict[str, str]:
    # checkpoints of earlier versions had fixed names and no random states
    return state.get("files") or {"model": "model.safetensors", "optim": "optim.safetensors"}


def load_checkpoint(folder: Path, model: nn.Module, opt: torch.optim.Optimizer, device: torch.device,
                    generator: Optional[torch.Generator] = None) -> dict[str, Any]:
    """Restore model, optimizer and random states in place; returns the saved training state
    (with ``"rng"``: the saved random tensors, to restore once the generator exists)."""
    folder = Path(folder)
    state = json.loads((folder / STATE).read_text())
    files = _files(state)
    model.load_state_dict(load_file(str(folder / files["model"]), device=str(device)))
    tensors = load_file(str(folder / files["optim"]), device=str(device))
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
    state["rng"] = load_file(str(folder / files["rng"])) if "rng" in files else {}
    return state


def has_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a complete checkpoint."""
    folder = Path(folder)
    if not (folder / STATE).is_file():
        return False
    try:
        state = json.loads((folder / STATE).read_text())
    except (OSError, ValueError):
        return False
    return all((folder / name).is_file() for name in _files(state).values())
