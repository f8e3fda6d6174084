"""PACS over DICOMweb against a real Orthanc: store, find, retrieve, store a SEG back, auth, errors, cancel.

The Orthanc servers are started by :mod:`orthanc_server` on free loopback ports with
temporary storage (skipped, with the reason, when Orthanc is not installed).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
from pathlib import Path

import numpy as np
import pydicom
import pytest

import dicom_factory as F
from engine import io
from engine.cli import main
from engine.errors import CancelledError, LungLensError, UnsupportedFormatError
from engine.pacs import (MANIFEST, PacsAuth, PacsAuthError, PacsClient, PacsConnectionError, PacsError,
                         PacsNotFoundError, PacsRefusedError, PacsServer, StudyQuery, check_uid, parse_date_range)
from engine.progress import CancelToken
from orthanc_server import MISSING, READ_ONLY_LUA, TlsProxy, bearer_lua, self_signed_pem, start_orthanc

PASSWORD = "Pw-7f3a!q9"  # the secret that must never leak
TOKEN = "tok-5b8e1c2d9f"
STUDY = "1.3.6.1.4.1.14519.5.2.1.7085.2626.258626612405225511766549337110"
SERIES = "1.3.6.1.4.1.14519.5.2.1.7085.2626.242193282649561899185427104083"


def _server(tmp_path_factory, name: str, **kw):
    if MISSING:
        pytest.skip(MISSING)
    srv = start_orthanc(tmp_path_factory.mktemp(name), **kw)
    return srv


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    srv = _server(tmp_path_factory, "orthanc")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def uploaded(orthanc, dicom_99):
    """chest_ct_99 stored on the open server through the API."""
    with PacsClient(orthanc.url) as client:
        result = client.store([dicom_99])
    return result


@pytest.fixture(scope="session")
def disk_volume(dicom_99):
    return io.load(dicom_99)


@pytest.fixture(scope="module")
def secure(tmp_path_factory, dicom_99):
    """Basic auth (user alice), read-only: every request but GET is refused (HTTP 403)."""
    srv = _server(tmp_path_factory, "orthanc_secure", users={"alice": PASSWORD}, lua=READ_ONLY_LUA)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def bearer(tmp_path_factory):
    srv = _server(tmp_path_factory, "orthanc_bearer", lua=bearer_lua(TOKEN))
    yield srv
    srv.stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


# -- without a server ---------------------------------------------------------------
def test_secrets_stay_out_of_repr_and_url():
    server = PacsServer("http://bob:p%40ss-9z@pacs.example.org:8042/dicom-web/")
    assert server.url == "http://pacs.example.org:8042/dicom-web"
    assert (server.auth.kind, server.auth.username, server.auth.secret) == ("basic", "bob", "p@ss-9z")
    client = PacsClient(server)
    for text in (repr(server), str(server), repr(client), repr(server.auth), repr(PacsAuth.bearer(TOKEN))):
        assert "p@ss-9z" not in text and "p%40ss" not in text and TOKEN not in text
    assert PacsAuth.bearer(TOKEN).scrub(f"x {TOKEN} y") == "x *** y"


def test_auth_from_environment():
    env = {"LUNGLENS_PACS_USERNAME": "alice", "LUNGLENS_PACS_PASSWORD": PASSWORD}
    assert PacsServer.from_env("https://h/dicom-web", environ=env).auth.describe() == "user 'alice'"
    assert PacsServer.from_env("https://h/dicom-web", environ={"LUNGLENS_PACS_TOKEN": TOKEN}).auth.kind == "bearer"
    assert PacsServer.from_env("https://h/dicom-web", environ={}).auth.kind == "none"
    with pytest.raises(PacsError, match="unset the one"):
        PacsAuth.from_env({**env, "LUNGLENS_PACS_TOKEN": TOKEN})
    with pytest.raises(PacsError, match="USERNAME is set but"):
        PacsAuth.from_env({"LUNGLENS_PACS_USERNAME": "alice"})
    with pytest.raises(PacsError, match="cannot be turned off"):
        PacsServer("https://h/dicom-web", verify=False)
    with pytest.raises(PacsError, match="not a DICOMweb address"):
        PacsServer("pacs.example.org")


def test_date_ranges_and_query_filters():
    d = dt.date
    assert parse_date_range("2020-03-01") == (d(2020, 3, 1), d(2020, 3, 1))
    assert parse_date_range("20200301..2020-06-30") == (d(2020, 3, 1), d(2020, 6, 30))
    assert parse_date_range("2020-03-01..") == (d(2020, 3, 1), None)
    assert parse_date_range("..2020-06-30") == (None, d(2020, 6, 30))
    assert parse_date_range("20200301-20200630") == (d(2020, 3, 1), d(2020, 6, 30))
    with pytest.raises(PacsError, match="ends before it starts"):
        parse_date_range("2020-06-30..2020-03-01")
    with pytest.raises(PacsError, match="not a date"):
        parse_date_range("March")
    (only,) = StudyQuery(patient_name="doe", date_from=d(2020, 3, 1), modality="ct").filters()
    assert only == {"PatientName": "doe*", "StudyDate": "20200301-", "ModalitiesInStudy": "CT"}
    by_name, by_id = StudyQuery(patient="C3N-00247").filters()
    assert by_name == {"PatientName": "C3N-00247*"} and by_id == {"PatientID": "C3N-00247"}


def test_uids_from_anyone_cannot_escape_the_cache():
    assert check_uid(" 1.2.840.10008 ") == "1.2.840.10008"
    for bad in ("../../etc", "1.2/3", "", "1." * 40 + "1"):
        with pytest.raises(PacsError, match="not a valid"):
            check_uid(bad)


def test_unreachable_server_says_which_and_what_to_do():
    url = f"http://127.0.0.1:{_closed_port()}/dicom-web"
    with pytest.raises(PacsConnectionError) as info:
        PacsClient(url).find_studies()
    msg = str(info.value)
    assert url in msg and "searching for studies" in msg and "connection refused" in msg
    assert "Check the address and port" in msg


def test_nothing_is_sent_when_a_file_is_not_dicom(tmp_path, dicom_99):
    bad = tmp_path / "notes.txt"
    bad.write_text("not dicom")
    files = sorted(dicom_99.glob("*.dcm"))[:2] + [bad]
    # a closed port: had anything been sent first, the error would be a connection error
    with pytest.raises(UnsupportedFormatError, match="notes.txt is not a DICOM file"):
        PacsClient(f"http://127.0.0.1:{_closed_port()}/dicom-web").store(files)


# -- against Orthanc ----------------------------------------------------------------
def test_store_reports_every_instance(uploaded):
    assert len(uploaded.stored) == 99 and len(set(uploaded.stored)) == 99
    assert uploaded.studies == [STUDY]


def test_find_by_patient_date_and_modality(orthanc, uploaded):
    client = PacsClient(orthanc.url)
    for patient in ("c3n", "C3N-00247", "C3N-002*"):
        (study,) = client.find(StudyQuery(patient=patient))
        assert study.study_uid == STUDY
    assert client.find_studies(StudyQuery(patient="nobody")) == []
    assert [s.study_uid for s in client.find_studies(StudyQuery(patient_id="C3N-00247"))] == [STUDY]
    day = dt.date(2010, 2, 27)
    assert len(client.find_studies(StudyQuery(date_from=day, date_to=day))) == 1
    assert len(client.find_studies(StudyQuery(date_from=day - dt.timedelta(30), date_to=day))) == 1
    assert client.find_studies(StudyQuery(date_from=day + dt.timedelta(1))) == []
    assert client.find_studies(StudyQuery(date_to=day - dt.timedelta(1))) == []
    assert len(client.find_studies(StudyQuery(modality="CT"))) == 1
    assert client.find_studies(StudyQuery(modality="MR")) == []
    (study,) = client.find(StudyQuery(patient="C3N-00247"))
    assert (study.date, study.description, study.modalities) == ("2010-02-27", "CT CHEST W IV CONTRAST", ("CT",))
    assert study.n_instances == 99
    (series,) = [s for s in study.series if s.modality == "CT"]
    assert (series.series_uid, series.n_instances, series.number) == (SERIES, 99, 2)
    assert series.description == "LUNG 3.0  B70f"


def test_find_pages(orthanc, uploaded):
    """QIDO paging: a full page says 'more'; the next page starts at offset + limit (also with a modality)."""
    client = PacsClient(orthanc.url)
    for modality in ("", "CT"):
        first = StudyQuery(modality=modality, limit=1)
        studies, more = client.find_studies_page(first)
        assert [s.study_uid for s in studies] == [STUDY] and more
        assert first.next_page().offset == 1
        assert client.find_studies_page(first.next_page()) == ([], False)
        assert client.find_studies_page(StudyQuery(modality=modality, limit=2)) == (studies, False)


def test_cli_find_pages(orthanc, uploaded, capsys):
    assert main(["pacs", "find", orthanc.url, "--modality", "CT", "--limit", "1", "--no-series"]) == 0
    out = capsys.readouterr()
    assert "C3N-00247" in out.out and "next page with --offset 1" in out.err
    assert main(["pacs", "find", orthanc.url, "--modality", "CT", "--limit", "1", "--offset", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["studies"] == []


def test_cli_find_json(orthanc, uploaded, capsys):
    assert main(["pacs", "find", orthanc.url, "--patient", "c3n", "--date", "2010-02-01..2010-03-01",
                 "--modality", "CT", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [s["study_uid"] for s in doc["studies"]] == [STUDY]
    assert SERIES in [s["series_uid"] for s in doc["studies"][0]["series"]]
    assert main(["pacs", "find", orthanc.url, "--date", "2011-01-01.."]) == 0
    assert "no study" in capsys.readouterr().out


def test_retrieved_series_equals_the_files(orthanc, uploaded, disk_volume, tmp_path):
    seen = []
    folder = PacsClient(orthanc.url).retrieve_series(STUDY, SERIES, tmp_path, progress=lambda f, m: seen.append(f))
    assert folder == tmp_path / STUDY / SERIES
    assert len(list(folder.glob("*.dcm"))) == 99
    manifest = json.loads((folder / MANIFEST).read_text())
    assert (manifest["server"], manifest["instances"]) == (orthanc.url, 99)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 99
    volume = io.load(folder)
    assert volume.array.dtype == disk_volume.array.dtype
    np.testing.assert_array_equal(volume.array, disk_volume.array)
    assert volume.geometry.same_grid(disk_volume.geometry, tol=1e-6)
    np.testing.assert_allclose(volume.geometry.affine_lps(), disk_volume.geometry.affine_lps(), atol=1e-6)
    # a second call uses the cache: nothing is fetched, the folder is untouched
    stamp = (folder / MANIFEST).stat().st_mtime_ns
    messages = []
    assert PacsClient(orthanc.url).retrieve_series(STUDY, SERIES, tmp_path,
                                                   progress=lambda f, m: messages.append(m)) == folder
    assert messages == ["already in the cache"] and (folder / MANIFEST).stat().st_mtime_ns == stamp


def test_cli_get_series(orthanc, uploaded, tmp_path, capsys):
    assert main(["pacs", "get", orthanc.url, STUDY, "--series", SERIES, "--out", str(tmp_path), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["series"]
    assert entry == {"folder": str(tmp_path / STUDY / SERIES), "instances": 99}


def test_cancel_during_retrieve_leaves_no_partial_folder(orthanc, uploaded, tmp_path):
    token = CancelToken()
    counts = []

    def progress(fraction, message):
        counts.append(message)
        if len(counts) == 10:
            token.cancel()

    with pytest.raises(CancelledError):
        PacsClient(orthanc.url).retrieve_series(STUDY, SERIES, tmp_path, progress=progress, cancel=token)
    assert counts[-1] == "10/99 images"
    assert list(tmp_path.rglob("*")) == []  # no study folder, no hidden staging folder


def test_missing_series_is_a_clear_error(orthanc, uploaded, tmp_path):
    with pytest.raises(PacsNotFoundError, match=f"no series 1.2.3 in study {STUDY}"):
        PacsClient(orthanc.url).retrieve_series(STUDY, "1.2.3", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_seg_stored_back_into_the_study(orthanc, uploaded, disk_volume, tmp_path, capsys):
    from engine.editing.export import export_labels

    labels = np.zeros(disk_volume.shape, np.uint8)
    labels[40:46, 200:260, 150:220] = 1
    labels[50:53, 300:330, 300:340] = 2
    (seg,) = export_labels(labels, disk_volume, tmp_path / "labels.dcm")
    assert main(["pacs", "put", orthanc.url, str(seg), "--study", STUDY, "--json"]) == 0
    put = json.loads(capsys.readouterr().out)
    assert put["stored"] == 1 and put["studies"] == [STUDY]
    client = PacsClient(orthanc.url)
    segs = [s for s in client.find_series(STUDY) if s.modality == "SEG"]
    assert len(segs) == 1 and segs[0].n_instances == 1
    folder = client.retrieve_series(STUDY, segs[0].series_uid, tmp_path / "cache")
    (back,) = folder.glob("*.dcm")
    assert pydicom.dcmread(back).SOPInstanceUID == pydicom.dcmread(seg).SOPInstanceUID
    np.testing.assert_array_equal(io.load_labels(back, reference=disk_volume), labels)
    (study,) = client.find(StudyQuery(patient="C3N-00247"))
    assert set(study.modalities) == {"CT", "SEG"} and study.n_series == 2


def test_store_into_the_wrong_study_is_refused(orthanc, uploaded, dicom_99):
    one = sorted(dicom_99.glob("*.dcm"))[0]
    with pytest.raises(PacsRefusedError) as info:
        PacsClient(orthanc.url).store([one], study_uid="1.2.3.4")
    msg = str(info.value)
    assert orthanc.url in msg and "refused 1 of 1 instances" in msg and "processing failure (0x0110)" in msg
    assert "0 were stored" in msg
    assert info.value.failed == ((pydicom.dcmread(one).SOPInstanceUID, "processing failure (0x0110)"),)


def test_basic_auth(secure, dicom_99, caplog):
    caplog.set_level(logging.DEBUG)
    good = PacsClient(PacsServer(secure.url, PacsAuth.basic("alice", PASSWORD)))
    assert good.find_studies() == []
    with pytest.raises(PacsAuthError) as info:
        PacsClient(PacsServer(secure.url, PacsAuth.basic("alice", PASSWORD + "x"))).find_studies()
    msg = str(info.value)
    assert secure.url in msg and "HTTP 401" in msg and "user 'alice'" in msg and "Check the user name" in msg
    with pytest.raises(PacsAuthError, match="asks for a login"):
        PacsClient(PacsServer(secure.url, PacsAuth.none())).find_studies()
    # a read-only archive refuses the store with a clear message
    with pytest.raises(PacsRefusedError) as refused:
        good.store(sorted(dicom_99.glob("*.dcm"))[:3])
    text = str(refused.value)
    assert secure.url in text and "HTTP 403" in text and "write access" in text
    assert caplog.text  # requests, urllib3 and dicomweb-client logged at debug level
    for leak in (msg, text, caplog.text, repr(good), repr(info.value.__cause__), repr(info.value.__context__)):
        assert PASSWORD not in leak


def test_batch_pacs_source_takes_credentials_from_the_environment(secure, monkeypatch):
    from engine.batch import discover

    with pytest.raises(LungLensError) as info:
        discover([secure.url.replace("http://", f"dicomweb+http://alice:{PASSWORD}@") + "?modality=CT"])
    assert "LUNGLENS_PACS_PASSWORD" in str(info.value) and PASSWORD not in str(info.value)
    monkeypatch.setenv("LUNGLENS_PACS_USERNAME", "alice")
    monkeypatch.setenv("LUNGLENS_PACS_PASSWORD", PASSWORD)
    with pytest.raises(LungLensError, match="holds no scan"):  # logged in: the archive is empty
        discover([f"dicomweb+{secure.url}?modality=CT"])
    monkeypatch.setenv("LUNGLENS_PACS_PASSWORD", "wrong")
    with pytest.raises(PacsAuthError, match="HTTP 401"):
        discover([f"dicomweb+{secure.url}?modality=CT"])


def test_cli_basic_auth_from_environment(secure, monkeypatch, capsys):
    monkeypatch.setenv("LUNGLENS_PACS_USERNAME", "alice")
    monkeypatch.setenv("LUNGLENS_PACS_PASSWORD", PASSWORD)
    assert main(["pacs", "find", secure.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["studies"] == []
    monkeypatch.setenv("LUNGLENS_PACS_PASSWORD", "wrong-" + PASSWORD)
    assert main(["-v", "pacs", "find", secure.url]) == 2
    out = capsys.readouterr()
    assert "error: The PACS at" in out.err and "HTTP 401" in out.err
    assert PASSWORD not in out.err + out.out


def test_bearer_token(bearer, caplog):
    caplog.set_level(logging.DEBUG)
    assert PacsClient(PacsServer(bearer.url, PacsAuth.bearer(TOKEN))).find_studies() == []
    with pytest.raises(PacsAuthError) as info:
        PacsClient(PacsServer(bearer.url, PacsAuth.bearer(TOKEN + "0"))).find_studies()
    msg = str(info.value)
    assert bearer.url in msg and "HTTP 403" in msg and "check the token" in msg
    assert TOKEN not in msg and TOKEN not in caplog.text


def test_tls_is_verified_by_default(orthanc, tmp_path):
    pem, cert = self_signed_pem(tmp_path)
    proxy = TlsProxy(orthanc.http_port, pem)  # HTTPS in front of the real Orthanc
    try:
        with pytest.raises(PacsConnectionError) as info:
            PacsClient(PacsServer(proxy.url)).find_studies()
        msg = str(info.value)
        assert proxy.url in msg and "TLS certificate" in msg and "self-signed" in msg and "CA bundle" in msg
        with PacsClient(PacsServer(proxy.url, verify=str(cert))) as client:
            assert isinstance(client.find_studies(), list)  # the hospital's CA bundle makes it work
    finally:
        proxy.stop()


def test_cli_put_folder_is_idempotent(orthanc, uploaded, dicom_99, capsys):
    assert main(["pacs", "put", orthanc.url, str(dicom_99), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["stored"] == 99 and doc["studies"] == [STUDY]
    (study,) = PacsClient(orthanc.url).find_studies(StudyQuery(patient_id="C3N-00247"))
    assert study.n_instances in (99, 100)  # 100 once the SEG test ran: no duplicate of the CT


def test_get_path_rejects_bad_uids(orthanc, tmp_path, capsys):
    assert main(["pacs", "get", orthanc.url, "../etc", "--out", str(tmp_path)]) == 2
    assert "not a valid Study Instance UID" in capsys.readouterr().err
    assert list(Path(tmp_path).iterdir()) == []


def test_pdf_report_joins_the_study(orthanc, uploaded, dicom_99, tmp_path, capsys):
    from reportlab.pdfgen import canvas

    pdf = tmp_path / "report.pdf"
    page = canvas.Canvas(str(pdf))
    page.drawString(72, 720, "LungLens report: no finding")
    page.save()
    assert main(["pacs", "put", orthanc.url, str(pdf)]) == 2  # a PDF without its scan cannot be filed
    assert "needs --reference SCAN" in capsys.readouterr().err
    assert main(["pacs", "put", orthanc.url, str(pdf), "--reference", str(dicom_99), "--study", STUDY]) == 0
    assert "stored 1 instances" in capsys.readouterr().out
    client = PacsClient(orthanc.url)
    (doc,) = [s for s in client.find_series(STUDY) if s.modality == "DOC"]
    folder = client.retrieve_series(STUDY, doc.series_uid, tmp_path / "cache")
    (back,) = folder.glob("*.dcm")
    ds = pydicom.dcmread(back)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1" and ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert (ds.PatientID, ds.StudyInstanceUID) == ("C3N-00247", STUDY)
    assert ds.EncapsulatedDocument[:ds.EncapsulatedDocumentLength] == pdf.read_bytes()


def test_batch_source_from_a_pacs_query(orthanc, uploaded, tmp_path):
    """``engine batch dicomweb+http://...?modality=CT``: the CT series (not SEG/DOC), retrieved by its task."""
    import torch

    from engine.batch import BatchOptions, discover, process_scan
    from engine.models import registry
    from engine.models.card import ModelCard

    (scan,) = discover([f"dicomweb+{orthanc.url}?patient=C3N-00247&date=2010-02-27&modality=CT"])
    assert (scan.kind, scan.study_uid, scan.series_uid, scan.server) == ("pacs", STUDY, SERIES, orthanc.url)
    with pytest.raises(LungLensError, match="holds no scan"):
        discover([f"dicomweb+{orthanc.url}?modality=MR"])
    with pytest.raises(LungLensError, match="found 1 studies, its limit: there may be more"):
        discover([f"dicomweb+{orthanc.url}?modality=CT&limit=1"])
    with pytest.raises(LungLensError, match="Unknown PACS query key"):
        discover([f"dicomweb+{orthanc.url}?name=x"])
    torch.manual_seed(0)
    card = ModelCard(name="tiny_unet", task="segmentation", architecture="unet", config={"base": 4, "depth": 2},
                     input_size=(64, 64), version="7")
    weights = registry.save(registry.build("unet", {"base": 4, "depth": 2}).eval(), card, tmp_path / "models")
    opts = BatchOptions(model=str(weights), findings_model="none", covid_model="none", report="none",
                        cache_dir=str(tmp_path / "cache"))
    row = process_scan(scan, "s1", str(tmp_path / "out"), opts)
    assert row["status"] == "ok", row["reason"]
    assert (row["slices"], row["rows"], row["cols"], row["format"]) == (99, 512, 512, "dicom")
    assert list((tmp_path / "cache").iterdir()) == []  # the retrieved series is deleted once read
    assert (tmp_path / "out" / "scans" / "s1" / "findings.json").is_file()


