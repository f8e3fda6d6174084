"""engine.inference.postprocess: the slab's labels at full size, bit-identical to resizing the whole frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.inference import Predictor
from engine.inference import nets as N
from engine.inference import postprocess as P
from engine.phantom import chest_ct
from engine.preprocessing.normalize import hu_to_unit, uint8_to_unit


def reference(probs, box, size, full, lut, groups):
    """The formulation the reading is defined by (the predictor's code before the window)."""
    p_full = N.resize(N.in_frame(probs, box, size), full)
    fprobs = N.finding_probabilities(p_full, groups)
    lab = torch.as_tensor(lut)[p_full.max(1).indices]
    conf = N.quantise(fprobs.gather(1, (lab.long() - 1).clamp_(min=0).unsqueeze(1))[:, 0])
    lung = (p_full[:, 1:].sum(1) > 0.5).numpy()
    return lab.numpy(), conf.numpy(), N.quantise(fprobs).numpy(), lung


def groups_of(lut):
    return [[int(k) for k in np.flatnonzero(lut == lab)] for lab in (1, 2, 3)]


@pytest.mark.parametrize("full", [(512, 512), (1024, 512), (256, 256), (384, 384), (630, 630), (128, 128)])
def test_read_slab_equals_resizing_the_whole_frame(full):
    g = torch.Generator().manual_seed(sum(full))
    size = (256, 256)
    luts = [np.array([0, 1, 2, 3], np.uint8), np.array([0, 2, 1, 3], np.uint8), np.array([0, 1, 1, 3], np.uint8)]
    boxes = [(0, 256, 0, 256), (32, 224, 0, 256), (64, 96, 160, 256), (0, 32, 0, 32), (224, 256, 96, 192)]
    for i, box in enumerate(boxes):
        y0, y1, x0, x1 = box
        logits = torch.randn(3, 4, y1 - y0, x1 - x0, generator=g) * 4
        logits[0, 1:] -= 30.0  # a slice of pure background next to the mixed ones
        probs = torch.softmax(logits, 1)
        lut = luts[i % len(luts)]
        want = reference(probs, box, size, full, lut, groups_of(lut))
        got = P.read_slab(probs, box, size, full, lut, groups_of(lut), keep_probabilities=True)
        y0, y1, x0, x1 = got[3]
        for h in got[:2]:  # all zero outside the window
            assert not h[:, :y0].any() and not h[:, y1:].any() and not h[:, :, :x0].any() and not h[:, :, x1:].any()
        for w, h in zip(want[:3], got[:3]):
            assert h.dtype == np.uint8 and h.shape == w.shape
            np.testing.assert_array_equal(h, w)
        np.testing.assert_array_equal(P.lung_slab(probs[:, :2] / probs[:, :2].sum(1, keepdim=True), box, size,
                                                  full),
                                      reference(probs[:, :2] / probs[:, :2].sum(1, keepdim=True), box, size, full,
                                                lut[:2], [[1], [], []])[3])
        assert (want[0] > 0).any() and (want[1] > 0).any()  # the comparison saw labels and confidences


def test_window_is_the_crop_grown_by_one_model_pixel_and_skipped_without_a_power_of_two():
    assert P.frame_window((32, 224, 0, 256), (256, 256), (512, 512)) == ((31, 225, 0, 256), (62, 450, 0, 512))
    assert P.frame_window((32, 64, 32, 64), (256, 256), (1024, 1024)) == ((31, 65, 31, 65), (124, 260, 124, 260))
    assert P.frame_window((32, 64, 0, 256), (256, 256), (630, 630)) is None  # 630 / 256: the whole frame
    assert P.frame_window((32, 64, 0, 256), (256, 256), (768, 768)) is None  # 3x: weights are not dyadic
    assert P.frame_window((32, 64, 0, 256), (256, 256), (128, 128)) is None  # shrinking


def test_read_slab_on_real_model_output_matches_the_whole_frame():
    """The default segmentation model on a phantom slab: same labels, confidence and maps."""
    volume = chest_ct((16, 512, 512), (2.5, 0.7, 0.7), seed=3).volume
    pred = Predictor(device="cpu", precision="fp32", covid_model=False, lung_model=False, findings_model=False)
    nets = pred.load()
    seg = nets["segmentation"]
    zs = np.arange(4, 12)
    from engine.inference.roi import find_roi
    roi = find_roi(volume.array, True, volume.geometry.spacing)
    with torch.inference_mode():
        unit, index = pred._unit_slices(volume.array, zs, True, 0)
        probs, box = pred._segment(seg, unit, zs, index, roi.box(zs), (512, 512), {}, None)
    assert box != (0, 256, 0, 256)  # the torso crop: the window shortcut is exercised
    lut = seg.label_map()
    want = reference(probs, box, seg.input_size, (512, 512), lut, N.finding_channels(seg))
    got = P.read_slab(probs, box, seg.input_size, (512, 512), lut, N.finding_channels(seg), True)
    assert got[3][1] - got[3][0] < 512  # a window smaller than the slice
    for w, h in zip(want[:3], got[:3]):
        np.testing.assert_array_equal(h, w)
    assert (got[1] > 0).sum() > 1000


def test_in_place_normalisation_equals_the_formula_and_leaves_its_input_alone():
    g = torch.Generator().manual_seed(0)
    hu = torch.randint(-3000, 3000, (3, 64, 64), dtype=torch.int16, generator=g)
    want = (hu.to(torch.float32).clamp(-1350.0, 150.0) - -1350.0) / 1500.0
    assert torch.equal(hu_to_unit(hu), want)
    as_float = hu.float()
    assert torch.equal(hu_to_unit(as_float), want)
    assert torch.equal(as_float, hu.float())  # a float32 input is not normalised in place
    u8 = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g)
    as_float = u8.float()
    assert torch.equal(uint8_to_unit(u8), u8.to(torch.float32) / 255.0)
    assert torch.equal(uint8_to_unit(as_float), u8.to(torch.float32) / 255.0)
    assert torch.equal(as_float, u8.float())
