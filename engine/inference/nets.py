"""Models as the predictor uses them: resolved from the registry, on a device, with
their input contract (channels, size, multiple) at hand.

The model I/O contract is :mod:`engine.models.registry`'s: input ``(B, C, H, W)``
float in [0, 1], ``C = card.in_channels``; segmentation logits ``(B, K, H, W)``;
finding classifier ``(B, 3)`` logits; COVID classifier ``(B, 1)`` logit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from ..labels import DEFAULT_TABLE, EFFUSION, FINDINGS, GGO
from ..preprocessing.normalize import model_input

#: model class name -> LungLens label value. A binary model's "infection" class is
#: shown as GGO, the most frequent finding (Prediction.notes says so).
CLASS_TO_LABEL: dict[str, int] = {**{lab.key: lab.value for lab in DEFAULT_TABLE},
                                  "pleural_effusion": EFFUSION, "infection": GGO}

#: what a caller may pass for a model: a registry name, a loaded model, None (the
#: default for the task) or False (no model of that kind)
ModelSpec = Union[None, bool, str, Any]


def resolve_device(device: Union[str, torch.device] = "auto") -> torch.device:
    """``"auto"`` -> CUDA when an NVIDIA GPU is usable, else CPU."""
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("CUDA was requested but no usable NVIDIA GPU was found: run on the CPU (--device cpu).")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise ModelError(f"Unknown device '{device}': use auto, cpu or cuda.")
    return torch.device(name)


def autocast_dtype(device: torch.device, amp: bool) -> Optional[torch.dtype]:
    """Mixed-precision dtype of ``amp`` on ``device``: bf16 (fp16 on GPUs without bf16), or none.

    On the CPU bf16 autocast runs natively where oneDNN supports it (avx512_bf16 / AMX):
    on the 2-core AMD EPYC it measured 1.36x faster than float32 for the U-Net and 1.2x
    for the finding classifier, but it changes real readings beyond tolerance (Dice
    against float32 0.89-0.98 on the real scans, per-slice probabilities up to 0.84
    apart), so the CPU default is ONNX Runtime (exact, 1.7x and 8.4x); see :mod:`.runtime`
    and docs/MODELS.md. ``None`` where the CPU has no native bf16 (emulated bf16 is
    slower than float32).
    """
    if not amp:
        return None
    if device.type != "cuda":
        from .runtime import cpu_has_bf16
        return torch.bfloat16 if cpu_has_bf16() else None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass
class Net:
    """A model ready to run, with what the predictor needs to feed it."""

    role: str
    module: nn.Module
    name: str
    version: str
    architecture: str
    in_channels: int
    input_size: tuple[int, int]
    classes: tuple[str, ...]
    multiple: int = 32
    #: True when extra input channels are neighbouring slices (card.extra["channels"]
    #: == "neighbours"); otherwise a 1-channel slice is repeated
    neighbours: bool = False
    #: False once the model refused a cropped input: it then always gets the whole slice
    can_crop: bool = True
    val_metrics: dict = field(default_factory=dict)
    #: sha256 of the weights (from the card; "" for models built in code)
    sha256: str = ""
    #: where it runs: "fp32", "bf16" or "onnx" (:mod:`.runtime`)
    runtime: str = "fp32"
    #: the ONNX Runtime session when ``runtime == "onnx"``
    onnx: Optional[Any] = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "architecture": self.architecture,
                "input_size": list(self.input_size), "runtime": self.runtime}

    def label_map(self) -> np.ndarray:
        """LungLens label value of each output class (0 for background/unknown)."""
        return np.array([CLASS_TO_LABEL.get(c.lower(), 0) for c in self.classes], dtype=np.uint8)


_TASK_OF_ROLE = {"segmentation": "segmentation", "findings": "findings", "covid": "covid", "lung": "lung"}


def load_net(spec: ModelSpec, role: str, device: torch.device, channels_last: bool = True,
             required: bool = False) -> Optional[Net]:
    """Resolve ``spec`` for ``role`` to a :class:`Net` on ``device``.

    Parameters
    ----------
    spec
        Registry name (or weights path), an object with ``module`` and ``card``
        attributes (a :class:`engine.models.registry.LoadedModel`), ``None`` for the
        registry default of the task, or ``False`` for none.
    role
        ``"segmentation"``, ``"findings"``, ``"covid"`` or ``"lung"``.
    required
        When False, a missing *default* model gives ``None`` instead of an error.

    Raises
    ------
    ModelError
        The named model does not exist, does not load, or is for another task.
    """
    if spec is False:
        return None
    if spec is None or spec is True:
        from ..models import registry
        name = registry.default_model(_TASK_OF_ROLE[role])
        try:
            loaded = registry.load(name, device=device)
        except ModelError:
            if required:
                raise
            return None
    elif isinstance(spec, (str,)) or hasattr(spec, "__fspath__"):
        from ..models import registry
        loaded = registry.load(spec, device=device)
    elif hasattr(spec, "module") and hasattr(spec, "card"):
        loaded = spec
    else:
        raise ModelError(f"Cannot use {spec!r} as a {role} model: give a registry name or a loaded model.")
    card = loaded.card
    if card.task != _TASK_OF_ROLE[role]:
        raise ModelError(f"Model '{card.name}' is a {card.task} model, not a {role} model.")
    module = fuse_conv_bn(loaded.module.to(device).eval())
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    extra = getattr(card, "extra", {}) or {}
    return Net(role=role, module=module, name=card.name, version=str(card.version),
               architecture=card.architecture, in_channels=int(card.in_channels),
               input_size=tuple(int(v) for v in card.input_size), classes=tuple(card.classes),
               multiple=int(extra.get("multiple", 32)), neighbours=extra.get("channels") == "neighbours",
               val_metrics=dict(getattr(card, "val_metrics", {}) or {}), sha256=str(getattr(card, "sha256", "") or ""))


def fuse_conv_bn(module: nn.Module) -> nn.Module:
    """Fold batch-norm layers into the convolutions right before them (eval mode only).

    Works on ``nn.Sequential`` containers (``Conv2d`` followed by ``BatchNorm2d``, as in
    :class:`engine.models.blocks.ConvBNAct`), in place on a copy; other layers are left
    alone (inside a Sequential a convolution's output feeds only the next layer, so the
    fold is exact). Saves the batch-norm passes (about a sixth of a U-Net's CPU time).
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if not any(isinstance(m, nn.BatchNorm2d) for m in module.modules()):
        return module
    fused = copy.deepcopy(module).eval()
    count = 0
    for seq in fused.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats \
                    and conv.out_channels == bn.num_features:
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
                count += 1
    return fused if count else module


def argmax_channels(p: torch.Tensor) -> torch.Tensor:
    """``p.argmax(1)`` for few channels, fast for any memory layout (ties go to the lower class)."""
    best = p[:, 0]
    idx = torch.zeros(best.shape, dtype=torch.uint8, device=p.device)
    for k in range(1, p.shape[1]):
        more = p[:, k] > best
        idx[more] = k
        best = torch.maximum(best, p[:, k])
    return idx


def to_unit(slices: torch.Tensor, is_hu: bool) -> torch.Tensor:
    """Model input normalisation (:func:`engine.preprocessing.normalize.model_input`, the one formula)."""
    return model_input(slices, is_hu)


def channels(unit: torch.Tensor, net: Net, zs: np.ndarray, index: dict[int, int]) -> torch.Tensor:
    """Input channels for ``net`` of slices ``zs``: ``unit`` holds the slices named by ``index``.

    Returns ``(n, C, Y, X)``. Neighbouring-slice models get slices ``z-k..z+k``
    (clamped to the slices present in ``unit``); others a repeated slice.
    """
    c = net.in_channels
    if c == 1 or not net.neighbours:
        x = unit[[index[int(z)] for z in zs]].unsqueeze(1)
        return x if c == 1 else x.expand(-1, c, -1, -1)
    k = c // 2
    rows = []
    for z in zs:
        ids = []
        for dz in range(-k, c - k):
            zz = int(z) + dz
            ids.append(index[zz] if zz in index else index[int(z)])
        rows.append(ids)
    return unit[torch.as_tensor(rows, device=unit.device)]


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(n, C, h, w)`` to ``size`` (antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def aligned_box(box: tuple[int, int, int, int], full: tuple[int, int], size: tuple[int, int],
                multiple: int) -> tuple[int, int, int, int]:
    """Box in model-input pixels covering slice box ``box``, snapped outwards to ``multiple``.

    ``full`` is the slice size (Y, X) and ``size`` the model input size (H, W): the crop
    is taken from the slice resized to the model's scale, so the model sees lungs at
    the scale it was trained at.
    """
    y0, y1, x0, x1 = box
    (ny, nx), (h, w) = full, size

    def snap(a: int, b: int, n: int, m: int) -> tuple[int, int]:
        lo = int(np.floor(a * m / n))
        hi = int(np.ceil(b * m / n))
        lo = (lo // multiple) * multiple
        hi = min(m, -(-hi // multiple) * multiple)
        if hi - lo < multiple:
            hi = min(m, lo + multiple)
            lo = max(0, hi - multiple)
        return lo, hi

    my0, my1 = snap(y0, y1, ny, h)
    mx0, mx1 = snap(x0, x1, nx, w)
    return my0, my1, mx0, mx1


def finding_channels(net: Net) -> list[list[int]]:
    """For each finding (GGO, consolidation, effusion) the output classes that map to it."""
    lm = net.label_map()
    return [[int(k) for k in np.flatnonzero(lm == lab)] for lab in FINDINGS]


def finding_probabilities(probs: torch.Tensor, groups: list[list[int]]) -> torch.Tensor:
    """``(n, 3, h, w)``: for each finding the summed probability of its classes (0 without any)."""
    if all(len(g) == 1 for g in groups):  # one class per finding (the usual case): a gather, no sums
        return probs.index_select(1, torch.as_tensor([g[0] for g in groups], device=probs.device))
    return torch.stack([probs[:, g].sum(1) if g else torch.zeros_like(probs[:, 0]) for g in groups], 1)


def quantise(p: torch.Tensor) -> torch.Tensor:
    """Probabilities in [0, 1] -> uint8 0..255 (rounded)."""
    return (p * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)


def in_frame(probs: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]) -> torch.Tensor:
    """Crop probabilities ``(n, K, ...)`` placed in the model-size frame: background outside ``box``."""
    y0, y1, x0, x1 = box
    if (y0, y1, x0, x1) == (0, size[0], 0, size[1]):
        return probs
    out = torch.zeros((probs.shape[0], probs.shape[1], *size), dtype=probs.dtype, device=probs.device)
    out[:, 0] = 1.0
    out[:, :, y0:y1, x0:x1] = probs
    return out