def test_send_results_puts_seg_and_report_into_the_study(orthanc, uploaded, disk_volume, tmp_path):
    from reportlab.pdfgen import canvas

    from engine.pacs import send_results
    from engine.phantom import chest_ct

    pdf = tmp_path / "report.pdf"
    page = canvas.Canvas(str(pdf))
    page.drawString(72, 720, "LungLens report")
    page.save()
    labels = np.zeros(disk_volume.shape, np.uint8)
    labels[60:63, 250:280, 250:290] = 3
    seen = []
    with PacsClient(orthanc.url) as client:
        result = send_results(client, disk_volume, labels, report_pdf=pdf, progress=lambda f, m: seen.append(f))
        assert len(result.stored) == 2 and result.studies == [STUDY] and seen[-1] == 1.0
        stored = set(result.stored)
        series = client.find_series(STUDY)
        mine = []
        for s in series:
            if s.modality in ("SEG", "DOC"):
                folder = client.retrieve_series(STUDY, s.series_uid, tmp_path / "cache")
                mine += [p for p in folder.glob("*.dcm") if p.stem in stored]
    assert sorted(pydicom.dcmread(p).Modality for p in mine) == ["DOC", "SEG"]
    (seg,) = [p for p in mine if pydicom.dcmread(p).Modality == "SEG"]
    np.testing.assert_array_equal(io.load_labels(seg, reference=disk_volume), labels)
    with pytest.raises(UnsupportedFormatError, match="opened from DICOM"):
        send_results(PacsClient(orthanc.url), chest_ct(shape=(40, 96, 112), spacing=(5.0, 3.0, 2.8)).volume)


