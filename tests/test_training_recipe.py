"""The training recipe's parts on tiny synthetic data: augmentation properties, deep
supervision, fold splits, kill-and-resume, init_from, negatives and teacher labels, the
ensemble / flip-TTA wrapper, the 'default' alias, and the whole recipe end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from engine.errors import DataError
from engine.models import registry
from engine.models.ensemble import Ensemble, flip_tta, make_card
from engine.models.unet import build as build_unet
from engine.training import TrainConfig, train
from engine.training.augment import AugmentConfig, WINDOW_PRESETS, dihedral, geometric, intensity, rewindow
from engine.training.data import load_negatives, stack_files
from engine.training.folds import fold_train_val, kfold_split
from engine.training.losses import deep_supervision_loss, deep_supervision_weights
from engine.training.recipe import Recipe, run_recipe, summarise

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "engine" / "training" / "configs"
RECIPES = ROOT / "engine" / "training" / "recipes"


def _synthetic(root: Path, n: int = 8, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        img = np.full((size, size), 40, np.uint8)
        lab = np.zeros((size, size), np.uint8)
        y, x = rng.integers(2, size - 10, 2)
        img[y:y + 8, x:x + 8] = 200
        lab[y:y + 8, x:x + 8] = 1
        if i % 2:
            img[y + 2:y + 5, x + 2:x + 5] = 250
            lab[y + 2:y + 5, x + 2:x + 5] = 2
        Image.fromarray(img).save(root / "images" / f"s{i:02d}.png")
        Image.fromarray(lab).save(root / "labels" / f"s{i:02d}.png")
    return root


def _cfg(tmp_path: Path, data: Path, **kw) -> TrainConfig:
    d = dict(name="tiny", task="segmentation", architecture="unet",
             model={"base": 4, "depth": 2, "deep_supervision": True}, input_size=32, labelled=str(data), val_n=2,
             epochs=2, steps_per_epoch=4, batch_size=4, lr=3e-3, device="cpu", out=str(tmp_path / "run"),
             augment={"rotate_deg": 0, "elastic_p": 0, "noise": 0, "clahe_p": 0})
    d.update(kw)
    return TrainConfig.from_dict(d)


# --------------------------------------------------------------------------- augmentation
def test_dihedral_keeps_label_aligned_with_image():
    g = torch.Generator().manual_seed(3)
    lab = torch.randint(0, 4, (16, 12, 12), generator=g, dtype=torch.uint8)
    img = (lab.float() * 60 / 255)[:, None]
    cfg = AugmentConfig(flip=0.5, flip_v=0.5, transpose=0.5)
    x, (y,) = dihedral(img, [lab], cfg, g)
    assert torch.equal(x[:, 0], y.float() * 60 / 255)          # still the same picture of its label
    changed = [not torch.equal(y[i], lab[i]) for i in range(16)]
    assert 8 <= sum(changed) <= 16                              # most samples moved (P(identity) = 1/8)
    # each output is one of the 8 symmetries of its input
    for i in range(16):
        cands = [lab[i], lab[i].flip(-1), lab[i].flip(-2), lab[i].flip(-1).flip(-2)]
        cands += [c.T for c in cands]
        assert any(torch.equal(y[i], c) for c in cands)


def test_geometric_warp_keeps_label_aligned():
    g = torch.Generator().manual_seed(0)
    lab = torch.zeros(4, 64, 64, dtype=torch.uint8)
    lab[:, 20:44, 16:40] = 2
    img = lab.float()[:, None] / 2
    cfg = AugmentConfig(flip=0.5, flip_v=0.5, transpose=0.5, rotate_deg=20, elastic_p=0.0)
    x, (y,) = geometric(img, [lab], cfg, g)
    inside = (y == 2)
    assert inside.any()
    assert float(x[:, 0][inside].mean()) > 0.9 and float(x[:, 0][~inside].mean()) < 0.1


def test_window_presets_keep_range_and_map_hu():
    x = torch.linspace(0, 1, 256).view(1, 1, 16, 16)
    # lung preset = the source window: identity
    lo, hi = WINDOW_PRESETS["lung"]
    assert torch.allclose(rewindow(x, torch.tensor([lo]), torch.tensor([hi])), x, atol=1e-6)
    # soft-tissue window: every HU below -160 is black, 150 HU (x = 1) is (150 + 160) / 400
    lo, hi = WINDOW_PRESETS["soft_tissue"]
    soft = rewindow(x, torch.tensor([lo]), torch.tensor([hi]))
    hu = -1350 + 1500 * x
    assert torch.all(soft[hu < -160] == 0)
    assert soft.max().item() == pytest.approx(310 / 400, abs=1e-5)
    cfg = AugmentConfig(windows={"soft_tissue": 0.5, "lung_wide": 0.5}, noise=0.05, blur_p=1.0)
    out = intensity(x.repeat(8, 1, 1, 1), cfg, torch.Generator().manual_seed(1))
    assert out.min() >= 0 and out.max() <= 1 and out.shape == (8, 1, 16, 16)
    with pytest.raises(DataError, match="window preset"):
        AugmentConfig.from_dict({"windows": {"bone": 0.2}})
    with pytest.raises(DataError, match="augmentation option"):
        AugmentConfig.from_dict({"flipp": 0.2})


# --------------------------------------------------------------------------- deep supervision
def test_deep_supervision_outputs_and_loss():
    net = build_unet({"base": 4, "depth": 3, "num_classes": 4, "deep_supervision": True})
    x = torch.rand(2, 1, 64, 64)
    out = net.train()(x)
    assert out["logits"].shape == (2, 4, 64, 64)
    assert [tuple(d.shape) for d in out["deep"]] == [(2, 4, 32, 32), (2, 4, 16, 16)]
    assert net.eval()(x).shape == (2, 4, 64, 64)               # the registry contract in eval mode
    assert deep_supervision_weights(3) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    t = torch.zeros(2, 64, 64, dtype=torch.long)
    t[:, 16:48, 16:48] = 1
    good = [torch.nn.functional.one_hot(torch.nn.functional.interpolate(t[:, None].float(), size=s)[:, 0].long(), 4)
            .permute(0, 3, 1, 2).float() * 40 for s in (64, 32, 16)]
    assert deep_supervision_loss(good[0], good[1:], t, None).item() < 0.05
    bad = deep_supervision_loss(-good[0], [-g for g in good[1:]], t, None)
    assert bad.item() > 1.0
    # pixels marked 255 are ignored: a wrong prediction there costs nothing
    t2 = t.clone()
    t2[:, :8] = 255
    logits = good[0].clone()
    logits[:, :, :8] = -logits[:, :, :8]
    assert deep_supervision_loss(logits, [], t2, None, ignore_index=255).item() < 0.05


# --------------------------------------------------------------------------- folds
def _fifty_labels() -> list[np.ndarray]:
    labs = []
    for i in range(50):
        lab = np.zeros((8, 8), np.uint8)
        lab[0, 0] = 1
        if i < 35:
            lab[1, 1] = 2
        if i % 3 == 0 and len([j for j in range(i) if j % 3 == 0]) < 16:
            lab[2, 2] = 3
        labs.append(lab)
    return labs


def _crops_one_by_one(x, fg_map, u, crop, crop_fg):
    """The crop rule written out per image (the test's oracle): centre on the k-th labelled
    pixel in raster order (k = floor(u1 * count)) with probability crop_fg, else at (u1 h, u2 w)."""
    n, h, w = fg_map.shape
    out_x, out_m = [], []
    for i in range(n):
        cy, cx = int(float(u[i, 1]) * h), int(float(u[i, 2]) * w)
        fg = np.flatnonzero((fg_map[i] > 0) & (fg_map[i] < 255))
        if float(u[i, 0]) < crop_fg and len(fg):
            cy, cx = divmod(int(fg[int(float(u[i, 1]) * len(fg))]), w)
        y, xx = min(max(cy - crop // 2, 0), h - crop), min(max(cx - crop // 2, 0), w - crop)
        out_x.append(x[i, :, y:y + crop, xx:xx + crop])
        out_m.append(fg_map[i, y:y + crop, xx:xx + crop])
    return np.stack(out_x), np.stack(out_m)


def test_crops_are_cut_on_the_device_as_the_per_image_rule_says():
    from engine.training.sampling import Sampler

    rng = np.random.default_rng(3)
    n, h, w, crop = 12, 48, 40, 16
    imgs = rng.integers(0, 256, (n, h, w), dtype=np.uint8)
    labels = np.zeros((n, h, w), np.uint8)
    labels[0, 40:44, 30:36] = 2          # one small lesion in a corner: its crops hug the border
    labels[1, 5:9, 3:5] = 1
    labels[1, 20, 20] = 255              # "unsure" pixels are never centres
    labels[2] = 255                      # nothing labelled: anywhere
    labels[3, 10:30, 10:30] = 3
    labels[4, 0, 0] = 1                  # a single labelled pixel at the origin
    s = Sampler(imgs, imgs, [labels], torch.device("cpu"), AugmentConfig(), crop=crop, crop_fg=0.7)
    x = torch.from_numpy(imgs).float()[:, None]
    m = torch.from_numpy(labels)
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        u = torch.rand(n, 3, generator=torch.Generator().manual_seed(seed))
        got_x, got_m = s._crop(x, [m], g)
        want_x, want_m = _crops_one_by_one(x.numpy(), labels, u.numpy(), crop, 0.7)
        assert got_x.shape == (n, 1, crop, crop)
        np.testing.assert_array_equal(got_x.numpy(), want_x)
        np.testing.assert_array_equal(got_m[0].numpy(), want_m)
    # the centred crops did land on the lesions: image 4's only labelled pixel is in its crop
    hits = 0
    for seed in range(40):
        _, (cm,) = s._crop(x, [m], torch.Generator().manual_seed(seed))
        hits += int(cm[4].max() == 1)
    assert hits >= 20  # about 70 % of draws are centred on it (the rest can miss it)


def test_multiclass_loss_ignores_unsure_pixels_without_a_host_check():
    import torch.nn.functional as F

    from engine.training.losses import multiclass_loss, soft_dice_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 16, 16, generator=g)
    t = torch.randint(0, 4, (3, 16, 16), generator=g)
    t[0, :5] = 255
    w = torch.tensor([0.2, 1.0, 2.0, 3.0])
    for weights in (None, w):
        want = F.cross_entropy(logits, t, weight=weights, ignore_index=255) + soft_dice_loss(logits, t, ignore_index=255)
        assert float(multiclass_loss(logits, t, weights, 255)) == pytest.approx(float(want), rel=1e-6)
    # every pixel unsure: loss 0 and zero gradients (F.cross_entropy's mean would be NaN)
    lg = logits.clone().requires_grad_()
    loss = multiclass_loss(lg, torch.full_like(t, 255), w, 255)
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(lg.grad).all() and float(lg.grad.abs().max()) == 0.0


def test_kfold_split_is_stratified_disjoint_and_covers_all():
    labs = _fifty_labels()
    n_eff = sum(int((lab == 3).any()) for lab in labs)
    assert n_eff == 16
    folds = kfold_split(labs, 5, seed=0)
    assert [len(f) for f in folds] == [10] * 5
    flat = [i for f in folds for i in f]
    assert sorted(flat) == list(range(50))                      # disjoint and complete
    eff = [sum(int((labs[i] == 3).any()) for i in f) for f in folds]
    cons = [sum(int((labs[i] == 2).any()) for i in f) for f in folds]
    assert sorted(eff) == [3, 3, 3, 3, 4] and max(cons) - min(cons) <= 1
    assert kfold_split(labs, 5, seed=0) == folds and kfold_split(labs, 5, seed=1) != folds
    tr, va = fold_train_val(folds, 2)
    assert va == folds[2] and len(tr) == 40 and not set(tr) & set(va)
    with pytest.raises(DataError):
        kfold_split(labs[:3], 5)


# --------------------------------------------------------------------------- trainer
def test_train_on_a_fold_with_negatives_teacher_labels_crops_and_init_from(tmp_path):
    data = _synthetic(tmp_path / "data", n=10, size=64)
    stack = tmp_path / "stack"
    stack.mkdir()
    for i in (0, 1, 2, 10):  # numeric order: 0, 1, 2, 10 (not 0, 1, 10, 2)
        Image.fromarray(np.full((40, 70), 30 + i, np.uint8)).save(stack / f"a{i}.jpeg")
    assert [p.stem for p in stack_files(stack)] == ["a0", "a1", "a2", "a10"]
    neg = load_negatives([[str(stack), 2, 3]], 64)
    assert neg.images.shape == (2, 64, 64) and not neg.labels.any()
    teacher = tmp_path / "teacher"
    (teacher / "labels").mkdir(parents=True)
    (teacher / "images").mkdir()
    for i in range(3):
        Image.fromarray(np.full((64, 64), 100, np.uint8)).save(teacher / "images" / f"t{i}.png")
        lab = np.zeros((64, 64), np.uint8)
        lab[:8] = 255
        lab[20:30, 20:30] = 1
        Image.fromarray(lab).save(teacher / "labels" / f"t{i}.png")
    cfg = _cfg(tmp_path, data, input_size=64, crop=32, folds=5, fold=1, select="last",
               negatives=[[str(stack), 2, 3]], negatives_batch=1, pseudo4=str(teacher), pseudo4_batch=2)
    card = train(cfg)
    assert card.split["fold"] == 1 and len(card.split["val"]) == 2 and len(card.split["train"]) == 8
    assert "2 slices without lung" in card.trained_on and "3 slices labelled by a teacher" in card.trained_on
    assert "Last epoch (2)" in card.notes and card.extra["steps"] == 8
    # init_from: with no step the weights are exactly the source's
    card2 = train(_cfg(tmp_path, data, input_size=64, out=str(tmp_path / "run2"), epochs=0, select="last",
                       init_from=str(tmp_path / "run")))
    a, b = load_file(str(tmp_path / "run" / "model.safetensors")), load_file(str(tmp_path / "run2" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert card2.notes.startswith("Initialised from")
    with pytest.raises(DataError, match="init_from"):
        train(_cfg(tmp_path, data, out=str(tmp_path / "run3"), init_from="no_such_model"))


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def test_resume_after_kill_gives_the_same_weights(tmp_path):
    """SIGKILL a run mid-epoch, resume it: the weights equal an uninterrupted run's, bit for bit
    (same seed, device and thread count; dropout on, so the random states must come back)."""
    data = _synthetic(tmp_path / "data", n=8, size=64)
    kw = dict(input_size=64, epochs=3, steps_per_epoch=10, batch_size=8, checkpoint_every_steps=3,
              model={"base": 8, "depth": 2, "dropout": 0.2, "deep_supervision": True},
              augment={"rotate_deg": 10, "elastic_p": 0.5, "noise": 0.02, "clahe_p": 0, "flip_v": 0.5,
                       "transpose": 0.5, "windows": {"soft_tissue": 0.2}})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(_cfg(tmp_path, data, out=str(tmp_path / "straight"), **kw))
        cfg = _cfg(tmp_path, data, out=str(tmp_path / "killed"), **kw)
        cfg_path = tmp_path / "killed.json"
        cfg_path.write_text(json.dumps(cfg.to_dict()))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "engine", "train", str(cfg_path), "--quiet"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state_file = tmp_path / "killed" / "checkpoint" / "state.json"
        deadline = time.monotonic() + 240
        step = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                step = json.loads(state_file.read_text())["step"]
            except (OSError, ValueError, KeyError):
                step = 0
            if step >= 12:
                break
            time.sleep(0.01)
        proc.kill()
        proc.wait()
        state = json.loads(state_file.read_text())
        assert proc.returncode == -9 and 0 < state["step"] < 30, "the run was not killed mid-way"
        assert not (tmp_path / "killed" / "model.safetensors").exists()
        card = train(cfg)  # resumes from the checkpoint
        assert card.extra["steps"] == 30
        a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "killed")
        assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    finally:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- ensemble / TTA / alias
def test_flip_tta_and_ensemble_average_probabilities(tmp_path):
    torch.manual_seed(0)
    a = build_unet({"base": 4, "depth": 2}).eval()
    b = build_unet({"base": 4, "depth": 2}).eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        pa, pb = torch.softmax(a(x), 1), torch.softmax(b(x), 1)
        pa_h = torch.softmax(a(x.flip(-1)), 1).flip(-1)
        assert torch.allclose(torch.softmax(Ensemble([a])(x), 1), pa, atol=1e-5)
        assert torch.allclose(torch.softmax(flip_tta(a, ["h"])(x), 1), (pa + pa_h) / 2, atol=1e-5)
        assert torch.allclose(torch.softmax(Ensemble([a, b])(x), 1), (pa + pb) / 2, atol=1e-5)
    # an ensemble is a registry model: fp16 safetensors + card, loaded by path
    card_a = registry.ModelCard(name="m_a", task="segmentation", architecture="unet", config={"base": 4, "depth": 2},
                                input_size=(32, 32))
    card = make_card("ens", [card_a, card_a], tta=["h", "v"], notes="test")
    path = registry.save(Ensemble([a, b], ["h", "v"]), card, tmp_path)
    loaded = registry.load(path)
    assert loaded.card.architecture == "ensemble" and loaded.card.extra["members"] == ["m_a", "m_a"]
    with torch.no_grad():
        ref = torch.softmax(Ensemble([a, b], ["h", "v"])(x), 1)
        got = torch.softmax(loaded(x), 1)
    assert torch.allclose(got, ref, atol=2e-2)  # fp16 weights
    with pytest.raises(registry.ModelError, match="flip"):
        Ensemble([a], ["diagonal"])


def test_default_alias_names_the_shipped_default():
    assert registry.resolve_alias("default") == registry.DEFAULTS["segmentation"]
    assert registry.resolve_alias("default:lung") == registry.DEFAULTS["lung"]
    assert registry.resolve_alias("unet_s16_pseudo") == "unet_s16_pseudo"
    if (registry.MODELS_DIR / f"{registry.DEFAULTS['segmentation']}.json").is_file():
        assert registry.get_card("default").name == registry.DEFAULTS["segmentation"]


# --------------------------------------------------------------------------- configs
@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.stem)
def test_every_system_config_still_loads(path):
    cfg = TrainConfig.from_file(path)
    AugmentConfig.from_dict(cfg.augment)
    assert cfg.name == path.stem or cfg.name


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.json")), ids=lambda p: p.stem)
def test_recipes_load_and_give_valid_run_configs(path, tmp_path):
    recipe = Recipe.from_dict(json.loads(path.read_text()))
    for stage in ("teacher", "student"):
        for fold in (0, -1):
            cfg = TrainConfig.from_dict(recipe.run_config(stage, fold, tmp_path / "r", "/data", str(tmp_path / "p")))
            AugmentConfig.from_dict(cfg.augment)
            assert cfg.select == "last" and cfg.folds == recipe.folds and cfg.fold == fold
            assert cfg.labelled.startswith("/data/")


def test_summarise_mean_and_spread():
    s = summarise([{"ggo": 0.5, "consolidation": None, "effusion": 0.2, "infection": 0.7, "meanDic": 0.6},
                   {"ggo": 0.7, "consolidation": 0.4, "effusion": None, "infection": 0.9, "meanDic": 0.8}])
    assert s["ggo"]["mean"] == pytest.approx(0.6) and s["ggo"]["std"] == pytest.approx(0.1414, abs=1e-4)
    assert s["consolidation"] == {"mean": 0.4, "std": 0.0, "min": 0.4, "max": 0.4, "folds": 1}


# --------------------------------------------------------------------------- the whole recipe
def test_recipe_end_to_end_on_tiny_data(tmp_path):
    data = _synthetic(tmp_path / "data", n=8, size=64)
    pool = tmp_path / "pool_src"
    pool.mkdir()
    for i in range(4):
        Image.fromarray(np.full((40, 48), 60 + i, np.uint8)).save(pool / f"z{i}.jpg")
    stack = tmp_path / "stack"
    stack.mkdir()
    for i in range(5):
        Image.fromarray(np.full((80, 80), 20 * i, np.uint8)).save(stack / f"{i}.jpeg")
    base = _cfg(tmp_path, data, input_size=64, epochs=1, steps_per_epoch=2).to_dict()
    base.update(labelled="{data}/data", out="", negatives=[["{data}/stack", 3, 4]], negatives_batch=1)
    recipe = Recipe.from_dict({
        "kind": "recipe", "name": "tiny_cv", "base": base, "folds": 2, "parallel": 2, "threads_per_run": 1,
        "student": {"pseudo4_batch": 2}, "confidence": 0.3, "tta": ["h"],
        "pool": [{"images": "{data}/pool_src"}, {"stack": "{data}/stack", "exclude": [[3, 4]]}]})
    out = tmp_path / "cv"
    messages = []
    report = run_recipe(recipe, out, data_root=str(tmp_path), say=messages.append, device="cpu")
    assert len(list((out / "pool" / "images").iterdir())) == 4 + 3
    assert len(list((out / "pseudo" / "fold1" / "labels").iterdir())) == 7
    assert {p.name for p in (out / "pseudo").iterdir()} == {"fold0", "fold1", "all", "done.json"}
    for stage in ("teacher", "student"):
        folds = report[stage]["folds"]
        assert [f["fold"] for f in folds] == [0, 1]
        vals = [set(f["val"]) for f in folds]
        assert not vals[0] & vals[1] and len(vals[0] | vals[1]) == 8
        assert report[stage]["summary"]["ggo"]["folds"] == 2
    assert "| mean +- std |" in (out / "cv_report.md").read_text()
    dist = registry.load(out / "export" / "tiny_cv.safetensors")
    ens = registry.load(out / "export" / "tiny_cv_ensemble.safetensors")
    assert dist.card.split["fold"] == -1 and dist.card.extra["cv"]["summary"]["ggo"]["folds"] == 2
    assert ens.card.architecture == "ensemble" and ens.card.config["tta"] == ["h"]
    assert len(ens.card.config["members"]) == 2
    assert ens.card.val_metrics["classes"]["ggo"]["dice"] == pytest.approx(report["student"]["summary"]["ggo"]["mean"])
    x = torch.rand(1, 1, 64, 64)
    assert dist(x).shape == ens(x).shape == (1, 4, 64, 64)
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings) == {"teacher", "pool", "pseudo", "student", "final", "report", "export", "total"}
    # running it again finds everything done
    again: list[str] = []
    t = time.monotonic()
    run_recipe(recipe, out, data_root=str(tmp_path), say=again.append, device="cpu")
    assert time.monotonic() - t < 30 and not any("started" in m for m in again)
    assert any(m.startswith("== stage student") for m in again)


#: one config per architecture and task of the seeds' systems (the others differ only in sizes)
SYSTEMS = ["deeplab_all", "infnet_iresnet", "lung_unet", "segnet_seed001", "two_stream_seed000", "unet_seed002",
           "findings_classifier"]


@pytest.mark.parametrize("name", SYSTEMS)
def test_every_seed_system_still_trains_a_step(name, tmp_path):
    """Each seed's system, with its own config (model, losses, pseudo-labels), takes training
    steps and writes a loadable model through the current trainer (tiny 64-px synthetic data;
    widths divided by 4 to keep the test quick: the architecture, heads and losses are the
    config's)."""
    data = _synthetic(tmp_path / "data", n=6, size=64)
    pseudo = tmp_path / "pseudo"
    (pseudo / "images").mkdir(parents=True)
    (pseudo / "pseudo_masks").mkdir()
    for i in range(3):
        Image.fromarray(np.full((48, 56), 90, np.uint8)).save(pseudo / "images" / f"p{i}.jpg")
        mask = np.zeros((48, 56), np.uint8)
        mask[10:20, 10:30] = 255
        Image.fromarray(mask).save(pseudo / "pseudo_masks" / f"p{i}.png")
    d = json.loads((CONFIGS / f"{name}.json").read_text())
    d.update(labelled=str(data), pseudo=str(pseudo) if d.get("pseudo") else None, input_size=64, epochs=1,
             steps_per_epoch=2, batch_size=2, pseudo_batch=min(int(d.get("pseudo_batch") or 0), 2), val_n=2,
             device="cpu", out=str(tmp_path / "run"), time_budget_s=None)
    m = dict(d["model"])
    for key in ("base", "width"):
        if key in m:
            m[key] = max(4, m[key] // 4)
    d["model"] = m
    card = train(TrainConfig.from_dict(d))
    assert card.extra["steps"] == 2
    loaded = registry.load(tmp_path / "run")
    out = loaded(torch.rand(1, loaded.card.in_channels, 64, 64))
    assert out.shape[0] == 1 and out.shape[1] == len(card.classes)
