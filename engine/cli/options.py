"""Options shared by the commands that open a scan."""

from __future__ import annotations

import argparse
from typing import Optional

#: ``--stack-order`` value -> where the first file of a PNG/JPG stack lies (:func:`engine.io.load`)
_FIRST_SLICE = {"head-first": "superior", "feet-first": "inferior"}


def add_stack_order(p: argparse.ArgumentParser) -> None:
    """``--stack-order head-first|feet-first`` (image stacks carry no slice positions)."""
    p.add_argument("--stack-order", choices=tuple(_FIRST_SLICE), default=None,
                   help="PNG/JPG stacks carry no slice positions: whether the first file is the head end (the "
                        "default) or the feet end; upper and lower lung zones depend on it")


def first_slice(args: argparse.Namespace) -> Optional[str]:
    """The ``first_slice`` of :func:`engine.io.load` that ``--stack-order`` asks for (``None``: the default)."""
    return _FIRST_SLICE.get(getattr(args, "stack_order", None) or "")
