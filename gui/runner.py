"""Protocol runner: choose a protocol, fill its form, dry-run, queue runs, pause/resume/abort."""

from __future__ import annotations

from dataclasses import dataclass

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from gui.param_form import ParamForm
from instruments.limits import Limits
from protocols.engine.bench_shape import BenchShape
from protocols.engine.progress import ProgressEvent, format_duration
from protocols.engine.protocol import Protocol
from protocols.engine.registry import registry

SEED_MAX = 2**31 - 1


@dataclass
class QueuedRun:
    """A validated protocol waiting for the bench, and the run seed to use (None: random)."""

    protocol: Protocol
    seed: int | None

    def label(self) -> str:
        defaults = {s.name: s.default for s in self.protocol.param_specs()}
        changed = {k: v for k, v in self.protocol.parameters().items() if v != defaults[k]}
        text = ", ".join(f"{k}={v}" for k, v in changed.items())
        return f"{self.protocol.name}  {text}".strip()


class RunnerPanel(QWidget):
    """Parameter form, dry-run, run queue and run controls.

    ``run_requested``: a :class:`QueuedRun` is ready and the bench is idle (the main
    window starts it); ``pause_requested``/``resume_requested``/``abort_requested``.
    """

    run_requested = pyqtSignal(object)
    pause_requested = pyqtSignal()
    resume_requested = pyqtSignal()
    abort_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None, *, protocols: dict[str, type[Protocol]] | None = None) -> None:
        super().__init__(parent)
        # the window passes the config's user protocols too (gui.app.protocols_of)
        self.protocols = protocols if protocols is not None else registry()
        self.limits: Limits | None = None
        self.shape: BenchShape | None = None  # the bench the inputs are checked against (Protocol.validate)
        self.queue: list[QueuedRun] = []
        self.running = False
        self.choice = QComboBox()
        for name, cls in self.protocols.items():
            self.choice.addItem(name)
            self.choice.setItemData(self.choice.count() - 1, cls.summary(), 3)  # 3: Qt.ToolTipRole
        self.choice.currentTextChanged.connect(self.select_protocol)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.form: ParamForm | None = None
        self.seed = QSpinBox()
        self.seed.setRange(-1, SEED_MAX)
        self.seed.setValue(-1)
        self.seed.setSpecialValueText("random")
        self.seed.setToolTip("run seed (per-step random streams derive from it); 'random' draws one. The "
                             "world seed is the connected simulated bench's ([sim] seed); both are recorded")
        self.estimate = QLabel("")
        self.estimate.setWordWrap(True)

        self.dry_button = QPushButton("Dry run")
        self.run_button = QPushButton("Run / queue")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.abort_button = QPushButton("Abort")
        self.dry_button.clicked.connect(self.dry_run)
        self.run_button.clicked.connect(self.submit)
        self.pause_button.clicked.connect(lambda _=False: self.pause_requested.emit())
        self.resume_button.clicked.connect(lambda _=False: self.resume_requested.emit())
        self.abort_button.clicked.connect(lambda _=False: self.abort_requested.emit())
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setFormat("%p%")
        self.progress_label = QLabel("idle")
        self.queue_list = QListWidget()
        self.queue_list.setMaximumHeight(80)
        remove = QPushButton("Remove from queue")
        remove.clicked.connect(self.remove_selected)

        head = QHBoxLayout()
        head.addWidget(QLabel("Protocol"))
        head.addWidget(self.choice, 1)
        head.addWidget(QLabel("Seed"))
        head.addWidget(self.seed)
        controls = QHBoxLayout()
        for button in (self.dry_button, self.run_button, self.pause_button, self.resume_button, self.abort_button):
            controls.addWidget(button)
        queue_box = QGroupBox("Queue")
        qlayout = QVBoxLayout(queue_box)
        qlayout.addWidget(self.queue_list)
        qlayout.addWidget(remove)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(head)
        layout.addWidget(self.summary)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.estimate)
        layout.addLayout(controls)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_label)
        layout.addWidget(queue_box)
        if self.protocols:
            self.select_protocol(self.choice.currentText())
        self.set_running(False)

    # -- form ------------------------------------------------------------------------------
    def select_protocol(self, name: str) -> ParamForm:
        """Show the form of protocol ``name``."""
        cls = self.protocols[name]
        if self.choice.currentText() != name:
            blocked = self.choice.blockSignals(True)  # its signal would call back here and build the form twice
            self.choice.setCurrentText(name)
            self.choice.blockSignals(blocked)
        self.form = ParamForm(cls)
        self.scroll.setWidget(self.form)
        self.summary.setText(f"<i>{cls.summary()}</i>")
        self.estimate.setText("")
        return self.form

    def dry_run(self) -> Protocol | None:
        """Validate against the limits and show steps and estimated duration; touches no instrument."""
        proto = self.form.protocol(self.limits, self.shape)
        if proto is None:
            self.estimate.setText("")
            return None
        steps = list(proto.plan())
        self.estimate.setText(f"valid: {len(steps)} steps, estimated {format_duration(proto.estimate_duration())}"
                              " (bench time)")
        return proto

    def submit(self) -> QueuedRun | None:
        """Validate the form and queue the run; starts it at once when the bench is idle."""
        proto = self.form.protocol(self.limits, self.shape)
        if proto is None:
            return None
        item = QueuedRun(proto, None if self.seed.value() < 0 else self.seed.value())
        self.queue.append(item)
        self.queue_list.addItem(item.label())
        self.start_next()
        return item

    def remove_selected(self) -> None:
        row = self.queue_list.currentRow()
        if row >= 0:
            self.queue_list.takeItem(row)
            del self.queue[row]

    def start_next(self) -> None:
        """Hand the next queued run over if none is running."""
        if self.running or not self.queue:
            return
        item = self.queue.pop(0)
        self.queue_list.takeItem(0)
        self.set_running(True)
        self.run_requested.emit(item)

    # -- run state ---------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self.running = running
        for button in (self.pause_button, self.resume_button, self.abort_button):
            button.setEnabled(running)
        if not running:
            self.progress_label.setText("idle" if not self.queue else f"idle, {len(self.queue)} queued")

    def show_progress(self, event: ProgressEvent) -> None:
        self.progress_bar.setValue(int(round(1000 * event.fraction)))
        step = min(event.index + 1, event.total)
        self.progress_label.setText(f"{event.state}: step {step}/{event.total} {event.name}   "
                                    f"ETA {format_duration(event.eta)}")

    def show_done(self, state: str, error: str) -> None:
        self.set_running(False)
        self.progress_label.setText(f"last run {state}" + (f": {error}" if error else ""))
        if state == "completed":
            self.progress_bar.setValue(1000)
