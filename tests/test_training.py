"""A tiny training run on synthetic data: loss goes down, checkpoint + CSV written, resume works."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.models import registry
from engine.training import TrainConfig, train
from engine.training.data import derive_lung_mask, fixed_split, load_slice_folder
from engine.training.losses import median_frequency_weights, soft_dice_loss, structure_loss


def _synthetic(root, n=8, size=32):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        img = np.full((size, size), 40, np.uint8)
        lab = np.zeros((size, size), np.uint8)
        y, x = rng.integers(4, size - 12, 2)
        img[y:y + 8, x:x + 8] = 200
        lab[y:y + 8, x:x + 8] = 1 + i % 3
        Image.fromarray(img).save(root / "images" / f"s{i:02d}.png")
        Image.fromarray(lab).save(root / "labels" / f"s{i:02d}.png")
    return root


def _cfg(tmp_path, data, **kw):
    d = dict(name="tiny", task="segmentation", architecture="unet", model={"base": 4, "depth": 2},
             input_size=32, labelled=str(data), val_n=2, epochs=2, steps_per_epoch=4, batch_size=4, lr=3e-3,
             device="cpu", out=str(tmp_path / "run"), augment={"rotate_deg": 0, "elastic_p": 0, "noise": 0})
    d.update(kw)
    return TrainConfig.from_dict(d)


def test_train_writes_checkpoint_csv_card_and_resumes(tmp_path):
    torch.manual_seed(0)
    data = _synthetic(tmp_path / "data")
    card = train(_cfg(tmp_path, data, epochs=3))
    run = tmp_path / "run"
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < losses[0]
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 3 and state["step"] == 12
    assert state["files"]["model"] == "model-00000012.safetensors"
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == [
        "model-00000012.safetensors", "optim-00000012.safetensors", "rng-00000012.safetensors", "state.json"]
    assert card.split["val"] and len(card.split["val"]) == 2
    assert "infection" in card.val_metrics
    # resume: two more epochs continue from step 12
    train(_cfg(tmp_path, data, epochs=5))
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [4, 8, 12, 16, 20]
    loaded = registry.load(run)
    assert loaded.module(torch.rand(1, 1, 32, 32)).shape == (1, 4, 32, 32)


def test_classifier_task(tmp_path):
    data = _synthetic(tmp_path / "data")
    card = train(_cfg(tmp_path, data, task="findings", architecture="classifier",
                      model={"width": 8, "blocks": [1]}, epochs=1))
    assert card.classes == ("ggo", "consolidation", "effusion")
    assert set(card.val_metrics) == {"ggo", "consolidation", "effusion"}


def test_fixed_split_is_stratified_and_stable(tmp_path):
    data = _synthetic(tmp_path / "data", n=12)
    s = load_slice_folder(data)
    tr, va = fixed_split(s.ids, s.labels, 3, seed=0)
    assert len(va) == 3 and not set(tr) & set(va)
    assert fixed_split(s.ids, s.labels, 3, seed=0) == (tr, va)
    present = {int(s.labels[i].max()) for i in va}
    assert present == {1, 2, 3}


def test_losses_by_hand():
    w = median_frequency_weights(np.array([[[0, 0, 0, 1]], [[0, 0, 1, 1]]], np.uint8), 2)
    # f0 = 5/8, f1 = 3/8 -> median 0.5 -> weights 0.8, 4/3
    assert w == pytest.approx([0.8, 4 / 3])
    t = torch.zeros(1, 4, 4, dtype=torch.long)
    t[0, :2] = 1
    perfect = torch.stack([(t == 0).float(), (t == 1).float()], 1) * 50
    assert soft_dice_loss(perfect, t).item() < 0.01
    assert soft_dice_loss(-perfect, t).item() > 0.9
    m = (t == 1).float()
    assert structure_loss(perfect[:, 1:] - 25, m) < structure_loss(torch.zeros(1, 1, 4, 4), m)


def test_derived_lung_mask_finds_two_dark_regions():
    img = np.full((96, 96), 220, np.uint8)
    img[:3] = 0  # dark border: outside air touches the edge and must be dropped
    img[16:48, 6:28] = 30
    img[16:48, 62:88] = 30
    lab = np.zeros_like(img)
    lab[20:24, 10:14] = 1
    lung = derive_lung_mask(img, lab)
    assert lung[30, 15] and lung[30, 75] and not lung[30, 45] and not lung[1, 30] and not lung[70, 45]
