"""Every command-line form README.md shows works as written.

Each ``python -m engine ...`` line of README's "Command line" block is parsed with the real
parser after its placeholders (PATH, DIR, F, ...) are replaced by real values, so a form that
names a missing option or a wrong argument order fails here. The forms that run in seconds on
a small phantom are then run as written, one after the other as a user would (predict ->
export -> report -> info -> lungs -> models); the PACS, batch, train, evaluate and calibrate forms run against real servers,
clusters and data in their own tests (test_pacs.py, test_batch.py, test_training*.py,
test_evaluate_cli.py; calibrate below), which this file checks exist.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from engine.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def readme_forms() -> list[str]:
    """The ``python -m engine`` lines of README's "Command line" block, without comments."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Command line", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    forms = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].strip()
        if "-m engine" in line:
            forms.append(line.split("-m engine", 1)[1].strip())
    return forms


def _concrete(form: str, values: dict[str, str]) -> list[str]:
    """Replace placeholders; keep the first choice of ``a|b``; drop ``...``; expand ``[--opt X]``."""
    form = re.sub(r"\[([^\[\]]*)\]", r"\1", form)  # optional parts are written out
    words = []
    for word in shlex.split(form):
        word = word.replace("...", "")
        if "|" in word:
            word = word.split("|")[0]
        words.append(values.get(word, word))
    return [w for w in words if w]


PLACEHOLDERS = {
    "PATH": "scan.nii.gz", "SCAN": "scan.nii.gz", "DIR": "out", "F": "labels.nii.gz", "FILE": "x.nii.gz",
    "NAME": "default", "CONFIG.json": "cfg.json", "URL": "http://127.0.0.1:1/dicom-web",
    "NAME_OR_ID": "doe", "A..B": "2020-01-01..2020-12-31", "STUDY_UID": "1.2.3", "UID": "1.2.3.4",
    "SOURCE": "scans", "N": "2", "RAY": "127.0.0.1:6379", "COMMAND": "info", "r.pdf": "r.pdf",
}

#: commands whose forms run end to end in other test files (checked to exist below)
RUN_ELSEWHERE = {"pacs": "test_pacs.py", "batch": "test_batch.py", "train": "test_training.py",
                 "evaluate": "test_evaluate_cli.py", "calibrate": "test_readme_cli.py"}


def test_readme_lists_every_command():
    commands = {form.split()[0] for form in readme_forms()}
    parser = build_parser()
    known = set(parser._subparsers._group_actions[0].choices)  # noqa: SLF001 - argparse has no public list
    assert commands - {"COMMAND"} <= known
    assert known <= commands, f"README does not show: {sorted(known - commands)}"


@pytest.mark.parametrize("form", readme_forms())
def test_each_readme_form_parses_as_written(form):
    argv = _concrete(form, PLACEHOLDERS)
    if argv[-1] == "--help":
        return  # "COMMAND --help" is the help of each, tested in test_first_start.py
    args = build_parser().parse_args(argv)
    assert callable(args.func)
    if argv[0] in RUN_ELSEWHERE:
        assert (ROOT / "tests" / RUN_ELSEWHERE[argv[0]]).is_file()


def _engine(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_readme_forms_run_as_written(tmp_path):
    """predict -> export -> report -> info -> models on a small phantom, in README's words."""
    from engine.phantom import chest_ct

    ph = chest_ct(shape=(40, 96, 112), spacing=(5.0, 3.0, 2.8), seed=2)
    nib.save(nib.Nifti1Image(ph.volume.array.transpose(2, 1, 0), ph.volume.geometry.affine_ras()),
             tmp_path / "scan.nii.gz")
    forms = {form.split()[0]: form for form in readme_forms()}
    values = dict(PLACEHOLDERS, F="out/labels.nii.gz", FILE="exported.seg.nrrd")

    run = _engine(*_concrete(forms["predict"], values), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "labels.nii.gz").is_file() and (tmp_path / "out" / "findings.json").is_file()

    run = _engine(*_concrete(forms["export"], values), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "exported.seg.nrrd").stat().st_size > 0

    run = _engine(*_concrete(forms["report"], values), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "r.pdf").read_bytes()[:5] == b"%PDF-"

    run = _engine(*_concrete(forms["info"], values), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    info = json.loads(run.stdout)
    assert [int(n) for n in info["shape"]] == [40, 96, 112]

    run = _engine(*_concrete(forms["lungs"], dict(values, FILE="lungs.nii.gz")), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lungs = nib.load(tmp_path / "lungs.nii.gz").get_fdata()
    assert set(np.unique(lungs)) == {0.0, 1.0, 2.0}  # background, right lung, left lung

    run = _engine(*_concrete(forms["models"], values), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "unet_infection" in run.stdout


@pytest.mark.slow
def test_readme_calibrate_form_refits_the_presence_model(tmp_path, shared_data):
    """``calibrate`` as README shows it, on the real labelled slices and a few lung-free stack slices."""
    stack = tmp_path / "stacks" / "case_74560"
    stack.mkdir(parents=True)
    source = shared_data / "radiopaedia_covid_stacks" / "case_74560"
    for name in sorted(p.name for p in source.glob("*.jpeg"))[-8:]:  # the last slices: below the lungs
        (stack / name).symlink_to(source / name)
    forms = {form.split()[0]: form for form in readme_forms()}
    argv = _concrete(forms["calibrate"], dict(PLACEHOLDERS, F="reliability.png"))
    argv += ["--images", str(shared_data / "medseg100" / "images"), "--labels", str(shared_data / "medseg100" / "labels"),
             "--stacks", str(tmp_path / "stacks"), "--out", str(tmp_path / "presence.json"), "--json"]
    run = _engine(*argv, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr
    fitted = json.loads((tmp_path / "presence.json").read_text())
    assert fitted["calibrated"] is True and set(fitted["findings"]) >= {"ggo", "consolidation", "effusion"}
    assert (tmp_path / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
