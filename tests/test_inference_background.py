"""Run AI finds the lungs on a thread beside the networks (engine/inference/background.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine.anatomy import lung_masks
from engine.errors import CancelledError
from engine.inference import Predictor
from engine.inference import background, gate, gate_parts
from engine.inference.background import BackgroundJob, beside_pays
from engine.inference.reference import intensity_model
from engine.phantom import chest_ct
from engine.progress import CancelToken
from engine.types import Geometry, Volume


@pytest.fixture(scope="module")
def phantom():
    return chest_ct(shape=(64, 128, 128), spacing=(4.0, 2.8, 2.8), seed=1)


def _predictor(beside: bool = True) -> Predictor:
    p = Predictor(intensity_model((128, 128)), device="cpu", findings_model=False, covid_model=False,
                  batch_size=4, keep_probabilities=False)
    p.lungs_beside = beside
    return p


def _lung_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lunglens-lungs"]


def test_lungs_are_found_while_the_networks_run_and_give_the_serial_reading(phantom, monkeypatch):
    """The lung search starts after the visible slice and the segmentation goes on meanwhile:
    the search below waits for a forward pass made after it started, which a serial Run AI
    (lungs first, then the slabs) never makes, so it would time out and fail."""
    v = phantom.volume
    p = _predictor()
    forwards, searching = threading.Event(), threading.Event()
    original = p._forward
    calls: list[int] = []

    def forward(net, x):
        calls.append(x.shape[0])
        if len(calls) > 1:  # after the visible slice: wait (on a slow machine) until the search runs
            searching.wait(timeout=20)
            forwards.set()
        return original(net, x)
    p._forward = forward  # type: ignore[method-assign]
    seen: dict = {}

    def search(volume, cancel=None):
        seen["thread"] = threading.current_thread().name
        forwards.clear()
        searching.set()
        seen["beside"] = forwards.wait(timeout=20)  # a forward pass made while the search runs
        return lung_masks(volume, cancel=cancel)
    monkeypatch.setattr(background, "lung_masks", search)
    preps: list[str] = []

    def distances(*args):
        preps.append(threading.current_thread().name)
        return real(*args)
    real = gate_parts._distance_masks
    monkeypatch.setattr(gate_parts, "_distance_masks", distances)
    pred = p.predict(v, visible_slice=30)
    assert seen == {"thread": "lunglens-lungs", "beside": True}
    assert preps == ["lunglens-lungs"]  # the gate used what the lung thread prepared, and made none itself
    assert pred.timings["lungs_s"] > 0 and "lungs_wait_s" in pred.timings
    assert not _lung_threads()

    # the same bytes as the serial reading, and as a reading with the lungs given
    serial_threads: list[str] = []

    def serial_search(volume, cancel=None):
        serial_threads.append(threading.current_thread().name)
        return lung_masks(volume, cancel=cancel)
    monkeypatch.setattr(background, "lung_masks", serial_search)
    serial = _predictor(beside=False).predict(v, visible_slice=30)
    assert serial_threads == [threading.current_thread().name]
    given = _predictor().predict(v, visible_slice=30, lungs=lung_masks(v))
    for other in (serial, given):
        assert np.array_equal(pred.labels, other.labels) and np.array_equal(pred.lungs.left, other.lungs.left)
        assert np.array_equal(pred.lungs.right, other.lungs.right) and pred.rules_removed == other.rules_removed
        assert np.array_equal(pred.slice_probabilities, other.slice_probabilities)
        assert pred.scan_probabilities == other.scan_probabilities and other.assessed
    assert pred.labels.any() and pred.lungs.left.any()


def _slow_search(started: threading.Event):
    def search(volume, cancel=None):
        started.set()
        while not cancel.is_set():  # a search that only ends when asked to
            time.sleep(0.01)
        raise CancelledError()
    return search


def test_cancel_during_the_lung_search_leaves_no_thread(phantom, monkeypatch):
    started = threading.Event()
    monkeypatch.setattr(background, "lung_masks", _slow_search(started))
    token = CancelToken()
    slabs: list = []

    def on_slab(z, lab, pr):
        slabs.append(z)
        if len(slabs) > 1 and started.wait(timeout=10):  # the search starts after the visible slice
            token.cancel()
    with pytest.raises(CancelledError):
        _predictor().predict(phantom.volume, cancel=token, visible_slice=30, on_slab=on_slab)
    assert started.is_set() and not _lung_threads()


def test_a_reading_dropped_by_its_consumer_stops_the_lung_search(phantom, monkeypatch):
    started = threading.Event()
    monkeypatch.setattr(background, "lung_masks", _slow_search(started))
    gen = _predictor().iter_predict(phantom.volume, visible_slice=30)
    next(gen)  # the visible slice
    next(gen)  # a slab: the search is running beside it
    assert started.wait(timeout=10) and _lung_threads()
    gen.close()  # the app dropped the reading (another scan was opened)
    assert not _lung_threads()


def test_no_lung_ends_the_segmentation_early_and_is_not_assessed(phantom, monkeypatch):
    """The search's 'no lung' answer stops the slabs: no further forward pass after it is known."""
    p = _predictor()
    done = threading.Event()
    after: list[int] = []
    original = p._forward

    def forward(net, x):
        if done.is_set():
            after.append(x.shape[0])
        return original(net, x)
    p._forward = forward  # type: ignore[method-assign]

    def search(volume, cancel=None):
        done.set()
        from engine.errors import DataError
        raise DataError("no lung")
    monkeypatch.setattr(background, "lung_masks", search)
    pred = p.predict(phantom.volume, visible_slice=30)
    assert not pred.assessed and pred.not_assessed
    assert not pred.labels.any() and pred.scan_probabilities == {}
    # the check is between slabs: the slab running when the search ended, and at most one more that
    # started while the search was returning (the phantom has about 40 more lung slices)
    assert sum(after) <= 8


