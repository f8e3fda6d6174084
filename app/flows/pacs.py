"""The PACS flow: File > Open from PACS (study browser), Send to PACS, PACS settings.

Open from PACS (Ctrl+Shift+P) shows a :class:`~app.widgets.pacs_browser.PacsBrowser`.
Every network call runs on a worker (:meth:`app.context.AppContext.run`), each with
its own :class:`engine.pacs.PacsClient`, so the GUI never waits for the server:

- Search: one QIDO-RS page of :attr:`~app.state.pacs.PacsSettings.page_size` studies;
  "More results" asks for the next page (``offset``) when the server sent a full one.
- Choosing a study lists its series (the newest choice wins; the others are cancelled).
- Retrieve and open: WADO-RS into the user cache folder, one folder per series
  (``<cache>/<StudyUID>/<SeriesUID>/``, staged and renamed into place only when
  complete, so a cancelled or failed retrieval leaves nothing that looks finished; a
  finished one is reused). The folder then opens exactly as File > Open DICOM folder
  does (:meth:`app.flows.open_scan.OpenFlow.open_path`: the same reader, the same
  unsaved-edits guard). A SEG series retrieved while a scan is open opens as its labels.

Send to PACS (enabled for a scan read from DICOM, hence with a StudyInstanceUID, that
has labels) asks first, naming the server, the study and what goes: the DICOM SEG of the
current labels and the report as an Encapsulated PDF (:func:`engine.pacs.send_results`;
:mod:`engine.pacs.documents` says why PDF rather than SR). Nothing is sent without that
answer. A refusal or network failure is shown as an error dialog with the engine's
words (which server, what failed, what to do).

Errors of the browser's tasks are shown in the browser; credentials never appear in
them (:mod:`engine.pacs.server`).

Signals
-------
retrieved(str)
    a series is in the cache folder (its path) and is being opened.
sent(object)
    Send to PACS stored its objects (the :class:`engine.pacs.StoreResult`).
send_failed(str)
    Send to PACS failed (the message shown) or was cancelled (``""``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox

from engine.errors import LungLensError

from ..context import AppContext
from ..state.tasks import Task, error_message
from ..widgets.pacs_browser import PacsBrowser
from ..widgets.pacs_settings import PacsSettingsDialog
from .open_scan import OpenFlow


# -- worker functions (no Qt) -------------------------------------------------------
def search_studies(server: Any, query: Any, progress: Any = None, cancel: Any = None) -> tuple[list[Any], bool]:
    """One page of studies matching ``query`` and whether the server has more (worker thread)."""
    from engine.pacs import PacsClient

    with PacsClient(server) as client:
        return client.find_studies_page(query)


def list_series(server: Any, study_uid: str, progress: Any = None, cancel: Any = None) -> list[Any]:
    """The series of one study (worker thread)."""
    from engine.pacs import PacsClient

    with PacsClient(server) as client:
        return client.find_series(study_uid)


def retrieve_series(server: Any, study_uid: str, series_uid: str, cache_dir: str, progress: Any = None,
                    cancel: Any = None) -> Path:
    """Retrieve one series into ``cache_dir`` (or reuse the finished copy there); its folder (worker thread)."""
    from engine.pacs import PacsClient

    with PacsClient(server) as client:
        return client.retrieve_series(study_uid, series_uid, cache_dir, progress=progress, cancel=cancel)


def send_to_pacs(server: Any, volume: Any, labels: np.ndarray, report_args: dict[str, Any],
                 edited: Optional[np.ndarray] = None, progress: Any = None, cancel: Any = None) -> Any:
    """Write the report PDF, then store it and the DICOM SEG of ``labels`` in ``volume``'s study (worker thread)."""
    from engine.pacs import PacsClient, send_results
    from engine.progress import as_progress
    from engine.quantification.report import write_report

    report = as_progress(progress)
    with tempfile.TemporaryDirectory(prefix="lunglens-report-") as tmp:
        pdf = write_report(Path(tmp) / "report.pdf", volume, labels, progress=report.sub(0.0, 0.3), cancel=cancel,
                           **report_args)
        with PacsClient(server) as client:
            return send_results(client, volume, labels, report_pdf=pdf.read_bytes(), edited=edited,
                                progress=report.sub(0.3, 1.0), cancel=cancel)


