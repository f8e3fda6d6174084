"""Which files make one image stack, and one grey scale for all of its slices.

A folder of PNG/JPG slices carries no positions: its slices are its files in number order. So
any file that is not one of those slices becomes a slice all the same, silently (QA pass): a JPG
copy of every PNG showed each slice twice, ``cover.png`` became the top slice, ``1.png`` and
``01.png`` the same slice twice, a second stack's files were interleaved. :func:`stack_members`
keeps the files of one stack (one kind of file, one name pattern, one file per number) and says
what it left out. 16-bit slices were each stretched to 0..255 by their own range, so one slice
was brighter than the next: :func:`stack_range` gives the one range of the whole stack.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp", ".tif": "tiff",
                  ".tiff": "tiff"}
NUMBER = re.compile(r"(\d+)")
#: Pillow modes of more than 8 bits per pixel
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def natural_key(path: Path) -> tuple:
    """Sort key: the last number in the file stem, then the name (``a10002`` < ``a10010``)."""
    numbers = NUMBER.findall(path.stem)
    return (int(numbers[-1]) if numbers else -1, path.name)


def _varying(paths: list[Path]) -> int:
    """Which number of the names counts the slices: the last one that differs between the files (names such as
    ``lung_001_512.png`` end in a constant number), as an index into each name's numbers; -1 (the last) when
    the names hold different counts of numbers or nothing varies."""
    groups = [NUMBER.findall(p.stem) for p in paths]
    n = len(groups[0]) if groups else 0
    if n == 0 or any(len(g) != n for g in groups):
        return -1
    for i in range(n - 1, -1, -1):
        if len({int(g[i]) for g in groups}) > 1:
            return i - n
    return -1


def slice_number(path: Path, which: int = -1) -> int:
    """The number ``which`` (an index into the name's numbers, -1 the last) of a file name; -1 without one."""
    numbers = NUMBER.findall(path.stem)
    return int(numbers[which]) if numbers and -len(numbers) <= which < len(numbers) else -1


def _pattern(path: Path, which: int = -1) -> Optional[str]:
    """The name with its slice number replaced (``slice_#.png``); ``None`` for a name without a number."""
    numbers = list(NUMBER.finditer(path.stem))
    if not numbers or not -len(numbers) <= which < len(numbers):
        return None
    at = numbers[which]
    return (path.stem[:at.start()] + "#" + path.stem[at.end():] + path.suffix).lower()


def _names(paths: list[Path]) -> str:
    return ", ".join(p.name for p in paths[:4]) + (" ..." if len(paths) > 4 else "")


def stack_members(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """The files that make one stack, in the order of the number that counts the slices, and a notice for each
    kind of file left out."""
    notes: list[str] = []
    if len(paths) < 2:
        return paths, notes
    kinds: dict[str, list[Path]] = {}
    for p in paths:
        kinds.setdefault(IMAGE_SUFFIXES.get(p.suffix.lower(), p.suffix.lower()), []).append(p)
    if len(kinds) > 1:
        kind, keep = max(kinds.items(), key=lambda kv: (len(kv[1]), kv[0] == "png"))
        out = [p for p in paths if p not in set(keep)]
        notes.append(f"{len(out)} file(s) of another type next to the {kind.upper()} stack were left out ({_names(out)}): "
                     "a stack is one kind of file; copies in two formats would show every slice twice.")
        paths = [p for p in paths if p in set(keep)]
    numbered = [p for p in paths if _pattern(p) is not None]
    if numbered and len(numbered) < len(paths):
        out = [p for p in paths if _pattern(p) is None]
        notes.append(f"{len(out)} file(s) without a slice number were left out of the stack ({_names(out)}).")
        paths = numbered
    which = _varying(paths)
    patterns: dict[Optional[str], list[Path]] = {}
    for p in paths:
        patterns.setdefault(_pattern(p, which), []).append(p)
    if len(patterns) > 1:
        keep = set(max(patterns.values(), key=len))
        out = [p for p in paths if p not in keep]
        notes.append(f"{len(out)} file(s) named unlike the stack's {len(keep)} were left out ({_names(out)}): they "
                     "look like another stack in the same folder. Open them from a folder of their own.")
        paths = [p for p in paths if p in keep]
    seen: dict[int, Path] = {}
    repeats: list[tuple[Path, Path]] = []
    paths = sorted(paths, key=lambda p: (slice_number(p, which), p.name))  # by the number that counts the slices
    for p in paths:
        n = slice_number(p, which)
        if n >= 0 and n in seen:
            repeats.append((p, seen[n]))
        else:
            seen[n] = p
    if repeats:
        gone = {id(p) for p, _ in repeats}
        pairs = "; ".join(f"{p.name} repeats {q.name}" for p, q in repeats[:3]) + (" ..." if len(repeats) > 3 else "")
        notes.append(f"{len(repeats)} file(s) carry the number of another file and were left out ({pairs}): one "
                     "slice per number. If they are other slices, rename them.")
        paths = [p for p in paths if id(p) not in gone]
    return paths, notes


def stack_range(paths: list[Path]) -> Optional[tuple[float, float]]:
    """The lowest and highest value of a stack of more-than-8-bit images (``None``: 8-bit images), read
    from every file, so that one linear scale maps the whole stack to 0..255."""
    with Image.open(paths[0]) as img:
        if img.mode not in WIDE_MODES:
            return None
    lo, hi = np.inf, -np.inf
    for p in paths:
        with Image.open(p) as img:
            pages = getattr(img, "n_frames", 1) if len(paths) == 1 else 1  # a multi-page TIFF: all its pages
            for page in range(pages):
                img.seek(page)
                if img.mode in WIDE_MODES:
                    arr = np.asarray(img)
                    if arr.size:
                        lo, hi = min(lo, float(arr.min())), max(hi, float(arr.max()))
    return (lo, hi) if np.isfinite(lo) else None
