"""Check, before Qt starts, that the system libraries Qt needs are there.

Without them Qt aborts with a message that names a plugin, not a package ("Could not load
the Qt platform plugin "xcb""). :func:`missing_libraries` tries to load each shared library
the chosen platform plugin needs (with :mod:`ctypes`, so no Qt is imported) and
:func:`problem` turns the result into the exact ``apt-get install`` line to run.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Mapping, Optional

#: shared libraries every Qt platform needs -> Debian/Ubuntu package
COMMON: dict[str, str] = {
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libfontconfig.so.1": "libfontconfig1",
}

#: extra libraries of the X11 ("xcb") platform plugin -> package; libxcb-cursor is loaded
#: at run time by Qt 6.5+ and so does not show in ``ldd``
XCB: dict[str, str] = {
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libdbus-1.so.3": "libdbus-1-3",
}

#: platforms that draw into memory and need no display server
HEADLESS = {"offscreen", "minimal", "vnc"}


def _loads(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def platform_name(environ: Mapping[str, str]) -> str:
    """The Qt platform plugin Qt will pick: ``QT_QPA_PLATFORM`` or, on Linux, xcb/wayland."""
    chosen = environ.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0].strip()
    if chosen:
        return chosen
    if environ.get("WAYLAND_DISPLAY") and not environ.get("DISPLAY"):
        return "wayland"
    return "xcb"


def missing_libraries(platform: str) -> dict[str, str]:
    """Libraries (soname -> Debian package) that ``platform`` needs and that do not load here."""
    wanted = dict(COMMON)
    if platform == "xcb":
        wanted.update(XCB)
    return {so: pkg for so, pkg in wanted.items() if not _loads(so)}


def problem(environ: Optional[Mapping[str, str]] = None, platform_os: str = sys.platform) -> Optional[str]:
    """A message saying what to install or set before the window can open, or None if all is well."""
    if not platform_os.startswith("linux"):
        return None  # Qt's wheels bring what they need on Windows and macOS
    environ = os.environ if environ is None else environ
    platform = platform_name(environ)
    missing = missing_libraries(platform)
    if missing:
        packages = " ".join(sorted(set(missing.values())))
        return (f"LungLens cannot start its window: Qt's '{platform}' platform needs system libraries "
                f"that are not installed ({', '.join(sorted(missing))}).\n"
                f"On Debian or Ubuntu install them with:\n    sudo apt-get install {packages}\n"
                "(for a window-less check, QT_QPA_PLATFORM=offscreen needs only "
                f"{' '.join(sorted(set(COMMON.values())))}).")
    if platform == "xcb" and not environ.get("DISPLAY"):
        return ("LungLens cannot start its window: no display was found (DISPLAY is not set). "
                "Run it from a desktop session, over 'ssh -X', under 'xvfb-run', or with "
                "QT_QPA_PLATFORM=offscreen together with --screenshot.")
    return None