@pytest.mark.usefixtures("uploaded")
def test_retrieval_into_lunglens_cache_prunes_but_a_chosen_folder_is_left(orthanc, tmp_path, monkeypatch):
    import os
    import time

    from engine.pacs import default_cache_dir
    from engine.pacs.cache import MANIFEST as M

    def _series(root, study, series, nbytes, used):
        d = root / study / series
        d.mkdir(parents=True)
        (d / "1.dcm").write_bytes(b"\0" * nbytes)
        (d / M).write_text("{}")
        os.utime(d / M, (used, used))
        return d

    monkeypatch.setenv("LUNGLENS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LUNGLENS_PACS_CACHE_GB", "0.000001")   # about 1 kB: nothing old survives
    root = default_cache_dir()
    old = _series(root, "1.2.3", "1.2.3.4", 3000, time.time() - 3600)
    chosen = tmp_path / "mine"
    mine = _series(chosen, "1.2.3", "1.2.3.4", 3000, time.time() - 3600)
    client = PacsClient(orthanc.url)
    got = client.retrieve_series(STUDY, SERIES, root)
    assert got == root / STUDY / SERIES and len(list(got.glob("*.dcm"))) == 99  # over budget, but in use
    assert not old.exists()
    before = (got / M).stat().st_mtime
    os.utime(got / M, (before - 60, before - 60))
    assert client.retrieve_series(STUDY, SERIES, root) == got   # opened again from the cache: a use
    assert (got / M).stat().st_mtime > before - 60
    client.retrieve_series(STUDY, SERIES, chosen)
    assert mine.is_dir()                                      # the user's folder: nothing removed


