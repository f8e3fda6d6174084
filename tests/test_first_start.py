"""First start on a fresh machine: the system-library check, plain CLI help, run.sh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import syscheck
from engine.cli import build_parser, plain_text

ROOT = Path(__file__).resolve().parents[1]


def test_platform_name_follows_qt_rules():
    assert syscheck.platform_name({"QT_QPA_PLATFORM": "offscreen"}) == "offscreen"
    assert syscheck.platform_name({"QT_QPA_PLATFORM": "wayland;xcb"}) == "wayland"
    assert syscheck.platform_name({"WAYLAND_DISPLAY": "wayland-0"}) == "wayland"
    assert syscheck.platform_name({"DISPLAY": ":0"}) == "xcb"


def test_missing_library_names_the_debian_package(monkeypatch):
    absent = {"libxcb-icccm.so.4", "libxcb-cursor.so.0"}
    monkeypatch.setattr(syscheck, "_loads", lambda so: so not in absent)
    message = syscheck.problem({"DISPLAY": ":0"}, platform_os="linux")
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4\n" in message
    # the offscreen platform does not need the xcb libraries
    assert syscheck.problem({"QT_QPA_PLATFORM": "offscreen"}, platform_os="linux") is None
    assert syscheck.problem({"DISPLAY": ":0"}, platform_os="darwin") is None


def test_no_display_is_said_in_words(monkeypatch):
    monkeypatch.setattr(syscheck, "_loads", lambda so: True)
    message = syscheck.problem({}, platform_os="linux")
    assert "DISPLAY is not set" in message and "xvfb-run" in message


def test_app_exits_with_the_message_before_qt_starts():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "xcb"
    run = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 3
    assert "LungLens cannot start its window" in run.stderr
    assert "Traceback" not in run.stderr


def test_plain_text_drops_rest_markup():
    text = "Reads ``X`` with :func:`~engine.io.load`.\n\nExamples\n--------\npython -m engine x"
    assert plain_text(text) == "Reads X with engine.io.load.\n\nExamples:\npython -m engine x"


@pytest.mark.parametrize("command", sorted(build_parser()._subparsers._group_actions[0].choices))
def test_help_texts_are_plain(command):
    run = subprocess.run([sys.executable, "-m", "engine", command, "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "``" not in run.stdout and ":func:`" not in run.stdout and ":class:`" not in run.stdout
    assert "\n---" not in run.stdout


def test_run_sh_rejects_an_unknown_mode():
    run = subprocess.run(["bash", str(ROOT / "packaging" / "run.sh"), "nonsense"], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 2 and "usage: bash packaging/run.sh app" in run.stderr


def test_progress_on_a_log_is_a_few_plain_lines():
    import io

    from engine.cli.progress_bar import ProgressBar

    log = io.StringIO()
    bar = ProgressBar("predict", stream=log)  # a StringIO is not a terminal
    for i in range(101):
        bar(i / 100, "slices")
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [line.split(":")[1].split("%")[0].strip() for line in lines] == ["0", "25", "50", "75", "100"]


def test_progress_on_a_terminal_redraws_in_place():
    import io

    from engine.cli.progress_bar import ProgressBar

    log = io.StringIO()
    bar = ProgressBar("predict", stream=log, terminal=True)
    bar(0.0, "a")
    bar(1.0, "b")
    bar.close()
    assert log.getvalue().count("\r") == 2 and log.getvalue().endswith("\n")


def test_predict_log_has_no_carriage_returns(tmp_path):
    run = subprocess.run([sys.executable, "-m", "engine", "report", "phantom", "--out", str(tmp_path / "r.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr
    assert (tmp_path / "r.json").stat().st_size > 0


def test_train_help_points_at_a_command_that_exists():
    from engine.models.registry import ARCHITECTURES

    train_help = subprocess.run([sys.executable, "-m", "engine", "train", "--help"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60).stdout
    assert "models --architectures" in " ".join(train_help.split())
    listed = subprocess.run([sys.executable, "-m", "engine", "models", "--architectures"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(ARCHITECTURES)
