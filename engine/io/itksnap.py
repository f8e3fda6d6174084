"""ITK-SNAP label description files: the names and colours of a label map, beside a NIfTI export.

ITK-SNAP (Segmentation > Import Label Descriptions) reads a plain-text table, one label a
line: ``IDX R G B A VIS MSH "LABEL"`` (A the opacity 0..1, VIS/MSH whether the label is shown
in 2D and 3D). :func:`write_label_descriptions` writes it from the label table;
:func:`read_label_descriptions` reads one back (for tests and for labels made in ITK-SNAP).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import CorruptFileError
from ..labels import DEFAULT_TABLE, LabelTable

_HEADER = """################################################
# ITK-SnAP Label Description File
# File format:
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
# Fields:
#    IDX:   Zero-based index
#    -R-:   Red color component (0..255)
#    -G-:   Green color component (0..255)
#    -B-:   Blue color component (0..255)
#    -A-:   Label transparency (0.00 .. 1.00)
#    VIS:   Label visibility (0 or 1)
#    MSH:   Label mesh visibility (0 or 1)
#  LABEL:   Label description
# Written by LungLens
################################################
"""

_LINE = re.compile(r'^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([01])\s+([01])\s+"(.*)"\s*$')


def label_descriptions_path(labels_path: str | os.PathLike) -> Path:
    """Where the description file of ``labels.nii.gz`` goes: ``labels.label.txt`` beside it."""
    path = Path(labels_path)
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + ".label.txt")


def write_label_descriptions(path: str | os.PathLike, table: LabelTable = DEFAULT_TABLE) -> Path:
    """Write ``table`` as an ITK-SNAP label description file (background as ITK-SNAP's "Clear Label")."""
    lines = [_HEADER.rstrip("\n"), f'{0:5d} {0:5d} {0:4d} {0:4d} {0:8.2f} {0:2d} {0:2d}    "Clear Label"']
    for lab in table:
        if lab.value == 0:
            continue
        r, g, b = lab.color
        name = lab.name.replace('"', "'")
        lines.append(f'{lab.value:5d} {r:5d} {g:4d} {b:4d} {1:8.2f} {1:2d} {1:2d}    "{name}"')
    path = Path(path)
    tmp = path.with_name(f".{path.name}.lunglens-tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_label_descriptions(path: str | os.PathLike) -> dict[int, tuple[str, tuple[int, int, int]]]:
    """``{value: (name, (r, g, b))}`` from an ITK-SNAP label description file."""
    out: dict[int, tuple[str, tuple[int, int, int]]] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise CorruptFileError(f"{path}: line {number} is not an ITK-SNAP label description: {line.strip()!r}")
        out[int(m.group(1))] = (m.group(8), (int(m.group(2)), int(m.group(3)), int(m.group(4))))
    return out
