"""Open flows of the real window: label files, series chooser, drag-and-drop, command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[1]
SMALL = (64, 128, 128)


@pytest.fixture
def window(make_window):
    return make_window(size=(1000, 700))


@pytest.fixture
def phantom(window, qtbot):
    with qtbot.waitSignal(window.scan_io.labels_opened, timeout=60000):
        window.scan_io.open_phantom(SMALL)
    return window


def test_label_file_round_trip_and_mismatch_refused(phantom, qtbot, tmp_path):
    from engine import io

    w = phantom
    vol = w.session.volume
    truth = w.labels.array.copy()
    path = tmp_path / "labels.nii.gz"
    io.save_labels(truth, vol, path)
    w.labels.reset(vol.shape)
    assert w.labels.counts()[1:].sum() == 0
    with qtbot.waitSignal(w.scan_io.labels_opened, timeout=30000):
        w.scan_io.open_labels(path)
    np.testing.assert_array_equal(w.labels.array, truth)
    assert w.labels.name == "labels.nii.gz"
    assert w.label_panel.volume_labels[1].text() != "0.0 mL"

    other = tmp_path / "other.nii.gz"
    small = np.zeros((8, 16, 16), np.uint8)
    from engine.types import Geometry
    io.save_labels(small, Geometry(small.shape), other)
    with qtbot.waitSignal(w.notices.error_shown, timeout=30000) as err:
        w.scan_io.open_labels(other)
    assert "grid" in err.args[0].lower() or "shape" in err.args[0].lower() or "match" in err.args[0].lower()
    np.testing.assert_array_equal(w.labels.array, truth)  # the shown labels stay


def test_drop_opens_the_file(window, qtbot, tmp_path):
    from engine import io
    from engine.phantom import chest_ct

    ph = chest_ct(shape=SMALL)
    import nibabel as nib

    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(ph.volume.array.transpose(2, 1, 0), ph.volume.geometry.affine_ras()), path)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.scan_io.volume_opened, timeout=30000):
        window.dropEvent(event)
    vol = window.session.volume
    assert vol.shape == SMALL and vol.format == "nifti"
    expected = io.load(path).array
    np.testing.assert_array_equal(vol.array, expected)
    assert window.windowTitle().endswith("scan.nii.gz")


@pytest.mark.shared_data
def test_folder_with_two_series_asks_which(window, qtbot, tmp_path, dicom_99):
    import pydicom

    folder = tmp_path / "two_series"
    folder.mkdir()
    # six neighbouring slices by position: each series of three then has an even 6 mm spacing
    files = sorted(dicom_99.glob("*.dcm"),
                   key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]))[40:46]
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        if i % 2:
            ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.999.1"
            ds.SeriesDescription = "copy"
            ds.SeriesNumber = 99
            ds.StudyDate = "20200317"
            ds.SeriesDate = "20200318"
        else:
            ds.StudyDate = "20200317"
            ds.SeriesDate = "20200317"
        ds.save_as(folder / f.name)
    window.scan_io.open_path(folder)
    qtbot.waitUntil(lambda: window.scan_io.series_dialog is not None, timeout=30000)
    dialog = window.scan_io.series_dialog
    assert dialog.table.topLevelItemCount() == 2
    texts = dialog.row_texts()
    assert any("copy" in t for t in texts) and all("3 images" in t and "512 x 512" in t for t in texts)
    row = next(i for i, t in enumerate(texts) if "copy" in t)
    from app.widgets.series_dialog import COLUMNS

    assert dialog.table.topLevelItem(row).text(COLUMNS.index("Description")) == "copy"
    # the study date (and the series date where it differs) are shown
    assert dialog.table.topLevelItem(row).text(COLUMNS.index("Date")) == "2020-03-17 (series 2020-03-18)"
    assert dialog.table.topLevelItem(1 - row).text(COLUMNS.index("Date")) == "2020-03-17"
    assert "2020-03-17" in texts[row]
    dialog.select(row)
    with qtbot.waitSignal(window.scan_io.volume_opened, timeout=30000) as opened:
        dialog.accept()
    assert opened.args[0].shape == (3, 512, 512)
    assert opened.args[0].meta["series_instance_uid"] == "1.2.826.0.1.3680043.10.999.1"


def _run_app(args, tmp_path, timeout=120):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", LUNGLENS_SETTINGS=str(tmp_path / "s.ini"),
               LUNGLENS_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_version_needs_no_qt():
    code = "import sys; from app.__main__ import main\ntry:\n main(['--version'])\nexcept SystemExit: pass\n" \
           "print(any(m.startswith(('PySide6', 'pyqtgraph', 'vtk')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("False"), out.stdout + out.stderr


@pytest.mark.slow
def test_screenshot_of_scan_with_labels(tmp_path):
    from engine import io
    from engine.phantom import chest_ct

    ph = chest_ct(shape=(64, 160, 160))
    import nibabel as nib

    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(ph.volume.array.transpose(2, 1, 0), ph.volume.geometry.affine_ras()), scan)
    labels = tmp_path / "labels.nii.gz"
    io.save_labels(ph.labels, io.load(scan), labels)
    out = tmp_path / "shot.png"
    res = _run_app([str(scan), "--labels", str(labels), "--screenshot", str(out)], tmp_path)
    assert res.returncode == 0, res.stderr
    settings = tmp_path / "s.ini"
    assert not settings.exists() or "scan.nii.gz" not in settings.read_text()  # recent list untouched
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1600, 1000)
    arr = np.array([[img.pixelColor(x, y).getRgb()[:3] for x in range(0, 1600, 4)] for y in range(0, 1000, 4)])
    yellowish = (arr[..., 0] > arr[..., 2] + 60) & (arr[..., 1] > arr[..., 2] + 60)
    assert yellowish.sum() > 20  # the GGO overlay is drawn

    bad = _run_app([str(tmp_path / "missing.nii"), "--screenshot", str(tmp_path / "x.png")], tmp_path)
    assert bad.returncode == 2 and "missing.nii" in bad.stderr


def test_screenshot_of_phantom_with_other_labels_waits_for_them(window, qtbot, tmp_path, monkeypatch):
    """No PATH: the phantom opens; --labels replaces its labels before the screenshot."""
    import argparse

    from app import application
    from app.flows import open_scan as scan_io
    from engine import io
    from engine.phantom import chest_ct

    real = scan_io.load_phantom
    monkeypatch.setattr(scan_io, "load_phantom", lambda shape=None, **kw: real(SMALL, **kw))
    ph = chest_ct(shape=SMALL)
    z = SMALL[0] // 2
    assert (ph.labels[z] == 2).sum() > 10  # the phantom shows consolidation on the first slice
    labels = tmp_path / "ggo.nii"
    io.save_labels(np.where(ph.labels == 1, 1, 0).astype(np.uint8), ph.volume.geometry, labels)
    out = tmp_path / "shot.png"
    exits = []
    app = type("FakeApp", (), {"exit": lambda self, status: exits.append(status)})()
    args = argparse.Namespace(path=None, labels=str(labels), screenshot=str(out))
    window.resize(*application.SCREENSHOT_SIZE)
    sequence = application.StartupSequence(window, args, app)  # kept alive, as run() does
    sequence.start()
    qtbot.waitUntil(lambda: bool(exits or window.errors), timeout=30000)
    assert not window.errors
    assert exits == [0] and window.labels.name == "ggo.nii"
    assert set(np.unique(window.labels.array)) == {0, 1}
    img = QImage(str(out))
    assert (img.width(), img.height()) == application.SCREENSHOT_SIZE
    axial = window.views.axial
    top_left = axial.mapTo(window, axial.rect().topLeft())
    arr = np.array([[img.pixelColor(x, y).getRgb()[:3] for x in range(top_left.x(), top_left.x() + axial.width(), 2)]
                    for y in range(top_left.y() + 60, top_left.y() + axial.height() - 60, 2)])
    r, g, b = (arr[..., i].astype(int) for i in range(3))
    red = (r > g + 80) & (r > b + 80)
    yellow = (r > b + 60) & (g > b + 60) & (abs(r - g) < 40)
    assert red.sum() == 0 and yellow.sum() > 20


@pytest.mark.shared_data
def test_cancelled_open_keeps_the_previous_scan(phantom, qtbot, dicom_99):
    w = phantom
    before = w.session.volume
    with qtbot.waitSignal(w.scan_io.open_failed, timeout=30000) as failed:
        w.scan_io.open_path(dicom_99)
        assert not w.progress.isHidden() and w.progress.task is not None
        w.progress.cancel_button.click()
    assert failed.args == [""]  # cancelled: no error message
    assert w.errors == [] and w.session.volume is before
    qtbot.waitUntil(lambda: w.progress.isHidden())


@pytest.mark.shared_data
def test_a_new_open_cancels_the_running_one(window, qtbot, dicom_99):
    opened = []
    window.scan_io.volume_opened.connect(opened.append)
    window.scan_io.open_path(dicom_99)
    first = window.scan_io._open_task
    with qtbot.waitSignal(window.scan_io.labels_opened, timeout=60000):
        window.scan_io.open_phantom(SMALL)
    assert first.token.is_set()
    qtbot.waitUntil(lambda: not window.runner.active, timeout=30000)
    assert [v.format for v in opened] == ["phantom"] and window.session.volume.shape == SMALL


def test_startup_imports_neither_torch_nor_vtk(tmp_path):
    """The window must show fast: models (torch) and the 3D view (vtk) load when first used."""
    code = ("import os, sys\n"
            "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
            "from PySide6.QtWidgets import QApplication\n"
            "app = QApplication([])\n"
            "from app.main_window import MainWindow\n"
            "w = MainWindow(interactive_errors=False)\n"
            "w.show()\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'vtkmodules', 'vtk'})\n"
            "print('HEAVY', ','.join(heavy), 'EXT', ','.join(w.flows))\n")
    env = dict(os.environ, LUNGLENS_SETTINGS=str(tmp_path / "s.ini"), LUNGLENS_DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("HEAVY"))
    assert line.split()[1] == "EXT", f"imported at start-up: {line} ({out.stderr[-2000:]})"


def test_values_that_may_not_be_hu_open_readable_and_flagged(window, qtbot, tmp_path):
    """A CT series exported without its rescale intercept (air stored as 0) showed all white in the lung
    window: it opens with a window over its own values, every view says the values may not be HU, and
    a real HU scan after it opens with the lung window and no such caption."""
    import dicom_factory as F
    from pydicom.uid import generate_uid

    rows = cols = 96
    jj, ii = np.mgrid[0:rows, 0:cols]
    body = (jj - 48) ** 2 + (ii - 48) ** 2 < 40 ** 2
    lungs = ((jj - 48) ** 2 + (ii - 30) ** 2 < 12 ** 2) | ((jj - 48) ** 2 + (ii - 66) ** 2 < 12 ** 2)
    stored = np.where(body, 1040, 0) - np.where(lungs, 900, 0)  # air 0, tissue 1040, lung 140
    series = generate_uid()
    for k in range(6):
        ds = F.ct_slice(rows=rows, cols=cols, position=(0, 0, 2.5 * k), stored=stored, series_uid=series,
                        instance=k + 1)
        del ds.RescaleIntercept, ds.RescaleSlope
        F.write(ds, tmp_path / "raw" / f"{k}.dcm")
    with qtbot.waitSignal(window.scan_io.volume_opened, timeout=30000):
        window.scan_io.open_path(tmp_path / "raw")
    wl = window.session.window
    assert wl.name == "Data range" and wl.levels[0] <= 0 and 1040 <= wl.levels[1] <= 1100
    for view in (window.views.axial, window.views.coronal, window.views.sagittal):
        assert "values may not be HU" in view.captions.top_left.text()
    # on screen the lungs are dark and the body bright (in the lung window the whole body was white)
    img = window.views.axial.grab().toImage()
    centre_lung = img.pixelColor(int(img.width() * 30 / 96), img.height() // 2).lightness()
    body = img.pixelColor(img.width() // 2, int(img.height() * 20 / 96)).lightness()
    assert body - centre_lung > 100, (body, centre_lung)

    ok = tmp_path / "ok"
    F.ct_series(ok, n=4, rows=32, cols=32)
    with qtbot.waitSignal(window.scan_io.volume_opened, timeout=30000):
        window.scan_io.open_path(ok)
    assert window.session.window.name == "Lung"
    assert "values may not be HU" not in window.views.axial.captions.top_left.text()


def test_a_missing_slice_is_marked_on_the_image(window, qtbot, tmp_path):
    """The reader fills a missing DICOM slice with air so positions stay true; the axial view says so on that
    slice (and only there), as the viewer numbers it."""
    import dicom_factory as F

    F.ct_series(tmp_path / "s", positions=[(0, 0, z) for z in (0, 2, 4, 8, 10)], rows=32, cols=32)
    with qtbot.waitSignal(window.scan_io.volume_opened, timeout=30000):
        window.scan_io.open_path(tmp_path / "s")
    axial = window.views.axial
    marked = []
    for k in range(window.session.volume.shape[0]):
        window.session.set_cursor(k, *window.session.cursor[1:])
        if "MISSING SLICE" in axial.captions.top_left.text():
            marked.append(k)
    assert marked == [3] and window.session.volume.meta["missing_slices"] == [3]
    assert np.all(window.session.volume.array[3] == -1024)
    assert "MISSING SLICE" not in window.views.coronal.captions.top_left.text()


def test_an_image_stack_can_be_reopened_feet_first(window, qtbot, tmp_path):
    """A PNG/JPG stack carries no slice positions: its first file is taken as the head end and the notice says
    so, since upper and lower lung zones depend on it (a Radiopaedia stack that runs from the feet had its zones
    upside down, QA pass). File > Reopen stack feet first reopens it the other way round, and back."""
    from PIL import Image

    folder = tmp_path / "stack"
    folder.mkdir()
    for n in range(1, 6):
        Image.fromarray(np.full((80, 80), 40 * n, np.uint8)).save(folder / f"{n}.png")
    action = window.scan_io.reopen_stack_action
    assert not action.isEnabled()
    with qtbot.waitSignal(window.scan_io.volume_opened, timeout=30000):
        window.scan_io.open_path(folder)
    vol = window.session.volume
    assert list(vol.array[:, 0, 0]) == [200, 160, 120, 80, 40]  # file 1 at the top (highest z)
    assert action.isEnabled() and action.text() == "Reopen stack feet first"
    assert action in window.menus["file"].actions()
    assert any("the first, 1.png, is taken as the top (head end) slice" in t for t in window.notices.warnings)
    with qtbot.waitSignal(window.scan_io.volume_opened, timeout=30000):
        action.trigger()
    vol = window.session.volume
    assert list(vol.array[:, 0, 0]) == [40, 80, 120, 160, 200] and vol.meta["stack_first_slice"] == "inferior"
    assert action.text() == "Reopen stack head first"
    assert any("1.png, is taken as the bottom (feet end) slice" in t for t in window.notices.warnings)
    with qtbot.waitSignal(window.scan_io.volume_opened, timeout=30000):
        action.trigger()
    assert list(window.session.volume.array[:, 0, 0]) == [200, 160, 120, 80, 40]
    window.scan_io.open_phantom((16, 64, 64))
    qtbot.waitUntil(lambda: window.session.volume.shape == (16, 64, 64), timeout=30000)
    assert not action.isEnabled()
