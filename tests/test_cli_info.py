"""``python -m engine info``: text and JSON output, series listing, user errors exit 2 without traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import dicom_factory as F
from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    return subprocess.run([sys.executable, "-m", "engine", "info", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def study(tmp_path):
    F.ct_series(tmp_path / "study", n=4, prefix="a", description="lung")
    F.ct_series(tmp_path / "study", n=2, prefix="b", description="scout")
    return tmp_path / "study"


def test_json_for_dicom_folder_via_subprocess(study):
    out = _run(study, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["format"] == "dicom" and info["modality"] == "CT"
    assert info["shape"] == [4, 12, 10]
    assert info["spacing"] == pytest.approx([2.5, 0.8, 0.7])
    assert info["orientation"] == "LPS"
    assert info["range"]["min"] == -1024 and info["range"]["max"] == 100 * 3 + 10 * 11 + 9 - 1024
    assert sorted(s["n_slices"] for s in info["series"]) == [2, 4]


def test_series_option_and_text_output(study, capsys):
    scout = next(s for s in json.loads(_run(study, "--json").stdout)["series"] if s["description"] == "scout")
    assert main(["info", str(study), "--series", scout["uid"]]) == 0
    text = capsys.readouterr().out
    assert "(2, 12, 10) (z, y, x)" in text
    assert "HU range:" in text and "series:      2 found" in text
    assert "'scout'" in text and "'lung'" in text


def test_nifti_text(tmp_path, capsys):
    data = np.full((6, 5, 4), -700, np.int16)
    data[0, 0, 0] = 300
    nib.save(nib.Nifti1Image(data, np.diag([0.5, 0.6, 2.0, 1.0])), str(tmp_path / "s.nii.gz"))
    assert main(["info", str(tmp_path / "s.nii.gz")]) == 0
    text = capsys.readouterr().out
    assert "format:      nifti" in text
    assert "(4, 5, 6) (z, y, x)" in text
    assert "(2, 0.6, 0.5) mm" in text
    assert "as stored: RAS" in text
    assert "-700 .. 300" in text


@pytest.mark.parametrize("make", ["missing", "garbage", "empty_dir"])
def test_user_errors_exit_2_with_one_line(tmp_path, make):
    if make == "missing":
        target = tmp_path / "nope.nii.gz"
    elif make == "garbage":
        target = tmp_path / "bad.nii.gz"
        target.write_bytes(b"\x1f\x8b" + b"\x00garbage" * 10)
    else:
        target = tmp_path / "empty"
        target.mkdir()
    out = _run(target)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert target.name in lines[0]


def test_main_returns_2_for_bad_input(tmp_path, capsys):
    (tmp_path / "x.png").write_bytes(b"not a png at all, just text")
    assert main(["info", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err.startswith("error: x.png")


def test_closed_stdout_pipe_exits_quietly(tmp_path):
    """``python -m engine info X --json | head -1``: no BrokenPipeError traceback."""
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.int16), np.eye(4)), str(tmp_path / "a.nii.gz"))
    proc = subprocess.Popen([sys.executable, "-m", "engine", "info", str(tmp_path / "a.nii.gz"), "--json"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the command writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, 141)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_broken_pipe_in_process_returns_141(tmp_path, monkeypatch):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.int16), np.eye(4)), str(tmp_path / "a.nii.gz"))
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["info", str(tmp_path / "a.nii.gz"), "--json"]) == 141


def test_stack_order_option_of_the_commands_that_open_a_scan(tmp_path, capsys):
    """Image stacks carry no slice positions: ``--stack-order feet-first`` reads the first file as the feet end
    (info, export, lungs, predict and report take it); the output says which end was assumed."""
    from PIL import Image

    from engine import io

    stack = tmp_path / "stack"
    stack.mkdir()
    for n in range(1, 5):
        Image.fromarray(np.full((64, 64), 50 * n, np.uint8)).save(stack / f"{n}.png")
    for order, end in ((None, "top (head end)"), ("head-first", "top (head end)"), ("feet-first", "bottom (feet end)")):
        assert main(["info", str(stack), "--json"] + (["--stack-order", order] if order else [])) == 0
        d = json.loads(capsys.readouterr().out)
        assert any(f"the first, 1.png, is taken as the {end} slice" in w for w in d["warnings"]), d["warnings"]
    # the report reads the stack the same way (labels saved for the other order do not fit its geometry)
    for order, first, end in (("head-first", "superior", "top (head end)"), ("feet-first", "inferior", "bottom (feet end)")):
        vol = io.load(stack, first_slice=first)
        labels = np.zeros(vol.shape, np.uint8)
        labels[0, 10:20, 10:20] = 1
        io.save_labels(labels, vol, tmp_path / f"{order}.nii.gz")
        out = tmp_path / f"{order}.json"
        assert main(["report", str(stack), "--labels", str(tmp_path / f"{order}.nii.gz"), "--out", str(out),
                     "--stack-order", order]) == 0
        assert any(f"is taken as the {end} slice" in n for n in json.loads(out.read_text())["notes"])
    assert main(["report", str(stack), "--labels", str(tmp_path / "head-first.nii.gz"), "--out",
                 str(tmp_path / "x.json"), "--stack-order", "feet-first"]) == 2  # not the geometry it was made on
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["info", str(stack), "--stack-order", "upside-down"])
