"""PACS errors: each says which server, what failed and what to do.

All derive from :class:`engine.errors.LungLensError`, so the CLI prints them as one
``error:`` line and the app shows them in a message box. They never carry a
password or token (see :meth:`engine.pacs.server.PacsAuth.scrub`).
"""

from __future__ import annotations

from ..errors import LungLensError

__all__ = ["PacsError", "PacsConnectionError", "PacsAuthError", "PacsRefusedError", "PacsNotFoundError"]


class PacsError(LungLensError):
    """A DICOMweb request failed, or the PACS settings are unusable."""


class PacsConnectionError(PacsError):
    """The server could not be reached: address, network, TLS certificate or timeout."""


class PacsAuthError(PacsError):
    """The server refused the credentials (HTTP 401) or denied access (HTTP 403)."""


class PacsRefusedError(PacsError):
    """The server refused to store some or all instances (STOW-RS).

    Attributes
    ----------
    stored
        SOP Instance UIDs the server did store before or despite the refusal.
    failed
        ``(SOP Instance UID, reason)`` of the instances it refused, when it said so.
    """

    def __init__(self, message: str, stored: tuple[str, ...] = (), failed: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.stored = stored
        self.failed = failed


class PacsNotFoundError(PacsError):
    """The study or series asked for is not on the server."""
