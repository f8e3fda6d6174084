"""The PACS the app talks to: :class:`PacsSettings` (preferences + a session-only secret).

What is stored in the preferences (QSettings, a plain-text ``.ini``/registry entry):
the DICOMweb URL, the kind of authentication (``none``, ``basic``, ``bearer``), the user
name, an optional CA bundle (PEM) and the search page size. The **password or token is
never stored**: it comes from ``$LUNGLENS_PACS_PASSWORD`` / ``$LUNGLENS_PACS_TOKEN``
(:mod:`engine.pacs.server`) or is typed in File > PACS settings and kept in memory for
this session only. TLS certificates are always verified (the engine has no switch to
turn that off; a hospital CA bundle can be given).

:meth:`PacsSettings.server` builds the :class:`engine.pacs.PacsServer` a worker uses;
its ``repr`` and every error message leave the secret out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, QSettings, Signal

from engine.errors import LungLensError

__all__ = ["PacsSettings", "ENV_URL", "AUTH_KINDS", "DEFAULT_PAGE_SIZE"]

#: environment variable naming the DICOMweb root when the preferences do not
ENV_URL = "LUNGLENS_PACS_URL"
AUTH_KINDS = ("none", "basic", "bearer")
# the names of engine.pacs.server (not imported here: engine.pacs loads requests, on first use only)
ENV_USERNAME, ENV_PASSWORD = "LUNGLENS_PACS_USERNAME", "LUNGLENS_PACS_PASSWORD"
ENV_TOKEN, ENV_CA_BUNDLE = "LUNGLENS_PACS_TOKEN", "LUNGLENS_PACS_CA_BUNDLE"
#: studies asked for per QIDO-RS request ("More results" asks for the next page)
DEFAULT_PAGE_SIZE = 100
_URL, _AUTH, _USER, _CA, _PAGE = "pacs/url", "pacs/auth", "pacs/username", "pacs/ca_bundle", "pacs/page_size"


class PacsSettings(QObject):
    """The PACS server settings of the preferences, and the session's secret.

    Signals
    -------
    changed()
        a setting changed (the browser shows the new server).
    """

    changed = Signal()

    def __init__(self, settings: QSettings, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self._settings = settings
        self._secret = ""  # memory only, never written to the settings

    # -- stored settings ------------------------------------------------------
    def _get(self, key: str, default: str = "") -> str:
        return str(self._settings.value(key, default) or default)

    @property
    def url(self) -> str:
        """The DICOMweb root of the preferences, else ``$LUNGLENS_PACS_URL``, else ``""``."""
        return self._get(_URL) or os.environ.get(ENV_URL, "")

    @property
    def auth_kind(self) -> str:
        """``none``, ``basic`` or ``bearer``; by default what the environment provides."""
        kind = self._get(_AUTH)
        if kind in AUTH_KINDS:
            return kind
        if os.environ.get(ENV_TOKEN):
            return "bearer"
        return "basic" if os.environ.get(ENV_USERNAME) else "none"

    @property
    def username(self) -> str:
        return self._get(_USER) or os.environ.get(ENV_USERNAME, "")

    @property
    def ca_bundle(self) -> str:
        """A PEM file of certificate authorities to trust, or ``""`` (the system's)."""
        return self._get(_CA) or os.environ.get(ENV_CA_BUNDLE, "")

    @property
    def page_size(self) -> int:
        try:
            return max(1, int(self._settings.value(_PAGE, DEFAULT_PAGE_SIZE)))
        except (TypeError, ValueError):
            return DEFAULT_PAGE_SIZE

    @property
    def has_session_secret(self) -> bool:
        """A password or token was typed in this session (kept in memory only)."""
        return bool(self._secret)

    @property
    def secret_source(self) -> str:
        """Where the secret comes from, for the settings dialog (never the secret itself)."""
        kind = self.auth_kind
        if kind == "none":
            return ""
        if self._secret:
            return "typed in this session (kept in memory only)"
        var = ENV_PASSWORD if kind == "basic" else ENV_TOKEN
        return f"${var}" if os.environ.get(var) else f"not set: type it or set ${var}"

    def update(self, url: str, auth_kind: str = "none", username: str = "", secret: Optional[str] = None,
               ca_bundle: str = "", page_size: Optional[int] = None) -> None:
        """Store the settings; ``secret`` (when not ``None``) is kept in memory only.

        Raises
        ------
        LungLensError
            ``auth_kind`` is unknown.
        """
        if auth_kind not in AUTH_KINDS:
            raise LungLensError(f"Unknown PACS authentication {auth_kind!r}: use none, basic or bearer.")
        url, user, password = _split_credentials(url.strip())
        if password:  # https://user:password@host/...: the password must not reach the settings file
            auth_kind, username = "basic", user
            secret = password if not secret else secret
        self._settings.setValue(_URL, url)
        self._settings.setValue(_AUTH, auth_kind)
        self._settings.setValue(_USER, username.strip())
        self._settings.setValue(_CA, ca_bundle.strip())
        if page_size is not None:
            self._settings.setValue(_PAGE, int(page_size))
        if secret is not None:
            self._secret = secret
        self._settings.sync()
        self.changed.emit()

    def forget_secret(self) -> None:
        """Drop the password or token typed in this session."""
        self._secret = ""
        self.changed.emit()

    # -- what the workers use -------------------------------------------------
    def server(self):
        """The :class:`~engine.pacs.PacsServer` of these settings.

        Raises
        ------
        PacsError
            No URL is set, the URL is not a DICOMweb address, the secret is missing
            (the message says where to set it) or the CA bundle does not exist.
        """
        from engine.pacs import PacsAuth, PacsError, PacsServer

        url = self.url
        if not url:
            raise PacsError("No PACS is set: give its DICOMweb address in File > PACS settings (e.g. "
                            f"https://pacs.example.org/dicom-web) or in ${ENV_URL}.")
        kind = self.auth_kind
        if kind == "none":
            auth = PacsAuth.none()
        elif kind == "basic":
            auth = PacsAuth.basic(self.username, self._secret or os.environ.get(ENV_PASSWORD, ""))
        else:
            auth = PacsAuth.bearer(self._secret or os.environ.get(ENV_TOKEN, ""))
        return PacsServer(url, auth, self.ca_bundle or True)

    def describe(self) -> str:
        """One line naming the server and how the app logs in (never the secret)."""
        url = self.url
        if not url:
            return "No PACS set"
        try:
            server = self.server()
        except LungLensError:
            return f"{url} ({self.auth_kind} authentication: incomplete)"
        tls = "" if not url.startswith("https") else (", CA bundle " + Path(self.ca_bundle).name
                                                      if self.ca_bundle else ", TLS verified")
        return f"{server.url} ({server.auth.describe()}{tls})"

    @staticmethod
    def cache_dir() -> Path:
        """Where retrieved series are kept (the user cache folder, ``$LUNGLENS_CACHE_DIR/pacs``)."""
        from engine.pacs import default_cache_dir

        return default_cache_dir()


def _split_credentials(url: str) -> tuple[str, str, str]:
    """``(url without user:password@, user, password)``; the URL unchanged when it holds none."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return url, "", ""
    if not parts.username and not parts.password:
        return url, "", ""
    netloc = (f"[{host}]" if host and ":" in host else host or "") + (f":{port}" if port else "")
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, unquote(parts.username or ""), unquote(parts.password or "")
