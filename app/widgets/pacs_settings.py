"""File > PACS settings: the DICOMweb server, its authentication and CA bundle (a form over :class:`PacsSettings`).

The password or token field is never filled from anywhere and never stored: what is
typed is kept in memory for this session (:class:`app.state.pacs.PacsSettings`);
``$LUNGLENS_PACS_PASSWORD`` / ``$LUNGLENS_PACS_TOKEN`` are the way to avoid typing it.
"""

from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QWidget)

from ..state.pacs import AUTH_KINDS, PacsSettings


class PacsSettingsDialog(QDialog):
    """Edit :class:`PacsSettings`; ``accept()`` stores them (the secret in memory only)."""

    def __init__(self, settings: PacsSettings, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS settings")
        self._settings = settings
        self.url = QLineEdit(settings.url)
        self.url.setPlaceholderText("https://pacs.example.org/dicom-web (Orthanc: http://host:8042/dicom-web)")
        self.auth = QComboBox()
        for kind, text in zip(AUTH_KINDS, ("None", "User name and password (basic)", "Bearer token")):
            self.auth.addItem(text, kind)
        self.auth.setCurrentIndex(AUTH_KINDS.index(settings.auth_kind))
        self.username = QLineEdit(settings.username)
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_note = QLabel()
        self.secret_note.setWordWrap(True)
        self.secret_note.setMinimumHeight(2 * self.secret_note.fontMetrics().lineSpacing())
        self.ca_bundle = QLineEdit(settings.ca_bundle)
        self.ca_bundle.setPlaceholderText("the system's certificate authorities")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_bundle, 1)
        ca_row.addWidget(browse)
        self.page_size = QSpinBox()
        self.page_size.setRange(1, 10000)
        self.page_size.setValue(settings.page_size)
        form = QFormLayout(self)
        form.addRow("DICOMweb address", self.url)
        form.addRow("Authentication", self.auth)
        form.addRow("User name", self.username)
        form.addRow("Password / token", self.secret)
        form.addRow("", self.secret_note)
        form.addRow("CA bundle (PEM)", ca_row)
        form.addRow("Studies per page", self.page_size)
        tls = QLabel("TLS certificates are always verified; for a hospital's own authority give its CA bundle.")
        tls.setWordWrap(True)
        tls.setMinimumHeight(2 * tls.fontMetrics().lineSpacing())
        form.addRow("", tls)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.auth.currentIndexChanged.connect(lambda _i: self._update())
        self._update()
        self.setMinimumWidth(640)
        self.adjustSize()

    @property
    def auth_kind(self) -> str:
        return str(self.auth.currentData())

    def _update(self) -> None:
        kind = self.auth_kind
        self.username.setEnabled(kind == "basic")
        self.secret.setEnabled(kind != "none")
        source = self._settings.secret_source if kind == self._settings.auth_kind else ""
        var = "LUNGLENS_PACS_PASSWORD" if kind == "basic" else "LUNGLENS_PACS_TOKEN"
        if kind == "none":
            self.secret_note.setText("")
            return
        self.secret_note.setText("Never saved to disk: what you type is kept in memory until LungLens closes. "
                                 + (f"In use now: {source}." if source else f"Leave empty to use ${var}."))

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "CA bundle", self.ca_bundle.text(), "PEM files (*.pem *.crt);;"
                                              "All files (*)")
        if path:
            self.ca_bundle.setText(path)

    def accept(self) -> None:
        typed = self.secret.text()
        self._settings.update(self.url.text(), self.auth_kind, self.username.text(),
                              secret=typed if typed else None, ca_bundle=self.ca_bundle.text(),
                              page_size=self.page_size.value())
        self.secret.clear()
        super().accept()
