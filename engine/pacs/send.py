"""Send to PACS: the labels as DICOM SEG and the report as Encapsulated PDF, into the scan's study.

:func:`send_results` is the whole "Send to PACS" action of the app, headless: it
writes the SEG with the engine's exporter (highdicom, :mod:`engine.io.dicom_seg`)
into a temporary folder, wraps the report PDF (:func:`~.documents.encapsulated_pdf`)
and stores both with STOW-RS to the study the scan came from, so the server refuses
them if they do not belong there. Nothing is sent before both objects are built.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import UnsupportedFormatError
from ..progress import CancelLike, ProgressCallback, as_progress, check_cancel
from ..types import Volume
from .client import PacsClient, StoreResult
from .documents import encapsulated_pdf
from .errors import PacsNotFoundError

__all__ = ["send_results"]


def send_results(client: PacsClient, volume: Volume, labels: Optional[np.ndarray] = None, *,
                 report_pdf: str | Path | bytes | None = None, edited: Optional[np.ndarray] = None,
                 progress: Optional[ProgressCallback] = None, cancel: Optional[CancelLike] = None) -> StoreResult:
    """Store the DICOM SEG of ``labels`` and/or the report PDF into ``volume``'s study.

    Parameters
    ----------
    client
        The PACS to send to.
    volume
        The scan, read from DICOM (its study receives the objects).
    labels
        ``uint8 (z, y, x)`` label map on the scan's grid, or ``None`` (report only).
    report_pdf
        The report (file or bytes), or ``None`` (labels only).
    edited
        ``bool (z, y, x)``: the voxels a person edited, embedded in the SEG as
        :func:`~engine.editing.export.export_labels` does (a reopen tells hand edits from AI).

    Raises
    ------
    UnsupportedFormatError
        The scan was not read from DICOM, or there is nothing to send.
    PacsError
        The server could not be reached or refused the objects (see :mod:`.errors`).
    """
    study_uid = str(volume.meta.get("study_instance_uid") or "")
    if volume.format != "dicom" or not study_uid:
        raise UnsupportedFormatError("Only a scan opened from DICOM (or a PACS) can send results back: its study "
                                     "is where they go. Export the labels to a file instead.")
    if labels is None and report_pdf is None:
        raise UnsupportedFormatError("Nothing to send: give the labels, the report, or both.")
    report = as_progress(progress)
    report(0.0, "Checking that the PACS holds the scan")
    series_uid = str(volume.meta.get("series_instance_uid") or "")
    held = {s.series_uid for s in client.find_series(study_uid)}
    if series_uid and series_uid not in held:  # a scan opened from disk that this PACS does not have
        what = (f"holds study {study_uid} but not this scan's series {series_uid}" if held else
                f"does not hold study {study_uid}")
        raise PacsNotFoundError(f"The PACS at {client.server.url} {what}: the results would point at images it "
                                "does not have (a study without images). Store the scan's images there first "
                                "(`pacs put`), or open the scan from this PACS; nothing was sent.")
    items: list = []
    with tempfile.TemporaryDirectory(prefix="lunglens-send-") as tmp:
        if labels is not None:
            from ..editing.export import export_labels
            report(0.0, "Building the DICOM SEG")
            (seg,) = export_labels(labels, volume, Path(tmp) / "labels.dcm", edited=edited,
                                   progress=report.sub(0.0, 0.3), cancel=cancel)
            items.append(seg)
        check_cancel(cancel)
        if report_pdf is not None:
            items.append(encapsulated_pdf(report_pdf, volume))
        check_cancel(cancel)
        return client.store(items, study_uid=study_uid, progress=report.sub(0.3, 1.0), cancel=cancel)
