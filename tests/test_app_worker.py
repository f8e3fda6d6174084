"""app.state.tasks: engine calls on a worker thread; result, yields, error and cancel reach the GUI thread."""

from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread

from app.state.tasks import Task, TaskRunner, error_message
from engine.errors import CorruptFileError
from engine.progress import check_cancel

pytestmark = pytest.mark.gui


def slow_sum(n, progress=None, cancel=None, delay=0.001):
    total = 0
    for i in range(n):
        check_cancel(cancel)
        total += i
        progress((i + 1) / n, f"step {i + 1}")
        time.sleep(delay)
    return total, threading.get_ident()


def test_result_and_progress_arrive_on_gui_thread(qtbot, qapp):
    runner = TaskRunner()
    task = Task(slow_sum, 20, title="Summing")
    seen = []
    task.signals.progress.connect(lambda f, m: seen.append((f, m, QThread.currentThread() is qapp.thread())))
    with qtbot.waitSignal(task.signals.finished, timeout=10000):
        with qtbot.waitSignal(task.signals.result, timeout=10000) as res:
            runner.start(task)
    total, worker_thread = res.args[0]
    assert total == sum(range(20))
    assert worker_thread != threading.get_ident()
    qtbot.waitUntil(lambda: len(seen) == 20)
    assert seen[-1][:2] == (1.0, "step 20") and all(on_gui for _, _, on_gui in seen)
    qtbot.waitUntil(lambda: runner.active == ())


def test_cancel_is_not_an_error(qtbot):
    runner = TaskRunner()
    task = Task(slow_sum, 100000, delay=0.0005)
    errors = []
    task.signals.error.connect(errors.append)
    with qtbot.waitSignal(task.signals.cancelled, timeout=10000):
        runner.start(task)
        task.cancel()
    assert errors == []


def test_errors_are_delivered_with_readable_messages(qtbot):
    def broken(progress=None, cancel=None):
        raise CorruptFileError("scan.nii is damaged: re-export it from the scanner.")

    runner = TaskRunner()
    task = Task(broken)
    with qtbot.waitSignal(task.signals.error, timeout=10000) as err:
        runner.start(task)
    assert error_message(err.args[0]) == "scan.nii is damaged: re-export it from the scanner."
    assert error_message(ValueError("x")).startswith("Unexpected error (ValueError): x.")


def test_progress_panel_shows_and_cancels(qtbot):
    from app.widgets.progress import ProgressPanel

    runner = TaskRunner()
    panel = ProgressPanel(runner)
    qtbot.addWidget(panel)
    task = Task(slow_sum, 100000, title="Opening scan", delay=0.0005)
    with qtbot.waitSignal(task.signals.cancelled, timeout=10000):
        runner.start(task)
        assert not panel.isHidden() and panel.task is task
        qtbot.waitUntil(lambda: panel.bar.value() > 0, timeout=5000)
        assert panel.label.text().startswith("Opening scan")
        panel.cancel_button.click()
    qtbot.waitUntil(lambda: panel.isHidden())


def test_shutdown_cancels_and_releases_callbacks(qtbot):
    import gc
    import weakref

    class Holder:
        pass

    holder = Holder()
    ref = weakref.ref(holder)
    runner = TaskRunner()
    task = Task(slow_sum, 100000, delay=0.0005)
    runner.start(task, on_result=lambda out, h=holder: None)
    del holder
    runner.shutdown(5000)
    assert task.token.is_set() and runner.active == ()
    del task
    gc.collect()
    assert ref() is None


def test_finished_tasks_release_their_arguments_and_callbacks(qtbot):
    import gc
    import weakref

    import numpy as np

    big = np.zeros(1000)
    ref = weakref.ref(big)
    ends = []
    runner = TaskRunner()
    task = Task(lambda arr, progress=None, cancel=None: float(arr.sum()), big)
    with qtbot.waitSignal(task.signals.finished, timeout=10000):
        runner.start(task, on_result=lambda out, keep=big: ends.append(out))
        # connected after the runner's own slot (results are queued: it cannot have ended yet)
        task.signals.finished.connect(lambda: ends.append("late slot"))
    del big
    qtbot.waitUntil(lambda: task.fn is None, timeout=5000)
    gc.collect()
    assert ends == [0.0, "late slot"] and ref() is None


def test_on_finished_reaches_a_task_that_ended_before_the_gui_thread_looked(qtbot, qapp):
    """A queued signal reaches only the slots connected when it was emitted: callbacks given to
    run() are connected before the start, a connection made after a quick task ended is not called."""
    runner = TaskRunner()
    got, late = [], []
    task = runner.run(lambda progress=None, cancel=None: 7, title="Quick", on_result=got.append,
                      on_finished=lambda: got.append("end"))
    assert runner.wait(10000)  # the worker ended (and emitted) before the GUI thread ran any slot
    task.signals.finished.connect(lambda: late.append("late"))  # what the open flow used to do
    qtbot.waitUntil(lambda: got == [7, "end"], timeout=5000)
    for _ in range(5):
        qapp.processEvents()
    assert late == [] and got == [7, "end"]


def test_open_flow_is_not_left_opening_after_a_quick_open(qtbot, tmp_path):
    import nibabel as nib
    import numpy as np

    from app.main_window import MainWindow

    path = tmp_path / "tiny.nii.gz"
    nib.save(nib.Nifti1Image(np.full((16, 16, 4), -800, np.int16), np.eye(4)), str(path))
    w = MainWindow(interactive_errors=False)
    qtbot.addWidget(w)
    for _ in range(3):  # opens in a row, each quick
        w.scan_io.open_path(str(path))
        qtbot.waitUntil(lambda: not w.scan_io.opening, timeout=10000)
    assert w.session.volume is not None and w.session.volume.shape[-1] == 16


def test_a_task_that_ends_after_its_runner_is_gone_reports_to_nobody(qtbot, qapp):
    """A runner deleted with its owner (a window or flow closed) while a task still runs: the task's end
    reaches no deleted runner (CI saw 'Signal source has been deleted' raised in the Qt event loop)."""
    from PySide6.QtWidgets import QWidget

    owner = QWidget()
    runner = TaskRunner(owner)
    gate = threading.Event()
    task = Task(lambda progress=None, cancel=None: gate.wait(10) and 7)
    results = []
    runner.start(task, on_result=results.append)
    owner.deleteLater()
    qtbot.waitUntil(lambda: not __import__("shiboken6").isValid(runner), timeout=5000)
    with qtbot.waitSignal(task.signals.finished, timeout=10000):
        gate.set()
    qtbot.wait(20)  # the queued release runs; nothing may raise in the event loop (pytest-qt fails the test)
    assert results == [] and task.token.is_set()  # cancelled and released with the runner
