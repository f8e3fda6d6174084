"""Coverage-guided fuzzing of the scan and label readers with atheris (libFuzzer for Python).

Every input is one file: its first byte picks the format (NIfTI, NIfTI.gz, NRRD, MHA,
DICOM, PNG, a two-slice DICOM folder, a NIfTI label map), the rest is the file's
content. The target opens it with ``engine.io.load`` (or ``load_labels``); a
:class:`~engine.errors.LungLensError` is the expected outcome for bad input, and
anything else (another exception, a hang past ``-timeout``, memory past
``-rss_limit_mb``) is a finding that libFuzzer saves as ``crash-*`` / ``timeout-*``.
A loaded volume must also be sane (finite geometry, array shape = geometry shape).

atheris is not a dependency of LungLens (``pip install atheris``, Linux/macOS wheels for
CPython 3.8-3.11; or ``pip install -e .[fuzz]``). Run for a few minutes::

    PYTHONPATH=$PWD nice python benchmarks/fuzz_readers.py --seeds /tmp/fuzz-corpus
    PYTHONPATH=$PWD nice python benchmarks/fuzz_readers.py /tmp/fuzz-corpus \\
        -max_total_time=300 -timeout=20 -rss_limit_mb=3000 -max_len=65536 -artifact_prefix=/tmp/fuzz-

``--seeds DIR`` writes one small valid file of each kind into ``DIR`` and exits; a
finding is replayed by passing its file instead of the corpus folder. Findings are
turned into cases of ``tests/test_io_fuzz_findings.py``.
"""

from __future__ import annotations

import atexit
import gzip
import io as pyio
import os
import shutil
import sys
import tempfile
from pathlib import Path

KINDS = ("scan.nii", "scan.nii.gz", "scan.nrrd", "scan.mha", "scan.dcm", "slice.png", "series", "labels.nii.gz")


def seeds(folder: Path) -> None:
    """One small valid input of each kind (the kind byte first)."""
    import nibabel as nib
    import numpy as np
    import SimpleITK as sitk
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import dicom_factory as F

    folder.mkdir(parents=True, exist_ok=True)
    arr = (np.arange(4 * 6 * 5).reshape(5, 6, 4) * 7 - 500).astype(np.int16)
    nii = nib.Nifti1Image(arr, np.diag([0.7, 0.7, 2.0, 1.0])).to_bytes()
    tmp = Path(tempfile.mkdtemp())
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp / "a.nrrd"), True)
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp / "a.mha"), True)
    paths, _ = F.ct_series(tmp / "d", n=2, rows=6, cols=5)
    png = pyio.BytesIO()
    Image.fromarray((np.arange(30).reshape(6, 5) * 8).astype(np.uint8)).save(png, format="PNG")
    lab = nib.Nifti1Image((np.arange(4 * 6 * 5).reshape(5, 6, 4) % 4).astype(np.uint8), np.eye(4)).to_bytes()
    blobs = [nii, gzip.compress(nii), (tmp / "a.nrrd").read_bytes(), (tmp / "a.mha").read_bytes(),
             paths[0].read_bytes(), png.getvalue(), paths[0].read_bytes(), gzip.compress(lab)]
    for k, blob in enumerate(blobs):
        (folder / f"seed-{KINDS[k]}").write_bytes(bytes([k]) + blob)


def main() -> None:
    import warnings

    import atheris

    warnings.simplefilter("ignore")  # pydicom's "invalid value" warnings on every mutated header
    with atheris.instrument_imports(include=["engine"]):
        from engine import io
        from engine.errors import LungLensError
        from engine.types import Geometry
    import numpy as np

    work = Path(tempfile.mkdtemp(prefix="lunglens-fuzz-"))
    atexit.register(shutil.rmtree, work, True)
    ref = Geometry(shape=(5, 6, 4))
    second = None

    def one_input(data: bytes) -> None:
        nonlocal second
        if len(data) < 2:
            return
        kind = KINDS[data[0] % len(KINDS)]
        body = data[1:]
        for p in work.iterdir():
            if p.is_dir():
                for q in p.iterdir():
                    q.unlink()
                p.rmdir()
            else:
                p.unlink()
        if kind == "series":  # the fuzzed slice next to an intact one
            target = work / "series"
            target.mkdir()
            (target / "a.dcm").write_bytes(body)
            if second is None:
                sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
                import dicom_factory as F
                second = F.ct_series(work / "_s", n=3, rows=6, cols=5)[0][2].read_bytes()
                for q in (work / "_s").iterdir():
                    q.unlink()
                (work / "_s").rmdir()
            (target / "b.dcm").write_bytes(second)
        else:
            target = work / kind
            target.write_bytes(body)
        try:
            if kind == "labels.nii.gz":
                arr = io.load_labels(target, reference=ref)
                assert arr.dtype == np.uint8 and arr.shape == ref.shape
            else:
                vol = io.load(target)
                g = vol.geometry
                assert vol.array.shape == g.shape
                assert np.all(np.isfinite(g.origin)) and np.all(np.isfinite(g.direction_matrix))
                if vol.array.dtype.kind == "f":
                    assert np.all(np.isfinite(vol.array))
        except LungLensError:
            pass

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--seeds":
        seeds(Path(sys.argv[2]))
        print(f"wrote {len(KINDS)} seeds to {sys.argv[2]}")
    else:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        main()
