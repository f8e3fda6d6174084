"""Reports: JSON / CSV contents, identifiers left out, the PDF as pixels, the CLI."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.labels import DEFAULT_TABLE
from engine.phantom import chest_ct
from engine.quantification import LungMasks
from engine.quantification.images import key_images, key_slices
from engine.quantification.report import IDENTIFIERS, write_report

SMALL = dict(shape=(64, 128, 128), spacing=(4.0, 2.8, 2.8))
MODELS = {"segmentation": {"name": "unet-multiclass", "version": "0.3.1"}}


@pytest.fixture(scope="module")
def ph():
    return chest_ct(**SMALL)


@pytest.fixture(scope="module")
def lungs(ph):
    return LungMasks.from_masks(ph.lung_left, ph.lung_right, ph.volume.geometry)


def test_json_report_contents(ph, lungs, tmp_path):
    out = write_report(tmp_path / "r.json", ph.volume, ph.labels, lungs, models=MODELS, edited_by_person=True)
    doc = json.loads(out.read_text())
    n = doc["numbers"]
    assert n["findings"]["ggo"]["ml"] == pytest.approx(ph.expected_ml["ggo"])
    assert n["findings"]["effusion"]["ml"] == pytest.approx(ph.expected_ml["effusion"])
    assert n["lungs"]["left"]["ml"] == pytest.approx(ph.expected_ml["lung_left"])
    assert doc["patient"]["patient_id"] == ph.volume.meta["patient_id"]
    assert doc["models"] == MODELS and doc["labels"]["edited_by_person"] is True
    keys = {s["key"] for s in n["severity"]}
    assert keys == {"pan_zones", "chung_zones"}
    assert all("Radiology" in s["citation"] for s in n["severity"])


def test_no_identifiers(ph, lungs, tmp_path):
    vol = ph.volume
    vol.meta["series_instance_uid"] = "1.2.3.4"
    doc = json.loads(write_report(tmp_path / "a.json", vol, ph.labels, lungs, anonymize=True).read_text())
    assert not IDENTIFIERS & set(doc["patient"])
    assert "PHANTOM" not in json.dumps(doc) and "1.2.3.4" not in json.dumps(doc)
    assert doc["patient"]["modality"] == "CT" and doc["anonymized"] is True
    del vol.meta["series_instance_uid"]


def test_an_anonymized_report_names_no_file_or_folder(ph, lungs, tmp_path):
    """File and folder names often carry the patient's name or record number, and a reader's warning names the
    file: the anonymized report said "Doe_Jane_MRN88812345.nii.gz: the orientation ... is invalid" (only the
    full path was replaced). Every format, every note, the lungs' warnings: none of the names is left."""
    from engine.types import Volume

    folder = tmp_path / "Doe_Jane_MRN88812345"
    src = folder / "Doe_Jane_MRN88812345.nii.gz"
    vol = Volume(ph.volume.array, ph.volume.geometry, source=str(src), format="nifti",
                 warnings=["Doe_Jane_MRN88812345.nii.gz: the orientation (qform) is invalid; the sform was used.",
                           f"{folder}: 2 other files were skipped", "the data of this file is cut short"])
    lung_warned = LungMasks.from_masks(ph.lung_left, ph.lung_right, ph.volume.geometry)
    lung_warned.warnings.append("Doe_Jane_MRN88812345: the right lung touches the image edge")
    for suffix in (".json", ".csv", ".pdf"):
        out = write_report(tmp_path / f"anon{suffix}", vol, ph.labels, lung_warned, anonymize=True)
        text = _pdf_strings(out) if suffix == ".pdf" else out.read_text()
        assert not any(s in text for s in ("Doe", "Jane", "88812345")), (suffix, text[:2000])
    doc = json.loads((tmp_path / "anon.json").read_text())
    assert doc["notes"][:3] == ["<scan>: the orientation (qform) is invalid; the sform was used.",
                                "<scan>: 2 other files were skipped", "the data of this file is cut short"]
    assert doc["lungs"]["warnings"][-1] == "<scan>: the right lung touches the image edge"
    named = json.loads(write_report(tmp_path / "named.json", vol, ph.labels, lung_warned).read_text())
    assert named["notes"][0].startswith("Doe_Jane_MRN88812345.nii.gz")  # not anonymized: as the reader said


