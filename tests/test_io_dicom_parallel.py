"""Parallel decoding of compressed DICOM series and the header-only scan (issue 15, item 4).

The compressed series are real data: slices of ``chest_ct_99`` re-encoded to JPEG 2000
Lossless with pydicom's encoder (pylibjpeg-openjpeg) in a temporary folder.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEG2000Lossless

import dicom_factory as F
from engine import io
from engine.errors import CancelledError, CorruptFileError
from engine.io import dicom_decode
from engine.io.dicom_read import read_series
from engine.io.dicom_scan import _group, read_header, read_image_header, scan_folder
from engine.progress import CancelToken

N_SLICES = 16


def _processes() -> dict[int, tuple[int, str, bytes]]:
    """pid -> (parent pid, state, command line) of every process, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(entry.name)] = (int(fields[1]), fields[0], (entry / "cmdline").read_bytes())
        except (OSError, ValueError, IndexError):
            continue
    return found


def _workers_of(parent: int, procs: dict[int, tuple[int, str, bytes]]) -> list[int]:
    """Live decoder workers of ``parent``: started ones run _dicom_worker.py, forked ones share its command line."""
    own = procs.get(parent, (0, "", b""))[2]
    return [pid for pid, (ppid, state, cmd) in procs.items()
            if ppid == parent and state != "Z" and (b"_dicom_worker.py" in cmd or cmd == own)]


def _worker_pids() -> list[int]:
    """Decoder workers of this process."""
    return _workers_of(os.getpid(), _processes())


@pytest.fixture(scope="module")
def series_pair(dicom_99, tmp_path_factory):
    """(uncompressed folder, JPEG 2000 Lossless folder) holding the same 16 real slices."""
    root = tmp_path_factory.mktemp("j2k")
    plain, j2k = root / "plain", root / "j2k"
    plain.mkdir()
    j2k.mkdir()
    by_z = sorted(dicom_99.iterdir(), key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True,
                                                                         specific_tags=["ImagePositionPatient"])
                                                             .ImagePositionPatient[2]))
    for src in by_z[40:40 + N_SLICES]:  # 16 neighbouring slices (the file names are not in z order)
        shutil.copy(src, plain / src.name)
        ds = pydicom.dcmread(src)
        ds.compress(JPEG2000Lossless, generate_instance_uid=False)
        ds.save_as(j2k / src.name)
    return plain, j2k


@pytest.fixture
def one_worker(monkeypatch):
    monkeypatch.setenv("LUNGLENS_DECODE_WORKERS", "1")


def test_jpeg2000_series_is_decoded_with_workers_exactly_as_uncompressed(series_pair, one_worker):
    plain, j2k = series_pair
    assert pydicom.dcmread(next(j2k.iterdir())).file_meta.TransferSyntaxUID == JPEG2000Lossless
    seen: list[int] = []
    reference = io.load(plain)
    vol = io.load(j2k, progress=lambda f, m: seen.extend(_worker_pids()))
    assert seen, "no decoder worker was started"
    assert _worker_pids() == []  # ended with the read
    assert vol.array.dtype == np.int16 and vol.shape == (N_SLICES, 512, 512)
    assert np.array_equal(vol.array, reference.array)
    assert vol.geometry == reference.geometry
    assert vol.meta["sop_instance_uids"] == reference.meta["sop_instance_uids"]
    assert int(vol.array.min()) < -900 and int(vol.array.max()) > 200  # air and bone: real CT values


def test_parallel_and_serial_decodes_give_the_same_voxels(series_pair, monkeypatch):
    _, j2k = series_pair
    monkeypatch.setenv("LUNGLENS_DECODE_WORKERS", "0")
    serial = io.load(j2k)
    monkeypatch.setenv("LUNGLENS_DECODE_WORKERS", "2")
    parallel = io.load(j2k)
    assert np.array_equal(serial.array, parallel.array)


def test_slice_order_is_kept_with_shuffled_file_names(series_pair, tmp_path, one_worker):
    plain, j2k = series_pair
    files = sorted(j2k.iterdir())
    names = [f"img_{i:03d}.dcm" for i in range(len(files))]
    random.Random(7).shuffle(names)
    assert names != sorted(names)
    out = tmp_path / "shuffled"
    out.mkdir()
    for src, name in zip(files, names):
        shutil.copy(src, out / name)
    vol = io.load(out)
    assert np.array_equal(vol.array, io.load(plain).array)


