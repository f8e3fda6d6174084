"""The single sources of issue 12: the reading pipeline, the label-format table, model cards
without torch, one HU input window for numpy and torch, the editor's one tally."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.labels import DEFAULT_TABLE, FINDING_KEYS, FINDINGS, GGO

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (16, 96, 96)


@pytest.fixture(scope="module")
def phantom():
    from engine.phantom import chest_ct

    return chest_ct(shape=SHAPE)


@pytest.fixture(scope="module")
def predictor():
    from engine.inference import Predictor
    from engine.inference.reference import intensity_model

    return Predictor(intensity_model(), device="cpu", findings_model=False, covid_model=False, batch_size=4,
                     threads=1)


class ReplayPredictor:
    """Another :class:`SlicePredictor`: hands back slabs of a prediction made elsewhere (a remote or
    batch predictor looks like this to the pipeline)."""

    def __init__(self, prediction, slab: int = 5) -> None:
        self.prediction = prediction
        self.slab = slab

    def iter_predict(self, volume, progress=None, cancel=None, order=None, visible_slice=None):
        from engine.inference import Slab

        p = self.prediction
        for z0 in range(0, volume.shape[0], self.slab):
            z = np.arange(z0, min(z0 + self.slab, volume.shape[0]))
            yield Slab(z=z, labels=p.labels[z], probabilities=None, slice_probabilities=p.slice_probabilities[z],
                       fraction=float(z[-1] + 1) / volume.shape[0])
        return p


def test_iter_read_yields_counted_slabs_then_a_reading(phantom, predictor):
    from engine.inference.pipeline import finding_counts, iter_read

    vol = phantom.volume
    gen = iter_read(vol, predictor, visible_slice=8)
    parts = []
    while True:
        try:
            parts.append(next(gen))
        except StopIteration as stop:
            reading = stop.value
            break
    assert int(parts[0].slab.z[0]) == 8  # the visible slice first
    seen = np.concatenate([p.slab.z for p in parts[1:]])  # the visible slice is read again in its slab
    assert sorted(seen.tolist()) == sorted(set(seen.tolist())) and 8 in seen.tolist()
    for part in parts:
        np.testing.assert_array_equal(part.counts, finding_counts(part.slab.labels))
        assert part.counts.shape == (len(part.slab.z), len(FINDINGS))
    labels = reading.prediction.labels
    assert reading.lungs is not None and reading.lungs.shape == SHAPE
    ggo = reading.quantification.findings[FINDING_KEYS[GGO]]
    assert ggo.voxels == int(np.count_nonzero(labels == GGO)) > 0
    assert reading.all_notes == list(reading.prediction.notes) + reading.notes


def test_the_pipeline_takes_any_slice_predictor_and_the_case_lungs(phantom, predictor):
    from engine.inference.pipeline import read
    from engine.quantification import lung_masks, quantify

    vol = phantom.volume
    local = read(vol, predictor)
    lungs = lung_masks(vol)
    remote = read(vol, ReplayPredictor(local.prediction), lungs=lungs)
    assert remote.prediction is local.prediction
    assert remote.lungs is lungs  # the lungs found once are reused, not found again
    expected = quantify(local.prediction.labels, vol.geometry, lungs, hu=vol.array)
    assert remote.quantification.to_dict() == expected.to_dict()


def test_finding_tables_derive_from_the_label_table():
    assert FINDINGS == tuple(lab.value for lab in DEFAULT_TABLE)
    assert FINDING_KEYS == {lab.value: lab.key for lab in DEFAULT_TABLE}
    assert DEFAULT_TABLE[GGO].short_name == "GGO"


def test_label_format_table_feeds_writer_dialogs_and_cli(tmp_path, phantom):
    from engine import io
    from engine.cli.predict import FORMATS
    from engine.io.label_formats import (LABEL_FORMATS, file_filter, format_for_path, open_filter,
                                         split_suffix)

    assert [format_for_path(n).key for n in ("a.nii.gz", "a.nii", "a.seg.nrrd", "a.nrrd", "a.mha", "a.dcm",
                                             "folder")] == ["nifti", "nifti", "seg-nrrd", "nrrd", "mha",
                                                            "dicom-seg", "png"]
    assert split_suffix("scan.seg.nrrd") == ("scan", ".seg.nrrd") and split_suffix("x") == ("x", "")
    for fmt in LABEL_FORMATS:
        assert fmt.dialog_filter() in file_filter()
        for s in fmt.suffixes:
            assert f"*{s}" in open_filter()
    assert FORMATS["seg.nrrd"] == "labels.seg.nrrd" and FORMATS["mha"] == "labels.mha"
    for name in ("l.nii.gz", "l.seg.nrrd", "l.mha"):
        out = io.save_labels(phantom.labels, phantom.volume, tmp_path / name)
        np.testing.assert_array_equal(io.load_labels(out, phantom.volume), phantom.labels)


def test_model_cards_are_listed_without_torch():
    code = ("import sys\nfrom engine.models.card import list_cards\n"
            "cards = list_cards(task='segmentation')\n"
            "print(len(cards), all(c.validation_dice is not None for c in cards), 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    n, has_dice, torch_loaded = out.stdout.split()
    assert int(n) >= 1 and has_dice == "True" and torch_loaded == "False"


def test_one_hu_window_for_numpy_and_torch():
    torch = pytest.importorskip("torch")
    from engine.inference.nets import to_unit
    from engine.preprocessing.normalize import HU_WINDOW, hu_to_unit, unit_to_hu

    hu = np.array([[-2000, -1350, -600, 150, 900]], np.int16)
    np_unit = hu_to_unit(hu)
    t_unit = to_unit(torch.from_numpy(hu), is_hu=True).numpy()
    np.testing.assert_allclose(np_unit, t_unit, atol=1e-7)
    np.testing.assert_allclose(np_unit[0], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(unit_to_hu(np.array([0.0, 1.0])), HU_WINDOW)
    img = np.array([[0, 255]], np.uint8)
    np.testing.assert_allclose(to_unit(torch.from_numpy(img), is_hu=False).numpy(), [[0.0, 1.0]])


def test_the_editor_keeps_the_one_tally():
    from engine.editing import LabelEditor, ops

    lab = np.zeros((4, 20, 20), np.uint8)
    lab[1, 2:5, 2:5] = 2
    ed = LabelEditor(lab)

    def truth():
        return np.bincount(ed.labels.ravel(), minlength=256)

    region = ops.brush_segment(ed.shape, ed.spacing, (1, 3, 3), (1, 9, 9), 2.0)
    ed.paint(region, 1)
    np.testing.assert_array_equal(ed.counts, truth())
    ed.undo()
    np.testing.assert_array_equal(ed.counts, truth())
    s = ed.stroke("cancelled")
    s.paint(region, 3)
    s.cancel()
    np.testing.assert_array_equal(ed.counts, truth())
    ed.apply_ai_result(np.full(lab.shape, 3, np.uint8))
    assert ed.counts[3] == lab.size


def test_finding_counts_per_slice_and_finding():
    from engine.inference.pipeline import finding_counts

    rng = np.random.default_rng(3)
    lab = rng.integers(0, 6, (5, 7, 9)).astype(np.uint8)  # 4 and 5: values that are no finding
    lab[2] = 0  # an empty slice
    lab[3] = 4  # a slice of a value that is no finding
    want = np.array([[int((lab[z] == v).sum()) for v in FINDINGS] for z in range(5)])
    got = finding_counts(lab)
    assert got.dtype == np.int64 and got.shape == (5, len(FINDINGS))
    np.testing.assert_array_equal(got, want)
    assert got[2].sum() == 0 and got[3].sum() == 0 and got[0].sum() > 0