def test_a_cached_series_the_server_now_holds_more_of_is_retrieved_again(tmp_path_factory, dicom_99, tmp_path):
    """QA pass: a series retrieved while the PACS held 60 of its 99 images was reused from the cache ever after,
    with a "slices missing, copy the series again" notice the app gave no way to follow. The cached copy is now
    checked against the server's count and retrieved again when it differs; a server that cannot be asked
    leaves the cached copy in use."""
    srv = _server(tmp_path_factory, "orthanc_grow")
    try:
        files = sorted(Path(dicom_99).glob("*.dcm"))
        with PacsClient(srv.url) as client:
            client.store(files[:60])
            first = client.retrieve_series(STUDY, SERIES, tmp_path)
            assert len(list(first.glob("*.dcm"))) == 60
            client.store(files[60:])
            messages = []
            again = client.retrieve_series(STUDY, SERIES, tmp_path, progress=lambda f, m: messages.append(m))
        assert again == first and len(list(again.glob("*.dcm"))) == 99 and "already in the cache" not in messages
        assert json.loads((again / MANIFEST).read_text())["instances"] == 99
        messages.clear()
        assert PacsClient(srv.url).retrieve_series(STUDY, SERIES, tmp_path,
                                                   progress=lambda f, m: messages.append(m)) == again
        assert messages == ["already in the cache"]
    finally:
        srv.stop()
    # the server is gone: the complete cached copy is still opened
    assert PacsClient(srv.url).retrieve_series(STUDY, SERIES, tmp_path) == first