def test_decode_files_yields_every_index_once(series_pair):
    _, j2k = series_pair
    files = sorted(str(p) for p in j2k.iterdir())
    got = dict(dicom_decode.decode_files([(i, f, None) for i, f in enumerate(files)], workers=1))
    assert sorted(got) == list(range(len(files)))
    for i in (0, len(files) - 1):
        assert np.array_equal(got[i][0], pydicom.dcmread(files[i]).pixel_array)


def test_cancel_stops_the_parallel_decode(series_pair, one_worker):
    _, j2k = series_pair
    token = CancelToken()
    reads: list[str] = []

    def progress(fraction: float, message: str) -> None:
        if message.startswith("Reading slice"):
            reads.append(message)
            token.cancel()

    with pytest.raises(CancelledError):
        io.load(j2k, progress=progress, cancel=token)
    assert reads == ["Reading slice 4/16"]  # stopped at the next file after the first report
    assert _worker_pids() == []


@pytest.fixture
def second_thread():
    """A live second thread: workers are then started as interpreters, not forked."""
    import threading
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def test_started_workers_decode_like_forked_ones(series_pair, one_worker, second_thread):
    plain, j2k = series_pair
    assert not dicom_decode._can_fork()
    seen: list[bytes] = []

    def progress(fraction: float, message: str) -> None:
        procs = _processes()
        seen.extend(procs[p][2] for p in _workers_of(os.getpid(), procs))

    vol = io.load(j2k, progress=progress)
    assert seen and all(b"_dicom_worker.py" in cmd for cmd in seen)
    assert np.array_equal(vol.array, io.load(plain).array)
    assert _worker_pids() == []


def test_forked_workers_when_single_threaded(series_pair, one_worker):
    import threading
    if threading.active_count() > 1:
        pytest.skip("another test left a thread running: workers are started, not forked")
    _, j2k = series_pair
    own = _processes()[os.getpid()][2]
    seen: list[bytes] = []

    def progress(fraction: float, message: str) -> None:
        procs = _processes()
        seen.extend(procs[p][2] for p in _workers_of(os.getpid(), procs))

    io.load(j2k, progress=progress)
    assert seen and all(cmd == own for cmd in seen)


def test_worker_that_cannot_start_leaves_the_decoding_here(series_pair, monkeypatch, one_worker, second_thread):
    plain, j2k = series_pair
    expected = io.load(plain).array
    monkeypatch.setattr(sys, "executable", "/bin/false")  # starts, exits at once: never ready
    assert np.array_equal(io.load(j2k).array, expected)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # cannot start at all
    assert np.array_equal(io.load(j2k).array, expected)


@pytest.mark.parametrize("workers", ["0", "1"])
def test_damaged_codestream_names_the_file(series_pair, tmp_path, monkeypatch, workers):
    _, j2k = series_pair
    out = tmp_path / "damaged"
    shutil.copytree(j2k, out)
    bad = sorted(out.iterdir())[9]
    ds = pydicom.dcmread(bad)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[:300]])  # a valid J2K start (passes the codestream check), then nothing
    ds.save_as(bad)
    monkeypatch.setenv("LUNGLENS_DECODE_WORKERS", workers)
    with pytest.raises(CorruptFileError, match=f"{bad.name}: its compressed pixel data could not be decoded"):
        io.load(out)
    assert _worker_pids() == []


def test_mislabelled_codestream_is_refused_before_any_decoding(series_pair, tmp_path, one_worker):
    _, j2k = series_pair
    out = tmp_path / "mislabelled"
    shutil.copytree(j2k, out)
    bad = sorted(out.iterdir())[-1]
    ds = pydicom.dcmread(bad)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"  # says JPEG Baseline, holds JPEG 2000
    ds.save_as(bad)
    with pytest.raises(CorruptFileError, match="JPEG Baseline but the pixel data is a JPEG 2000 codestream"):
        io.load(out)


def _full_header_infos(folder: Path):
    return _group([(p, read_header(p)) for p in sorted(folder.rglob("*")) if p.is_file()], folder)


def _same_read(a, b) -> None:
    assert [i.to_dict() for i in a] == [i.to_dict() for i in b]
    assert [i.files for i in a] == [i.files for i in b]
    assert [i.notes for i in a] == [i.notes for i in b]
    for x, y in zip(a, b):
        va, vb = read_series(x), read_series(y)
        assert np.array_equal(va.array, vb.array) and va.array.dtype == vb.array.dtype
        assert va.geometry == vb.geometry
        assert va.meta == vb.meta and va.warnings == vb.warnings


