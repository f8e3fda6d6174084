"""``python -m engine bench NAME [ARGS...]``: run one of the benchmarks in ``benchmarks/``.

NAME is one of the scripts in ``benchmarks/`` (``io``, ``viewer``, ``editing``, ``inference``,
``quantification``, ``models``, ``pacs``, ``training``, ``batch``); ARGS go to the script unchanged (for example ``python -m engine bench inference --device
cpu --json``). Each benchmark prints its figures (JSON with ``--json``); see the script's
docstring for what it measures and the goals it is held to. The benchmarks live in the
source tree (``benchmarks/``), next to the ``engine`` package.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ..errors import DataError

NAME = "bench"
BENCHMARKS = ("io", "viewer", "editing", "inference", "quantification", "models", "pacs", "training", "batch")
FOLDER = Path(__file__).resolve().parents[2] / "benchmarks"


def register(subparsers) -> None:
    p = subparsers.add_parser(NAME, help=f"run a benchmark ({', '.join(BENCHMARKS)})",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=BENCHMARKS, help="which benchmark")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the benchmark script")
    p.set_defaults(func=run)


def script(name: str) -> Path:
    path = FOLDER / f"{name}.py"
    if not path.is_file():
        raise DataError(f"Benchmark {path} is not here: benchmarks ship with the source tree, "
                        "not with an installed wheel. Run it from a checkout of LungLens.")
    return path


def run(args: argparse.Namespace) -> int:
    path = script(args.name)
    return subprocess.call([sys.executable, str(path), *args.args])
