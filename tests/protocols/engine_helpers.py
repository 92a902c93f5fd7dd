"""Protocols for engine tests: steps gated by the test, so every state is reachable on cue."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from protocols.engine.datasets import Constant, PulseHistory, Stream, Traces
from protocols.engine.protocol import Protocol, Step, param
from protocols.engine.runner import RunEngine, RunState

WAIT = 10.0  # s, generous bound for a thread to reach a state


class Gated(Protocol):
    """Each step waits (calling check()) until the test opens its gate, then records."""

    @dataclass
    class Params:
        steps: int = param(3, limits=(1, 50), help="number of steps")
        fail_at: int = param(-1, limits=(-1, 50), help="step that raises (-1: none)")
        interrupt_at: int = param(-1, limits=(-1, 50), help="step that raises KeyboardInterrupt")

    def __init__(self, params=None) -> None:
        super().__init__(params)
        self.entered = [threading.Event() for _ in range(self.p.steps)]
        self.gates = [threading.Event() for _ in range(self.p.steps)]

    def datasets(self):
        return [Stream("value", units="V", axes=("step",)), Stream("step", units="")]

    def plan(self) -> Iterator[Step]:
        for i in range(self.p.steps):
            yield Step(f"step {i}", partial(self.work, i), estimate=1.0)

    def work(self, i: int) -> None:
        self.entered[i].set()
        while not self.gates[i].wait(0.001):
            self.check()
        if i == self.p.fail_at:
            raise RuntimeError(f"boom at step {i}")
        if i == self.p.interrupt_at:
            raise KeyboardInterrupt
        self.record("value", self.rng.normal())
        self.record("step", i)

    def open_all(self) -> None:
        for gate in self.gates:
            gate.set()


class Everything(Protocol):
    """Records one of every kind of dataset per step (streams, traces, pulses)."""

    @dataclass
    class Params:
        steps: int = param(3, limits=(1, 50), help="number of steps")

    def datasets(self):
        return [
            Stream("g", units="S", shape=(2, 3), axes=("t", "row", "col")),
            Stream("t", units="s"),
            Constant("row", units="", data=np.arange(2)),
            Constant("col", units="", data=np.arange(3)),
            Traces("ch1", points=50, dtype="i1", channel="CHAN1"),
            Traces("ch2", points=20, dtype="i2", channel="CHAN2"),
            PulseHistory(),
        ]

    def plan(self) -> Iterator[Step]:
        for i in range(self.p.steps):
            yield Step(f"step {i}", partial(self.work, i))

    def work(self, i: int) -> None:
        self.record("g", self.rng.uniform(1e-6, 65e-6, size=(2, 3)))
        self.record("t", float(i))
        self.record_trace("ch1", np.arange(50, dtype=np.int8) - 25, PREAMBLE)
        self.record_trace("ch2", np.arange(20, dtype=np.int16) * 100, PREAMBLE)
        self.record_pulses(macro=0, row=np.arange(4), col=i, polarity=1, amplitude=1.1, width=1e-7,
                           gate=1.2, read=np.linspace(5e-6, 8e-6, 4), time=0.5 * i)


PREAMBLE = {"x_increment": 1e-6, "x_origin": -2e-5, "x_reference": 0.0,
            "y_increment": 0.02, "y_origin": 0.1, "y_reference": 0.0}


def start(engine: RunEngine) -> threading.Thread:
    """Run the engine on a worker thread (like the GUI) and wait until it runs."""
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    assert engine.wait_for({RunState.RUNNING, *RunState}, WAIT)
    return thread


def finish(thread: threading.Thread) -> None:
    thread.join(WAIT)
    assert not thread.is_alive(), "engine thread did not end"


def wait(event: threading.Event) -> None:
    assert event.wait(WAIT), "step never started"


def new_engine(tmp_path: Path, protocol: Protocol, seed: int = 7) -> RunEngine:
    return RunEngine(protocol, None, tmp_path / "run.h5", seed=seed)


def settle() -> None:
    """Give the run thread a moment (used only where nothing observable changes)."""
    time.sleep(0.05)
