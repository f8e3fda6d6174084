"""Benchmark PACS retrieval: the 99-slice series from a local Orthanc against reading it from disk.

Starts a real Orthanc with its DICOMweb plugin (:mod:`tests.orthanc_server`) on a free
loopback port with temporary storage, stores ``../shared/data/dicom/chest_ct_99`` with
STOW-RS, then, ``--repeat`` times each (median and best reported):

``disk_load_s``
    ``engine.io.load`` of the shared folder (files in the OS page cache after the
    first run: the best case of "the files are already here");
``retrieve_s``
    :meth:`engine.pacs.PacsClient.retrieve_series` into an empty cache folder (QIDO
    series check + streamed WADO-RS + one file per instance + atomic rename);
``retrieve_load_s``
    ``retrieve_s`` plus ``engine.io.load`` of the retrieved folder: what "Open from
    PACS" costs before the first slice shows;
``cached_s``
    a second ``retrieve_series`` of a series already in the cache;
``store_s``
    the one STOW-RS upload of the 99 files (batches of 32).

The network is loopback: a hospital network adds its latency and bandwidth (99 x
0.5 MB = 52 MB; at 1 Gbit/s about 0.45 s more).

Usage: ``python benchmarks/pacs.py [--repeat 5] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DICOM_99 = ROOT.parent / "shared" / "data" / "dicom" / "chest_ct_99"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "best": min(values)}


def measure(repeat: int = 5) -> dict:
    """Start Orthanc, store the series, time disk reads and PACS retrievals; the figures."""
    import numpy as np

    from engine import io
    from engine.pacs import PacsClient
    from orthanc_server import MISSING, start_orthanc

    if MISSING:
        raise SystemExit(MISSING)
    files = sorted(DICOM_99.glob("*.dcm"))
    with tempfile.TemporaryDirectory(prefix="lunglens-pacs-bench-") as tmp:
        server = start_orthanc(Path(tmp) / "orthanc")
        try:
            client = PacsClient(server.url)
            t0 = time.perf_counter()
            result = client.store(files)
            store_s = time.perf_counter() - t0
            (study,) = client.find()
            (series,) = study.series
            reference = io.load(DICOM_99)  # also warms the page cache and the imports
            disk, retrieve, retrieve_load, cached = [], [], [], []
            for i in range(repeat):
                t0 = time.perf_counter()
                io.load(DICOM_99)
                disk.append(time.perf_counter() - t0)
                cache = Path(tmp) / f"cache{i}"
                t0 = time.perf_counter()
                folder = client.retrieve_series(study.study_uid, series.series_uid, cache)
                retrieve.append(time.perf_counter() - t0)
                volume = io.load(folder)
                retrieve_load.append(time.perf_counter() - t0)
                if not np.array_equal(volume.array, reference.array):
                    raise SystemExit("retrieved voxels differ from the files on disk")
                t0 = time.perf_counter()
                client.retrieve_series(study.study_uid, series.series_uid, cache)
                cached.append(time.perf_counter() - t0)
                shutil.rmtree(cache)
            client.close()
        finally:
            server.stop()
    nbytes = sum(f.stat().st_size for f in files)
    return {
        "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared)",
        "server": "Orthanc 1.10 + DICOMweb plugin 1.7 on loopback",
        "instances": len(files), "series_mb": round(nbytes / 1e6, 1), "shape": list(reference.shape),
        "store_s": store_s, "stored": len(result.stored),
        "disk_load_s": _stats(disk), "retrieve_s": _stats(retrieve), "retrieve_load_s": _stats(retrieve_load),
        "cached_s": _stats(cached),
        "retrieve_mb_per_s": nbytes / 1e6 / statistics.median(retrieve),
        "retrieve_load_vs_disk": statistics.median(retrieve_load) / statistics.median(disk),
        "repeat": repeat,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON object (the default prints it indented)")
    args = parser.parse_args(argv)
    figures = measure(args.repeat)

    def rounded(v):
        if isinstance(v, float):
            return round(v, 3)
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        return v

    figures = {k: rounded(v) for k, v in figures.items()}
    print(json.dumps(figures) if args.json else json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
