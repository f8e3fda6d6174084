"""File > Open from PACS and Send to PACS, driven offscreen against a real Orthanc (DICOMweb plugin).

Each module-scoped Orthanc is started by :mod:`orthanc_server` on a free loopback port
with temporary storage (the tests skip, saying why, when Orthanc is not installed). The
open server holds chest_ct_99 and two small synthetic CT studies (for paging).
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from engine import io
from engine.pacs import MANIFEST, PacsAuth, PacsClient, PacsServer
from orthanc_server import ARCHIVIST, MISSING, READ_ONLY_LUA, start_orthanc

STUDY = "1.3.6.1.4.1.14519.5.2.1.7085.2626.258626612405225511766549337110"
SERIES = "1.3.6.1.4.1.14519.5.2.1.7085.2626.242193282649561899185427104083"
PASSWORD = "Sx-91!pacs-secret"

pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "Orthanc is installed")


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory, dicom_99):
    """An open Orthanc holding chest_ct_99 and two 4-slice synthetic CT studies."""
    from dicom_factory import ct_series

    srv = start_orthanc(tmp_path_factory.mktemp("orthanc_app"))
    extra = tmp_path_factory.mktemp("extra_studies")
    for k in range(2):
        ct_series(extra / f"study{k}", n=4, prefix=f"s{k}_")
    with PacsClient(srv.url) as client:
        stored = client.store([dicom_99, extra])
    assert len(stored.stored) == 99 + 8
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def read_only(tmp_path_factory, dicom_99):
    """Basic authentication (user alice) and read-only: every request but GET is refused (HTTP 403). It holds
    chest_ct_99, stored by the archivist (a send is refused for a study the PACS does not hold, before any write)."""
    srv = start_orthanc(tmp_path_factory.mktemp("orthanc_ro"), users={"alice": PASSWORD, ARCHIVIST[0]: ARCHIVIST[1]},
                        lua=READ_ONLY_LUA)
    with PacsClient(PacsServer(srv.url, PacsAuth.basic(*ARCHIVIST))) as client:
        client.store([dicom_99])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def disk_volume(dicom_99):
    return io.load(dicom_99)


@pytest.fixture
def window(make_window, monkeypatch, tmp_path, orthanc):
    monkeypatch.setenv("LUNGLENS_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("LUNGLENS_PACS_URL", "LUNGLENS_PACS_USERNAME", "LUNGLENS_PACS_PASSWORD", "LUNGLENS_PACS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    w = make_window(flows=("editing",))
    w.scan_io.remember_recent = False
    w.preferences.pacs.update(orthanc.url)
    return w


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _search(qtbot, flow, **fields):
    browser = flow.show_browser()
    browser.patient_name.setText(fields.get("name", ""))
    browser.patient_id.setText(fields.get("patient_id", ""))
    browser.accession.setText(fields.get("accession", ""))
    browser.modality.setCurrentText(fields.get("modality", "CT"))
    browser.search_button.click()
    assert flow.busy and not browser.search_button.isEnabled()  # on a worker: the GUI is free
    qtbot.waitUntil(lambda: not flow.busy, timeout=30000)
    return browser


def _open_from_pacs(qtbot, window):
    """Search by patient ID, pick the CT series, retrieve and open it; the browser."""
    flow = window.pacs
    browser = _search(qtbot, flow, patient_id="C3N-00247")
    qtbot.waitUntil(lambda: len(browser.series_rows()) > 0, timeout=30000)
    with qtbot.waitSignal(window.scan_io.volume_opened, timeout=60000):
        browser.retrieve_button.click()
    return browser


def test_browser_finds_the_study_and_lists_its_series(qtbot, window, orthanc):
    flow = window.pacs
    assert flow.open_action.shortcut().toString() == "Ctrl+Shift+P"
    browser = _search(qtbot, flow, patient_id="C3N-00247")
    assert browser.modality.currentText() == "CT"  # the default modality
    assert browser.study_rows() == [("2010-02-27", "C3N-00247", "C3N-00247", "1598252606449858",
                                     "CT CHEST W IV CONTRAST", "CT", "1", "99")]
    assert not browser.more_button.isVisible()
    # the search's line, unless the listing of the study it selected has already replaced it
    listed = "1 series in study CT CHEST W IV CONTRAST."
    assert browser.message_text in ("1 study found.", listed)
    assert orthanc.url in browser.server_label.text() and "no credentials" in browser.server_label.text()
    qtbot.waitUntil(lambda: len(browser.series_rows()) == 1, timeout=30000)
    assert browser.series_rows() == [("2", "CT", "LUNG 3.0  B70f", "99")]
    assert browser.message_text == listed
    assert browser.selected_series.series_uid == SERIES and browser.retrieve_button.isEnabled()
    browser.grab().save("/tmp/pacs_browser.png")  # looked at by hand; not committed
    # by name (start of it, any case) finds it too; another name finds nothing
    _search(qtbot, flow, name="c3n")
    assert [r[2] for r in browser.study_rows()] == ["C3N-00247"]
    _search(qtbot, flow, name="nobody")
    assert browser.study_rows() == [] and browser.message_text.startswith("No study matches")
    # by accession number (the order's number on a worklist): exact
    _search(qtbot, flow, accession="1598252606449858")
    assert [r[3] for r in browser.study_rows()] == ["1598252606449858"]
    _search(qtbot, flow, accession="1598252606")
    assert browser.study_rows() == []


def test_paging_asks_for_the_next_page(qtbot, window, orthanc):
    flow = window.pacs
    window.preferences.pacs.update(orthanc.url, page_size=2)
    browser = _search(qtbot, flow, modality="CT")
    assert len(browser.study_rows()) == 2 and browser.more_button.isVisible()
    # whether the search's line or the chosen study's series line came last, it says there is more
    assert "more on the server" in browser.message_text.lower()
    qtbot.waitUntil(lambda: "series in study" in browser.message_text, timeout=30000)  # the listing's line
    assert "more on the server" in browser.message_text.lower()
    browser.more_button.click()
    qtbot.waitUntil(lambda: not flow.busy, timeout=30000)
    rows = browser.study_rows()
    assert len(rows) == 3 and not browser.more_button.isVisible()
    assert sorted(r[2] for r in rows) == ["C3N-00247", "TEST001", "TEST001"]
    assert len({browser._studies[i].study_uid for i in range(3)}) == 3  # no study twice


def test_retrieve_opens_the_same_voxels_as_the_files(qtbot, window, tmp_path, disk_volume):
    browser = _open_from_pacs(qtbot, window)
    vol = window.session.volume
    folder = tmp_path / "cache" / "pacs" / STUDY / SERIES
    assert vol.format == "dicom" and Path(vol.meta["dicom_files"][0]).parent == folder
    assert len(list(folder.glob("*.dcm"))) == 99
    assert vol.array.dtype == disk_volume.array.dtype
    np.testing.assert_array_equal(vol.array, disk_volume.array)
    np.testing.assert_allclose(vol.geometry.spacing, disk_volume.geometry.spacing, atol=1e-9)
    np.testing.assert_allclose(vol.geometry.affine_lps(), disk_volume.geometry.affine_lps(), atol=1e-6)
    assert not browser.isVisible() and window.pacs.send_action.isEnabled()
    # a finished retrieval is reused: the cached folder is opened again, nothing is fetched
    manifest = (folder / MANIFEST).read_text()
    stamps = sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("*.dcm"))
    window.pacs.show_browser()
    with qtbot.waitSignal(window.pacs.retrieved, timeout=30000) as got:
        browser.retrieve_button.click()
    assert got.args == [str(folder)] and (folder / MANIFEST).read_text() == manifest
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("*.dcm")) == stamps
    # a cached retrieval ends at once; the browser must still see its end (it once stayed busy)
    qtbot.waitUntil(lambda: not window.pacs.busy, timeout=10000)
    assert browser.search_button.isEnabled() and not browser.cancel_button.isEnabled()


def test_cancel_keeps_no_half_finished_series(qtbot, window, tmp_path):
    flow = window.pacs
    browser = _search(qtbot, flow, patient_id="C3N-00247")
    qtbot.waitUntil(lambda: len(browser.series_rows()) == 1, timeout=30000)
    seen = []

    def watch(task):  # connected before the task starts; the slot runs on the worker thread
        def on_progress(fraction, message):  # cancel at the 10th image, deterministically
            seen.append(message)
            if message == "10/99 images":
                task.cancel()
        task.signals.progress.connect(on_progress, Qt.ConnectionType.DirectConnection)

    window.runner.started.connect(watch)
    browser.retrieve_button.click()
    window.runner.started.disconnect(watch)
    assert flow.busy and browser.cancel_button.isEnabled() and browser.progress.isVisible()
    qtbot.waitUntil(lambda: not flow.busy, timeout=30000)
    assert "10/99 images" in seen and "99/99 images" not in seen
    assert browser.message_text == "Retrieving 99 images: cancelled. Nothing half-retrieved was kept."
    cache = tmp_path / "cache" / "pacs"
    assert not cache.exists() or list(cache.rglob("*")) == []  # no series folder, no staging folder
    assert window.session.volume is None
    # the Cancel button cancels a running retrieval too; the next one starts from scratch and completes
    browser.retrieve_button.click()
    browser.cancel_button.click()
    qtbot.waitUntil(lambda: not flow.busy, timeout=30000)
    assert not (cache / STUDY / SERIES).exists() or len(list((cache / STUDY / SERIES).glob("*.dcm"))) == 99
    with qtbot.waitSignal(window.scan_io.volume_opened, timeout=60000):
        flow.show_browser().retrieve_button.click()
    assert len(list((cache / STUDY / SERIES).glob("*.dcm"))) == 99
    assert window.session.volume.shape == (99, 512, 512)


def test_errors_name_the_server_and_what_to_do(qtbot, window, orthanc):
    flow = window.pacs
    refused = f"http://127.0.0.1:{_closed_port()}/dicom-web"
    window.preferences.pacs.update(refused)
    browser = _search(qtbot, flow, patient_id="C3N-00247")
    msg = browser.message_text
    assert refused in msg and "searching for studies" in msg and "connection refused" in msg
    assert "Check the address and port" in msg and "color: #c62828" in browser.message.styleSheet()
    assert window.errors == []  # shown in the browser, not as a second box
    # a wrong path on a live server
    wrong = orthanc.url.replace("/dicom-web", "/no-such-root")
    window.preferences.pacs.update(wrong)
    _search(qtbot, flow, patient_id="C3N-00247")
    assert wrong in browser.message_text and "HTTP 404" in browser.message_text
    # no server at all, and half-set credentials: said before any request
    window.preferences.pacs.update("")
    browser.search_button.click()
    assert not flow.busy and "No PACS is set" in browser.message_text and "PACS settings" in browser.message_text
    window.preferences.pacs.update(orthanc.url, "basic", "alice")
    browser.search_button.click()
    assert "needs a password" in browser.message_text and "LUNGLENS_PACS_PASSWORD" in browser.message_text


def test_secret_stays_in_memory_and_out_of_messages(qtbot, window, read_only, tmp_path, caplog):
    from app.widgets.pacs_settings import PacsSettingsDialog

    caplog.set_level(logging.DEBUG)  # requests, urllib3 and dicomweb-client log every request

    settings = window.preferences.pacs
    dialog = PacsSettingsDialog(settings, window)
    qtbot.addWidget(dialog)
    dialog.url.setText(read_only.url)
    dialog.auth.setCurrentIndex(1)  # basic
    dialog.username.setText("alice")
    dialog.secret.setText(PASSWORD + "x")  # wrong
    dialog.accept()
    assert dialog.secret.text() == "" and settings.has_session_secret and settings.auth_kind == "basic"
    window.settings.sync()
    stored = Path(tmp_path / "settings.ini").read_text()
    assert read_only.url in stored and "alice" in stored and PASSWORD not in stored
    browser = _search(qtbot, window.pacs, patient_id="x")
    assert read_only.url in browser.message_text and "HTTP 401" in browser.message_text
    assert "user 'alice'" in browser.message_text and PASSWORD not in browser.message_text
    settings.update(read_only.url, "basic", "alice", secret=PASSWORD)
    _search(qtbot, window.pacs, patient_id="x")
    assert browser.message_text.startswith("No study matches")  # logged in: the archive is empty
    assert PASSWORD not in settings.describe() and PASSWORD not in browser.server_label.text()
    settings.forget_secret()
    assert not settings.has_session_secret
    # a password written into the URL moves to memory; the settings file keeps the bare URL
    settings.update(read_only.url.replace("http://", f"http://alice:{PASSWORD}@"))
    assert (settings.url, settings.auth_kind, settings.username) == (read_only.url, "basic", "alice")
    assert settings.has_session_secret and settings.server().auth.secret == PASSWORD
    window.settings.sync()
    assert PASSWORD not in Path(tmp_path / "settings.ini").read_text()
    assert caplog.text and PASSWORD not in caplog.text


def test_send_stores_a_seg_that_qido_finds(qtbot, window, orthanc, disk_volume):
    _open_from_pacs(qtbot, window)
    flow = window.pacs
    labels = np.zeros(disk_volume.shape, np.uint8)
    labels[45:48, 220:260, 150:200] = 1
    labels[55:57, 300:320, 300:330] = 2
    window.labels.set_array(labels, "test labels")
    with PacsClient(orthanc.url) as client:
        before = {s.series_uid for s in client.find_series(STUDY)}
    # nothing leaves without the explicit answer; the question names the server and the study
    box = flow.ask_send()
    assert isinstance(box, QMessageBox) and orthanc.url in box.text() and STUDY in box.text()
    assert "DICOM SEG (7,200 labelled voxels)" in box.text() and "Encapsulated PDF" in box.text()
    with qtbot.waitSignal(flow.send_failed, timeout=10000) as declined:
        box.button(QMessageBox.StandardButton.Cancel).click()
    assert declined.args == [""]
    with PacsClient(orthanc.url) as client:
        assert {s.series_uid for s in client.find_series(STUDY)} == before
    box = flow.ask_send()
    send = next(b for b in box.buttons() if b.text() == "Send")
    with qtbot.waitSignal(flow.sent, timeout=120000) as sent:
        send.click()
    result = sent.args[0]
    assert len(result.stored) == 2 and result.studies == [STUDY]
    with PacsClient(orthanc.url) as client:
        new = [s for s in client.find_series(STUDY) if s.series_uid not in before]
        assert sorted(s.modality for s in new) == ["DOC", "SEG"]
        (seg_series,) = [s for s in new if s.modality == "SEG"]
        folder = client.retrieve_series(STUDY, seg_series.series_uid, Path(window.preferences.pacs.cache_dir()))
    (seg,) = folder.glob("*.dcm")
    assert pydicom.dcmread(seg).StudyInstanceUID == STUDY
    np.testing.assert_array_equal(io.load_labels(seg, reference=disk_volume), labels)
    assert json.loads((folder / MANIFEST).read_text())["instances"] == 1
    # the SEG series, chosen in the browser while its scan is open, opens as labels over it
    window.labels.set_array(np.zeros_like(labels), "cleared")
    browser = flow.show_browser()
    assert len(browser.series_rows()) == 1  # listed before the send
    flow.list_series(browser.selected_study)  # asked afresh: the new series show
    qtbot.waitUntil(lambda: len(browser.series_rows()) == 3, timeout=30000)
    rows = browser.series_rows()
    browser.select_series([r[1] for r in rows].index("SEG"))
    with qtbot.waitSignal(window.scan_io.labels_opened, timeout=60000):
        browser.retrieve_button.click()
    np.testing.assert_array_equal(window.labels.array, labels)
    assert window.session.volume.shape == disk_volume.shape  # the scan stayed


def test_send_refused_by_the_server_is_a_clear_error(qtbot, window, read_only):
    _open_from_pacs(qtbot, window)
    labels = np.zeros(window.session.volume.shape, np.uint8)
    labels[50, 200:210, 200:210] = 3
    window.labels.set_array(labels, "x")
    window.preferences.pacs.update(read_only.url, "basic", "alice", secret=PASSWORD)
    box = window.pacs.ask_send()
    assert read_only.url in box.text() and "user 'alice'" in box.text()
    with qtbot.waitSignal(window.pacs.send_failed, timeout=120000) as failed:
        next(b for b in box.buttons() if b.text() == "Send").click()
    msg = failed.args[0]
    assert msg.startswith("Send to PACS failed.") and read_only.url in msg and "HTTP 403" in msg
    assert "write access" in msg and PASSWORD not in msg
    assert window.errors[-1] == msg  # the window shows it as an error dialog


def test_send_is_offered_only_for_a_dicom_scan_with_labels(qtbot, make_window, monkeypatch, tmp_path):
    monkeypatch.setenv("LUNGLENS_CACHE_DIR", str(tmp_path / "cache"))
    w = make_window(flows=("editing",))
    assert not w.pacs.send_action.isEnabled()
    with qtbot.waitSignal(w.scan_io.volume_opened, timeout=60000):
        w.scan_io.open_phantom((20, 48, 56))
    assert w.labels.editor is not None and not w.pacs.send_action.isEnabled()  # a phantom has no study
    assert w.pacs.ask_send() is None and "opened from DICOM" in w.errors[-1]


def test_cancel_frees_the_browser_at_once_while_a_slow_server_keeps_silent(qtbot, window):
    """QA pass: Cancel during a search of a server that accepted the connection and did not answer left the
    browser "Searching the PACS…" and disabled (settings included) until the request timed out, up to 30 s. It is
    free at once; the late end of the abandoned request changes nothing."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        window.preferences.pacs.update(f"http://127.0.0.1:{silent.getsockname()[1]}/dicom-web")
        flow = window.pacs
        browser = flow.show_browser()
        browser.patient_id.setText("anyone")
        browser.search_button.click()
        assert flow.busy and not browser.search_button.isEnabled()
        qtbot.wait(200)
        browser.cancel_button.click()
        assert not flow.busy and browser.search_button.isEnabled() and not browser.cancel_button.isEnabled()
        assert browser.message_text == "Searching the PACS: cancelled."
    finally:
        silent.close()  # the abandoned request now fails: its end must not show an error over the dialog
    qtbot.waitUntil(lambda: not window.runner.active, timeout=60000)
    assert browser.message_text == "Searching the PACS: cancelled." and not window.errors
