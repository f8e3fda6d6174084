"""The ``python -m engine`` / ``lunglens-engine`` command line.

Each sub-command lives in its own module ``engine.cli.<name>`` that defines

``register(subparsers) -> None``
    adds its parser with ``subparsers.add_parser(NAME, help=...)`` and sets
    ``func=run`` through ``parser.set_defaults``;
``run(args) -> int``
    does the work and returns the exit status.

Errors that are the user's to fix are raised as :class:`engine.errors.LungLensError`;
:func:`main` prints them as one ``error: ...`` line on stderr and exits with status 2.
When the reader of stdout goes away (``python -m engine info X --json | head -1``),
:func:`main` exits quietly with status 141 (128 + SIGPIPE, as a shell reports it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
from typing import Optional, Sequence

from .. import __version__
from ..errors import CancelledError, LungLensError

#: exit status when stdout's reader closed the pipe (128 + SIGPIPE)
BROKEN_PIPE_STATUS = 141

#: sub-command modules, in the order ``--help`` lists them
COMMANDS = ("info", "lungs", "predict", "export", "report", "train", "evaluate", "calibrate", "models", "pacs",
            "batch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lunglens-engine",
                                     description="LungLens engine: read CT, run models, export labels and reports.")
    parser.add_argument("--version", action="version", version=f"lunglens {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # sub-command not part of this build
            raise
        module.register(sub)
    for command in sub.choices.values():  # module docstrings are reST: print them as plain text
        command.description = plain_text(command.description)
        for action in command._actions:
            action.help = plain_text(action.help)
    return parser


_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc|ref|doc):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain_text(text: Optional[str]) -> Optional[str]:
    """Turn the reST of a docstring into the plain text a terminal shows.

    ``:func:`engine.io.load``` becomes ``engine.io.load``, double back-quotes are dropped and
    numpydoc section underlines (``-----``) go away; everything else is kept as written.

    >>> plain_text("Reads ``X`` with :func:`~engine.io.load`.\\n\\nExamples\\n--------\\nx")
    'Reads X with engine.io.load.\\n\\nExamples:\\nx'
    """
    if not text:
        return text
    text = _ROLE.sub(lambda m: m.group(1), text)
    text = _LITERAL.sub(lambda m: m.group(1), text)
    return re.sub(r"([^\n]+)\n\s*-{3,}[ \t]*(\n|$)", r"\1:\2", text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        try:
            return _main(argv)
        finally:  # also after --help / argparse errors (SystemExit)
            sys.stdout.flush()  # a closed pipe shows here, not as a traceback at interpreter exit
    except BrokenPipeError:
        _silence_stdout()
        return BROKEN_PIPE_STATUS


def _silence_stdout() -> None:
    """Point stdout's file descriptor at devnull so the flush at interpreter exit cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (replaced stdout, captured output): nothing will flush to the pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _quiet_libraries() -> None:
    """Keep third-party warnings and log lines off stderr: the user sees one ``error:`` line or the
    engine's own warnings (``--verbose`` shows everything)."""
    logging.captureWarnings(True)
    for name in ("py.warnings", "pydicom", "highdicom", "nibabel", "PIL"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _main(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    if not args.verbose:
        _quiet_libraries()
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CancelledError:
        print("cancelled", file=sys.stderr)
        return 130
    except LungLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
