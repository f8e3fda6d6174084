"""Search, retrieve and store over DICOMweb: :class:`PacsClient`.

It wraps :class:`dicomweb_client.DICOMwebClient` (QIDO-RS search, WADO-RS retrieve,
STOW-RS store) and adds what a reading room needs:

- every network failure becomes a :class:`~engine.pacs.errors.PacsError` that names
  the server, what was being done and what to do (:mod:`._translate`);
- a series is retrieved into a cache folder ``ROOT/<StudyUID>/<SeriesUID>/`` through
  a hidden staging folder that is renamed into place only when every instance has
  arrived, so a cancelled or failed retrieval leaves nothing behind and a folder
  that exists is complete;
- progress (``progress(fraction, message)``) and a cancel token, checked per
  instance while the multipart answer streams in;
- nothing is sent unless asked: :meth:`PacsClient.store` is the only call that
  uploads, and it reads and checks every file before the first byte leaves.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from urllib.parse import urlsplit
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import requests
import requests.adapters

from .. import userdata
from ..errors import LungLensError, UnsupportedFormatError
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from . import cache
from ._translate import failure_reason, network, refusal_message
from .cache import MANIFEST  # written into each retrieved series folder: where it came from and when
from .errors import PacsError, PacsNotFoundError, PacsRefusedError
from .records import SERIES_FIELDS, STUDY_FIELDS, SeriesRecord, StudyQuery, StudyRecord, check_uid
from .server import PacsServer

__all__ = ["PacsClient", "StoreResult", "default_cache_dir", "MANIFEST"]

log = logging.getLogger(__name__)

#: instances and bytes per STOW-RS request (one progress step each)
STORE_BATCH_INSTANCES = 32
STORE_BATCH_BYTES = 32 * 1024 ** 2


def default_cache_dir() -> Path:
    """Where retrieved series are kept: ``$LUNGLENS_CACHE_DIR/pacs`` or the platform's cache folder."""
    return userdata.cache_dir("pacs")


@dataclass
class StoreResult:
    """What a STOW-RS store did.

    Attributes
    ----------
    stored
        SOP Instance UIDs the server confirmed.
    studies
        Study Instance UIDs they belong to.
    seconds
        Wall time of the upload.
    """

    stored: list[str] = field(default_factory=list)
    studies: list[str] = field(default_factory=list)
    seconds: float = 0.0