def test_an_anonymized_report_names_no_other_file_of_a_stack_and_keeps_ordinary_words(ph, lungs, tmp_path):
    """Review: a stack opened from its third file kept its first and a missing neighbour's names in the notes
    ("the first, Doe_Jane-MRN88812345-0001.png, ..."), and a scan in a folder named 'data' had "image data"
    rewritten to "image <scan>"."""
    from engine.types import Volume

    src = tmp_path / "study" / "Doe_Jane-MRN88812345-0003.png"
    vol = Volume(ph.volume.array, ph.volume.geometry, source=str(src), format="png-stack",
                 warnings=["the first, Doe_Jane-MRN88812345-0001.png, is taken as the top of the stack",
                           "numbering gap between Doe_Jane-MRN88812345-0003.png and Doe_Jane-MRN88812345-0005.png"])
    doc = json.loads(write_report(tmp_path / "a.json", vol, ph.labels, lungs, anonymize=True).read_text())
    assert doc["notes"][:2] == ["the first, <scan>, is taken as the top of the stack",
                                "numbering gap between <scan> and <scan>"]
    spaced = Volume(ph.volume.array, ph.volume.geometry, source=str(tmp_path / "s" / "Doe Jane MRN88812345 0003.png"),
                    format="png-stack", warnings=["the first, Doe Jane MRN88812345 0001.png, is the top"])
    doc = json.loads(write_report(tmp_path / "c.json", spaced, ph.labels, lungs, anonymize=True).read_text())
    assert "Doe" not in doc["notes"][0] and "88812345" not in doc["notes"][0]  # names with spaces (review)
    plain = Volume(ph.volume.array, ph.volume.geometry, source=str(tmp_path / "data" / "Doe_Jane.nii.gz"),
                   format="nifti", warnings=["Nothing there is image data.", "version 1.2.3 read Doe_Jane.nii.gz"])
    doc = json.loads(write_report(tmp_path / "b.json", plain, ph.labels, lungs, anonymize=True).read_text())
    assert doc["notes"][:2] == ["Nothing there is image data.", "version 1.2.3 read <scan>"]


def test_csv_report(ph, lungs, tmp_path):
    out = write_report(tmp_path / "r.csv", ph.volume, ph.labels, lungs)
    rows = list(csv.DictReader(out.open()))
    by = {(r["quantity"], r["region"]): r for r in rows}
    assert float(by[("consolidation", "both")]["volume_ml"]) == pytest.approx(ph.expected_ml["consolidation"], abs=1e-3)
    assert int(by[("ggo", "both")]["voxels"]) == np.count_nonzero(ph.labels == 1)
    assert float(by[("lung", "right")]["volume_ml"]) == pytest.approx(ph.expected_ml["lung_right"], abs=1e-3)
    assert by[("pan_zones", "total")]["score"] != ""


