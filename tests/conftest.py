"""Shared fixtures. Qt runs offscreen; real data is found at ../shared/data."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# models exported to ONNX (engine.inference.runtime) go to a folder of this test session,
# not to the user's cache
if "LUNGLENS_CACHE_DIR" not in os.environ:
    os.environ["LUNGLENS_CACHE_DIR"] = tempfile.mkdtemp(prefix="lunglens-test-cache-")
    atexit.register(shutil.rmtree, os.environ["LUNGLENS_CACHE_DIR"], True)

# the app loads the selected model when a scan opens (app/flows/ai.py); the GUI tests open
# hundreds of scans and press Run AI with models of their own: one test turns it back on
os.environ.setdefault("LUNGLENS_PRELOAD_MODELS", "0")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when the data is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


@pytest.fixture(scope="session")
def dicom_99(shared_data: Path) -> Path:
    path = shared_data / "dicom" / "chest_ct_99"
    if not path.is_dir():
        pytest.skip("chest_ct_99 is not available")
    return path


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch):
    """Factory of shown main windows for GUI tests: ``make_window(flows=(), size=(1200, 800))``.

    Settings and the user data folder (edit journals) live in ``tmp_path``; ``flows=None``
    builds every flow. After the test each window's running tasks are cancelled and awaited.
    """
    made = []

    def make(flows=(), size=(1200, 800), data_dir="data"):
        monkeypatch.setenv("LUNGLENS_SETTINGS", str(tmp_path / "settings.ini"))
        monkeypatch.setenv("LUNGLENS_DATA_DIR", str(tmp_path / data_dir))
        from app.main_window import MainWindow

        w = MainWindow(interactive_errors=False) if flows is None else MainWindow(interactive_errors=False,
                                                                                    flows=flows)
        qtbot.addWidget(w)
        w.resize(*size)
        w.show()
        qtbot.waitExposed(w)
        made.append(w)
        return w

    yield make
    for w in made:
        w.runner.cancel_all()
        w.runner.wait(10000)