def test_a_slow_server_and_a_broken_stream_are_said_as_such():
    """QA pass: a server that accepted the connection and then did not answer was reported as "Could not connect
    ... check that the server is running", and a retrieval cut off mid-stream as "(ChunkedEncodingError). Check
    the address"; a 403 without credentials read "does not allow no credentials"."""
    import requests

    from engine.pacs._translate import network

    server = PacsServer("http://127.0.0.1:9/dicom-web", timeout=7)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(1)  # accepts, never answers: through a session that retries, the read timeout arrives
    session = requests.Session()  # as a ConnectionError (urllib3's MaxRetryError of a ReadTimeoutError)
    session.mount("http://", requests.adapters.HTTPAdapter(max_retries=1))
    try:
        with pytest.raises(PacsConnectionError, match="did not answer within 7 s while searching"):
            with network(server, "searching"):
                session.get(f"http://127.0.0.1:{listening.getsockname()[1]}/", timeout=(2, 0.3))
    finally:
        listening.close()
    with pytest.raises(PacsConnectionError, match="stopped sending part-way while retrieving series 1.2"):
        with network(server, "retrieving series 1.2"):
            raise requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead(10 bytes read)")
    assert server.auth.describe() == "anonymous access (no credentials)"


def test_results_of_a_scan_the_pacs_does_not_hold_are_not_sent(orthanc, uploaded, tmp_path):
    """QA pass: sending from a DICOM scan opened from disk whose study the PACS does not hold made a new study
    with a SEG and a PDF and no images. It is refused before anything is sent; the scan the PACS holds sends."""
    from engine.pacs import send_results

    F.ct_series(tmp_path / "elsewhere", n=4, rows=16, cols=16)
    elsewhere = io.load(tmp_path / "elsewhere")
    labels = np.zeros(elsewhere.shape, np.uint8)
    labels[1, 4:8, 4:8] = 1
    client = PacsClient(orthanc.url)
    before = len(client.find_studies())
    with pytest.raises(PacsNotFoundError, match=r"does not hold study .*nothing was sent"):
        send_results(client, elsewhere, labels)
    assert len(client.find_studies()) == before
