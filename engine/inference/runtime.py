"""Where a network runs: float32, bf16 autocast, or ONNX Runtime on the CPU.

``precision`` (:class:`~.predictor.Predictor`, ``python -m engine predict --precision``):

``fp32``
    float32 torch (channels-last, batch norm folded): the reference.
``bf16``
    torch under ``torch.autocast(bfloat16)``: on CUDA, and on CPUs with native bf16
    (``avx512_bf16`` / AMX).
``onnx``
    ONNX Runtime (CPU) on the model exported from our own weights, once, to the user
    cache folder (``$LUNGLENS_CACHE_DIR/onnx`` or the platform's cache), keyed by the
    weights' sha256. Models without a recorded sha256 (built in code) stay in torch.
``auto``
    the measured choice: on CUDA bf16; on the CPU ONNX Runtime when ``onnxruntime`` and
    ``onnx`` are installed, else float32.

The rule (docs/MODELS.md): the fastest runtime whose readings stay within tolerance of
float32 (Dice against the truth within 0.005 per finding, calibrated per-slice
probabilities within 0.02, on the labelled medseg100 slices and the real scans). Measured
on the 2-core AMD EPYC with avx512_bf16 (``benchmarks/runtimes.py`` and
``benchmarks/precision.py``, machine shared with other jobs):

- ONNX Runtime: U-Net 1.74x faster per batch than float32 torch (3.4x less CPU time at
  4 slices per batch), finding classifier 8.4x; outputs within 2e-5; on the real scans
  the readings are identical (Dice 1.000, per-slice probabilities within 0.0003). Chosen.
- bf16 autocast: U-Net 1.36x, classifier 1.2x; on medseg100 Dice within 0.003 but
  per-slice probabilities change by up to 0.072, and on the real scans whole regions flip
  at the presence threshold (Dice against float32 0.89-0.98, per-slice probabilities up
  to 0.84 apart). Outside the tolerance: kept as an option, not chosen.

A model that fails to export or to load in ONNX Runtime runs in torch (float32) with a
log line: a missing optional runtime never stops a reading.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from .. import userdata
from ..errors import ModelError

log = logging.getLogger(__name__)

#: what a caller may ask for
PRECISIONS = ("auto", "fp32", "bf16", "onnx")
#: bumped when the export changes, so cached files of an older export are not reused
EXPORT_VERSION = 1


def cpu_has_bf16() -> bool:
    """True when oneDNN runs bf16 natively on this CPU (avx512_bf16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def onnx_available() -> bool:
    """True when ``onnxruntime`` and ``onnx`` (the exporter needs it) are installed."""
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def choose(device: torch.device, precision: str = "auto") -> str:
    """The runtime for ``precision`` on ``device``: ``"fp32"``, ``"bf16"`` or ``"onnx"``.

    Raises
    ------
    ModelError
        An unknown precision, ONNX Runtime asked for on CUDA or when it is not installed,
        or bf16 on a CPU without it.
    """
    p = str(precision).lower()
    if p not in PRECISIONS:
        raise ModelError(f"Unknown precision '{precision}': use {', '.join(PRECISIONS)}.")
    cuda = device.type == "cuda"
    if p == "auto":
        if cuda:
            return "bf16"
        return "onnx" if onnx_available() else "fp32"
    if p == "onnx":
        if cuda:
            raise ModelError("ONNX Runtime is used on the CPU only: on CUDA use --precision bf16 or fp32.")
        if not onnx_available():
            raise ModelError("ONNX Runtime is not installed: pip install onnxruntime onnx, "
                             "or use --precision fp32.")
    if p == "bf16" and not cuda and not cpu_has_bf16():
        raise ModelError("This CPU has no native bf16 (avx512_bf16 or AMX): use --precision fp32 or onnx.")
    return p


def autocast_dtype(device: torch.device, runtime: str) -> Optional[torch.dtype]:
    """``torch.autocast`` dtype of ``runtime`` on ``device`` (``None``: no autocast)."""
    if runtime != "bf16":
        return None
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def cache_dir() -> Path:
    """Folder of the exported ONNX models: ``$LUNGLENS_CACHE_DIR/onnx`` or the platform's cache."""
    return userdata.cache_dir("onnx")


class OnnxNet:
    """An ONNX Runtime session called like the torch module: ``(n, C, H, W)`` float -> output tensor."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        # no memory arena: it kept the activations of a batch (about 300 MB) for the whole
        # reading; without it chest_ct_99 peaks at +712-736 MB instead of +1015-1126 MB
        # (today's fp32 code: +704 MB) for about 12 % more network CPU time (median of 3)
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 3
        # no busy-waiting between operators: on a shared 2-core CPU (and beside the app's GUI
        # thread) spinning threads take the cores the other thread needs (1.6 -> 1.3 s per U-Net
        # batch measured under load)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().float().cpu().numpy())
        return torch.from_numpy(self.session.run(None, {self.input: arr})[0])


def onnx_path(name: str, sha256: str) -> Path:
    """Cache file of model ``name`` with weights ``sha256``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    key = hashlib.sha256(f"{sha256}:{EXPORT_VERSION}:{torch.__version__}".encode()).hexdigest()[:16]
    return cache_dir() / f"{safe}-{sha256[:16]}-{key}.onnx"


#: temporary exports are named ``TEMP_PREFIX*.onnx``; older than :data:`STALE_TEMP_S` they were left behind
TEMP_PREFIX = "tmp-export-"
STALE_TEMP_S = 3600.0


def _remove_stale_temps(folder: Path) -> None:
    """Remove temporary exports older than :data:`STALE_TEMP_S` (an export takes seconds)."""
    now = time.time()
    for old in folder.glob(f"{TEMP_PREFIX}*.onnx"):
        try:
            if now - old.stat().st_mtime > STALE_TEMP_S:
                old.unlink()
        except OSError:  # another process removed it, or it cannot be: not ours to insist
            pass


def export(module: nn.Module, in_channels: int, size: tuple[int, int], path: Path) -> Path:
    """Export ``module`` (eval mode) to ONNX at ``path`` with dynamic batch, height and width.

    Written to a temporary file first and moved into place, so a crash never leaves a
    half-written model that a later run would load; temporaries an ended process left (the
    app exits without its interpreter's teardown while a model loads) are removed after
    :data:`STALE_TEMP_S`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path.parent)
    x = torch.zeros((1, in_channels) + tuple(size))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.float().to(memory_format=torch.contiguous_format), (x,), tmp,
                              input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n"}},
                              opset_version=17, dynamo=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def onnx_net(module: nn.Module, name: str, sha256: str, in_channels: int, size: tuple[int, int],
             threads: int) -> Optional[OnnxNet]:
    """The ONNX Runtime twin of ``module`` (exported once per weights), or ``None`` when it cannot be made.

    ``None`` (the caller runs torch) when the weights have no sha256 to key the cache by,
    or when export or loading fails (logged).
    """
    if not sha256:
        return None
    path = onnx_path(name, sha256)
    try:
        if not path.is_file():
            import copy

            export(copy.deepcopy(module).cpu().eval(), in_channels, size, path)
            log.info("exported %s to ONNX: %s", name, path)
        return OnnxNet(path, threads)
    except Exception as exc:  # noqa: BLE001 - any exporter/runtime failure: fall back to torch
        log.warning("model %s does not run in ONNX Runtime (%s): using torch", name, exc)
        return None


__all__ = ["PRECISIONS", "OnnxNet", "autocast_dtype", "cache_dir", "choose", "cpu_has_bf16", "export",
           "onnx_available", "onnx_net", "onnx_path"]