def test_a_csv_report_keeps_what_qualifies_its_numbers(ph, lungs, tmp_path):
    """The CSV had the numbers only: a scan the AI did not assess read as '0 voxels of GGO', a stack without
    spacing gave no word on its mL, labels of unknown provenance passed as any others. Each note of the
    report is now a 'note' row, its text in the last column."""
    out = write_report(tmp_path / "r.csv", ph.volume, np.zeros_like(ph.labels), lungs, edited_by_person=None,
                       assessment={"assessed": False, "reasons": ["no lung in this series"]})
    rows = list(csv.DictReader(out.open()))
    notes = [r["note"] for r in rows if r["quantity"] == "note"]
    assert notes[0].startswith("Not assessed by the AI: no lung in this series.")
    assert any("Whether a person edited these labels is unknown" in n for n in notes)
    assert all(r["note"] == "" for r in rows if r["quantity"] != "note")
    assert list(rows[0])[-1] == "note" and {r["region"] for r in rows if r["quantity"] == "note"} == {""}

    from engine.types import Geometry, Volume

    stack = Volume(ph.volume.array, Geometry(ph.volume.shape, (1.0, 1.0, 1.0), spacing_known=False),
                   source=None, format="png-stack")
    rows = list(csv.DictReader(write_report(tmp_path / "s.csv", stack, ph.labels, lungs).open()))
    notes = [r["note"] for r in rows if r["quantity"] == "note"]
    assert any("volumes in mL are unknown" in n for n in notes) and not any("unknown (labels" in n for n in notes)


def test_key_images(ph, lungs):
    ks = key_slices(ph.labels)
    assert set(ks) == {"ggo", "consolidation", "effusion"}
    for key, k in ks.items():
        value = DEFAULT_TABLE.by_key(key).value
        per = (ph.labels == value).sum(axis=(1, 2))
        assert per[k] == per.max()
    imgs = key_images(ph.volume, ph.labels, lungs.lung)
    assert [i.plane for i in imgs] == ["axial"] * 3 + ["coronal"]
    # the coronal overview keeps millimetre proportions: 64 x 4 mm tall, 128 x 2.8 mm wide
    cor = imgs[-1]
    assert cor.height / cor.width == pytest.approx(256 / 358.4, abs=0.01)


def _has_colour(rgb: np.ndarray, color: tuple[int, int, int], tol: int = 40) -> bool:
    d = np.abs(rgb.astype(int) - np.array(color)[None, None, :]).max(axis=2)
    return int((d < tol).sum()) > 20


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
def test_pdf_renders_with_overlays(ph, lungs, tmp_path):
    pdf = write_report(tmp_path / "r.pdf", ph.volume, ph.labels, lungs, models=MODELS)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert 1 <= len(pages) <= 3
    rgbs = [np.asarray(Image.open(p).convert("RGB")) for p in pages]
    # page 1: text (dark pixels) on white
    first = rgbs[0]
    assert (first.mean(axis=2) > 240).mean() > 0.6 and (first.mean(axis=2) < 100).sum() > 500
    # the overlay colours of the three findings appear in the key images
    allpix = np.concatenate([r.reshape(-1, 3) for r in rgbs])[None]
    for lab in DEFAULT_TABLE:
        assert _has_colour(allpix, lab.color), lab.key
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert "Severity score" in text and "unet-multiclass" in text and "Pan F" in text


def test_cli_report_on_nifti(ph, tmp_path):
    nib = pytest.importorskip("nibabel")
    from engine.cli import main
    g = ph.volume.geometry
    aff = g.affine_ras()
    nib.save(nib.Nifti1Image(np.ascontiguousarray(ph.volume.array.transpose(2, 1, 0)), aff), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(np.ascontiguousarray(ph.labels.transpose(2, 1, 0)), aff), tmp_path / "lab.nii.gz")
    out = tmp_path / "rep.json"
    rc = main(["report", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "lab.nii.gz"), "--out", str(out),
               "--no-identifiers", "--edited"])
    assert rc == 0
    doc = json.loads(out.read_text())
    n = doc["numbers"]
    for key in ("ggo", "consolidation", "effusion"):
        assert n["findings"][key]["ml"] == pytest.approx(ph.expected_ml[key], rel=1e-6)
    # lungs found by the HU rules, with the findings united: close to the truth
    assert n["lungs"]["left"]["ml"] == pytest.approx(ph.expected_ml["lung_left"], rel=0.05)
    assert n["lungs"]["right"]["ml"] == pytest.approx(ph.expected_ml["lung_right"], rel=0.05)
    assert doc["labels"]["edited_by_person"] and doc["scan"]["path"] is None


