"""``python -m engine batch``: a local two-worker Ray over phantom scans and a broken file.

The cohort rows are checked against single-scan ``python -m engine predict`` results; a
rerun resumes (finished scans skipped, failed ones retried on request).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from dicom_factory import ct_series
from engine.batch import BatchOptions, Ledger, discover, process_scan, run_batch, scan_id
from engine.batch.task import SHARED_COLUMNS
from engine.cli import main
from engine.models import registry
from engine.models.card import ModelCard
from engine.phantom import chest_ct

MODELS = ["--findings-model", "none", "--covid-model", "none", "--device", "cpu"]


def _phantom(path: Path, seed: int, flip: bool = False) -> None:
    v = chest_ct(shape=(40, 96, 112), spacing=(5.0, 3.0, 2.8), seed=seed).volume
    arr = v.array[::-1].copy() if flip else v.array
    nib.save(nib.Nifti1Image(arr.transpose(2, 1, 0), v.geometry.affine_ras()), path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    scans = root / "scans"
    (scans / "site_b").mkdir(parents=True)
    _phantom(scans / "case_a.nii.gz", 1)
    _phantom(scans / "case_b.nii.gz", 2, flip=True)
    _phantom(scans / "site_b" / "case_c.nii.gz", 3)
    (scans / "broken.nii.gz").write_bytes(b"\x1f\x8b this is no gzip stream")
    torch.manual_seed(0)
    model = registry.build("unet", {"base": 4, "depth": 2})
    card = ModelCard(name="tiny_unet", task="segmentation", architecture="unet", config={"base": 4, "depth": 2},
                     input_size=(64, 64), version="7")
    weights = registry.save(model.eval(), card, root / "models")
    return root, scans, weights


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with two CPU slots for the module (run_batch reuses a running Ray)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'lunglens[batch]'")
    pytest.importorskip("pyarrow", reason="pyarrow is not installed: pip install 'lunglens[batch]'")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 * 1024 ** 2)
    yield ray
    ray.shutdown()


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sources_trees_lists_and_ids(tmp_path, setup):
    _, scans, _ = setup
    dicom = tmp_path / "tree" / "patient1" / "ct"
    ct_series(dicom, n=4)
    (tmp_path / "tree" / "notes.csv").write_text("a,b\n")
    listed = tmp_path / "list.txt"
    listed.write_text(f"# two scans\n{scans / 'case_a.nii.gz'}\ntree/patient1/ct\nmissing.nii.gz\n")
    found = discover([str(scans), str(tmp_path / "tree"), str(listed)])
    names = [Path(s.path).name for s in found]
    # case_a appears once although listed twice; the DICOM folder is one scan; a missing listed file is kept
    assert names == ["broken.nii.gz", "case_a.nii.gz", "case_b.nii.gz", "case_c.nii.gz", "ct", "missing.nii.gz"]
    salt = b"0123456789abcdef"
    sid = scan_id(found[1].key, salt)
    assert sid == scan_id(found[1].key, salt) and sid != scan_id(found[1].key, b"another salt....")
    assert len(sid) == 16 and "case" not in sid


def test_a_broken_scan_is_a_failed_row_not_an_exception(setup, tmp_path):
    _, scans, weights = setup
    (scan,) = discover([str(scans / "broken.nii.gz")])
    row = process_scan(scan, "sX", str(tmp_path), BatchOptions(model=str(weights), findings_model="none",
                                                                covid_model="none", report="none"))
    assert (row["status"], row["stage"]) == ("failed", "read")
    assert "broken.nii.gz" in row["reason"] and "damaged" in row["reason"]
    assert not (tmp_path / "scans").exists() or list((tmp_path / "scans").iterdir()) == []


def test_a_scan_the_ai_did_not_assess_is_a_row_without_volumes_not_an_ok_row(setup, tmp_path):
    """QA pass: a scan without lung had status "ok" and ggo_ml = consolidation_ml = effusion_ml = 0 in the cohort
    table (and 0.0 mL in findings.json), so cohort averages counted it as "no disease". Its row now says
    "not_assessed" with the reason, its volumes are empty, and it gets no label map."""
    _, scans, weights = setup
    body = np.full((96, 112, 24), 40, np.int16)  # soft tissue and air around it, no lung: an abdomen
    body[:, :8] = -1000
    nib.save(nib.Nifti1Image(body, np.diag([-3.0, -2.8, 5.0, 1.0])), str(tmp_path / "abdomen.nii.gz"))
    (scan,) = discover([str(tmp_path / "abdomen.nii.gz")])
    row = process_scan(scan, "sA", str(tmp_path / "out"), BatchOptions(model=str(weights), findings_model="none",
                                                                        covid_model="none", report="none"))
    assert (row["status"], row["stage"], row["assessed"]) == ("not_assessed", "ai", False)
    assert row["reason"].startswith("not assessed: No lung was found")
    assert row["ggo_ml"] is None and row["consolidation_ml"] is None and row["effusion_ml"] is None
    doc = json.loads((tmp_path / "out" / "scans" / "sA" / "findings.json").read_text())
    assert all(f["volume_ml"] is None and f["voxels"] is None for f in doc["findings"].values())
    assert not (tmp_path / "out" / "scans" / "sA" / "labels.nii.gz").exists()


def test_batch_on_two_workers_matches_single_scan_predict(setup, local_ray, tmp_path, capsys):
    import pyarrow.parquet as pq

    root, scans, weights = setup
    out = root / "out"
    rc = main(["batch", str(scans), "--out", str(out), "--workers", "2", "--model", str(weights),
               "--report", "json", *MODELS])
    assert rc == 1  # one scan failed
    text = capsys.readouterr().out
    assert "4 scans: 4 processed now, 0 already done; 3 ok, 1 failed; 2 workers on cpu" in text
    rows = {r["scan_id"]: r for r in _read_csv(out / "cohort.csv")}
    sources = {r["scan_id"]: r["source"] for r in _read_csv(out / "sources.csv")}
    assert len(rows) == 4 and sorted(Path(s).name for s in sources.values()) == [
        "broken.nii.gz", "case_a.nii.gz", "case_b.nii.gz", "case_c.nii.gz"]
    shared = (out / "cohort.csv").read_text()
    assert "case_" not in shared and "broken" not in shared and str(scans) not in shared
    assert list(_read_csv(out / "cohort.csv")[0]) == list(SHARED_COLUMNS)
    table = pq.read_table(out / "cohort.parquet")
    assert table.num_rows == 4 and str(table.schema.field("ggo_ml").type) == "double"
    assert table.schema.field("ggo_ml").metadata == {b"unit": b"mL"}
    assert table.schema.field("ggo_pct_lung").metadata == {b"unit": b"% of lung volume"}
    (failure,) = _read_csv(out / "failures.csv")
    assert Path(failure["source"]).name == "broken.nii.gz" and failure["stage"] == "read"
    assert "damaged gzip" in failure["reason"]
    assert rows[failure["scan_id"]]["status"] == "failed"
    parquet = {r["scan_id"]: r for r in table.to_pylist()}
    for sid, row in rows.items():
        if row["status"] != "ok":
            continue
        single = tmp_path / sid
        assert main(["predict", sources[sid], "--out", str(single), "--model", str(weights), "--quiet", *MODELS]) == 0
        doc = json.loads((single / "findings.json").read_text())
        mine = json.loads((out / "scans" / sid / "findings.json").read_text())
        for key in ("ggo", "consolidation", "effusion"):
            f = doc["findings"][key]
            assert parquet[sid][f"{key}_ml"] == pytest.approx(f["volume_ml"], abs=1e-9)
            assert parquet[sid][f"{key}_probability"] == pytest.approx(f["probability"], abs=1e-9)
            assert float(row[f"{key}_ml"]) == pytest.approx(f["volume_ml"], rel=1e-5, abs=1e-9)
            assert mine["findings"][key]["voxels"] == f["voxels"]
        assert parquet[sid]["lung_ml"] == pytest.approx(doc["lung"]["volume_ml"], rel=1e-9)
        # GGO + consolidation, rounded as findings.json rounds (it carried 15 digits, as if measured so)
        assert parquet[sid]["involved_pct_lung"] == doc["involvement_percent_of_lung"] is not None
        involved = doc["findings"]["ggo"]["volume_ml"] + doc["findings"]["consolidation"]["volume_ml"]
        assert parquet[sid]["involved_ml"] == pytest.approx(involved, abs=0.0015)
        assert parquet[sid]["involved_ml"] == round(parquet[sid]["involved_ml"], 3)
        assert int(row["slices"]) == 40 and row["format"] == "nifti" and row["device"] == "cpu"
        assert parquet[sid]["severity_pan_max"] == 30 and parquet[sid]["severity_chung_max"] == 24
        assert parquet[sid]["assessed"] is doc["assessment"]["assessed"]
        assert parquet[sid]["rsna_category"] == (doc["rsna_category"] or {}).get("category")
        assert (out / "scans" / sid / "lungs.nii.gz").is_file()  # the lungs found once, as predict writes them
        assert np.array_equal(np.asarray(nib.load(out / "scans" / sid / "labels.nii.gz").dataobj),
                              np.asarray(nib.load(single / "labels.nii.gz").dataobj))
        assert (out / "scans" / sid / "report.json").is_file()


def test_rerun_resumes_and_retries_failed_on_request(setup, local_ray):
    root, scans, weights = setup
    out = root / "resume"
    opts = BatchOptions(model=str(weights), findings_model="none", covid_model="none", report="none")
    first = run_batch([str(scans)], out, workers=2, device="cpu", options=opts)
    assert (first.processed, first.ok, first.failed) == (4, 3, 1)
    again = run_batch([str(scans)], out, workers=2, device="cpu", options=opts)
    assert (again.processed, again.skipped, again.ok, again.failed) == (0, 4, 3, 1)
    _phantom(scans / "broken.nii.gz", 4)  # the broken file is replaced by a good copy
    try:
        assert run_batch([str(scans)], out, workers=2, device="cpu", options=opts).processed == 0
        fixed = run_batch([str(scans)], out, workers=2, device="cpu", options=opts, retry_failed=True)
    finally:
        (scans / "broken.nii.gz").write_bytes(b"\x1f\x8b this is no gzip stream")
    assert (fixed.processed, fixed.ok, fixed.failed) == (1, 4, 0)
    assert _read_csv(out / "failures.csv") == []
    assert len((out / "batch.jsonl").read_text().splitlines()) == 5  # 4 + the retried one
    assert len(Ledger(out).rows()) == 4
    assert all(r["status"] == "ok" for r in _read_csv(out / "cohort.csv"))


def test_a_scan_over_the_time_limit_is_stopped_and_recorded(setup, local_ray, dicom_99, tmp_path):
    _, _, weights = setup
    opts = BatchOptions(model=str(weights), findings_model="none", covid_model="none", report="none")
    t = time.monotonic()
    summary = run_batch([str(dicom_99)], tmp_path / "out", workers=1, device="cpu", options=opts, task_timeout=1.0)
    assert time.monotonic() - t < 30  # stopped, not run to the end
    assert (summary.processed, summary.failed) == (1, 1)
    (failure,) = _read_csv(tmp_path / "out" / "failures.csv")
    assert failure["stage"] == "worker" and "took longer than 1 s (--task-timeout)" in failure["reason"]
    assert not (tmp_path / "out" / "scans").exists() or list((tmp_path / "out" / "scans").iterdir()) == []


def test_progress_line_shows_done_failed_rate_and_eta(capsys):
    from engine.batch import BatchProgress
    from engine.cli.batch import _Line

    state = BatchProgress(total=40, done=10, failed=1, elapsed_s=600.0)
    assert state.rate_per_hour == pytest.approx(60.0) and state.eta_s == pytest.approx(1800.0)
    line = _Line(enabled=True)
    line(state)
    line.close()
    err = capsys.readouterr().err
    assert "10/40 done, 1 failed, 60 scans/h, ETA 30m00s" in err and err.startswith("\r") and err.endswith("\n")
    assert BatchProgress(total=3).eta_s is None


def test_batch_from_a_pacs_query_on_ray(setup, local_ray, tmp_path, capsys):
    """A real Orthanc holds a phantom CT series; the batch finds it by query, each task retrieves it."""
    from dicom_factory import ct_slice, write
    from orthanc_server import MISSING, start_orthanc

    from engine.pacs import PacsClient

    if MISSING:
        pytest.skip(MISSING)
    _, _, weights = setup
    hu = chest_ct(shape=(40, 96, 112), spacing=(5.0, 3.0, 2.8), seed=5).volume.array
    series = tmp_path / "dicom"
    study, uid = "1.2.826.0.1.3680043.8.498.77", "1.2.826.0.1.3680043.8.498.78"
    for k in range(hu.shape[0]):
        write(ct_slice(rows=96, cols=112, position=(-150.0, -140.0, 5.0 * k), spacing=(3.0, 2.8), thickness=5.0,
                       stored=hu[k].astype(np.int32) + 1024, series_uid=uid, study_uid=study, instance=k + 1),
              series / f"{k:03d}.dcm")
    server = start_orthanc(tmp_path / "orthanc")
    try:
        with PacsClient(server.url) as client:
            assert len(client.store([series]).stored) == 40
        out = tmp_path / "out"
        rc = main(["batch", f"dicomweb+{server.url}?modality=CT&date=2024-01-01", "--out", str(out), "--workers", "2",
                   "--model", str(weights), "--report", "none", *MODELS])
        assert rc == 0, capsys.readouterr()
    finally:
        server.stop()
    (row,) = _read_csv(out / "cohort.csv")
    assert (row["status"], row["format"], row["slices"]) == ("ok", "dicom", "40")
    assert not any((out / "pacs-cache").rglob("*.dcm"))  # each retrieved series is deleted once read
    (source,) = [r["source"] for r in _read_csv(out / "sources.csv")]
    assert source == f"{server.url}#{study}/{uid}"
    assert main(["predict", str(series), "--out", str(tmp_path / "single"), "--model", str(weights), "--quiet",
                 *MODELS]) == 0
    doc = json.loads((tmp_path / "single" / "findings.json").read_text())
    for key in ("ggo", "consolidation", "effusion"):
        assert float(row[f"{key}_probability"]) == pytest.approx(doc["findings"][key]["probability"], abs=1e-6)
        assert float(row[f"{key}_ml"]) == pytest.approx(doc["findings"][key]["volume_ml"], rel=1e-5, abs=1e-9)
