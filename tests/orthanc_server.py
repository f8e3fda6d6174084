"""Start a real Orthanc PACS with its DICOMweb plugin for tests and benchmarks.

:func:`start_orthanc` writes a JSON configuration into a temporary folder (storage and
index there too), starts ``Orthanc`` on free ports, waits until its REST API answers
and returns an :class:`Orthanc` whose ``stop()`` ends it. Orthanc 1.10 has no option
to bind its HTTP server to one address, so it listens on all interfaces with
``RemoteAccessAllowed: false`` (it answers loopback clients only); its DICOM (DIMSE)
server is disabled, so no DICOM port is opened at all.

Needs the Debian packages ``orthanc`` and ``orthanc-dicomweb`` (``.ci/run`` installs
them); :data:`MISSING` says why a test must skip when they are absent.
"""

from __future__ import annotations

import atexit
import glob
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import requests

ORTHANC = shutil.which("Orthanc") or (shutil.which("Orthanc", path="/usr/sbin:/usr/local/sbin") or "")
_PLUGINS = sorted(glob.glob("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
                  + glob.glob("/usr/lib/orthanc/libOrthancDicomWeb.so*")
                  + glob.glob("/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so"))
PLUGIN = _PLUGINS[0] if _PLUGINS else ""
MISSING = ("" if ORTHANC and PLUGIN else
           "Orthanc with its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb; "
           ".ci/run does it)")

#: Lua filter of a read-only archive: any request other than GET is refused (HTTP 403)
READ_ONLY_LUA = """
function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  return method == 'GET' or username == 'archivist'
end
"""
#: the one user :data:`READ_ONLY_LUA` lets write (to fill the archive before a test)
ARCHIVIST = ("archivist", "Arch-1v1st")


def bearer_lua(token: str) -> str:
    """Lua filter that admits only requests with ``Authorization: Bearer <token>`` (else HTTP 403)."""
    return f"""
function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  return httpHeaders['authorization'] == 'Bearer {token}'
end
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    """A running Orthanc: ``url`` is its DICOMweb root."""

    process: subprocess.Popen
    folder: Path
    http_port: int
    scheme: str = "http"

    @property
    def base(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"{self.base}/dicom-web"

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join((self.folder / "orthanc.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_orthanc(folder: Path, *, users: Optional[dict[str, str]] = None, lua: str = "",
                  ssl_pem: Optional[Path] = None, timeout: float = 30.0) -> Orthanc:
    # Note: Orthanc 1.10.1 of Debian 12 resets HTTPS connections after the handshake
    # (SslEnabled), so the tests put a TLS-terminating proxy in front (:class:`TlsProxy`),
    # the way hospitals usually publish Orthanc (behind nginx).
    """Start Orthanc with storage in ``folder``; wait until its REST API answers.

    Parameters
    ----------
    users
        ``{name: password}``: HTTP basic authentication is required.
    lua
        A Lua script (e.g. an ``IncomingHttpRequestFilter``).
    ssl_pem
        A PEM file with certificate and private key: serve HTTPS.
    """
    if MISSING:
        raise RuntimeError(MISSING)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "db").mkdir(exist_ok=True)
    last = ""
    for _ in range(3):  # a free port can be taken between the check and Orthanc's bind: retry
        port = free_port()
        config = {
            "Name": "LungLensTest", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
            "HttpPort": port, "DicomPort": free_port(), "DicomServerEnabled": False,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": bool(users), "RegisteredUsers": users or {},
            "Plugins": [PLUGIN], "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
            "SaveJobs": False, "HttpCompressionEnabled": False, "StorageCompression": False,
            "SslEnabled": bool(ssl_pem), "SslCertificate": str(ssl_pem or ""),
        }
        if lua:
            (folder / "filter.lua").write_text(lua)
            config["LuaScripts"] = [str(folder / "filter.lua")]
        (folder / "orthanc.json").write_text(json.dumps(config, indent=1))
        log = open(folder / "orthanc.log", "wb")
        process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT,
                                   cwd=folder)
        log.close()
        server = Orthanc(process, folder, port, "https" if ssl_pem else "http")
        if _wait(server, users, ssl_pem, timeout):
            atexit.register(server.stop)  # also when a test run is interrupted
            return server
        last = server.log_tail()
        server.stop()
    raise RuntimeError(f"Orthanc did not start:\n{last}")


def _wait(server: Orthanc, users: Optional[dict[str, str]], ssl_pem: Optional[Path], timeout: float) -> bool:
    auth = next(iter(users.items())) if users else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            r = requests.get(f"{server.base}/system", auth=auth, timeout=2,
                             verify=str(ssl_pem) if ssl_pem else True)
            if r.status_code in (200, 401, 403):  # answering (a Lua filter may refuse the probe)
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return False


def self_signed_pem(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate for ``host``: (certificate + key PEM for a server, certificate PEM for clients)."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    both = folder / "server.pem"
    both.write_text(cert.read_text() + key.read_text())
    return both, cert


class TlsProxy:
    """A TLS-terminating reverse proxy on a free loopback port in front of ``127.0.0.1:target_port``.

    Each accepted connection is wrapped in TLS with ``server_pem`` (certificate + key)
    and its bytes are pumped to and from the target in two threads.
    """

    def __init__(self, target_port: int, server_pem: Path) -> None:
        self.target_port = target_port
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(str(server_pem))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dicom-web"

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        try:
            tls = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # the client refused our certificate: what the test expects
            return
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        threading.Thread(target=_pump, args=(upstream, tls), daemon=True).start()
        _pump(tls, upstream)

    def stop(self) -> None:
        self._closed.set()
        self._listener.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
