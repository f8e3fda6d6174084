"""``python -m engine models``; the benchmarks are scripts of the source tree, not an engine command."""

import json
import shutil

import pytest

from engine.cli import main
from engine.models import registry


def test_models_lists_every_card_with_its_figures(capsys):
    assert main(["models", "--json", "--check"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {c.name for c in registry.available()}
    seg = rows[registry.DEFAULTS["segmentation"]]
    card = registry.get_card(seg["name"])
    assert seg["default"] and seg["sha256_ok"]
    assert seg["infection_dice"] == card.val_metrics["infection"]["dice"]
    assert seg["ggo_dice"] == card.val_metrics["classes"]["ggo"]["dice"]
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert f"{seg['name']} *" in table and f"infection {seg['infection_dice']:.3f}" in table


def test_models_check_reports_a_damaged_weights_file(tmp_path, monkeypatch, capsys):
    card = registry.get_card(registry.DEFAULTS["covid"])
    for suffix in (".json", ".safetensors"):
        shutil.copy(registry.MODELS_DIR / f"{card.name}{suffix}", tmp_path / f"{card.name}{suffix}")
    with open(tmp_path / f"{card.name}.safetensors", "r+b") as f:
        f.seek(-3, 2)
        f.write(b"\x00\x01\x02")
    monkeypatch.setattr(registry, "MODELS_DIR", tmp_path)
    assert main(["models", "--check"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_models_check_reports_probabilities_fitted_for_other_weights(tmp_path, monkeypatch, capsys):
    card = registry.get_card(registry.DEFAULTS["segmentation"])
    for suffix in (".json", ".safetensors", ".presence.json"):
        shutil.copy(registry.MODELS_DIR / f"{card.name}{suffix}", tmp_path / f"{card.name}{suffix}")
    monkeypatch.setattr(registry, "MODELS_DIR", tmp_path)
    assert main(["models", "--check"]) == 0
    assert "presence fit ok" in capsys.readouterr().out
    fitted = json.loads((tmp_path / f"{card.name}.presence.json").read_text())
    fitted["model_sha256"] = "0" * 64  # as after new weights without 'engine calibrate'
    (tmp_path / f"{card.name}.presence.json").write_text(json.dumps(fitted))
    assert main(["models", "--check"]) == 1
    assert "presence fit FOR OTHER WEIGHTS (engine calibrate)" in capsys.readouterr().out


def test_benchmark_scripts_run_from_the_source_tree_and_engine_has_no_bench(capsys):
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "quantification.py"), "--small", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert figures["shape"] == [64, 128, 128]                  # --small reached the script
    assert figures["incremental_equals_full_recount"] is True
    assert figures["ggo_ml"] == pytest.approx(figures["expected_ggo_ml"], rel=0.02)
    with pytest.raises(SystemExit):
        main(["bench", "quantification"])  # gone: it failed in an installed package
    assert "invalid choice" in capsys.readouterr().err


def test_inference_benchmark_warm_child_reports_a_warm_run():
    """``benchmarks/inference.py --warm``: the timed Run AI reuses a predictor that already read a
    small phantom, and the JSON says so (the lead's GPU check relies on it)."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "benchmarks" / "inference.py"), "--child", "phantom:16", "--device", "cpu",
           "--runtimes", "fp32", "--no-gate-run", "--warm"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]
    run = json.loads(out.stdout.strip().splitlines()[-1])
    assert run["warm"] is True and run["shape"] == [16, 512, 512]
    assert "load_s" not in run["timings"]  # the models were loaded before the clock
    assert 0 < run["visible_slice_s"] < run["volume_s"] and run["network_s"] > 0
    assert run["timings"]["slices_segmented"] > 0
