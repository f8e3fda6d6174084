"""Registry: build, save, load with sha256 check, refusal of tampered weights."""

from __future__ import annotations

import json

import pytest
import torch

from engine.errors import ModelError
from engine.models import ModelCard, registry


def _card(name: str = "tiny") -> ModelCard:
    return ModelCard(name=name, task="segmentation", architecture="unet",
                     config={"base": 4, "depth": 2, "num_classes": 4}, input_size=(32, 32))


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    m = registry.build("unet", {"base": 4, "depth": 2, "num_classes": 4}).eval()
    card = _card()
    registry.save(m, card, tmp_path)
    assert len(card.sha256) == 64
    loaded = registry.load("tiny", models_dir=tmp_path)
    assert loaded.card.name == "tiny" and not loaded.module.training
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        ref = m(x)
    out = loaded(x)
    assert out.shape == (1, 4, 32, 32)
    assert torch.allclose(out, ref, atol=0.05)  # fp16 storage
    assert [c.name for c in registry.available(tmp_path)] == ["tiny"]


def test_tampered_weights_refused(tmp_path):
    m = registry.build("unet", {"base": 4, "depth": 2})
    card = _card()
    path = registry.save(m, card, tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        registry.load("tiny", models_dir=tmp_path)


def test_unknown_model_and_architecture(tmp_path):
    with pytest.raises(ModelError):
        registry.load("nope", models_dir=tmp_path)
    with pytest.raises(ModelError):
        registry.build("transformer9000", {})
    with pytest.raises(ModelError):
        ModelCard(name="x", task="weird", architecture="unet")


def test_missing_weights(tmp_path):
    card = _card("ghost")
    card.weights = "ghost.safetensors"
    card.save(tmp_path / "ghost.json")
    with pytest.raises(ModelError, match="missing"):
        registry.load("ghost", models_dir=tmp_path)


def test_shipped_models_load_offline_with_their_sha256_and_cards():
    from engine.models.registry import DEFAULTS, MODELS_DIR, available, load

    cards = {c.name: c for c in available()}
    assert set(DEFAULTS.values()) <= set(cards)          # every default is shipped
    for name, card in cards.items():
        path = MODELS_DIR / card.weights
        assert path.stat().st_size < 25 * 2 ** 20
        assert len(card.sha256) == 64 and card.date and card.trained_on and card.split
        assert card.val_metrics, name
        m = load(name)                                   # checks the sha256
        assert m.card.params == sum(p.numel() for p in m.module.parameters())
        from safetensors import safe_open
        with safe_open(str(path), "pt") as f:
            dtypes = {f.get_tensor(k).dtype for k in f.keys()}
        import torch
        assert torch.float32 not in dtypes              # shipped as fp16
    seg = cards[DEFAULTS["segmentation"]]
    assert seg.val_metrics["infection"]["dice"] > 0.7     # what MODELS.md reports for the default


@pytest.mark.parametrize("sha", ["", "   ", "not-a-hash", None])
def test_card_without_a_valid_sha256_is_refused_at_load(tmp_path, sha):
    module = registry.build("unet", {"base": 4, "depth": 2, "num_classes": 4})
    card = _card("nohash")
    registry.save(module, card, tmp_path)
    assert registry.load("nohash", models_dir=tmp_path).card.name == "nohash"  # with its hash: loads
    data = json.loads((tmp_path / "nohash.json").read_text())
    if sha is None:
        data.pop("sha256")
    else:
        data["sha256"] = sha
    (tmp_path / "nohash.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="gives no valid sha256 of its weights"):
        registry.load("nohash", models_dir=tmp_path)


def test_every_shipped_card_has_a_sha256():
    cards = sorted(p for p in registry.MODELS_DIR.glob("*.json") if not p.name.endswith(".presence.json"))
    assert cards and all(len(json.loads(p.read_text()).get("sha256", "")) == 64 for p in cards)
