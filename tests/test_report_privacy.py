"""De-identified reports carry no free-text field that can hold a name, and say what was removed (issue 11)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import zlib

import numpy as np
import pytest

import dicom_factory as F
from engine import io

SECRET = "Jane Doe MRN 88812345"


def _pdf_text(data: bytes) -> str:
    """The decoded content streams of a reportlab PDF (ASCII85 + Flate)."""
    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        raw = m.group(1).strip()
        if raw.endswith(b"~>"):
            raw = base64.a85decode(raw[2:-2] if raw.startswith(b"<~") else raw[:-2])
        try:
            out.append(zlib.decompress(raw).decode("latin-1"))
        except zlib.error:
            out.append(raw.decode("latin-1"))
    return "\n".join(out)


@pytest.fixture
def scan_and_labels(tmp_path):
    folder = tmp_path / "Doe_case"
    F.ct_series(folder, n=4, rows=32, cols=32, description="Doe lung 1mm")
    for p in folder.iterdir():
        import pydicom
        ds = pydicom.dcmread(p)
        ds.StudyDescription = SECRET
        ds.PatientAge = "045Y"
        ds.PatientName = "Doe^Jane"
        ds.save_as(p)
    vol = io.load(folder)
    labels = np.zeros(vol.shape, np.uint8)
    labels[1, 10:20, 10:20] = 1
    io.save_labels(labels, vol, tmp_path / "out" / "l.nii.gz")
    return folder, tmp_path / "out" / "l.nii.gz"


@pytest.mark.parametrize("suffix", [".json", ".pdf"])
def test_no_identifiers_drops_free_text_and_age_and_says_so(tmp_path, scan_and_labels, suffix):
    folder, labels = scan_and_labels
    out = tmp_path / "out" / f"r{suffix}"
    run = subprocess.run([sys.executable, "-m", "engine", "report", str(folder), "--labels", str(labels),
                          "--out", str(out), "--no-identifiers"], capture_output=True, text=True,
                         env=dict(os.environ), timeout=300)
    assert run.returncode == 0, run.stderr
    text = out.read_text() if suffix == ".json" else _pdf_text(out.read_bytes())
    for secret in ("Jane", "Doe", "88812345", "045Y", "45 years", str(folder)):
        assert secret not in text, secret
    if suffix == ".json":
        doc = json.loads(text)
        assert {"Study", "Series", "Age", "Patient name", "File path"} <= set(doc["removed"])
        assert any(n.startswith("Identifiers and free-text fields left out:") for n in doc["notes"])
        assert doc["patient"]["modality"] == "CT"
    else:
        assert "free-text fields left out" in text


def test_without_the_flag_the_fields_are_shown(tmp_path, scan_and_labels):
    folder, labels = scan_and_labels
    out = tmp_path / "out" / "r.json"
    subprocess.run([sys.executable, "-m", "engine", "report", str(folder), "--labels", str(labels), "--out",
                    str(out)], check=True, capture_output=True, env=dict(os.environ), timeout=300)
    doc = json.loads(out.read_text())
    assert doc["patient"]["study_description"] == SECRET and "removed" not in doc