def test_background_job_hands_its_error_to_the_caller_and_obeys_both_cancels():
    def fails(cancel):
        raise ValueError("boom")
    job = BackgroundJob(fails)
    with pytest.raises(ValueError, match="boom"):
        job.result()
    assert job.seconds >= 0 and not job.running

    outer = CancelToken()
    job = BackgroundJob(lambda c: c.is_set())
    assert job.result() is False
    def until_stopped(c):
        while not c.is_set():
            time.sleep(0.01)
        return "stopped"
    waiting = BackgroundJob(until_stopped, outer)
    assert waiting.running
    outer.cancel()  # the caller's flag reaches the job
    assert waiting.result() == "stopped"


def test_gate_prepared_from_the_lungs_gives_the_same_result_and_only_for_those_lungs(phantom):
    v = phantom.volume
    labels = phantom.labels.copy()
    labels[40:44, 10:30, 10:30] = 2  # consolidation outside the lungs: a rule must remove it
    plain = gate.lung_gate(v, labels, lung_masks(v))
    assert plain.removed_by_rule["outside_lungs"]
    lungs = lung_masks(v)
    prep = gate.prepare_gate(v, lungs)
    assert gate.prepare_gate(v, lungs) is prep  # kept with the lungs, made once
    ready = gate.lung_gate(v, labels, lungs)
    assert np.array_equal(ready.labels, plain.labels) and ready.removed_by_rule == plain.removed_by_rule
    # other lungs (none on the lower half) have their own: the test can tell the two apart
    other = lung_masks(v)
    other.left[:32] = False
    other.right[:32] = False
    assert not np.array_equal(gate.prepare_gate(v, other).lung_slices, prep.lung_slices)  # its own, not prep
    wrong = gate.lung_gate(v, labels, other)
    assert not np.array_equal(wrong.labels, plain.labels)
    # another geometry (a finer slice spacing) is not served the kept distances
    finer = Volume(v.array, Geometry(v.array.shape, (2.0, *v.geometry.spacing[1:])), is_hu=True)
    assert gate.prepare_gate(finer, lungs) is not prep


def test_the_lungs_go_beside_the_networks_only_where_that_pays():
    assert beside_pays("cuda", 16, cores=2)  # the host is idle while a GPU runs the networks
    assert beside_pays("cpu", 1, cores=2)  # the app: networks on one core fewer than the machine has
    assert not beside_pays("cpu", 2, cores=2)  # every core in the networks: no gain, more memory
    assert not beside_pays("cpu", 8, cores=4)


def test_a_reading_waits_for_the_callers_lung_search_instead_of_searching_again(phantom, monkeypatch):
    """The app hands Run AI the lungs it is still finding (a Pending): the reading waits for them,
    searches nothing itself and equals the reading with the lungs given."""
    from engine.inference.background import Pending
    v = phantom.volume
    lungs = lung_masks(v)

    def no_search(volume, cancel=None):
        raise AssertionError("the reading searched the lungs itself")
    monkeypatch.setattr(background, "lung_masks", no_search)
    waiting: Pending = Pending()
    slabs: list = []

    def on_slab(z, lab, pr):
        slabs.append(z)
        if len(slabs) == 3:  # the caller's search ends while the slabs run
            threading.Timer(0.2, waiting.set, (lungs,)).start()
    pred = _predictor().predict(v, visible_slice=30, lungs=waiting, on_slab=on_slab)
    given = _predictor().predict(v, visible_slice=30, lungs=lungs)
    assert pred.assessed and np.array_equal(pred.labels, given.labels) and pred.labels.any()
    assert pred.rules_removed == given.rules_removed
    assert np.array_equal(pred.slice_probabilities, given.slice_probabilities)

    # the caller's search found no lung: not assessed, as with its own search
    none: Pending = Pending()
    none.set(None)
    assert _predictor().predict(v, visible_slice=30, lungs=none).not_assessed

    # the lungs will not come (another scan was opened), or the reading was cancelled while waiting
    gone: Pending = Pending()
    gone.cancel()
    with pytest.raises(CancelledError):
        _predictor().predict(v, visible_slice=30, lungs=gone)
    token, stuck = CancelToken(), Pending()
    threading.Timer(0.3, token.cancel).start()
    t = time.perf_counter()
    with pytest.raises(CancelledError):
        _predictor().predict(v, visible_slice=30, lungs=stuck, cancel=token)
    assert time.perf_counter() - t < 10
