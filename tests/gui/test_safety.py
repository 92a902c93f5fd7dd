"""OUTPUTS OFF and closing the window: outputs end safe without waiting for the run's step."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from gui_helpers import RUN_TIMEOUT_MS, queue_run

from analysis import open_run
from protocols.engine.datasets import Stream
from protocols.engine.protocol import Protocol, Step
from protocols.engine.runner import RunState


class HoldSourceOn(Protocol):
    """Routes the SMU to a cell, turns its output on at 0.1 V, then holds until released.

    The holding step has no check point, like a long instrument operation: only an
    OUTPUTS OFF that does not queue behind the step can turn the source off meanwhile.
    """

    name = "hold-source-on"

    @dataclass
    class Params:
        pass

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def datasets(self):
        return [Stream("level", units="V")]

    def plan(self):
        yield Step("source on and hold", self.hold)
        yield Step("after the hold", lambda: self.record("level", 0.0))

    def hold(self) -> None:
        self.bench.macro_controller.route(0, 0, 0)
        self.bench.smu.configure_voltage_source(1e-4)
        self.bench.smu.set_voltage(0.1)
        self.bench.smu.output_on()
        self.record("level", 0.1)
        if not self.release.wait(timeout=60):
            raise TimeoutError("the test never released the hold")


def test_outputs_off_turns_the_source_off_while_the_step_still_runs(window, qtbot, sim_world):
    proto = HoldSourceOn()
    window.runner.set_running(True)
    engine = window.worker.start_run(proto, seed=1)
    qtbot.waitUntil(lambda: sim_world.outputs.smu_on, timeout=RUN_TIMEOUT_MS)
    assert not sim_world.outputs_safe()

    window.outputs_off_button.click()
    qtbot.waitUntil(lambda: window.outputs_report is not None, timeout=RUN_TIMEOUT_MS)
    assert window.outputs_report == {"failures": [], "safe": True}
    assert sim_world.outputs_safe()
    assert engine.state == RunState.RUNNING, "the step is still running: OUTPUTS OFF did not wait for it"
    assert "safe" in window.safety_label.text()

    proto.release.set()
    qtbot.waitUntil(lambda: window.last_done is not None, timeout=RUN_TIMEOUT_MS)
    assert window.last_done.state == "aborted", "OUTPUTS OFF also stops the run"
    assert open_run(window.last_done.path).steps_completed == 1
    assert sim_world.outputs_safe()


def test_closing_during_a_run_asks_aborts_and_leaves_outputs_safe(qtbot, tmp_path, sim_world):
    from gui.app import MainWindow

    win = MainWindow(None, tmp_path / "runs", world=sim_world)
    qtbot.addWidget(win)
    win.show()
    win.connect_bench("sim")
    qtbot.waitUntil(lambda: win.worker.connected, timeout=RUN_TIMEOUT_MS)
    asked = []
    win.confirm_close = lambda _w: (asked.append("no"), False)[1]
    queue_run(win, "read-array", macros=[0, 1, 2, 3], repeats=100_000)
    qtbot.waitUntil(lambda: win.worker.engine is not None and win.worker.engine.state == RunState.RUNNING,
                    timeout=RUN_TIMEOUT_MS)
    assert not win.close(), "answering No keeps the window and the run"
    assert asked == ["no"] and win.worker.busy

    win.confirm_close = lambda _w: (asked.append("yes"), True)[1]
    assert win.close()
    assert asked == ["no", "yes"]
    engine = win.worker.engine
    assert engine.state == RunState.ABORTED
    assert open_run(engine.path).status == "aborted"
    assert sim_world.outputs_safe()
    assert not win.worker.connected
