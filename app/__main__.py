"""``python -m app [PATH] [--labels FILE] [--screenshot OUT.png]``: start LungLens."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lunglens", description="LungLens: read chest CT and correct AI findings.")
    p.add_argument("path", nargs="?", help="scan to open (NIfTI, DICOM file or folder, NRRD, MHA, PNG/JPG); "
                                           "without it, the built-in phantom opens")
    p.add_argument("--labels", help="label map to show over the scan")
    p.add_argument("--screenshot", metavar="OUT.png", help="render the window to OUT.png and exit")
    p.add_argument("--version", action="version", version=f"lunglens {__version__}")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from .syscheck import problem

    message = problem()
    if message:
        print(message, file=sys.stderr)
        return 3
    from .application import run  # Qt is imported only when a window is wanted

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
