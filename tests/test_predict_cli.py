"""``python -m engine predict``: outputs on the scan's grid, findings.json, folders of scans."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from engine import io
from engine.cli import main
from engine.inference import Predictor
from engine.models import registry
from engine.models.card import ModelCard
from engine.phantom import chest_ct


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    ph = chest_ct(shape=(40, 96, 112), spacing=(5.0, 3.0, 2.8), seed=2)
    v = ph.volume
    # an oblique, flipped affine: the labels must come back on exactly this grid
    affine = v.geometry.affine_ras()
    c, s = np.cos(0.2), np.sin(0.2)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    affine[:3, :3] = rot @ affine[:3, :3] @ np.diag([-1.0, 1.0, 1.0])
    affine[:3, 3] = (12.5, -40.0, 7.0)
    scans = root / "scans"
    scans.mkdir()
    nib.save(nib.Nifti1Image(v.array.transpose(2, 1, 0), affine), scans / "case_a.nii.gz")
    nib.save(nib.Nifti1Image(v.array[::-1].transpose(2, 1, 0).copy(), affine), scans / "case_b.nii.gz")
    (scans / "broken.nii.gz").write_bytes(b"\x1f\x8b this is no gzip stream")
    torch.manual_seed(0)
    model = registry.build("unet", {"base": 4, "depth": 2})
    card = ModelCard(name="tiny_unet", task="segmentation", architecture="unet", config={"base": 4, "depth": 2},
                     input_size=(64, 64), version="7")
    weights = registry.save(model.eval(), card, root / "models")
    return root, scans, weights, affine


def test_predict_one_scan_writes_labels_on_the_scan_grid(setup, capsys):
    root, scans, weights, affine = setup
    out = root / "one"
    rc = main(["predict", str(scans / "case_a.nii.gz"), "--out", str(out), "--model", str(weights),
               "--device", "cpu", "--findings-model", "none", "--covid-model", "none"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "100%" in err and "\r" not in err  # the progress bar, as plain lines (stderr is not a terminal)
    img = nib.load(out / "labels.nii.gz")
    assert img.get_data_dtype() == np.uint8
    vol = io.load(scans / "case_a.nii.gz")
    # the labels are written on the scan file's own grid (oblique, flipped): its shape, affine and voxel order,
    # so a label voxel (i, j, k) is the scan's voxel (i, j, k) (nnU-Net pairs them so)
    src = nib.load(scans / "case_a.nii.gz")
    assert img.shape == src.shape and np.allclose(img.affine, affine, atol=1e-4)
    # same labels as the engine gives for the loaded scan
    pred = Predictor(str(weights), device="cpu", findings_model=False, covid_model=False).predict(vol)
    assert np.array_equal(io.load_labels(out / "labels.nii.gz", vol), pred.labels)
    from engine.io.orientation import SourceOrientation
    plan = SourceOrientation.from_dict(vol.meta["source_orientation"])
    assert np.array_equal(np.asarray(img.dataobj), plan.to_source(pred.labels).T)

    doc = json.loads((out / "findings.json").read_text())
    assert doc["labels_file"] == "labels.nii.gz"
    assert doc["scan_probabilities_validated"] is False and "not validated" in doc["scan_probability_note"]
    assert set(doc["findings"]) == {"ggo", "consolidation", "effusion"}
    voxel_ml = 5.0 * 3.0 * 2.8 / 1000
    for lab, key in ((1, "ggo"), (2, "consolidation"), (3, "effusion")):
        f = doc["findings"][key]
        n = int((pred.labels == lab).sum())
        assert f["voxels"] == n
        assert f["volume_ml"] == pytest.approx(n * voxel_ml, rel=1e-3)
        assert 0.0 <= f["probability"] <= 1.0
        assert f["probability"] == pytest.approx(pred.scan_probabilities[key], abs=1e-4)
        present = [z for a, b in f["slices"] for z in range(a, b + 1)]
        assert present == pred.slices_with(lab)
        assert len(doc["slice_probabilities"][key]) == 40
    try:
        from engine.quantification import lung_masks, quantify
    except ImportError:  # quantification not in this build: volumes without percentages
        assert all(doc["findings"][k]["percent_of_lung"] is None for k in doc["findings"])
    else:
        q = quantify(pred.labels, vol.geometry, lung_masks(vol, labels=pred.labels), hu=vol.array)
        for key in ("ggo", "consolidation", "effusion"):
            assert doc["findings"][key]["percent_of_lung"] == pytest.approx(q.findings[key].percent_of_lungs,
                                                                            abs=1e-3)
        assert doc["lung"]["volume_ml"] == pytest.approx(q.lungs["both"]["ml"])
    assert doc["models"]["segmentation"]["name"] == "tiny_unet"
    assert doc["models"]["segmentation"]["version"] == "7"
    assert doc["models"]["findings"] is None and doc["covid"] is None
    assert doc["timings_s"]["total_s"] > 0


def test_predict_folder_processes_each_scan_and_skips_unreadable(setup, capsys):
    root, scans, weights, _ = setup
    out = root / "many"
    rc = main(["predict", str(scans), "--out", str(out), "--model", str(weights), "--device", "cpu",
               "--quiet", "--findings-model", "none", "--covid-model", "none"])
    captured = capsys.readouterr()
    assert rc == 1  # one scan skipped
    assert "skipped broken.nii.gz" in captured.err
    assert "2 of 3 scans processed, 1 skipped" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["case_a", "case_b"]
    a = nib.load(out / "case_a" / "labels.nii.gz").get_fdata()
    b = nib.load(out / "case_b" / "labels.nii.gz").get_fdata()
    assert a.shape == b.shape == (112, 96, 40)
    assert (out / "case_b" / "findings.json").is_file()
    assert "\r" not in captured.err  # --quiet: no progress bar


def test_predict_errors_are_one_line_for_the_user(setup, capsys):
    root, scans, weights, _ = setup
    rc = main(["predict", str(scans / "case_a.nii.gz"), "--out", str(root / "x"), "--model", "no_such_model"])
    assert rc == 2
    assert "error: No model named 'no_such_model'" in capsys.readouterr().err
    rc = main(["predict", str(root / "missing.nii.gz"), "--out", str(root / "x"), "--model", str(weights)])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (root / "x").exists()


def test_predict_seg_nrrd_format(setup):
    pytest.importorskip("engine.io.seg_nrrd", reason="the .seg.nrrd writer is not in this build yet")
    root, scans, weights, _ = setup
    out = root / "segnrrd"
    rc = main(["predict", str(scans / "case_a.nii.gz"), "--out", str(out), "--model", str(weights),
               "--format", "seg.nrrd", "--quiet", "--findings-model", "none", "--covid-model", "none"])
    assert rc == 0 and (out / "labels.seg.nrrd").is_file()
    vol = io.load(scans / "case_a.nii.gz")
    back = io.load_labels(out / "labels.seg.nrrd", vol)
    assert back.shape == vol.shape


def test_predict_precision_option_names_the_runtime_in_findings_json(setup):
    from engine.inference.runtime import choose

    root, scans, weights, _ = setup
    vol = io.load(scans / "case_a.nii.gz")
    labels = {}
    for precision in ("fp32", "auto"):
        out = root / f"precision_{precision}"
        rc = main(["predict", str(scans / "case_a.nii.gz"), "--out", str(out), "--model", str(weights),
                   "--device", "cpu", "--findings-model", "none", "--covid-model", "none", "--quiet",
                   "--precision", precision])
        assert rc == 0
        doc = json.loads((out / "findings.json").read_text())
        expected = choose(torch.device("cpu"), precision)
        assert doc["models"]["segmentation"]["runtime"] == expected
        labels[precision] = io.load_labels(out / "labels.nii.gz", vol)
    # the chosen runtime (ONNX Runtime when installed) and float32 agree on this tiny model
    assert np.mean(labels["fp32"] == labels["auto"]) > 0.999


def test_predict_line_withholds_whole_scan_probabilities_until_validated(setup, capsys):
    """The printed line follows findings.json: mL per finding, and the whole-scan probability only
    once validated (as in the app and the report)."""
    from engine.cli import predict as predict_cli
    from engine.inference import summary

    root, scans, weights, _ = setup
    out = root / "line"
    args = ["predict", str(scans / "case_a.nii.gz"), "--out", str(out), "--model", str(weights), "--device", "cpu",
            "--quiet", "--findings-model", "none", "--covid-model", "none"]
    assert main(args) == 0
    line = capsys.readouterr().out
    doc = json.loads((out / "findings.json").read_text())
    assert doc["scan_probabilities_validated"] is False
    assert " p=" not in line and "whole-scan probabilities withheld" in line
    for key, finding in doc["findings"].items():
        assert f"{key} {finding['volume_ml']} mL" in line
    # once validated, the same document prints its probabilities
    doc["scan_probabilities_validated"] = True
    shown = predict_cli.summary_line(doc)
    for key, finding in doc["findings"].items():
        assert f"{key} p={finding['probability']:.2f} {finding['volume_ml']} mL" in shown
    assert "withheld" not in shown
    assert summary.SCAN_PROBABILITIES_VALIDATED is False


def test_predict_passes_on_what_the_reader_did_and_writes_no_labels_for_a_scan_it_did_not_read(setup, capsys):
    """QA pass: the reader set NaN voxels to -1024 and said so, but predict's stderr and findings.json did not
    (GGO changed by 16 mL); a scan the AI did not assess got an all-zero labels.nii.gz, which reads "no findings"
    as a training label; an --out that cannot be written crashed with a traceback after the AI had run; a
    missing severity score had no reason in findings.json."""
    root, scans, weights, affine = setup
    arr = np.asarray(nib.load(scans / "case_a.nii.gz").dataobj).astype(np.float32)
    arr[10:20, 10:20, 5:8] = np.nan
    nib.save(nib.Nifti1Image(arr, affine), scans.parent / "nan.nii.gz")
    args = ["--model", str(weights), "--device", "cpu", "--findings-model", "none", "--covid-model", "none"]
    out = root / "nan"
    assert main(["predict", str(scans.parent / "nan.nii.gz"), "--out", str(out), "--quiet"] + args) == 0
    doc = json.loads((out / "findings.json").read_text())
    reader = [w for w in io.load(scans.parent / "nan.nii.gz").warnings if "NaN" in w]
    assert reader and doc["notes"][:len(reader)] == reader and doc["slice_numbering"] == "from 0"
    # the lung model runs on 8-bit lung-window images only: on this HU scan it is not listed as used
    assert doc["lung"]["method"] == "hu-rules" and "lung" not in doc["models"] and "segmentation" in doc["models"]
    assert main(["predict", str(scans.parent / "nan.nii.gz"), "--out", str(root / "nan2")] + args) == 0
    assert "warning: nan: " + reader[0] in capsys.readouterr().err
    # two slices: no zones, so no severity and no category, and findings.json says why
    nib.save(nib.Nifti1Image(arr[:, :, 18:20].copy(), affine), scans.parent / "thin.nii.gz")
    out = root / "thin"
    assert main(["predict", str(scans.parent / "thin.nii.gz"), "--out", str(out), "--quiet"] + args) == 0
    doc = json.loads((out / "findings.json").read_text())
    assert doc["assessment"]["assessed"] and doc["severity"] is None and doc["rsna_category"] is None
    assert any(n.startswith("No RSNA category or severity score: ") and "3 slices" in n for n in doc["notes"])
    # not assessed (coronal slices): findings.json says why; no label map
    coronal = np.asarray(nib.load(scans / "case_a.nii.gz").dataobj)
    nib.save(nib.Nifti1Image(coronal, affine[:, [0, 2, 1, 3]]), scans.parent / "coronal.nii.gz")
    out = root / "coronal"
    assert main(["predict", str(scans.parent / "coronal.nii.gz"), "--out", str(out), "--quiet"] + args) == 0
    doc = json.loads((out / "findings.json").read_text())
    assert not doc["assessment"]["assessed"] and doc["labels_file"] is None
    assert not (out / "labels.nii.gz").exists()
    # an --out that cannot be written: one line, exit 2, before the AI
    (root / "afile").write_text("x")
    for bad, said in ((root / "afile", "is a file"), (Path("/proc/lunglens_out"), "Could not create lunglens_out")):
        assert main(["predict", str(scans / "case_a.nii.gz"), "--out", str(bad), "--quiet"] + args) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert main(["lungs", str(scans / "case_a.nii.gz"), "--out", "/proc/lunglens_x/l.nii.gz"]) == 2
    assert "Traceback" not in capsys.readouterr().err
