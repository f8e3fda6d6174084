"""engine.inference: order, ROI, pipeline geometry, cancel, OOM fallback, classifiers."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from engine.errors import CancelledError, ModelError
from engine.inference import Predictor, center_out, slice_order
from engine.inference.nets import aligned_box, argmax_channels, to_unit
from engine.inference.order import slabs
from engine.inference.reference import IntensityModel, intensity_model
from engine.inference.result import covid_slices
from engine.inference.roi import find_roi
from engine.labels import GGO
from engine.models.card import ModelCard
from engine.models.registry import LoadedModel
from engine.phantom import chest_ct
from engine.progress import CancelToken
from engine.types import Geometry, Volume


@pytest.fixture(scope="module")
def phantom():
    return chest_ct(shape=(64, 128, 128), spacing=(4.0, 2.8, 2.8), seed=1)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


class MeanClassifier(nn.Module):
    """Deterministic 'classifier': logits grow with the slice's mean intensity (tests only)."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([20.0 * (m - 0.5 - 0.1 * k) for k in range(self.outputs)], 1)


def classifier(task: str, classes: tuple[str, ...], size=(64, 64)) -> LoadedModel:
    card = ModelCard(name=f"mean_{task}", task=task, architecture="classifier", classes=classes, input_size=size)
    return LoadedModel(MeanClassifier(len(classes)).eval(), card, torch.device("cpu"), torch.float32)


# -- order ------------------------------------------------------------------------
def test_center_out_alternates_and_covers_every_slice():
    assert center_out(6, 2) == [2, 3, 1, 4, 0, 5]
    assert center_out(3, 10) == [2, 1, 0]
    assert sorted(center_out(50, 17)) == list(range(50))


def test_slice_order_variants():
    assert slice_order(4) == [0, 1, 2, 3]
    assert slice_order(4, visible_slice=2) == [2, 0, 1, 3]
    assert slice_order(5, "center_out", visible_slice=0) == [0, 1, 2, 3, 4]
    assert slice_order(5, [3, 1]) == [3, 1, 0, 2, 4]
    with pytest.raises(ValueError):
        slice_order(5, [7])
    with pytest.raises(ValueError):
        slice_order(5, "random")
    groups = slabs([5, 6, 4, 7, 3, 8], 2)
    assert [g.tolist() for g in groups] == [[5], [6, 4], [7, 3], [8]]


