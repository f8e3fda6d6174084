"""A progress bar with a Cancel button for the status bar, fed by a :class:`TaskRunner`."""

from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from ..state.tasks import Task, TaskRunner


class ProgressPanel(QWidget):
    """Shows the most recent running task: its title, message, progress and a Cancel button.

    Hidden when no task runs.
    """

    def __init__(self, runner: TaskRunner, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._task: Optional[Task] = None
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setFixedWidth(220)
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this task; nothing it started is kept")
        self.cancel_button.clicked.connect(self.cancel)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel_button)
        runner.started.connect(self._on_started)
        runner.ended.connect(self._on_ended)
        self.hide()

    @property
    def task(self) -> Optional[Task]:
        """The task shown, or ``None``."""
        return self._task

    def cancel(self) -> None:
        """Cancel the task shown."""
        if self._task is not None:
            self._task.cancel()
            self.label.setText(f"{self._task.title}: cancelling…")
            self.cancel_button.setEnabled(False)

    def _on_started(self, task: Task) -> None:
        self._task = task
        task.signals.progress.connect(self._on_progress)
        self.label.setText(f"{task.title}…")
        self.bar.setValue(0)
        self.cancel_button.setEnabled(True)
        self.show()

    def _on_progress(self, fraction: float, message: str) -> None:
        task = self._task
        if task is None or self.sender() is not task.signals:
            return
        self.bar.setValue(int(round(fraction * 1000)))
        self.label.setText(f"{task.title}: {message}" if message else f"{task.title}…")

    def _on_ended(self, task: Task) -> None:
        if task is not self._task:
            return
        running = self._runner.active
        if running:
            self._on_started(running[-1])
        else:
            self._task = None
            self.hide()
