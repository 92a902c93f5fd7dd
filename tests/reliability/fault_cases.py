"""The fault matrix as data, and the injectors that produce each fault on the loopback bench.

Every case is one link x one fault x one protocol phase, with the outcome the
documentation promises (docs/reliability.md is printed from ``CASES`` by
``fault_table.py``). Faults are injected where they happen on a real bench: on the
wire by the loopback server (``world.faults[link]``, a live ``FaultConfig``), or by
the instrument itself (a SCPI error queued in the emulator, an error status from
the board's firmware). A process kill is a SIGKILL of the ``rrambench run`` process.

Phases, on the engine's timeline:

- ``configure``: the fault starts with the first message of the first step, where
  the protocol configures its instruments (SMU source and compliance, routing,
  network programming);
- ``mid-step``: the fault starts a few messages into a step that uses the link
  (``MID_STEP``): the second for iv-sweep and sample, the only one of write-verify;
- ``finalisation``: the fault starts after the last step completed, so it hits the
  engine's safe state and the closing of the run file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from instruments.macro_controller_wire import REPLY_FLAG, Op, Status, decode
from instruments.sim.scpi import ScpiError

LINKS = ("smu", "scope", "macro_controller")
FAULTS = ("timeout", "corrupt", "disconnect", "instrument-error", "kill")
PHASES = ("configure", "mid-step", "finalisation")

#: The protocol (and its small parameters) that exercises each link.
PROTOCOLS: dict[str, tuple[str, list[str]]] = {
    "smu": ("iv-sweep", ["cells=0:0:0,0:0:1", "cycles=1", "step=0.1", "delay=0"]),
    "scope": ("sample", ["samples=20", "batch=10", "steps=100", "waveforms=2"]),
    "macro_controller": ("write-verify", ["regions=0:0-3:0-3"]),
}

#: The step of each link's protocol in which a mid-step fault starts (one that uses the link),
#: and the messages on the link between that step's start and the fault.
MID_STEP = {"smu": 1, "scope": 1, "macro_controller": 0}
MID_STEP_MESSAGES = 2

BENCH_TOML = """backend = "sim"
[sim]
seed = 0
formed = true
[timeouts]
{timeouts}
"""

#: Short timeouts (s) on the faulted link once its fault is armed, so a missing reply costs
#: little test time. Every link has the long one before (the run-start snapshot, the steps
#: before the fault) and the healthy links throughout, so a loaded machine never turns a slow
#: reply into a fault.
SHORT_TIMEOUT = {"smu": 0.5, "scope": 0.5, "macro_controller": 0.1}
HEALTHY_TIMEOUT = 10.0

#: Board ops an injected firmware error spares: the host must still reach a safe state.
SPARED_OPS = frozenset({Op.SAFE_STATE, Op.STATUS, Op.IDENTIFY})


@dataclass(frozen=True)
class Expected:
    """What the run must look like after the fault."""

    status: str  # final status as read by analysis.open_run
    safe: bool | None  # world.outputs_safe() after the run (None: the process and its instruments died)
    readable: bool  # analysis.open_run reads the file
    resumable: bool  # `rrambench run --resume` finishes it (exit 0, status completed)
    note: str = ""


def expected(link: str, fault: str, phase: str) -> Expected:
    """The documented outcome of one case."""
    if fault == "kill":
        if phase == "finalisation":
            return Expected("interrupted", None, True, True,
                            "killed after the last step: every step is journalled, resume closes the file")
        return Expected("interrupted", None, True, True, "writer gone: read as interrupted; resumes from a checkpoint")
    if phase == "finalisation":
        return Expected("completed", True, True, False,
                        "data complete; an unconfirmed safe state of the link is named in `error`")
    return Expected("failed", True, True, True, "step failed with the link's error; resume redoes that step")


CASES = [(link, fault, phase) for link in LINKS for fault in FAULTS if fault != "kill" for phase in PHASES]
KILL_CASES = [("all", "kill", phase) for phase in PHASES]

#: Run-file faults: SWMR readers holding a run's file from its start to after its end
#: (``test_live_viewers.py``), and bad files handed to ``info``, ``report``, ``calibrate``,
#: ``run --resume`` and the GUI's run browser (``test_damaged_files.py``, ``tests/gui/test_run_browser.py``).
FILE_CASES = [
    ("viewer", "1 SWMR reader", "whole run"),
    ("viewer", "3 SWMR readers", "whole run"),
    *(("file", damage, "handed in") for damage in (
        "truncated to 2 KB", "truncated to 8 KB", "random bytes", "empty", "text named .h5", "folder named .h5")),
    ("file", "HDF5 retries for minutes", "handed in"),
]
#: What the first column of the table says for the run-file faults.
FILE_WHERE = {"viewer": "viewer (read-array)", "file": "file (info, report, calibrate, --resume, GUI)"}


def expected_file(link: str, fault: str) -> Expected:
    """The documented outcome of a run-file case (``status``: the run's, or the command's exit)."""
    if link == "viewer":
        return Expected("completed", None, True, False,
                        "exit 0; the end of the run is written in SWMR mode while the readers hold the "
                        "file, and they see it (`info --follow` too)")
    if fault.startswith("HDF5"):
        return Expected("exit 2", None, False, False,
                        "one line once the watched helper makes no progress for 5 s; Ctrl-C: exit 130, one line")
    return Expected("exit 2", None, False, False, "one line, within 0.2 s; `info FOLDER` lists it as damaged, "
                    "the run browser marks it and stays responsive")


# -- injectors --------------------------------------------------------------------------------
class Injector:
    """Switches one fault on for one link of a simulated bench, on cue.

    ``arm(after)`` makes the fault start with the message after ``after`` more
    messages on the link (0: with the next message); ``fire()`` starts it at once.
    Starting with a message, not with a step, keeps the fault out of the world
    checkpoints the engine saves between steps (a saved world keeps its faults). The link's server
    handler is wrapped to count messages; the wrapper is only a counter and a
    switch, the fault itself is the server's or the emulator's.
    """

    def __init__(self, bench, link: str, fault: str) -> None:
        self.world, self.link, self.fault = bench.world, link, fault
        self.server = bench._sim.servers[link]
        self.emulator = getattr(bench._sim, link)
        self.driver = getattr(bench, link)
        self.active = False
        self._countdown: int | None = None
        self._short = False
        inner = self.server.handler
        self.server.handler = lambda message: self._handle(inner, message)

    def arm(self, after: int) -> None:
        """Start the fault ``after`` messages on; called by the run's thread (between messages)."""
        self._shorten_timeout()
        self._countdown = after

    def fire(self) -> None:
        if self.active:
            return
        self._shorten_timeout()  # a no-op when armed: never from the server's thread mid-read
        self.active, self._countdown = True, None
        faults = self.world.faults[self.link]
        if self.fault == "timeout":
            faults.missing_reply_rate = 1.0
        elif self.fault == "corrupt":
            faults.corrupt_rate = 0.3
        elif self.fault == "disconnect":
            faults.disconnect_after = self.server.messages  # the next message drops the link
        elif self.fault != "instrument-error":
            raise ValueError(f"unknown fault {self.fault!r}")

    def _shorten_timeout(self) -> None:
        """The faulted link's timeout becomes :data:`SHORT_TIMEOUT` (the driver's own transport)."""
        if not self._short:
            self._short = True
            transport = self.driver._link if self.link == "macro_controller" else self.driver._io
            transport.timeout = SHORT_TIMEOUT[self.link]

    def _handle(self, inner, message: bytes) -> bytes | None:
        if self._countdown is not None:
            if self._countdown == 0:
                self.fire()
            else:
                self._countdown -= 1
        if self.active and self.fault == "instrument-error":
            return self._instrument_error(inner, message)
        return inner(message)

    def _instrument_error(self, inner, message: bytes) -> bytes | None:
        if self.link == "macro_controller":
            return self._board_error(inner, message)
        reply = inner(message)
        if b"ERR" not in message.upper():  # the instrument reports a fault after every command
            self.emulator.push_error(ScpiError(-240, "Hardware error; injected by the fault matrix"))
        return reply

    def _board_error(self, inner, message: bytes) -> bytes | None:
        frame = decode(message)
        if frame.op in SPARED_OPS:
            return inner(message)
        return self.emulator._refuse(frame.seq, frame.op | REPLY_FLAG, Status.INTERNAL, "injected firmware fault")


def write_config(folder: Path, faulted: str | None = None) -> Path:
    """A bench config with short timeouts only on the ``faulted`` link (None: long ones on every
    link; the fault matrix shortens the faulted link's when its fault is armed, :class:`Injector`)."""
    path = folder / "bench.toml"
    timeouts = {link: SHORT_TIMEOUT[link] if link == faulted else HEALTHY_TIMEOUT for link in SHORT_TIMEOUT}
    path.write_text(BENCH_TOML.format(timeouts="\n".join(f"{k} = {v}" for k, v in timeouts.items())))
    return path