def test_cli_rejects_bad_suffix(tmp_path, capsys):
    from engine.cli import main
    assert main(["report", "phantom", "--out", str(tmp_path / "r.docx")]) == 2
    assert ".pdf" in capsys.readouterr().err


def test_dicom_values_made_readable():
    from engine.quantification.pdf import _field_text
    assert _field_text("patient_name", "DOE^JANE") == "DOE JANE"
    assert _field_text("patient_age", "077Y") == "77 years"
    assert _field_text("study_date", "20200329") == "2020-03-29"
    assert _field_text("series_description", "LUNG 3.0") == "LUNG 3.0"


def test_findings_json_gives_models_and_probabilities(ph, lungs, tmp_path):
    findings = {"findings": {"ggo": {"probability": 0.91}, "consolidation": {"probability": 0.4},
                             "effusion": {"probability": 0.05}},
                "models": {"segmentation": {"name": "deeplab-all", "version": "2"}},
                "covid": {"probability": 0.7, "caveat": "research signal"}}
    doc = json.loads(write_report(tmp_path / "f.json", ph.volume, ph.labels, lungs, findings_doc=findings).read_text())
    assert doc["models"]["segmentation"]["name"] == "deeplab-all"
    assert doc["finding_probabilities"] == {"ggo": 0.91, "consolidation": 0.4, "effusion": 0.05}
    assert doc["covid"]["probability"] == 0.7


def test_report_gives_the_rsna_category_of_the_labels(ph, lungs, tmp_path):
    from engine.quantification.rsna import rsna_category

    doc = json.loads(write_report(tmp_path / "r.json", ph.volume, ph.labels, lungs).read_text())
    expected = rsna_category(ph.labels, lungs, ph.volume.geometry).to_dict()
    assert doc["rsna_category"]["category"] == expected["category"]
    assert doc["rsna_category"]["deciding_features"] == expected["deciding_features"]
    assert doc["assessment"] == {"assessed": True, "reasons": []}


def test_a_scan_the_ai_did_not_read_has_no_severity_or_category(ph, lungs, tmp_path):
    reasons = ["no lung in this series (is it a chest CT?)"]
    findings = {"assessment": {"assessed": False, "reasons": reasons},
                "findings": {"ggo": {"probability": 0.9}}, "covid": {"probability": 0.8, "show_in_app": False}}
    doc = json.loads(write_report(tmp_path / "r.json", ph.volume, ph.labels, lungs, findings_doc=findings).read_text())
    assert doc["assessment"] == {"assessed": False, "reasons": reasons}
    assert doc["numbers"]["severity"] == [] and "rsna_category" not in doc
    assert "finding_probabilities" not in doc and "covid" not in doc
    assert doc["notes"][0].startswith("Not assessed by the AI: no lung in this series")


def test_whole_scan_probabilities_are_withheld_until_validated(ph, lungs, tmp_path):
    note = "Whole-scan probabilities are not validated on whole scans"
    findings = {"assessment": {"assessed": True, "reasons": []}, "findings": {"ggo": {"probability": 0.92}},
                "scan_probabilities_validated": False, "scan_probability_note": note + " (...)"}
    doc = json.loads(write_report(tmp_path / "r.json", ph.volume, ph.labels, lungs, findings_doc=findings).read_text())
    assert "finding_probabilities" not in doc and any(n.startswith(note) for n in doc["notes"])
    findings["scan_probabilities_validated"] = True
    doc = json.loads(write_report(tmp_path / "s.json", ph.volume, ph.labels, lungs, findings_doc=findings).read_text())
    assert doc["finding_probabilities"] == {"ggo": 0.92}