def test_header_only_scan_matches_full_headers_on_real_data(dicom_99):
    ds = read_image_header(next(dicom_99.iterdir()))
    assert "ReferencedImageSequence" not in ds and "KVP" not in ds  # not parsed
    assert "PatientName" in ds and ds.get_item(0x7FE00010, keep_deferred=True).value is None  # pixels deferred
    _same_read(scan_folder(dicom_99), _full_header_infos(dicom_99))


def test_header_only_scan_matches_full_headers_on_mixed_folder(tmp_path):
    F.ct_series(tmp_path / "a", n=5, dz=2.0)
    F.ct_series(tmp_path / "b", n=3, rows=8, cols=8, orientation=(0, 1, 0, 0, 0, -1), description="sagittal")
    F.enhanced_ct(tmp_path / "mf.dcm", n=4)
    infos = scan_folder(tmp_path)
    assert len(infos) == 3 and any(i.multiframe for i in infos)
    _same_read(infos, _full_header_infos(tmp_path))


def _pydicom_header(path: Path):
    from engine.io.dicom_scan import _SCAN_TAG_LIST, DEFER_SIZE
    return pydicom.dcmread(str(path), defer_size=DEFER_SIZE, force=True, specific_tags=_SCAN_TAG_LIST)


def _assert_same_header(fast, slow) -> None:
    assert fast is not None
    assert sorted(fast.keys()) == sorted(slow.keys())
    assert fast.file_meta == slow.file_meta
    assert fast.original_encoding == slow.original_encoding
    for tag in slow.keys():  # raw elements first (converting them drops value_tell)
        a, b = fast.get_item(tag, keep_deferred=True), slow.get_item(tag, keep_deferred=True)
        assert (getattr(a, "value_tell", None), getattr(a, "length", None)) == \
            (getattr(b, "value_tell", None), getattr(b, "length", None)), tag
    for tag in slow.keys():
        a, b = fast.get_item(tag, keep_deferred=True), slow.get_item(tag, keep_deferred=True)
        if tag == 0x7FE00010:
            assert (a.value is None) == (b.value is None)
        else:
            assert fast[tag].value == slow[tag].value, tag


def _slice_with_undefined_length_sequences(path: Path, syntax) -> Path:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    ds = F.ct_slice(stored=np.arange(120, dtype=np.uint16).reshape(12, 10))
    ds.file_meta.TransferSyntaxUID = syntax
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref.ReferencedSOPInstanceUID = "1.2.3.4"
    ref.is_undefined_length_sequence_item = True
    nested = Dataset()
    nested.CodeValue, nested.CodingSchemeDesignator = "113100", "DCM"
    ref.PurposeOfReferenceCodeSequence = Sequence([nested])
    ref["PurposeOfReferenceCodeSequence"].is_undefined_length = True
    ds.ReferencedImageSequence = Sequence([ref, ref])
    ds["ReferencedImageSequence"].is_undefined_length = True
    ds.add_new(0x00091010, "UN", b"\x01\x02\x03\x04")  # a private value, skipped
    return F.write(ds, path)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"])
def test_fast_header_walk_equals_pydicom(tmp_path, syntax):
    from engine.io.dicom_header import read_tags
    from engine.io.dicom_scan import _SCAN_TAG_SET, DEFER_SIZE
    path = _slice_with_undefined_length_sequences(tmp_path / "s.dcm", syntax)
    full = pydicom.dcmread(path)
    assert full["ReferencedImageSequence"].is_undefined_length and len(full.ReferencedImageSequence) == 2
    fast = read_tags(path, _SCAN_TAG_SET, DEFER_SIZE)
    _assert_same_header(fast, _pydicom_header(path))
    assert fast.original_encoding == (syntax == "1.2.840.10008.1.2", True)
    assert "ReferencedImageSequence" not in fast and int(fast.Rows) == 12 and fast.PatientName == "Test^Phantom"
    assert fast.get_item(0x7FE00010, keep_deferred=True).value == full.PixelData  # 240 bytes: not deferred


def test_fast_header_walk_equals_pydicom_on_real_and_jpeg2000(dicom_99, series_pair):
    from engine.io.dicom_header import read_tags
    from engine.io.dicom_scan import _SCAN_TAG_SET, DEFER_SIZE
    for path in (sorted(dicom_99.iterdir())[0], sorted(series_pair[1].iterdir())[0]):
        fast = read_tags(path, _SCAN_TAG_SET, DEFER_SIZE)
        _assert_same_header(fast, _pydicom_header(path))
        assert fast.get_item(0x7FE00010, keep_deferred=True).value is None  # deferred: offset and length only


