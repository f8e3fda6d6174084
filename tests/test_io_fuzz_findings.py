"""Inputs found by benchmarks/fuzz_readers.py (atheris), rebuilt here from valid files, with their outcome."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import dicom_factory as F

_CHILD = r"""
import sys
from engine import io
from engine.errors import LungLensError
try:
    io.load(sys.argv[1])
    print("loaded")
except LungLensError as exc:
    print("error:", exc)
print(int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))) // 1024)  # VmHWM: ru_maxrss would carry the parent's peak over exec
"""


def _open_in_child(path):
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                         env=dict(os.environ), timeout=120)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0 and len(lines) == 2, out.stderr[-500:]
    return lines[0], int(lines[1])


@pytest.mark.parametrize("name", ["scan.dcm", "scan.mha"])
def test_dicom_meta_header_holding_objecttype_text(tmp_path, name):
    """oom-f95f0b93: 'ObjectType' inside a DICOM file meta made it an MHA; ITK then tried every
    ImageIO and one allocated 1.7 GB on a 1 kB file. Now: DICM wins, the ITK reader is fixed."""
    raw = F.write(F.ct_slice(rows=8, cols=8), tmp_path / "ok.dcm").read_bytes()
    at = 132 + 12 + 6
    data = raw[:at] + b"\xff" + b"ObjectType" + raw[at + 11:]
    path = tmp_path / name
    path.write_bytes(data)
    outcome, peak_mb = _open_in_child(path)
    assert outcome == f"error: {name} is not a readable DICOM file."
    assert peak_mb < 400