# -- small numerics ---------------------------------------------------------------------
def test_normalisation_follows_design():
    hu = torch.tensor([-2000.0, -1350.0, -600.0, 150.0, 900.0])
    assert torch.allclose(to_unit(hu, True), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    u8 = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(to_unit(u8, False), torch.tensor([0.0, 0.2, 1.0]))


def test_argmax_channels_matches_torch():
    p = torch.rand(3, 4, 17, 9)
    assert torch.equal(argmax_channels(p).long(), p.argmax(1))


def test_aligned_box_snaps_outwards_to_multiple():
    # slice 512 -> model 256: slice box rows 100..300 are model rows 50..150 -> 32..160
    assert aligned_box((100, 300, 0, 512), (512, 512), (256, 256), 32) == (32, 160, 0, 256)
    assert aligned_box((0, 512, 0, 512), (512, 512), (256, 256), 32) == (0, 256, 0, 256)


def test_covid_slices_spread_over_the_central_half():
    assert covid_slices(np.r_[np.zeros(10, bool), np.ones(21, bool)], 5).tolist() == [15, 18, 20, 22, 25]


# -- lung ROI ---------------------------------------------------------------------------
def test_roi_covers_every_finding_and_skips_slices_without_lung(phantom):
    v = phantom.volume
    roi = find_roi(v.array, True, v.geometry.spacing)
    assert roi.detected
    lesion_z = np.flatnonzero(phantom.labels.any(axis=(1, 2)))
    assert roi.slices[lesion_z].all()
    lung_z = np.flatnonzero(phantom.lung_mask.any(axis=(1, 2)))
    assert not roi.slices[: max(lung_z[0] - 6, 0)].any()  # 20 mm margin = 5 slices of 4 mm
    zs = np.flatnonzero(roi.slices)
    y0, y1, x0, x1 = roi.box(zs)
    ys, xs = np.nonzero(phantom.labels.any(axis=0))
    assert y0 <= ys.min() and ys.max() < y1 and x0 <= xs.min() and xs.max() < x1
    water = np.zeros((20, 64, 64), dtype=np.int16)
    assert not find_roi(water, True, (2.0, 1.0, 1.0)).detected


# -- whole pipeline -----------------------------------------------------------------------
def test_intensity_model_finds_phantom_ggo_through_the_pipeline(phantom):
    # At the scan's own resolution the rule band [-700, -250] HU holds the phantom's GGO
    # (-550..-400 HU, noise sigma 20) by more than 7 sigma and excludes lung (-850) and
    # tissue; only vessels crossing GGO differ. Dice >= 0.95 checks that cropping, batching
    # and pasting back lose nothing; a misplaced crop or a transposed slice drops it far below.
    v = phantom.volume
    pred = Predictor(intensity_model((128, 128)), device="cpu", findings_model=False, covid_model=False,
                     batch_size=4).predict(v)
    assert pred.labels.shape == v.shape and pred.labels.dtype == np.uint8
    assert pred.geometry == v.geometry
    assert dice(pred.labels == GGO, phantom.labels == GGO) >= 0.95
    assert pred.segmented.sum() < v.shape[0]  # slices without lung were skipped
    assert pred.probabilities.shape == (64, 3, 128, 128) and pred.probabilities.dtype == np.uint8
    # the label is the argmax of the stored probabilities (background = 1 - sum)
    z = int(np.argmax((pred.labels == GGO).sum(axis=(1, 2))))
    p = pred.probability(GGO)[z]
    assert (p[pred.labels[z] == GGO] > 0.49).all() and (p[pred.labels[z] == 0] < 0.51).all()
    # per-slice probabilities come from the segmentation's evidence (no fitted file for this model)
    assert pred.slice_probability_source == "segmentation evidence (not calibrated)"
    assert not pred.presence_calibrated and any("not calibrated" in n for n in pred.notes)
    assert pred.slice_probabilities[z, 0] > 0.9 and pred.scan_probabilities["ggo"] > 0.9
    assert pred.covid_probability is None
    assert pred.models["segmentation"]["name"] == "intensity_rules"
    assert {"load_s", "first_slab_s", "segmentation_s", "total_s"} <= set(pred.timings)


def test_resized_input_gives_the_same_answer_as_doing_it_by_hand(phantom):
    """Slices resized to the model size and probabilities resized back, cropped or not."""
    v = phantom.volume
    model = intensity_model((64, 64))
    z = 30
    kw = dict(device="cpu", findings_model=False, covid_model=False, lung_gate=False)  # raw model output
    cropped = Predictor(model, **kw).predict(v)
    whole = Predictor(model, crop=False, **kw).predict(v)
    x = to_unit(torch.from_numpy(v.array[z:z + 1].astype(np.float32)), True)[None]
    x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", antialias=True)
    with torch.inference_mode():
        prob = torch.softmax(IntensityModel()(x), 1)
    prob = torch.nn.functional.interpolate(prob, size=(128, 128), mode="bilinear")
    expected = prob.argmax(1)[0].numpy()
    assert np.mean(whole.labels[z] == expected) > 0.999
    # a pixelwise model is not affected by the crop, except where the crop cuts context
    assert np.mean(cropped.labels[z] == whole.labels[z]) > 0.99


def test_slabs_arrive_visible_slice_first_then_outwards(phantom):
    v = phantom.volume
    seen: list[np.ndarray] = []
    pred = Predictor(intensity_model((128, 128)), device="cpu", findings_model=False, covid_model=False,
                     batch_size=6).predict(v, order="center_out", visible_slice=30,
                                           on_slab=lambda z, lab, pr: seen.append((z.copy(), lab.copy())))
    assert seen[0][0].tolist() == [30]
    rest = [z for z, _ in seen[1:]]
    nearest = [int(np.abs(z - 30).min()) for z in rest]
    assert nearest[0] == 0 and nearest == sorted(nearest)  # the visible slice's slab, then outwards
    # the slabs are the ascending runs of 6 slices read, whatever the order (the visible slice read again)
    read = np.flatnonzero(pred.segmented)
    assert sorted(z.tolist() for z in rest) == [read[i:i + 6].tolist() for i in range(0, len(read), 6)]
    for z, lab in seen[1:]:
        assert np.array_equal(lab, pred.labels[z])


class ContextModel(IntensityModel):
    """The intensity rules shifted by the mean of what the model is shown: its output depends on the crop."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        out[:, 1] += 40.0 * (x.mean(dim=(1, 2, 3))[:, None, None] - 0.7)
        return out


def test_the_reading_does_not_depend_on_the_slice_on_screen(phantom):
    """A slab's slices share one torso crop: the slabs were the order's runs, so Run AI pressed on another
    slice gave other labels and slice probabilities (radiopaedia 74724: 2 400-3 000 pixels, a slice's
    probability 0.85 apart, against `engine predict`). Now the same bytes from any slice and from predict."""
    card = intensity_model((128, 128)).card
    model = LoadedModel(ContextModel().eval(), card, torch.device("cpu"), torch.float32)
    p = Predictor(model, device="cpu", findings_model=False, covid_model=False, batch_size=6,
                  keep_probabilities=False)
    ref = p.predict(phantom.volume)
    assert (ref.labels == GGO).sum() > 1000
    for visible in (2, 30, 41):
        other = p.predict(phantom.volume, order="center_out", visible_slice=visible)
        assert np.array_equal(other.labels, ref.labels), visible
        assert np.array_equal(other.slice_probabilities, ref.slice_probabilities)
        assert np.array_equal(other.segmented, ref.segmented)


class AirModel(IntensityModel):
    """GGO wherever the input is air, outside the body too: labels outside a slab's torso crop."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from engine.inference.reference import unit_to_hu

        out = super().forward(x)
        out[:, 1] = 0.05 * (-900.0 - unit_to_hu(x[:, :1])[:, 0])
        return out


def test_the_visible_slice_read_alone_leaves_nothing_outside_its_slabs_crop():
    """Review: with the raw model output (no anatomy rules) the visible slice kept its whole-slice labels outside
    its slab's crop window, where `predict` has none (5 224 voxels on slice 12)."""
    ph = chest_ct(shape=(24, 128, 128), spacing=(5.0, 2.8, 2.8), seed=1)
    card = intensity_model((128, 128)).card
    p = Predictor(LoadedModel(AirModel().eval(), card, torch.device("cpu"), torch.float32), device="cpu",
                  findings_model=False, covid_model=False, batch_size=6, keep_probabilities=False, lung_gate=False,
                  restrict_to_lungs=True)
    ref = p.predict(ph.volume)
    other = p.predict(ph.volume, order="center_out", visible_slice=12)
    assert np.array_equal(ref.labels, other.labels) and (ref.labels[12] == GGO).any()
    assert np.array_equal(ref.slice_probabilities, other.slice_probabilities)


def test_fixed_slabs_are_the_ascending_runs_taken_in_the_order():
    from engine.inference.order import fixed_slabs

    read = np.zeros(20, dtype=bool)
    read[3:17] = True
    got = fixed_slabs(read, 4, center_out(20, 12))
    assert [g.tolist() for g in got] == [[11, 12, 13, 14], [7, 8, 9, 10], [15, 16], [3, 4, 5, 6]]
    assert [g.tolist() for g in fixed_slabs(read, 4, list(range(20)))][0] == [3, 4, 5, 6]
    assert fixed_slabs(np.zeros(5, dtype=bool), 4, list(range(5))) == []


def test_iter_predict_returns_the_prediction(phantom):
    p = Predictor(intensity_model((128, 128)), device="cpu", findings_model=False, covid_model=False)
    gen = p.iter_predict(phantom.volume, visible_slice=20)
    first = next(gen)
    assert first.z.tolist() == [20] and first.labels.shape == (1, 128, 128)

    pred = None
    # the plain way: exhaust the generator and read StopIteration.value
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            pred = stop.value
            break
    assert pred is not None and np.array_equal(pred.labels[20], first.labels[0])


def test_cancel_stops_within_one_batch_and_returns_nothing(phantom):
    v = phantom.volume
    before = v.array.copy()
    token = CancelToken()
    p = Predictor(intensity_model((128, 128)), device="cpu", findings_model=False, covid_model=False,
                  batch_size=4)
    calls = []
    original = p._forward

    def counting(net, x):
        calls.append(x.shape[0])
        return original(net, x)
    p._forward = counting  # type: ignore[method-assign]

    def on_slab(z, lab, pr):
        if len(calls) == 2:
            token.cancel()
    with pytest.raises(CancelledError):
        p.predict(v, cancel=token, visible_slice=30, on_slab=on_slab)
    assert len(calls) == 2  # the visible slice and one batch: nothing ran after the cancel
    assert np.array_equal(v.array, before)
    # the predictor is reusable after a cancel
    pred = p.predict(v)
    assert pred.labels.any()


def test_cuda_out_of_memory_halves_the_batch(phantom, monkeypatch):
    v = phantom.volume
    ref = Predictor(intensity_model((128, 128)), device="cpu", findings_model=False, covid_model=False,
                    batch_size=8).predict(v)
    p = Predictor(intensity_model((128, 128)), device="cpu", findings_model=False, covid_model=False,
                  batch_size=8)
    original = Predictor._forward
    sizes = []

    def flaky(self, net, x):
        sizes.append(x.shape[0])
        if x.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(self, net, x)
    monkeypatch.setattr(Predictor, "_forward", flaky)
    pred = p.predict(v)
    assert p.oom_events == 2 and sizes[:3] == [8, 4, 2] and max(sizes[3:]) == 2
    assert pred.timings["batch_size"] == 2
    assert np.array_equal(pred.labels, ref.labels)

    def always(self, net, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
    monkeypatch.setattr(Predictor, "_forward", always)
    with pytest.raises(ModelError, match="out of memory"):
        Predictor(intensity_model((128, 128)), device="cpu", findings_model=False, covid_model=False,
                  batch_size=4).predict(v)


def test_classifiers_give_per_slice_scan_and_covid_probabilities(phantom):
    v = phantom.volume
    p = Predictor(intensity_model((128, 128)), device="cpu",
                  findings_model=classifier("findings", ("consolidation", "ggo", "effusion")),
                  covid_model=classifier("covid", ("covid",)))
    pred = p.predict(v)
    seg = pred.segmented
    # the test classifier's logit for its k-th class is 20 * (mean - 0.5 - 0.1 k) on the
    # 64x64 resized slice; classes are reordered to GGO, consolidation, effusion
    x = to_unit(torch.from_numpy(v.array.astype(np.float32)), True)[:, None]
    m = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", antialias=True).mean(dim=(1, 2, 3))
    expect = torch.sigmoid(torch.stack([20 * (m - 0.6), 20 * (m - 0.5), 20 * (m - 0.7)], 1)).numpy()
    # the classifier's output is kept for research; the finding probability is the segmentation's evidence
    assert np.allclose(pred.classifier_probabilities[seg], expect[seg], atol=1e-4)
    assert pred.slice_probability_source.startswith("segmentation evidence")
    assert 0.0 <= pred.covid_probability <= 1.0
    picks = covid_slices(seg)
    assert pred.covid_probability == pytest.approx(float(expect[picks, 1].mean()), abs=1e-4)
    assert pred.models["findings"]["name"] == "mean_findings"


def test_eight_bit_stack_is_scaled_not_windowed():
    # an 8-bit lung-window image of the GGO value (-475 HU -> 148.75/255) is found as GGO
    arr = np.full((3, 128, 128), 20, dtype=np.uint8)
    arr[:, 10:20, 10:20] = 149
    v = Volume(arr, Geometry(arr.shape), is_hu=False)
    pred = Predictor(intensity_model((128, 128)), device="cpu", findings_model=False,
                     covid_model=False, lung_gate=False).predict(v)
    assert (pred.labels[:, 10:20, 10:20] == GGO).all() and pred.labels.sum() == 3 * 100 * GGO


def test_wrong_task_and_unknown_device_are_user_errors():
    with pytest.raises(ModelError, match="not a segmentation model"):
        Predictor(classifier("covid", ("covid",)), device="cpu").load()
    with pytest.raises(ModelError, match="Unknown device"):
        Predictor(intensity_model(), device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="--device cpu"):
            Predictor(intensity_model(), device="cuda")


def test_worker_thread_prediction_matches_main_thread(phantom):
    """The app runs the predictor on a worker thread: same answer, no shared state."""
    p = Predictor(intensity_model((128, 128)), device="cpu", findings_model=False, covid_model=False, threads=1)
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("pred", p.predict(phantom.volume)))
    t.start()
    t.join(60)
    ref = p.predict(phantom.volume)
    assert np.array_equal(out["pred"].labels, ref.labels)


def test_batch_norm_folding_keeps_the_output():
    from engine.inference.nets import fuse_conv_bn
    from engine.models.registry import build
    torch.manual_seed(0)
    model = build("unet", {"base": 8, "depth": 2}).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    fused = fuse_conv_bn(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.rand(2, 1, 32, 48)
    with torch.inference_mode():
        assert torch.allclose(model(x), fused(x), atol=1e-4)


def test_uploaded_volume_path_gives_the_same_labels(phantom):
    """The CUDA path slices a device copy of the scan; run it on the CPU against the default path."""
    model = intensity_model((128, 128))
    ref = Predictor(model, device="cpu", findings_model=False, covid_model=False).predict(phantom.volume)
    p = Predictor(model, device="cpu", findings_model=False, covid_model=False)
    p.upload_volume = True
    frozen = phantom.volume.array.copy()
    frozen.flags.writeable = False
    vol = Volume(frozen, phantom.volume.geometry)
    pred = p.predict(vol, visible_slice=10)
    assert np.array_equal(pred.labels, ref.labels)
    assert p._device_volume is None  # released after the run
