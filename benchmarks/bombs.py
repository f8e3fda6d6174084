"""Peak memory of the readers on decompression bombs and lying headers (issue 11).

Each case is built in a temporary folder (nothing is committed) and opened by
``engine.io.load`` (or ``load_labels``) in a fresh child process whose peak RSS is
read back from ``/proc/self/status`` (``VmHWM``); an address-space limit (``--limit-gb``)
keeps a regression from taking the machine down.

Run::

    PYTHONPATH=$PWD nice python benchmarks/bombs.py [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

_ZEROS_4MB = None


def _zeros_stream(n_bytes: int) -> bytes:
    """A zlib stream of ``n_bytes`` zeros (about n/1030 bytes compressed)."""
    comp = zlib.compressobj(9)
    chunk = b"\0" * (1 << 24)
    out = []
    left = n_bytes
    while left > 0:
        out.append(comp.compress(chunk[:min(left, len(chunk))]))
        left -= len(chunk)
    out.append(comp.flush())
    return b"".join(out)


def _gzip_of_zeros(n_bytes: int, prefix: bytes = b"") -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 24)
    out = [comp.compress(prefix)]
    left = n_bytes
    while left > 0:
        out.append(comp.compress(chunk[:min(left, len(chunk))]))
        left -= len(chunk)
    out.append(comp.flush())
    return b"".join(out)


def build(folder: Path) -> dict[str, tuple[str, Path]]:
    """The bomb files: name -> (how to open, path)."""
    cases: dict[str, tuple[str, Path]] = {}
    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.int16)
    hdr.set_data_shape((1024, 1024, 1900))  # 3.7 GiB declared, under the 4 GiB guard
    hdr.set_data_offset(352)
    block = hdr.binaryblock + b"\0" * 4
    p = folder / "bomb.nii.gz"
    p.write_bytes(_gzip_of_zeros(4_000_000_000, block))
    cases["nifti.gz 4 MB -> 3.7 GiB declared"] = ("load", p)
    p = folder / "label_bomb.nii.gz"
    p.write_bytes(gzip.compress(block))  # 56-byte-ish gzip, no data at all
    cases["label nifti.gz header only, 3.7 GiB declared"] = ("labels", p)
    small = b"NRRD0004\ntype: short\ndimension: 3\nsizes: 64 64 64\nencoding: gzip\nendian: little\n\n"
    p = folder / "small_decl.nrrd"
    p.write_bytes(small + _gzip_of_zeros(4_000_000_000))
    cases["nrrd gzip 4 MB, 0.5 MB declared"] = ("load", p)
    big = b"NRRD0004\ntype: short\ndimension: 3\nsizes: 1024 1024 1900\nencoding: gzip\nendian: little\n\n"
    p = folder / "big_decl.nrrd"
    p.write_bytes(big + _gzip_of_zeros(4_000_000_000))
    cases["nrrd gzip 4 MB, 3.7 GiB declared"] = ("load", p)
    mha = (b"ObjectType = Image\nNDims = 3\nBinaryData = True\nCompressedData = True\nDimSize = 1024 1024 1900\n"
           b"ElementType = MET_SHORT\nElementDataFile = LOCAL\n")
    p = folder / "bomb.mha"
    p.write_bytes(mha + _zeros_stream(4_000_000_000))
    cases["mha zlib 4 MB, 3.7 GiB declared"] = ("load", p)
    return cases


_CHILD = r"""
import resource, sys, time
kind, path, ref = sys.argv[1], sys.argv[2], sys.argv[3]
from engine import io
from engine.errors import LungLensError
t = time.perf_counter()
try:
    if kind == "labels":
        from engine.types import Geometry
        io.load_labels(path, reference=Geometry(shape=(4, 4, 4)))
    else:
        io.load(path)
    outcome = "loaded"
except LungLensError as exc:
    outcome = "error: " + str(exc)[:160]
except MemoryError:
    outcome = "MemoryError"
print(outcome)
print(time.perf_counter() - t)
print(int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:"))))  # VmHWM (kB): ru_maxrss would carry the parent's peak over exec
"""


def measure(kind: str, path: Path, limit_gb: float) -> dict:
    limit = int(limit_gb * 1024 ** 3)
    pre = (f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n")
    proc = subprocess.run([sys.executable, "-c", pre + _CHILD, kind, str(path), ""], capture_output=True,
                          text=True, timeout=600)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or len(lines) < 3:
        return {"outcome": f"child failed rc={proc.returncode}: {proc.stderr.strip()[-200:]}", "peak_mb": None}
    return {"outcome": lines[-3], "seconds": round(float(lines[-2]), 2),
            "peak_mb": round(int(lines[-1]) / 1024, 1), "file_mb": round(path.stat().st_size / 1e6, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--limit-gb", type=float, default=8.0, help="address-space cap of each child")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="lunglens-bombs-") as tmp:
        for name, (kind, path) in build(Path(tmp)).items():
            results[name] = measure(kind, path, args.limit_gb)
            if not args.json:
                r = results[name]
                print(f"{name:48s} peak {r['peak_mb']} MB  {r.get('seconds', '')} s  {r['outcome'][:110]}")
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
