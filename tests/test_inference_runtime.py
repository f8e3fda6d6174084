"""engine.inference.runtime: the choice of runtime, the ONNX export and its cache, the
chosen runtime against float32 on real labelled slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import ModelError
from engine.inference import Predictor
from engine.inference import nets as N
from engine.inference import runtime as R
from engine.inference.reference import intensity_model
from engine.phantom import chest_ct

#: docs/MODELS.md: the chosen runtime's tolerance against float32
DICE_TOLERANCE = 0.005
SLICE_PROBABILITY_TOLERANCE = 0.02


def test_choose_names_each_runtime_and_refuses_what_cannot_run(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert R.choose(cpu, "fp32") == "fp32" and R.choose(cuda, "fp32") == "fp32"
    assert R.choose(cuda, "auto") == "bf16" and R.choose(cuda, "bf16") == "bf16"
    with pytest.raises(ModelError, match="Unknown precision 'fp8'"):
        R.choose(cpu, "fp8")
    with pytest.raises(ModelError, match="CPU only"):
        R.choose(cuda, "onnx")
    monkeypatch.setattr(R, "onnx_available", lambda: False)  # an install without onnxruntime
    assert R.choose(cpu, "auto") == "fp32"
    with pytest.raises(ModelError, match="pip install onnxruntime"):
        R.choose(cpu, "onnx")
    monkeypatch.setattr(R, "onnx_available", lambda: True)
    assert R.choose(cpu, "auto") == "onnx"
    monkeypatch.setattr(R, "cpu_has_bf16", lambda: False)
    with pytest.raises(ModelError, match="no native bf16"):
        R.choose(cpu, "bf16")
    assert R.autocast_dtype(cpu, "bf16") is torch.bfloat16 and R.autocast_dtype(cpu, "onnx") is None


def test_onnx_export_is_cached_by_weights_and_matches_torch(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    monkeypatch.setenv("LUNGLENS_CACHE_DIR", str(tmp_path))
    net = N.load_net(None, "segmentation", torch.device("cpu"), required=True)
    onnx = R.onnx_net(net.module, net.name, net.sha256, net.in_channels, net.input_size, threads=2)
    assert onnx is not None
    path = R.onnx_path(net.name, net.sha256)
    assert path.parent == tmp_path / "onnx" and path.name.startswith(f"{net.name}-{net.sha256[:16]}-")
    stamp = path.stat().st_mtime_ns
    again = R.onnx_net(net.module, net.name, net.sha256, net.in_channels, net.input_size, threads=2)
    assert again is not None and path.stat().st_mtime_ns == stamp  # loaded, not exported again
    assert list(tmp_path.joinpath("onnx").iterdir()) == [path]  # no temporary file left behind
    # dynamic batch, height and width: the torso crops Run AI feeds
    x = torch.rand(3, net.in_channels, 160, 224)
    with torch.inference_mode():
        ref = net.module(x.contiguous(memory_format=torch.channels_last))
    assert again(x).shape == ref.shape
    assert float((again(x) - ref).abs().max()) < 1e-3
    # other weights, another file
    assert R.onnx_path(net.name, "0" * 64) != path
    # a model without recorded weights (built in code) is not exported: it runs in torch
    assert R.onnx_net(net.module, net.name, "", net.in_channels, net.input_size, threads=2) is None


def test_predictor_reports_runtime_and_network_time():
    v = chest_ct(shape=(32, 96, 96), spacing=(5.0, 3.5, 3.5), seed=2).volume
    pred = Predictor(intensity_model((64, 64)), device="cpu", covid_model=False, lung_gate=False,
                     precision="auto").predict(v)
    # a model built in code has no weights to export: it runs in float32 torch whatever was asked
    assert pred.models["segmentation"]["runtime"] == "fp32"
    t = pred.timings
    assert 0.0 < t["network_s"] < t["total_s"]
    with pytest.raises(ModelError, match="Unknown precision"):
        Predictor(device="cpu", precision="half")


def _read(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


@pytest.mark.parametrize("stem", ["medseg_030", "medseg_051"])
def test_chosen_runtime_matches_fp32_on_real_labelled_slices(shared_data, stem):
    """Held-out validation slices of the default U-Net (its card's split), GGO and consolidation."""
    from engine.inference.calibration import slice_volume

    root = shared_data / "medseg100"
    if not (root / "images" / f"{stem}.png").is_file():
        pytest.skip("medseg100 is not available")
    runtime = R.choose(torch.device("cpu"), "auto")
    if runtime == "fp32":
        pytest.skip("the chosen CPU runtime is float32 here (no onnxruntime): nothing to compare")
    volume = slice_volume(_read(root / "images" / f"{stem}.png"))
    truth = _read(root / "labels" / f"{stem}.png")
    kw = dict(device="cpu", covid_model=False, keep_probabilities=False)
    ref = Predictor(precision="fp32", **kw).predict(volume)
    fast = Predictor(precision="auto", **kw).predict(volume)
    assert fast.models["segmentation"]["runtime"] == runtime != ref.models["segmentation"]["runtime"]
    compared = 0
    for lab in (1, 2):
        t = truth == lab
        if not t.any():
            continue
        d_ref = 2 * (t & (ref.labels[0] == lab)).sum() / (t.sum() + (ref.labels[0] == lab).sum())
        d_fast = 2 * (t & (fast.labels[0] == lab)).sum() / (t.sum() + (fast.labels[0] == lab).sum())
        if d_ref <= 0.3:  # the reading does not find it (medseg_030's GGO: 0.24): no comparison to make
            continue
        assert abs(d_fast - d_ref) < DICE_TOLERANCE
        compared += 1
    assert compared >= 1
    assert np.abs(fast.slice_probabilities - ref.slice_probabilities).max() < SLICE_PROBABILITY_TOLERANCE


@pytest.mark.parametrize("role", ["segmentation", "covid"])
def test_onnx_forward_of_part_of_a_slab_gives_the_same_logits_as_the_whole_slab(role):
    """Run AI feeds ONNX Runtime ONNX_FORWARD_SLICES slices at a time inside a slab of 8 (half the
    activation memory): the logits must be those of one pass over the slab, bit for bit."""
    pytest.importorskip("onnxruntime")
    from engine.inference.predictor import ONNX_FORWARD_SLICES
    from engine.inference.roi import find_roi
    volume = chest_ct((40, 512, 512), (2.0, 0.7, 0.7), seed=5).volume
    pred = Predictor(device="cpu", precision="onnx", findings_model=False, lung_model=False,
                     covid_model=None if role == "covid" else False)
    net = pred.load()[role]
    if net is None or net.onnx is None:
        pytest.skip(f"no {role} model in ONNX Runtime here")
    zs = np.arange(14, 22)
    roi = find_roi(volume.array, True, volume.geometry.spacing)
    with torch.inference_mode():
        unit, index = pred._unit_slices(volume.array, zs, True, net.in_channels // 2 if net.neighbours else 0)
        x = N.resize(N.channels(unit, net, zs, index), net.input_size)
        if role == "segmentation":
            y0, y1, x0, x1 = N.aligned_box(roi.box(zs), (512, 512), net.input_size, net.multiple)
            x = x[..., y0:y1, x0:x1]
        whole = net.onnx(x)
        parts = torch.cat([net.onnx(x[i:i + ONNX_FORWARD_SLICES]) for i in range(0, 8, ONNX_FORWARD_SLICES)])
        ran = pred._run(net, x, None)  # the predictor's own loop, in parts
    assert ONNX_FORWARD_SLICES < 8 and whole.shape[0] == 8
    assert torch.equal(parts, whole) and torch.equal(ran, whole)
    assert float(whole.std()) > 0  # real, varied logits were compared


def test_an_export_removes_temporaries_an_ended_process_left(tmp_path, monkeypatch):
    """An app that exits at once while a model exports (application.run's os._exit) leaves its
    temporary file; the next export removes those older than an hour and keeps a fresh one
    (another process may be exporting right now)."""
    import os
    import time

    from torch import nn
    monkeypatch.setenv("LUNGLENS_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "onnx"
    folder.mkdir()
    old = folder / f"{R.TEMP_PREFIX}left.onnx"
    fresh = folder / f"{R.TEMP_PREFIX}busy.onnx"
    other = folder / "someone-elses.onnx"
    for f in (old, fresh, other):
        f.write_bytes(b"partial")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(other, (two_hours_ago, two_hours_ago))
    out = R.export(nn.Conv2d(1, 2, 3, padding=1).eval(), 1, (16, 16), folder / "tiny.onnx")
    assert out.is_file() and not old.exists() and fresh.exists() and other.exists()
