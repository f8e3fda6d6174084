"""Every architecture builds from a small config and gives the contracted output shapes."""

from __future__ import annotations

import pytest
import torch

from engine.models import build
from engine.models.backbones import BACKBONES

SEG = [
    ("unet", {"base": 4, "depth": 3}),
    ("unet", {"base": 4, "depth": 2, "dropout": 0.5, "num_classes": 2}),
    ("segnet", {"base": 4, "convs": [1, 1, 2]}),
    ("two_stream", {"base": 4, "convs": [1, 1], "stages": 3, "iterations": 1}),
    ("deeplabv3plus", {"mode": "all", "width": 8, "middle": 1, "aspp_channels": 16}),
    ("deeplabv3plus", {"mode": "per_finding", "width": 8, "middle": 1, "aspp_channels": 16}),
] + [("infnet", {"backbone": b, "width": 8, "layers": [1, 1, 1, 1] if b != "vgg16" else [1, 1, 1, 1, 1],
                 "groups": 4, "channel": 8, "ra_channels": [16, 8], "num_classes": 4}) for b in BACKBONES]


@pytest.mark.parametrize("arch,cfg", SEG, ids=[f"{a}-{c.get('backbone', c.get('mode', ''))}" for a, c in SEG])
def test_segmentation_shapes(arch, cfg):
    torch.manual_seed(0)
    m = build(arch, cfg).eval()
    k = cfg.get("num_classes", 4)
    with torch.no_grad():
        out = m(torch.rand(2, 1, 64, 96))
    assert out.shape == (2, k, 64, 96)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch,cfg", SEG[3:], ids=[f"{a}-{c.get('backbone', c.get('mode', ''))}" for a, c in SEG[3:]])
def test_training_outputs_are_dicts_of_full_size_maps(arch, cfg):
    m = build(arch, cfg).train()
    out = m(torch.rand(2, 1, 64, 64))
    if arch == "deeplabv3plus" and cfg["mode"] == "all":
        assert out.shape == (2, 4, 64, 64)
        return
    maps = [v for v in out.values() if isinstance(v, torch.Tensor)] + [s for s in out.get("side", [])]
    assert maps and all(t.shape[-2:] == (64, 64) for t in maps)


def test_binary_infnet_returns_two_class_logits_matching_sigmoid():
    m = build("infnet", {"backbone": "resnet", "width": 8, "layers": [1, 1, 1, 1], "channel": 8,
                         "ra_channels": [16, 8], "num_classes": 1}).eval()
    with torch.no_grad():
        out = m(torch.rand(1, 1, 64, 64))
    assert out.shape == (1, 2, 64, 64)
    p = torch.softmax(out, 1)[:, 1]
    assert torch.allclose(p, torch.sigmoid(out[:, 1] - out[:, 0]), atol=1e-6)


def test_two_stage_binary_output():
    m = build("two_stream", {"base": 4, "convs": [1, 1], "stages": 2, "iterations": 1}).eval()
    with torch.no_grad():
        assert m(torch.rand(1, 1, 32, 32)).shape == (1, 2, 32, 32)


@pytest.mark.parametrize("n", [1, 3])
def test_classifier_outputs(n):
    m = build("classifier", {"width": 8, "blocks": [1, 1], "num_outputs": n}).eval()
    with torch.no_grad():
        assert m(torch.rand(3, 1, 64, 80)).shape == (3, n)


def test_segnet_unpools_at_pooling_indices():
    """Max-unpooling puts each value back where the max was: a single bright pixel survives."""
    import torch.nn.functional as F
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 5] = 1.0
    pooled, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    back = F.max_unpool2d(pooled, idx, 2, 2, output_size=x.shape[-2:])
    assert torch.equal(back, x)


def test_full_size_backbones_have_resnet50_scale():
    from engine.models.backbones import build_backbone
    n = sum(p.numel() for p in build_backbone("resnet", 1, 64).parameters())
    assert 22e6 < n < 25e6  # ResNet-50 without its fc layer: 23.5 M