class PacsClient:
    """A DICOMweb client for one :class:`PacsServer`.

    Parameters
    ----------
    server
        The server, or its URL (authentication and CA bundle then come from the
        ``LUNGLENS_PACS_*`` environment variables).

    Examples
    --------
    >>> client = PacsClient("http://localhost:8042/dicom-web")      # doctest: +SKIP
    >>> studies = client.find(StudyQuery(patient_name="DOE"))      # doctest: +SKIP
    >>> folder = client.retrieve_series(studies[0].study_uid, studies[0].series[0].series_uid)  # doctest: +SKIP

    One client per thread: the app runs each retrieval on its worker thread with its
    own client (the HTTP session underneath is not shared between threads).
    """

    def __init__(self, server: PacsServer | str) -> None:
        self.server = server if isinstance(server, PacsServer) else PacsServer.from_env(server)
        self._client = None

    def __repr__(self) -> str:
        return f"PacsClient({self.server.url!r}, auth={self.server.auth.kind})"

    # -- connection -----------------------------------------------------------------
    @property
    def dicomweb(self):
        """The underlying :class:`dicomweb_client.DICOMwebClient` (created on first use)."""
        if self._client is None:
            from dicomweb_client import DICOMwebClient

            session = requests.Session()
            adapter = _Adapter(self.server.verify)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.auth = self.server.auth.requests_auth()  # added per prepared request, never logged
            session.verify = self.server.verify
            try:
                client = DICOMwebClient(self.server.url, session=session, timeout=self.server.timeout)
            except ValueError as exc:
                raise PacsError(f"'{self.server.url}' is not a DICOMweb address ({exc}): give the server's "
                                "URL, e.g. https://pacs.example.org/dicom-web.") from None
            client.set_http_retry_params(retry=False)  # the adapter retries (see _Adapter)
            host = (urlsplit(self.server.url).hostname or "").lower()
            if (self.server.auth.kind != "none" and self.server.url.startswith("http://")
                    and host not in ("localhost", "127.0.0.1", "::1")):
                log.warning("Credentials for %s travel unencrypted over http://: ask for the https:// address.",
                            self.server.url)
            self._client = client
        return self._client

    def close(self) -> None:
        """Close the HTTP session (connections are pooled until then)."""
        if self._client is not None:
            self._client._session.close()
            self._client = None

    def __enter__(self) -> "PacsClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- QIDO-RS --------------------------------------------------------------------
    def find_studies(self, query: StudyQuery = StudyQuery()) -> list[StudyRecord]:
        """Studies matching ``query``, newest first (without their series)."""
        studies = self.find_studies_page(query)[0]
        return studies[:query.limit] if query.limit else studies

    def find_studies_page(self, query: StudyQuery = StudyQuery()) -> tuple[list[StudyRecord], bool]:
        """One page of studies matching ``query`` (``query.limit`` from ``query.offset``), and whether
        the server may hold more (it answered a full page: ask :meth:`StudyQuery.next_page`).

        Studies of the page are sorted newest first; pages follow the server's order. A
        ``query.patient`` search (name or ID: two searches, merged) may give up to two pages.
        """
        studies: dict[str, StudyRecord] = {}
        more = False
        for filters in query.filters():
            limit, offset, skip = query.limit or None, query.offset or None, 0
            if offset and limit and "ModalitiesInStudy" in filters:
                # Orthanc (1.10 of Debian 12) applies the offset before it matches ModalitiesInStudy,
                # so page 2 of "CT studies" comes back empty or short: ask from the start and skip
                # the earlier pages here (a study record is ~1 kB; the pages of a browser are few).
                limit, offset, skip = offset + limit, None, offset
            with network(self.server, "searching for studies"):
                items = self.dicomweb.search_for_studies(search_filters=filters, fields=list(STUDY_FIELDS),
                                                         limit=limit, offset=offset)
            items = items[skip:]
            more = more or bool(query.limit and len(items) >= query.limit)
            for item in items:
                record = StudyRecord.from_qido(item)
                if record.study_uid:
                    studies.setdefault(record.study_uid, record)
        return sorted(studies.values(), key=lambda s: (s.date, s.time), reverse=True), more

    def find_series(self, study_uid: str, series_uid: Optional[str] = None) -> list[SeriesRecord]:
        """The series of a study (or the one with ``series_uid``), by series number."""
        study_uid = check_uid(study_uid, "Study Instance UID")
        filters = {"SeriesInstanceUID": check_uid(series_uid, "Series Instance UID")} if series_uid else None
        with network(self.server, f"listing the series of study {study_uid}"):
            items = self.dicomweb.search_for_series(study_uid, search_filters=filters, fields=list(SERIES_FIELDS))
        series = [SeriesRecord.from_qido(item, study_uid) for item in items]
        series.sort(key=lambda s: (s.number is None, s.number or 0, s.series_uid))
        return series

    def find(self, query: StudyQuery = StudyQuery(), *, with_series: bool = True,
             cancel: Optional[CancelLike] = None) -> list[StudyRecord]:
        """Studies matching ``query``, each with its series when ``with_series``."""
        studies = self.find_studies(query)
        if with_series:
            for study in studies:
                check_cancel(cancel)
                study.series = self.find_series(study.study_uid)
        return studies

    # -- WADO-RS --------------------------------------------------------------------
    def retrieve_series(self, study_uid: str, series_uid: str, cache_dir: str | Path | None = None, *,
                        refresh: bool = False, progress: Optional[ProgressCallback] = None,
                        cancel: Optional[CancelLike] = None) -> Path:
        """Retrieve one series into ``cache_dir/<study>/<series>/`` and return that folder.

        The folder appears only once complete (staged under a hidden name, then
        renamed). When it already exists the cached copy is returned, unless ``refresh``, or
        unless the server now holds another number of images than were retrieved (images
        added to the series since, or a count it did not give then): the series is retrieved
        again. When the server cannot be asked, the cached copy is returned. In LungLens's own cache (:func:`default_cache_dir`) the least recently
        used series are then removed beyond the cache's budget (:mod:`engine.pacs.cache`). Instances arrive in their stored transfer syntax (no
        transcoding by the server); :func:`engine.io.load` decodes them.

        Raises
        ------
        PacsNotFoundError
            The series is not on the server.
        CancelledError
            ``cancel`` was set; the staging folder is removed.
        PacsError
            Any network or server failure, or fewer instances arrived than announced.
        """
        study_uid = check_uid(study_uid, "Study Instance UID")
        series_uid = check_uid(series_uid, "Series Instance UID")
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        final = root / study_uid / series_uid
        report = as_progress(progress)
        own_cache = root.resolve() == default_cache_dir().resolve()
        found = None
        if final.is_dir() and not refresh:
            cached, found = self._cached_count(final), None
            try:
                found = self.find_series(study_uid, series_uid)
            except PacsError:  # offline or refusing: the cached copy is what there is
                pass
            now = found[0].n_instances if found else None
            if now is None or now == cached:
                if own_cache:  # a use, for the cache's least-recently-used pruning
                    cache.touch(final)
                report(1.0, "already in the cache")
                return final
            log.info("the PACS now holds %d images of series %s, the cached copy %s: retrieving it again", now,
                     series_uid, cached)
            refresh = True
        found = found if found else self.find_series(study_uid, series_uid)
        if not found:
            raise PacsNotFoundError(f"The PACS at {self.server.url} has no series {series_uid} in study "
                                    f"{study_uid}: search again with `pacs find` (it may have been deleted or "
                                    "moved).")
        expected = found[0].n_instances
        final.parent.mkdir(parents=True, exist_ok=True)
        stage = final.parent / f".{series_uid}.partial-{uuid.uuid4().hex[:8]}"
        stage.mkdir()
        try:
            t0 = time.perf_counter()
            n = self._stream_series(study_uid, series_uid, stage, expected, report, cancel)
            if expected is not None and n != expected:
                raise PacsError(f"The PACS at {self.server.url} sent {n} of the {expected} images of series "
                                f"{series_uid}: retrieve it again; if it keeps failing, tell the PACS "
                                "administrator.")
            if n == 0:
                raise PacsError(f"The PACS at {self.server.url} sent no image of series {series_uid}: "
                                "retrieve it again; if it keeps failing, tell the PACS administrator.")
            seconds = time.perf_counter() - t0
            (stage / MANIFEST).write_text(json.dumps({
                "server": self.server.url, "study_uid": study_uid, "series_uid": series_uid,
                "instances": n, "seconds": round(seconds, 3),
                "retrieved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1))
            _move_into_place(stage, final, refresh)
            log.info("retrieved %d instances of series %s from %s in %.2f s", n, series_uid, self.server.url,
                     seconds)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            try:
                final.parent.rmdir()  # only when empty: no trace of a cancelled first retrieval
            except OSError:
                pass
            raise
        if own_cache:
            # LungLens's own cache keeps to its budget (LUNGLENS_PACS_CACHE_GB), never at the cost
            # of this series; a folder the user chose (`pacs get --out`) is left as it is
            try:
                cache.prune(root, keep=[final])
            except OSError as exc:
                log.warning("could not prune the PACS cache %s: %s", root, exc)
        report(1.0, f"{n} images")
        return final

    @staticmethod
    def _cached_count(folder: Path) -> Optional[int]:
        """The images a cached series folder holds, as its manifest says (``None`` when it cannot say)."""
        try:
            return int(json.loads((folder / MANIFEST).read_text())["instances"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _stream_series(self, study_uid: str, series_uid: str, stage: Path, expected: Optional[int],
                       report, cancel: Optional[CancelLike]) -> int:
        """Write each instance of the streamed WADO-RS answer into ``stage``; the count."""
        action = f"retrieving series {series_uid}"
        n = 0
        check_cancel(cancel)
        with network(self.server, action):
            stream: Iterator = self.dicomweb.iter_series(study_uid, series_uid,
                                                         media_types=(("application/dicom", "*"),))
            try:
                for ds in stream:
                    check_cancel(cancel)
                    sop = check_uid(getattr(ds, "SOPInstanceUID", ""), "SOP Instance UID sent by the PACS")
                    _write(ds, stage / f"{sop}.dcm")
                    n += 1
                    report(n / expected if expected else 0.0,
                           f"{n}/{expected} images" if expected else f"{n} images")
                    check_cancel(cancel)
            finally:
                stream.close()  # closes the HTTP answer when cancelled half way
        return n

    def retrieve_study(self, study_uid: str, cache_dir: str | Path | None = None, *, refresh: bool = False,
                       progress: Optional[ProgressCallback] = None,
                       cancel: Optional[CancelLike] = None) -> list[Path]:
        """Retrieve every series of a study (see :meth:`retrieve_series`); their folders."""
        series = self.find_series(study_uid)
        if not series:
            raise PacsNotFoundError(f"The PACS at {self.server.url} has no study {study_uid} (or it has no "
                                    "series): search again with `pacs find`.")
        report = as_progress(progress)
        weights = [max(s.n_instances or 1, 1) for s in series]
        total, done, out = float(sum(weights)), 0.0, []
        for s, w in zip(series, weights):
            sub = report.sub(done / total, (done + w) / total)
            out.append(self.retrieve_series(study_uid, s.series_uid, cache_dir, refresh=refresh,
                                            progress=sub, cancel=cancel))
            done += w
        return out

    # -- STOW-RS --------------------------------------------------------------------
    def store(self, items: Sequence[str | Path] | Iterable, *, study_uid: Optional[str] = None,
              progress: Optional[ProgressCallback] = None, cancel: Optional[CancelLike] = None) -> StoreResult:
        """Store DICOM instances (files, folders of files, or pydicom datasets) with STOW-RS.

        With ``study_uid`` the instances are posted to that study's URL, and the
        server refuses any that belong to another study (the guard for "send these
        labels back into the study they were made on").

        Every file is read and checked before anything is sent; batches of up to
        :data:`STORE_BATCH_INSTANCES` instances go in one request each (a progress
        step and a place to cancel).

        Raises
        ------
        UnsupportedFormatError
            An item is not a DICOM file (nothing is sent).
        PacsRefusedError
            The server refused some or all instances; ``stored`` lists what it kept.
        PacsError
            Any other network or server failure.
        """
        if study_uid is not None:
            study_uid = check_uid(study_uid, "Study Instance UID")
        datasets = list(_read_instances(items, cancel))
        if not datasets:
            raise UnsupportedFormatError("Nothing to send: give DICOM files or folders that hold some.")
        report = as_progress(progress)
        result = StoreResult()
        t0 = time.perf_counter()
        sent = 0
        for batch in _batches(datasets):
            check_cancel(cancel)
            action = f"storing {len(batch)} instance{'s' if len(batch) != 1 else ''}"
            with network(self.server, action, stored_before=tuple(result.stored), total=len(datasets)):
                answer = self.dicomweb.store_instances(batch, study_instance_uid=study_uid)
            stored, failed = _stow_answer(answer)
            if failed:
                raise PacsRefusedError(refusal_message(self.server.url, len(result.stored) + len(stored),
                                                        len(datasets), failed),
                                       tuple(result.stored + stored), tuple(failed))
            result.stored += stored or [str(ds.SOPInstanceUID) for ds in batch]
            for ds in batch:
                uid = str(getattr(ds, "StudyInstanceUID", ""))
                if uid and uid not in result.studies:
                    result.studies.append(uid)
            sent += len(batch)
            report(sent / len(datasets), f"{sent}/{len(datasets)} sent")
        result.seconds = time.perf_counter() - t0
        log.info("stored %d instances on %s in %.2f s", len(result.stored), self.server.url, result.seconds)
        return result


class _Adapter(requests.adapters.HTTPAdapter):
    """The transport of a :class:`PacsClient` session.

    - It sends ``*`` (a QIDO wildcard) unescaped in the query string: ``*`` is legal
      as is in a URL query (RFC 3986 sub-delimiter), but the Orthanc DICOMweb plugin
      (1.7, Debian 12) does not decode ``%2A``, so a wildcard escaped that way finds
      nothing.
    - It enforces the server's CA bundle: ``requests`` lets ``$REQUESTS_CA_BUNDLE``
      override a session's ``verify`` path (requests issue #3829), which would silently
      drop the bundle given in the preferences.
    """

    def __init__(self, verify: bool | str) -> None:
        from urllib3.util.retry import Retry

        # One more try when the connection fails; two more (0.5 s, 1 s apart, or as the
        # server's Retry-After says) when a search or retrieval finds the server busy.
        # A store is never repeated; a TLS or protocol error fails at once.
        retry = Retry(total=3, connect=1, read=0, other=0, status=2, backoff_factor=0.5,
                      status_forcelist=(429, 503, 504), allowed_methods=frozenset({"GET"}), raise_on_status=False)
        super().__init__(max_retries=retry)
        self._verify = verify

    def send(self, request, *args, **kwargs):
        base, sep, query = (request.url or "").partition("?")
        if sep and "%2A" in query:
            request.url = base + sep + query.replace("%2A", "*")
        if isinstance(self._verify, str):
            kwargs["verify"] = self._verify
        return super().send(request, *args, **kwargs)


def _write(ds, path: Path) -> None:
    try:
        ds.save_as(path)
    except OSError as exc:
        raise LungLensError(f"Could not write {path} ({exc.strerror or exc.__class__.__name__}): free disk space "
                            "or choose another cache folder.") from None


def _move_into_place(stage: Path, final: Path, refresh: bool) -> None:
    """Rename the complete ``stage`` to ``final`` (replacing it when ``refresh``)."""
    if final.exists():
        if not refresh:  # another retrieval finished first: keep that one
            shutil.rmtree(stage, ignore_errors=True)
            return
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
        os.replace(stage, final)
        shutil.rmtree(old, ignore_errors=True)
        return
    os.replace(stage, final)


def _read_instances(items, cancel: Optional[CancelLike]):
    """Datasets of ``items`` (paths of files or folders, or datasets), every file checked first."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from ..io.dicom_scan import is_dicom_file

    out = []
    for item in items:
        check_cancel(cancel)
        if isinstance(item, pydicom.Dataset):
            out.append(_part10(item))
            continue
        path = Path(item).expanduser()
        if path.is_dir():
            files = [p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]
            files = [p for p in files if is_dicom_file(p) or p.suffix.lower() == ".dcm"]
            if not files:
                raise UnsupportedFormatError(f"{path} holds no DICOM file: nothing to send.")
        elif path.is_file():
            files = [path]
        else:
            raise UnsupportedFormatError(f"{path} does not exist: check the path.")
        for p in files:
            check_cancel(cancel)
            try:
                ds = pydicom.dcmread(p)
            except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
                raise UnsupportedFormatError(
                    f"{p} is not a DICOM file ({exc.__class__.__name__}): only DICOM instances can be sent to a "
                    "PACS. Export labels as DICOM SEG first (python -m engine export SCAN --labels FILE "
                    "--out seg.dcm).") from None
            for key in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID"):
                if not str(getattr(ds, key, "")).strip():
                    raise UnsupportedFormatError(f"{p} has no {key}: a PACS cannot file it. Nothing was sent.")
            out.append(ds)
    return out


def _part10(ds):
    """``ds`` made ready to travel as a DICOM Part 10 file (STOW-RS sends files): preamble and full file meta."""
    from pydicom.dataset import validate_file_meta

    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        raise UnsupportedFormatError(f"The DICOM data set {getattr(ds, 'SOPInstanceUID', '?')} has no file meta "
                                     "information (Transfer Syntax UID): nothing was sent.")
    meta.setdefault("MediaStorageSOPClassUID", ds.SOPClassUID)
    meta.setdefault("MediaStorageSOPInstanceUID", ds.SOPInstanceUID)
    validate_file_meta(meta, enforce_standard=True)  # adds group length, version, implementation UID
    if getattr(ds, "preamble", None) is None:
        ds.preamble = b"\0" * 128
    return ds


def _batches(datasets: list) -> Iterator[list]:
    batch, size = [], 0
    for ds in datasets:
        n = len(getattr(ds, "PixelData", b"") or b"")
        if batch and (len(batch) >= STORE_BATCH_INSTANCES or size + n > STORE_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(ds)
        size += n
    if batch:
        yield batch


def _stow_answer(answer) -> tuple[list[str], list[tuple[str, str]]]:
    """(stored SOP UIDs, [(failed SOP UID, reason)]) of a STOW-RS answer dataset."""
    stored = [str(item.get("ReferencedSOPInstanceUID", "")) for item in answer.get("ReferencedSOPSequence", [])]
    failed = [(str(item.get("ReferencedSOPInstanceUID", "")), failure_reason(item.get("FailureReason")))
              for item in answer.get("FailedSOPSequence", [])]
    return [s for s in stored if s], failed