def study_of(volume: Any) -> str:
    """The StudyInstanceUID of a scan read from DICOM, else ``""``."""
    if volume is None or getattr(volume, "format", "") != "dicom":
        return ""
    return str(volume.meta.get("study_instance_uid") or "")


class PacsFlow(QObject):
    """Open from PACS, Send to PACS and the PACS settings of one main window.

    Parameters
    ----------
    ctx
        The window's context.
    opener
        The open flow: a retrieved series opens through it.
    """

    retrieved = Signal(str)
    sent = Signal(object)
    send_failed = Signal(str)

    def __init__(self, ctx: AppContext, opener: OpenFlow) -> None:
        super().__init__(ctx.actions.owner)
        self.ctx = ctx
        self.opener = opener
        self.settings = ctx.preferences.pacs
        self.browser: Optional[PacsBrowser] = None
        self.settings_dialog: Optional[PacsSettingsDialog] = None
        self.send_prompt: Optional[QMessageBox] = None
        self._task: Optional[Task] = None  # the browser's search or retrieval
        self._series_task: Optional[Task] = None
        self._query: Any = None
        self.send_task: Optional[Task] = None
        a = ctx.actions
        self.open_action = a.action("Open from &PACS…", self.show_browser, "Ctrl+Shift+P", "file",
                                    tip="Search the PACS (DICOMweb) and open a series (Ctrl+Shift+P)")
        self.send_action = a.action("Sen&d to PACS…", self.ask_send, None, "file",
                                    tip="Store the labels (DICOM SEG) and the report (PDF) in the scan's study")
        self.settings_action = a.action("PACS se&ttings…", self.show_settings, None, "file")
        if a.file_tail is not None:
            a.menus["file"].insertSeparator(a.file_tail)
        ctx.session.volume_changed.connect(lambda _v: self._update())
        ctx.labels.editor_replaced.connect(self._update)
        self.settings.changed.connect(self._server_changed)
        self._update()

    def _update(self) -> None:
        self.send_action.setEnabled(bool(study_of(self.ctx.session.volume)) and self.ctx.labels.editor is not None)

    def _server_changed(self) -> None:
        if self.browser is not None:
            self.browser.set_server(self.settings.describe())

    # -- settings -----------------------------------------------------------------
    def show_settings(self) -> PacsSettingsDialog:
        """File > PACS settings (non-modal)."""
        parent = self.browser if self.browser is not None and self.browser.isVisible() else self.ctx.actions.owner
        dialog = PacsSettingsDialog(self.settings, parent)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.finished.connect(self._settings_closed)
        dialog.open()
        self.settings_dialog = dialog
        return dialog

    def _settings_closed(self, _result: int) -> None:
        self.settings_dialog = None

    # -- the browser ----------------------------------------------------------------
    def show_browser(self) -> PacsBrowser:
        """File > Open from PACS: the study browser (kept with its results between uses)."""
        if self.browser is None:
            b = PacsBrowser(self.ctx.actions.owner)
            b.search_requested.connect(self.search)
            b.more_requested.connect(self.more)
            b.study_selected.connect(self.list_series)
            b.retrieve_requested.connect(self.retrieve)
            b.cancel_requested.connect(self.cancel)
            b.settings_requested.connect(self.show_settings)
            b.rejected.connect(self.cancel)
            self.browser = b
        self.browser.set_server(self.settings.describe())
        self.browser.show()
        self.browser.raise_()
        self.browser.activateWindow()
        if not self.settings.url:
            self.browser.show_message("No PACS is set yet: press Server settings… and give its DICOMweb address.")
        return self.browser

    def _server(self) -> Any:
        """The server of the settings, or ``None`` after showing why it cannot be used."""
        try:
            return self.settings.server()
        except LungLensError as exc:  # unusable settings: said where the user looks, never raised
            if self.browser is not None:
                self.browser.show_message(error_message(exc), error=True)
            else:
                self.ctx.notices.error(error_message(exc))
            return None

    def _start(self, fn: Any, *args: Any, title: str, on_result: Any) -> Optional[Task]:
        """Run a browser task (search or retrieval): busy dialog, progress into its bar, errors into it."""
        b = self.browser
        assert b is not None
        b.set_busy(True, title)
        b.show_message(f"{title}…")
        task = Task(fn, *args, title=title)
        # connected before the task starts: a quick task (a series already in the cache) may
        # end before a later connection, and a queued signal reaches only the slots it had
        task.signals.progress.connect(b.set_progress)
        task.signals.finished.connect(lambda t=task: self._ended(t))
        self._task = task
        return self.ctx.runner.start(task, on_result=on_result, on_error=self._failed,
                                     on_cancel=lambda t=task: self._cancelled(title, t))

    def _ended(self, task: Task) -> None:
        if self._task is task:
            self._task = None
            if self.browser is not None:
                self.browser.set_busy(False)

    def _failed(self, exc: BaseException) -> None:
        if self.browser is not None:
            self.browser.show_message(error_message(exc), error=True)

    def _cancelled(self, title: str, task: Any = None) -> None:
        if self.browser is not None and (self._task is None or self._task is task):  # not over a newer task's text
            tail = " Nothing half-retrieved was kept." if title.startswith("Retrieving") else ""
            self.browser.show_message(f"{title}: cancelled.{tail}")

    @property
    def busy(self) -> bool:
        """A search or retrieval of the browser runs."""
        return self._task is not None

    def cancel(self) -> None:
        """Cancel the browser's search, listing or retrieval. The dialog is free at once: a request waiting for a
        slow server ends only at its timeout (up to 30 s), and its late answer is dropped."""
        for task in (self._task, self._series_task):
            if task is not None:
                task.cancel()
        task, self._task = self._task, None
        if task is not None and self.browser is not None:
            self.browser.set_busy(False)
            self._cancelled(task.title)

    def search(self, query: Any = None) -> Optional[Task]:
        """Search for the first page of studies matching ``query`` (default: the browser's fields)."""
        b = self.show_browser() if self.browser is None else self.browser
        if self._task is not None:
            return None
        server = self._server()
        if server is None:
            return None
        from dataclasses import replace

        query = replace(query or b.query(), limit=self.settings.page_size, offset=0)
        self._query = query
        return self._start(search_studies, server, query, title="Searching the PACS",
                           on_result=lambda out: self._found(out, append=False))

    def more(self) -> Optional[Task]:
        """The next page of the last search."""
        if self._query is None or self._task is not None or self.browser is None:
            return None
        server = self._server()
        if server is None:
            return None
        self._query = self._query.next_page()
        return self._start(search_studies, server, self._query, title="Searching the PACS",
                           on_result=lambda out: self._found(out, append=True))

    def _found(self, out: tuple[list[Any], bool], append: bool) -> None:
        studies, more = out
        b = self.browser
        if b is None:
            return
        b.show_studies(studies, more, append=append)
        n = len(b.study_rows())
        if n == 0:
            b.show_message("No study matches: widen the search (fewer letters of the name, no date, any modality).")
        else:
            b.show_message(f"{n} stud{'y' if n == 1 else 'ies'} found" + (": more on the server (More results)."
                                                                            if more else "."))

    def list_series(self, study: Any) -> Optional[Task]:
        """List the series of ``study`` (the newest request wins; always asked afresh, ~10 ms, so a
        series just sent or added shows)."""
        if self._series_task is not None:
            self._series_task.cancel()
            self._series_task = None
        server = self._server()
        if server is None:
            return None

        def shown(series: list[Any], study: Any = study) -> None:
            study.series = list(series)
            b = self.browser
            if b is not None and b.selected_study is study:
                b.show_series(series)
                more = " Studies: more on the server (More results)." if not b.more_button.isHidden() else ""
                # the series line replaces the search's; it keeps saying there are more studies
                b.show_message(f"{len(series)} series in study {study.description or study.study_uid}.{more}")

        task = Task(list_series, server, study.study_uid, title="Listing series")
        task.signals.finished.connect(lambda t=task: self._series_ended(t))  # before the start (see _start)
        self._series_task = task
        return self.ctx.runner.start(task, on_result=shown, on_error=self._failed, on_cancel=lambda: None)

    def _series_ended(self, task: Task) -> None:
        if self._series_task is task:
            self._series_task = None

    def retrieve(self, study: Any, series: Any) -> Optional[Task]:
        """Retrieve ``series`` of ``study`` into the cache on a worker, then open it."""
        if self._task is not None:
            return None
        server = self._server()
        if server is None:
            return None
        count = series.n_instances
        n = f"{count} image{'s' if count != 1 else ''}" if count else "images"
        return self._start(retrieve_series, server, study.study_uid, series.series_uid,
                           str(self.settings.cache_dir()), title=f"Retrieving {n}",
                           on_result=lambda folder: self._retrieved(Path(folder), series))

    def _retrieved(self, folder: Path, series: Any) -> None:
        self.retrieved.emit(str(folder))
        if self.browser is not None:
            self.browser.show_message(f"Retrieved into {folder}; opening it.")
            self.browser.hide()
        if series.modality == "SEG" and self.ctx.session.volume is not None:
            files = sorted(p for p in folder.iterdir() if p.suffix == ".dcm")
            if files:
                self.opener.open_labels(str(files[0]))
                return
        self.opener.open_path(str(folder))  # exactly as File > Open DICOM folder

    # -- Send to PACS -------------------------------------------------------------
    def ask_send(self) -> Optional[QMessageBox]:
        """Ask (non-modally), naming the server and the study, before anything is sent."""
        volume, editor = self.ctx.session.volume, self.ctx.labels.editor
        study = study_of(volume)
        if not study or editor is None:
            if volume is not None and volume.format == "dicom":  # from DICOM, but its files name no study
                self.ctx.notices.error("Send to PACS needs the scan's study (StudyInstanceUID), which its DICOM "
                                       "files do not give: the results would belong to no study. Retrieve the "
                                       "series from the PACS (File > Open from PACS), then send.")
            else:
                self.ctx.notices.error("Send to PACS needs a scan opened from DICOM or a PACS (its study receives "
                                       "the results) and its labels. Open one, run AI or draw, then send.")
            return None
        labelled = int(np.count_nonzero(self.ctx.labels.array))
        if labelled == 0:
            self.ctx.notices.error("The labels are empty: there is nothing to send. Run AI or draw first.")
            return None
        server = self._server()
        if server is None:
            return None
        patient = str(volume.meta.get("patient_id") or "")
        box = QMessageBox(QMessageBox.Icon.Question, "Send to PACS",
                          f"Send to {server.url} (as {server.auth.describe()}):\n\n"
                          f"• the labels as a DICOM SEG ({labelled:,} labelled voxels)\n"
                          f"• the report as an Encapsulated PDF\n\n"
                          f"into study {study}" + (f" of patient {patient}" if patient else "") + ".\n\n"
                          "They become new series of that study on the server.",
                          QMessageBox.StandardButton.NoButton, self.ctx.actions.owner)
        send = box.addButton("Send", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setModal(False)

        def answered(button: Any) -> None:
            self.send_prompt = None
            if button is send:
                self.send(server)
            else:
                self.ctx.notices.status("Nothing was sent.")
                self.send_failed.emit("")

        box.buttonClicked.connect(answered)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()
        self.send_prompt = box
        return box

    def send(self, server: Any) -> Optional[Task]:
        """Send the SEG and the report to ``server`` on a worker (after :meth:`ask_send`'s answer)."""
        volume = self.ctx.session.volume
        if volume is None or self.ctx.labels.editor is None:
            return None
        case = self.ctx.case
        labels = np.array(self.ctx.labels.array, copy=True)  # edits may go on while the worker sends
        edited = self.ctx.labels.editor.person_mask()  # embedded in the SEG, as File > Export labels does
        report_args = case.report_args()  # as File > Export report writes it
        self.send_task = self.ctx.run(send_to_pacs, server, volume, labels, report_args, edited,
                                      title=f"Sending to {server.url}", on_result=self._sent,
                                      on_error=self._send_error,
                                      on_cancel=lambda: (self.ctx.notices.status("Send to PACS cancelled."),
                                                         self.send_failed.emit("")))
        return self.send_task

    def _sent(self, result: Any) -> None:
        n = len(result.stored)
        self.ctx.notices.status(f"Sent {n} object{'s' if n != 1 else ''} (DICOM SEG and report) to the PACS in "
                                f"{result.seconds:.1f} s.")
        self.sent.emit(result)

    def _send_error(self, exc: BaseException) -> None:
        msg = "Send to PACS failed. " + error_message(exc)
        self.ctx.notices.error(msg)  # an error dialog in an interactive window
        self.send_failed.emit(msg)