def test_a_scan_without_lungs_reports_no_lung_volume_and_no_category(tmp_path):
    """No lungs found: the report gives no RSNA category and no severity, the CSV has no lung rows of 0 voxels,
    and the PDF says the lung volume is n/a (it printed 'left 0.0 mL, right 0.0 mL')."""
    from engine.types import Geometry, Volume

    arr = np.full((6, 64, 64), 40, np.int16)  # soft tissue only: no air, no lung
    vol = Volume(arr, Geometry(arr.shape, (2.0, 0.8, 0.8)), source=None, format="phantom")
    labels = np.zeros(arr.shape, np.uint8)
    labels[2:4, 20:30, 20:30] = 2
    doc = json.loads(write_report(tmp_path / "r.json", vol, labels).read_text())
    assert "rsna_category" not in doc and doc["numbers"]["severity"] == [] and not doc["numbers"]["has_lungs"]
    assert any("No lungs were found" in n for n in doc["notes"])
    rows = write_report(tmp_path / "r.csv", vol, labels).read_text()
    assert ",lung," not in rows and "consolidation" in rows
    text = _pdf_strings(write_report(tmp_path / "r.pdf", vol, labels))
    assert "Lung volume: n/a (no lungs were found)" in text and "left 0.0 mL" not in text


def _pdf_strings(pdf) -> str:
    """The text drawn by a reportlab PDF: its ASCII85 + Flate content streams, decoded (no PDF reader needed)."""
    import base64
    import re
    import zlib

    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", pdf.read_bytes(), re.S):
        raw = m.group(1).strip()
        try:
            raw = base64.a85decode(raw[:-2] if raw.endswith(b"~>") else raw)
            out.append(zlib.decompress(raw).decode("latin-1").replace("\\(", "(").replace("\\)", ")"))
        except (ValueError, zlib.error):
            continue
    return "".join(out)


def test_a_tiny_finding_reads_under_a_tenth_not_zero(tmp_path):
    """A finding of a few voxels (under 0.05 mL, under 0.05 % of the lung) is there: the PDF says "<0.1", not
    "0.0" (a number that reads as "none")."""
    from engine.anatomy import LungMasks
    from engine.types import Geometry, Volume

    arr = np.full((9, 64, 64), 40, np.int16)
    arr[:, 10:50, 5:28] = -850
    arr[:, 10:50, 36:59] = -850
    g = Geometry(arr.shape, (2.0, 0.8, 0.8))
    vol = Volume(arr, g, source=None, format="phantom")
    right = arr == -850
    right[:, :, 32:] = False
    left = (arr == -850) & ~right
    labels = np.zeros(arr.shape, np.uint8)
    labels[4, 20, 10:13] = 1  # 3 voxels of GGO: 0.004 mL
    labels[4, 20, 40] = 2  # 1 voxel of consolidation in the left middle zone: 0.04 % of it
    text = _pdf_strings(write_report(tmp_path / "r.pdf", vol, labels, LungMasks.from_masks(left, right, g)))
    ggo_row = text[text.index("Ground-glass opacity"):][:400]
    assert "<0.1" in ggo_row and "0.0 " not in ggo_row.split("Consolidation")[0], ggo_row
    # the zone table too: % GGO, % consolidation, % involved of the left middle zone
    cells = re.findall(r"\(([^()]*)\) Tj", text[text.index("Zones and severity"):])
    row = cells[cells.index("Left middle") + 1:][:4]
    assert row == ["3.5", "0.0", "<0.1", "<0.1"], row


def test_values_that_may_not_be_hu_are_not_reported_as_hu(tmp_path):
    """A volume whose reader doubted the HU scale (no air): the report says its HU figures are not valid, and an
    ROI's mean reads "HU?"."""
    from app.state.measurements import Measurements
    from engine.display import RegionStats
    from engine.types import Geometry, Volume

    arr = np.full((6, 64, 64), 1040, np.int16)
    g = Geometry(arr.shape, (2.0, 0.8, 0.8))
    vol = Volume(arr, g, source=None, format="dicom", meta={"hu_scale_doubtful": True})
    labels = np.zeros(arr.shape, np.uint8)
    doc = json.loads(write_report(tmp_path / "r.json", vol, labels).read_text())
    assert doc["scan"]["hu_doubtful"] is True
    assert "may not be HU" in _pdf_strings(write_report(tmp_path / "r.pdf", vol, labels))
    stats = RegionStats(pixels=10, mean=1040.0, sd=0.0, minimum=1040.0, maximum=1040.0, area=6.4)
    assert Measurements.stats_text(stats, True, True, doubtful=True).startswith("mean 1040.0 HU?")
    assert Measurements.stats_text(stats, True, True).startswith("mean 1040.0 HU ")


