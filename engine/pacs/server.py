"""Which PACS to talk to, and how to authenticate: :class:`PacsServer` and :class:`PacsAuth`.

Credentials come from explicit arguments (the app's preferences) or from the
environment (:meth:`PacsServer.from_env`):

``LUNGLENS_PACS_USERNAME`` + ``LUNGLENS_PACS_PASSWORD``
    HTTP basic authentication;
``LUNGLENS_PACS_TOKEN``
    a bearer token (``Authorization: Bearer ...``), e.g. from the hospital's OAuth
    gateway;
``LUNGLENS_PACS_CA_BUNDLE``
    a PEM file of the certificate authorities to trust for ``https://`` (the
    hospital's own CA); TLS certificates are always verified.

The secret (password or token) lives only in :class:`PacsAuth` and in the HTTP
session built from it. It is never part of ``repr()``, of a URL, of a log line or of
an error message (:meth:`PacsAuth.scrub` removes it from any text that leaves this
package). A URL written as ``https://user:password@host/...`` is split into the bare
URL and basic authentication.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal, Mapping, Optional
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import PacsError

__all__ = ["PacsAuth", "PacsServer", "ENV_USERNAME", "ENV_PASSWORD", "ENV_TOKEN", "ENV_CA_BUNDLE"]

ENV_USERNAME = "LUNGLENS_PACS_USERNAME"
ENV_PASSWORD = "LUNGLENS_PACS_PASSWORD"
ENV_TOKEN = "LUNGLENS_PACS_TOKEN"
ENV_CA_BUNDLE = "LUNGLENS_PACS_CA_BUNDLE"

AuthKind = Literal["none", "basic", "bearer"]


@dataclass(frozen=True)
class PacsAuth:
    """How to authenticate to a DICOMweb server.

    Parameters
    ----------
    kind
        ``"none"``, ``"basic"`` (user name + password) or ``"bearer"`` (token).
    username
        The user name for basic authentication (shown in messages; not a secret).
    secret
        The password or token. Excluded from ``repr()`` and comparisons.
    """

    kind: AuthKind = "none"
    username: str = ""
    secret: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("none", "basic", "bearer"):
            raise PacsError(f"Unknown PACS authentication {self.kind!r}: use none, basic or bearer.")
        if self.kind == "basic" and not self.username:
            raise PacsError("Basic authentication needs a user name.")
        if self.kind != "none" and not self.secret:
            what = "password" if self.kind == "basic" else "token"
            raise PacsError(f"PACS {self.kind} authentication needs a {what}: set it in the preferences "
                            f"or in ${ENV_PASSWORD if self.kind == 'basic' else ENV_TOKEN}.")

    @classmethod
    def none(cls) -> "PacsAuth":
        return cls()

    @classmethod
    def basic(cls, username: str, password: str) -> "PacsAuth":
        return cls("basic", username, password)

    @classmethod
    def bearer(cls, token: str) -> "PacsAuth":
        return cls("bearer", "", token)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "PacsAuth":
        """Authentication from ``LUNGLENS_PACS_*`` variables (none when none is set).

        Raises
        ------
        PacsError
            Both a token and a user name are set, or only half of basic authentication.
        """
        env = os.environ if environ is None else environ
        user, password, token = env.get(ENV_USERNAME, ""), env.get(ENV_PASSWORD, ""), env.get(ENV_TOKEN, "")
        if token and (user or password):
            raise PacsError(f"Both ${ENV_TOKEN} and ${ENV_USERNAME}/${ENV_PASSWORD} are set: "
                            "unset the one you do not use.")
        if token:
            return cls.bearer(token)
        if user or password:
            if not user:
                raise PacsError(f"${ENV_PASSWORD} is set but ${ENV_USERNAME} is not: set the user name too.")
            if not password:
                raise PacsError(f"${ENV_USERNAME} is set but ${ENV_PASSWORD} is not: set the password too.")
            return cls.basic(user, password)
        return cls()

    def describe(self) -> str:
        """How the client authenticated, for messages (never the secret)."""
        if self.kind == "basic":
            return f"user '{self.username}'"
        if self.kind == "bearer":
            return "the bearer token"
        return "anonymous access (no credentials)"

    def scrub(self, text: str) -> str:
        """``text`` with the secret (also URL-encoded) replaced by ``***``."""
        if self.secret:
            from urllib.parse import quote
            for form in {self.secret, quote(self.secret, safe=""), quote(self.secret)}:
                if form:
                    text = text.replace(form, "***")
        return text

    def requests_auth(self):
        """A ``requests`` auth object that adds the header when a request is prepared.

        The header is set on the prepared request only, so it is neither in the
        session's default headers nor in the per-request headers dicomweb-client logs.
        """
        import requests.auth

        if self.kind == "basic":
            return requests.auth.HTTPBasicAuth(self.username, self.secret)
        if self.kind == "bearer":
            return _BearerAuth(self.secret)
        return None


class _BearerAuth:
    """``requests`` auth hook that sends ``Authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


