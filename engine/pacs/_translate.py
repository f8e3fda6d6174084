"""Turn ``requests`` / dicomweb-client failures into :mod:`engine.pacs.errors` with advice.

Messages name the server (its URL, which never holds credentials), the action
("searching for studies", "retrieving series 1.2.3", "storing 32 instances"), the
server's status or the network's reason, and what to do. The secret is scrubbed
from every message, and the original exception is not chained (its text could
quote request details), only logged at debug level after scrubbing.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from typing import Iterator, Optional

from ..errors import CancelledError
from .errors import PacsAuthError, PacsConnectionError, PacsError, PacsNotFoundError, PacsRefusedError
from .server import ENV_CA_BUNDLE, ENV_PASSWORD, ENV_TOKEN, ENV_USERNAME, PacsServer

log = logging.getLogger("engine.pacs")

#: DICOM PS3.4 / PS3.18 STOW-RS failure reasons
_REASONS = {0x0110: "processing failure", 0x0122: "SOP class not supported", 0x0124: "not authorized",
            0xA700: "out of resources", 0xA701: "out of resources", 0xA900: "data set does not match SOP class",
            0xC000: "cannot understand", 0xC122: "referenced transfer syntax not supported",
            0x0211: "unrecognized operation", 0x0212: "mistyped argument"}


def failure_reason(code) -> str:
    """A STOW-RS failure reason code in words."""
    try:
        value = int(code)
    except (TypeError, ValueError):
        return "no reason given"
    return f"{_REASONS.get(value, 'failure')} (0x{value:04X})"


def refusal_message(url: str, stored: int, total: int, failed: list[tuple[str, str]]) -> str:
    """The message of a store the server refused in part or in full."""
    reasons = sorted({r for _, r in failed}) or ["no reason given"]
    return (f"The PACS at {url} refused {len(failed)} of {total} instances ({'; '.join(reasons)}); "
            f"{stored} were stored. Check that the files belong to a study the PACS accepts, "
            "or ask the PACS administrator why it refuses them.")


@contextmanager
def network(server: PacsServer, action: str, *, stored_before: Optional[tuple[str, ...]] = None,
            total: int = 0) -> Iterator[None]:
    """Run a DICOMweb call; re-raise its failure as a :class:`PacsError` about ``server``.

    ``stored_before`` (a tuple, for STOW-RS calls) marks the call as a store: an HTTP
    refusal then becomes :class:`PacsRefusedError` listing what was stored.
    """
    import requests
    from pydicom.errors import InvalidDicomError
    from retrying import RetryError

    try:
        yield
    except (PacsError, CancelledError):
        raise
    except requests.exceptions.HTTPError as exc:
        error = _http_error(server, action, exc, stored_before, total)
    except requests.exceptions.SSLError as exc:
        error = PacsConnectionError(
            f"Could not verify the TLS certificate of the PACS at {server.url} while {action} "
            f"({_ssl_reason(exc)}). If the server uses a certificate of your hospital's own authority, give that "
            f"authority's CA bundle (--ca-bundle or ${ENV_CA_BUNDLE}); otherwise ask IT: the connection may not "
            "be the server you think.")
    except requests.exceptions.Timeout:
        error = _timeout_error(server, action)
    except requests.exceptions.ConnectionError as exc:
        if "Read timed out" in str(exc) or "ReadTimeout" in str(exc):  # connected, then no answer: slow, not down
            error = _timeout_error(server, action)
        else:
            error = PacsConnectionError(
                f"Could not connect to the PACS at {server.url} while {action} ({_connection_reason(exc)}). Check "
                "the address and port, that the server is running, and that this computer can reach it "
                "(network, VPN, firewall).")
    except RetryError:  # dicomweb-client retried a busy answer (429/503/504) and gave up
        error = PacsConnectionError(f"The PACS at {server.url} stayed busy while {action}, even after retrying. "
                                    "Try again in a few minutes.")
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
        error = PacsConnectionError(f"The PACS at {server.url} stopped sending part-way while {action} (the "
                                    "connection broke). Try again; if it keeps happening, tell the PACS administrator.")
    except requests.exceptions.RequestException as exc:
        error = PacsConnectionError(f"The request to the PACS at {server.url} failed while {action} "
                                    f"({exc.__class__.__name__}). Check the address and try again.")
    except InvalidDicomError:
        error = PacsError(f"The PACS at {server.url} sent data that is not DICOM while {action}. Retrieve it "
                          "again; if it keeps failing, tell the PACS administrator.")
    except (ValueError, KeyError) as exc:  # not a DICOMweb answer (HTML page, bad JSON, bad multipart)
        error = PacsError(f"The server at {server.url} did not answer as a DICOMweb service while {action} "
                          f"({exc.__class__.__name__}). Check the address: it is the DICOMweb root, which "
                          "usually ends in /dicom-web (Orthanc: http://host:8042/dicom-web).")
    else:
        return
    log.debug("%s", server.auth.scrub(f"{action} on {server.url} failed: {error}"))
    error.args = (server.auth.scrub(str(error)),)
    raise error from None


def _http_error(server: PacsServer, action: str, exc, stored_before: Optional[tuple[str, ...]],
                total: int) -> PacsError:
    response = exc.response
    status = getattr(response, "status_code", 0) or 0
    reason = (getattr(response, "reason", "") or "").strip()
    code = f"HTTP {status}{' ' + reason if reason else ''}"
    storing = stored_before is not None
    if status == 401:
        if server.auth.kind == "none":
            return PacsAuthError(
                f"The PACS at {server.url} asks for a login ({code}) while {action}. Give a user name and password "
                f"(preferences, or ${ENV_USERNAME} and ${ENV_PASSWORD}) or a token (${ENV_TOKEN}).")
        if server.auth.kind == "basic":
            advice = f"Check the user name and password (preferences, or ${ENV_USERNAME} and ${ENV_PASSWORD})."
        else:
            advice = f"Check the token (preferences, or ${ENV_TOKEN}); it may have expired."
        return PacsAuthError(f"The PACS at {server.url} refused the login of {server.auth.describe()} ({code}) "
                             f"while {action}. {advice}")
    if status == 403:
        message = (f"The PACS at {server.url} does not allow {server.auth.describe()} to do this ({code} while "
                   f"{action}). Ask the PACS administrator for {'write' if storing else 'read'} access"
                   f"{', or check the token' if server.auth.kind == 'bearer' else ''}.")
        if storing:
            return PacsRefusedError(message, tuple(stored_before or ()), ())
        return PacsAuthError(message)
    if storing and status in (400, 409, 413, 415, 422):
        stored, failed = _stow_body(response)
        n_sent = total or (len(stored) + len(failed))
        n_stored = len(stored_before or ()) + len(stored)
        if failed:
            message = refusal_message(server.url, n_stored, n_sent, failed)
        else:
            why = "the request is too large for the server; " if status == 413 else ""
            message = (f"The PACS at {server.url} refused to store the instances ({code} while {action}; "
                       f"{why}{n_stored} of {n_sent} were stored). Check that the files belong to a study the "
                       "PACS accepts, or ask the PACS administrator why it refuses them.")
        return PacsRefusedError(message, tuple(stored_before or ()) + tuple(stored), tuple(failed))
    if status == 404:
        return PacsNotFoundError(
            f"The PACS at {server.url} answered {code} while {action}. Check that the address is the DICOMweb "
            "root (it usually ends in /dicom-web) and that the study or series still exists (`pacs find`).")
    if status in (429, 503, 504):
        return PacsConnectionError(f"The PACS at {server.url} is busy ({code}) while {action}, even after "
                                   "retrying. Try again in a few minutes.")
    if status >= 500:
        return PacsError(f"The PACS at {server.url} failed with {code} while {action}. Try again; if it keeps "
                         "failing, tell the PACS administrator (the server's log has the cause).")
    return PacsError(f"The PACS at {server.url} rejected the request with {code} while {action}. Check the "
                     "search values or UIDs; if they are right, tell the PACS administrator.")


def _stow_body(response) -> tuple[list[str], list[tuple[str, str]]]:
    """Stored and failed SOP instances listed in a STOW-RS error answer (DICOM JSON), if any."""
    try:
        body = json.loads(response.content or b"{}")
    except (ValueError, TypeError):
        return [], []
    if not isinstance(body, dict):
        return [], []

    def items(tag: str) -> list[dict]:
        value = body.get(tag, {})
        return [v for v in (value.get("Value") or []) if isinstance(v, dict)] if isinstance(value, dict) else []

    def first(item: dict, tag: str):
        values = item.get(tag, {}).get("Value") or [None]
        return values[0]

    stored = [str(first(i, "00081155")) for i in items("00081199") if first(i, "00081155")]
    failed = [(str(first(i, "00081155") or ""), failure_reason(first(i, "00081197"))) for i in items("00081198")]
    return stored, failed


def _timeout_error(server: PacsServer, action: str) -> PacsConnectionError:
    return PacsConnectionError(
        f"The PACS at {server.url} did not answer within {server.timeout:g} s while {action}. Try again; if "
        "it is slow or busy, raise the timeout; if it never answers, check the address and port.")


def _connection_reason(exc: BaseException) -> str:
    text = str(exc)
    for needle, reason in (("Connection refused", "connection refused: nothing listens on that port"),
                           ("Name or service not known", "unknown host name"),
                           ("nodename nor servname", "unknown host name"),
                           ("getaddrinfo failed", "unknown host name"),
                           ("Temporary failure in name resolution", "host name could not be resolved"),
                           ("No route to host", "no route to host"),
                           ("Network is unreachable", "network unreachable"),
                           ("Connection reset", "the server closed the connection"),
                           ("RemoteDisconnected", "the server closed the connection"),
                           ("timed out", "timed out")):
        if needle in text:
            return reason
    return exc.__class__.__name__


def _ssl_reason(exc: BaseException) -> str:
    text = str(exc)
    for needle, reason in (("self-signed", "self-signed certificate"),
                           ("unable to get local issuer", "certificate of an unknown authority"),
                           ("certificate has expired", "certificate expired"),
                           ("Hostname mismatch", "the certificate is for another host name"),
                           ("doesn't match", "the certificate is for another host name"),
                           ("WRONG_VERSION_NUMBER", "the server does not speak TLS on that port: try http://")):
        if needle in text:
            return reason
    return "certificate verification failed" if "CERTIFICATE_VERIFY_FAILED" in text else "TLS handshake failed"