def test_fast_header_walk_leaves_unusual_files_to_pydicom(tmp_path):
    from engine.io.dicom_header import read_tags
    from engine.io.dicom_scan import _SCAN_TAG_SET, DEFER_SIZE
    good = _slice_with_undefined_length_sequences(tmp_path / "good.dcm", "1.2.840.10008.1.2.1")
    data = good.read_bytes()
    cases = {"no_preamble.dcm": data[132:], "truncated.dcm": data[:-50], "empty.dcm": b""}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        assert read_tags(tmp_path / name, _SCAN_TAG_SET, DEFER_SIZE) is None, name
    mf, _ = F.enhanced_ct(tmp_path / "mf.dcm", n=3)
    ds = pydicom.dcmread(mf)
    ds["SharedFunctionalGroupsSequence"].is_undefined_length = True  # a wanted sequence of undefined length
    ds.save_as(mf)
    assert read_tags(mf, _SCAN_TAG_SET, DEFER_SIZE) is None
    assert read_image_header(mf).SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing == [0.5, 0.6]


def test_fast_header_walk_agrees_with_pydicom_on_damaged_headers(tmp_path):
    """Byte flips in the header: the fast walk either steps aside or reads what pydicom reads.

    pydicom parses every undefined-length sequence and may refuse a file whose unused
    sequence is damaged; the walk only checks its item structure, so it may still read
    such a file (the tags LungLens uses are intact).
    """
    from engine.io.dicom_header import read_tags
    from engine.io.dicom_scan import _SCAN_TAG_SET, DEFER_SIZE
    data = bytearray(_slice_with_undefined_length_sequences(tmp_path / "good.dcm", "1.2.840.10008.1.2.1")
                     .read_bytes())
    rng = random.Random(11)
    path = tmp_path / "mutant.dcm"
    read_fast = lenient = 0
    for _ in range(300):
        mutant = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutant[rng.randrange(132, len(data) - 240)] = rng.randrange(256)
        path.write_bytes(bytes(mutant))
        fast = read_tags(path, _SCAN_TAG_SET, DEFER_SIZE)
        if fast is None:
            continue
        read_fast += 1
        try:
            slow = _pydicom_header(path)
        except Exception:  # noqa: BLE001 - damage inside a sequence LungLens does not read
            lenient += 1
            continue
        assert sorted(fast.keys()) == sorted(slow.keys())
        for tag in slow.keys():
            a, b = fast.get_item(tag, keep_deferred=True), slow.get_item(tag, keep_deferred=True)
            assert getattr(a, "value", None) == getattr(b, "value", None), tag
    assert read_fast - lenient > 100  # most flips hit values, which the walk reads like pydicom


def test_cancel_of_an_isolated_open_leaves_no_decoder_behind(series_pair, one_worker):
    """The app reads in a child process that Cancel terminates: its workers see their input end and exit."""
    import time

    import engine.io as eio
    _, j2k = series_pair
    token = CancelToken()
    seen: set[int] = set()

    def progress(fraction: float, message: str) -> None:
        if message.startswith("Reading slice"):
            procs = _processes()
            for child, (ppid, _, _) in procs.items():
                if ppid == os.getpid():
                    seen.update(_workers_of(child, procs))  # workers of the isolated reader
            token.cancel()

    with pytest.raises(CancelledError):
        eio.open_isolated(j2k, progress=progress, cancel=token)
    assert seen, "the isolated reader started no decoder worker"

    def alive() -> list[int]:
        procs = _processes()
        return [pid for pid in seen if pid in procs and procs[pid][1] != "Z"]

    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive() == []


@pytest.mark.parametrize("workers", ["0", "1"])
def test_multiframe_jpeg2000_frames_decode_in_parallel_in_order(tmp_path, monkeypatch, workers):
    path, expected = F.enhanced_ct(tmp_path / "mf" / "mf.dcm", n=12, rows=64, cols=72, descending=True)
    plain = io.load(path)
    assert np.array_equal(plain.array, expected)
    ds = pydicom.dcmread(path)
    ds.compress(JPEG2000Lossless, generate_instance_uid=False)
    ds.save_as(path)
    assert int(pydicom.dcmread(path).NumberOfFrames) == 12
    monkeypatch.setenv("LUNGLENS_DECODE_WORKERS", workers)
    seen: list[int] = []
    vol = io.load(path, progress=lambda f, m: seen.extend(_worker_pids()))
    assert bool(seen) == (workers == "1")
    assert np.array_equal(vol.array, expected) and vol.geometry == plain.geometry