@dataclass(frozen=True)
class PacsServer:
    """A DICOMweb service: its root URL, authentication and TLS settings.

    Parameters
    ----------
    url
        The DICOMweb root, e.g. ``https://pacs.example.org/dicom-web`` (Orthanc:
        ``http://host:8042/dicom-web``). Credentials written into the URL move into
        ``auth``.
    auth
        :class:`PacsAuth`; none by default.
    verify
        ``True`` (verify TLS certificates against the system's authorities, the
        default), or the path of a CA bundle (PEM). There is no switch to turn
        verification off: give the hospital's CA bundle instead.
    timeout
        Seconds to wait for the server to connect or to send the next bytes.
    """

    url: str
    auth: PacsAuth = field(default_factory=PacsAuth)
    verify: bool | str = True
    timeout: float = 30.0

    def __post_init__(self) -> None:
        url, auth = _split_credentials(str(self.url).strip(), self.auth)
        object.__setattr__(self, "url", url.rstrip("/"))
        object.__setattr__(self, "auth", auth)
        if self.verify is False:
            raise PacsError("TLS verification cannot be turned off: give the CA bundle (PEM) of the "
                            f"hospital's certificate authority instead (--ca-bundle or ${ENV_CA_BUNDLE}).")
        if isinstance(self.verify, str) and not os.path.isfile(self.verify):
            raise PacsError(f"The CA bundle {self.verify} does not exist: give the path of a PEM file "
                            "with the certificate authorities to trust.")
        if not self.timeout or self.timeout <= 0:
            raise PacsError("The PACS timeout must be a positive number of seconds.")

    @classmethod
    def from_env(cls, url: str, auth: Optional[PacsAuth] = None, verify: bool | str | None = None,
                 timeout: float = 30.0, environ: Optional[Mapping[str, str]] = None) -> "PacsServer":
        """A server whose authentication and CA bundle default to the environment.

        Explicit ``auth`` / ``verify`` win over ``LUNGLENS_PACS_*`` variables.
        """
        env = os.environ if environ is None else environ
        if auth is None:
            auth = PacsAuth.from_env(env)
        if verify is None:
            verify = env.get(ENV_CA_BUNDLE) or True
        return cls(url, auth, verify, timeout)

    def __str__(self) -> str:
        return self.url


def _split_credentials(url: str, auth: PacsAuth) -> tuple[str, PacsAuth]:
    """Check the URL and move ``user:password@`` out of it into basic authentication."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        shown = url.split("@")[-1] if "@" in url else url
        raise PacsError(f"'{shown}' is not a DICOMweb address: give the server's URL, e.g. "
                        "https://pacs.example.org/dicom-web (Orthanc: http://host:8042/dicom-web).")
    if parts.username is None and parts.password is None:
        return url, auth
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in (parts.hostname or ""):  # IPv6 literal
        netloc = f"[{parts.hostname}]" + ("" if parts.port is None else f":{parts.port}")
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    if auth.kind != "none":
        return bare, auth  # explicit credentials win over the URL's
    if not parts.password:
        raise PacsError(f"The address for {bare} names a user but no password: give the password in the "
                        f"preferences or in ${ENV_PASSWORD}, not in the URL.")
    return bare, PacsAuth.basic(unquote(parts.username or ""), unquote(parts.password))