def test_a_report_that_cannot_be_written_says_where_and_why(ph, lungs, tmp_path):
    """A folder that cannot be written, a parent that is a file, a name that is a folder: a LungLens error with
    the place and the reason (the app showed "Unexpected error (FileNotFoundError) ... '/proc/.lunglens-tmp-...'
    Please report it"), and no temporary file left behind."""
    from engine.errors import LungLensError

    (tmp_path / "afile").write_text("x")
    (tmp_path / "r.pdf").mkdir()
    cases = [(tmp_path / "afile" / "r.json", "Could not write r.json in "),
             (tmp_path / "r.pdf", "Could not write r.pdf in "),
             (Path("/proc/lunglens_report.csv"), "Could not write lunglens_report.csv in /proc: ")]
    for target, start in cases:
        with pytest.raises(LungLensError) as err:
            write_report(target, ph.volume, ph.labels, lungs)
        assert str(err.value).startswith(start) and type(err.value) is LungLensError, str(err.value)
        assert "lunglens-tmp" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "r.pdf"] and not any((tmp_path / "r.pdf").iterdir())


def test_cli_report_prints_as_the_app_rounds_and_takes_predicts_lungs_as_they_are(ph, tmp_path, capsys):
    """QA pass: `report --print` showed "0.1 mL, 0.0 %" where the app and the PDF show "<0.1"; `--lungs
    lungs.nii.gz` (predict's, 1 right / 2 left) was re-found as a model mask (0.6 mL apart, named model+hu-rules)."""
    nib = pytest.importorskip("nibabel")
    from engine.cli import main
    from engine.labels import EFFUSION

    g = ph.volume.geometry
    aff = g.affine_ras()
    nib.save(nib.Nifti1Image(np.ascontiguousarray(ph.volume.array.transpose(2, 1, 0)), aff), tmp_path / "ct.nii.gz")
    labels = np.zeros(ph.labels.shape, np.uint8)
    z, y, x = np.argwhere(ph.lung_left)[len(np.argwhere(ph.lung_left)) // 2]
    labels[z, y, x] = EFFUSION  # one voxel: far under 0.1 mL and 0.1 % of the lungs
    nib.save(nib.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)), aff), tmp_path / "lab.nii.gz")
    sides = (ph.lung_right * 1 + ph.lung_left * 2).astype(np.uint8)
    sides[z, y, x] = 2
    nib.save(nib.Nifti1Image(np.ascontiguousarray(sides.transpose(2, 1, 0)), aff), tmp_path / "lungs.nii.gz")
    out = tmp_path / "rep.json"
    assert main(["report", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "lab.nii.gz"), "--lungs",
                 str(tmp_path / "lungs.nii.gz"), "--out", str(out), "--print"]) == 0
    printed = capsys.readouterr().out
    assert "Pleural effusion: <0.1 mL, <0.1 % of lungs" in printed
    doc = json.loads(out.read_text())
    voxel_ml = g.voxel_volume_ml
    left = int(ph.lung_left.sum()) - 1  # the given lungs voxel for voxel, less the effusion voxel (never lung)
    assert doc["numbers"]["lungs"]["left"]["voxels"] == left
    assert doc["numbers"]["lungs"]["right"]["voxels"] == int(ph.lung_right.sum())
    assert doc["numbers"]["lungs"]["left"]["ml"] == pytest.approx(left * voxel_ml, rel=1e-6)  # float32 affine
