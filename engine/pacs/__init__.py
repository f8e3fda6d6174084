"""Reach a PACS over DICOMweb: search (QIDO-RS), retrieve (WADO-RS), store (STOW-RS).

Objects and data flow
---------------------
:class:`PacsServer` (URL + :class:`PacsAuth` + TLS settings; from the app's
preferences or ``LUNGLENS_PACS_*`` environment variables, see :mod:`.server`)
-> :class:`PacsClient` (:mod:`.client`, over the well-kept ``dicomweb-client``
library) -> :meth:`PacsClient.find` with a :class:`StudyQuery` gives
:class:`StudyRecord` s with their :class:`SeriesRecord` s ->
:meth:`PacsClient.retrieve_series` streams one series into a cache folder
(``<cache>/<StudyUID>/<SeriesUID>/``, created atomically) that
:func:`engine.io.load` opens like any DICOM folder -> labels exported as DICOM SEG
(:func:`engine.editing.export.export_labels` to ``*.dcm``) and the report as
Encapsulated PDF (:func:`encapsulated_pdf`, :mod:`.documents` says why not SR) go
back with :meth:`PacsClient.store`; :func:`send_results` does both into the scan's study.

Nothing leaves the machine unless :meth:`PacsClient.store` is called. Long calls
take ``progress`` and ``cancel`` (:mod:`engine.progress`). Every failure is a
:class:`PacsError` (:mod:`.errors`) naming the server, the action and the remedy,
and no password or token ever appears in a message, log line or ``repr``.
"""

from __future__ import annotations

from .client import MANIFEST, PacsClient, StoreResult, default_cache_dir
from .documents import encapsulated_pdf
from .errors import PacsAuthError, PacsConnectionError, PacsError, PacsNotFoundError, PacsRefusedError
from .records import SeriesRecord, StudyQuery, StudyRecord, check_uid, parse_date_range
from .send import send_results
from .server import PacsAuth, PacsServer

__all__ = ["PacsClient", "PacsServer", "PacsAuth", "StudyQuery", "StudyRecord", "SeriesRecord", "StoreResult",
           "PacsError", "PacsConnectionError", "PacsAuthError", "PacsRefusedError", "PacsNotFoundError",
           "default_cache_dir", "parse_date_range", "check_uid", "encapsulated_pdf", "send_results", "MANIFEST"]
