"""The window drives the simulated bench: connect, read-array into the maps, write-verify aborted."""

from __future__ import annotations

import numpy as np
import pytest
from gui_helpers import RUN_TIMEOUT_MS, queue_run

from analysis import open_run
from protocols.engine.runner import RunState


def test_connect_shows_identities_limits_and_every_macro_map(window, sim_world):
    info = window.worker.info
    assert info.simulated and info.n_macros == sim_world.n_macros
    assert "2450" in window.bench_panel.identity_labels["smu"].text()
    assert window.bench_panel.resource_labels["macro_controller"].text().startswith("socket://127.0.0.1:")
    assert window.bench_panel.limits.rowCount() == len(info.limits)
    image = window.maps.images[0].image  # uS
    true_us = sim_world.conductance(0) * 1e6
    assert np.median(np.abs(image - true_us)) < 0.1 * np.median(true_us), "the map shows the array's conductance"


def test_read_array_run_draws_the_read_map_while_it_runs(window, qtbot):
    drawn = []  # (macro, map) drawn before the run ended
    ended = []
    window.bridge.map_updated.connect(lambda m, g: drawn.append((m, np.array(g))) if not ended else None)
    window.bridge.notice.connect(lambda kind, _p: ended.append(kind) if kind == "run_done" else None)
    queue_run(window, "read-array", macros=[5], repeats=3)
    qtbot.waitUntil(lambda: window.last_done is not None, timeout=RUN_TIMEOUT_MS)
    assert window.last_done.state == "completed"
    run = open_run(window.last_done.path)
    recorded = run.read("conductance")
    assert recorded.shape == (3, 32, 32)
    live = [g for m, g in drawn if m == 5]
    assert live, "the map of macro 5 was redrawn from the run's data"
    assert any(np.allclose(g, recorded[k], rtol=1e-6) for g in live for k in range(3))
    assert window.runner.progress_bar.value() == 1000


def test_write_verify_aborted_from_the_gui_ends_aborted_with_outputs_safe(window, qtbot, sim_world):
    queue_run(window, "write-verify", regions=["1:0-7:0-7"], tolerance=0.05e-6, max_pulses=1000, reads=8)
    qtbot.waitUntil(lambda: window.worker.engine is not None
                    and window.worker.engine.state == RunState.RUNNING, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.runner.progress_label.text().startswith("running"), timeout=RUN_TIMEOUT_MS)
    assert window.runner.abort_button.isEnabled()
    window.runner.abort_button.click()
    qtbot.waitUntil(lambda: window.last_done is not None, timeout=RUN_TIMEOUT_MS)
    assert window.last_done.state == "aborted"
    assert open_run(window.last_done.path).status == "aborted"
    assert window.last_done.outputs_safe is True
    assert sim_world.outputs_safe()
    assert "aborted" in window.runner.progress_label.text()


def test_runs_queue_up_and_run_one_after_another(window, qtbot):
    queue_run(window, "read-array", macros=[0], repeats=200)
    queue_run(window, "read-array", macros=[1], repeats=1)
    assert len(window.runner.queue) == 1 and window.runner.queue_list.count() == 1
    qtbot.waitUntil(lambda: len(list(window.worker.data_dir.glob("*.h5"))) == 2 and window.last_done is not None
                    and window.last_done.path.name.endswith(".h5") and not window.worker.busy
                    and not window.runner.queue, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: not window.runner.running, timeout=RUN_TIMEOUT_MS)
    statuses = sorted(open_run(p).status for p in window.worker.data_dir.glob("*.h5"))
    assert statuses == ["completed", "completed"]


@pytest.mark.slow
def test_pause_holds_the_run_and_resume_finishes_it(window, qtbot):
    queue_run(window, "read-array", macros=[0, 1], repeats=2000)
    qtbot.waitUntil(lambda: window.worker.engine is not None and window.worker.engine.state == RunState.RUNNING,
                    timeout=RUN_TIMEOUT_MS)
    window.runner.pause_button.click()
    qtbot.waitUntil(lambda: window.worker.engine.state == RunState.PAUSED, timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.runner.progress_label.text().startswith("paused"), timeout=RUN_TIMEOUT_MS)
    assert window.last_done is None
    window.runner.resume_button.click()
    qtbot.waitUntil(lambda: window.last_done is not None, timeout=RUN_TIMEOUT_MS)
    assert window.last_done.state == "completed"
    assert open_run(window.last_done.path).steps_completed == 2
