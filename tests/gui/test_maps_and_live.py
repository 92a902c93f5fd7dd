"""Clicking a map cell selects it for read, I-V and programming; live plots follow the protocol."""

from __future__ import annotations

import pytest
from gui_helpers import RUN_TIMEOUT_MS, queue_run
from PyQt5.QtCore import QPointF, Qt
from PyQt5.QtTest import QTest


def _click_cell(window, macro: int, row: int, col: int) -> None:
    image = window.maps.images[macro]
    view = window.maps.view
    scene_pos = image.mapToScene(QPointF(col + 0.5, row + 0.5))
    QTest.mouseClick(view.viewport(), Qt.LeftButton, Qt.NoModifier, view.mapFromScene(scene_pos))


def test_clicking_a_map_cell_selects_it_and_read_cell_reads_it_on_the_worker(window, qtbot, sim_world):
    _click_cell(window, 3, 7, 21)
    assert window.maps.selected == (3, 7, 21)
    assert "macro 3, row 7, col 21" in window.maps.selection_label.text()
    window.maps._act("read")
    qtbot.waitUntil(lambda: "read of (3, 7, 21)" in window.maps.cell_value.text(), timeout=RUN_TIMEOUT_MS)
    shown_us = float(window.maps.cell_value.text().split(":")[1].split()[0])
    true_us = sim_world.conductance(3)[7, 21] * 1e6
    assert abs(shown_us - true_us) < 0.2 * true_us + 0.5


def test_iv_on_the_selected_cell_fills_the_runner_and_draws_iv_loops(window, qtbot):
    window.maps.select(0, 2, 3)
    window.maps._act("iv")
    assert window.runner.choice.currentText() == "iv-sweep"
    assert window.runner.form.fields["cells"].text() == "0:2:3"
    window.runner.form.set_value("cycles", 2)
    window.runner.run_button.click()
    qtbot.waitUntil(lambda: window.last_done is not None, timeout=RUN_TIMEOUT_MS)
    assert window.last_done.state == "completed", window.last_done.error
    assert window.live.current_tab == "I-V"
    assert 1 <= len(window.live.iv_loops) <= 2, "each sweep is drawn as one loop"


def test_write_verify_shows_convergence_and_the_error_histogram_and_redraws_maps(window, qtbot):
    window.maps.select(4, 0, 0)
    window.maps._act("pulse")
    assert window.runner.choice.currentText() == "write-verify"
    assert window.runner.form.fields["regions"].text() == "4:0:0"
    window.runner.form.set_value("regions", ["4:0-3:0-3"])
    maps_before = window.maps.updates
    window.runner.run_button.click()
    qtbot.waitUntil(lambda: window.last_done is not None, timeout=RUN_TIMEOUT_MS)
    assert window.last_done.state == "completed", window.last_done.error
    assert window.live.current_tab == "Convergence"
    qtbot.waitUntil(lambda: "rms_error" in window.live.streams, timeout=RUN_TIMEOUT_MS)
    assert len(window.live.progress_curve.xy) >= 2, "progress was plotted while the run went on"
    assert window.live.hist_plot.titleLabel.text.startswith(("error", "programmed"))
    qtbot.waitUntil(lambda: window.maps.updates >= maps_before + window.worker.info.n_macros,
                    timeout=RUN_TIMEOUT_MS)


@pytest.mark.slow
def test_sample_run_grows_the_scatter_and_shows_the_recorded_scope_traces(window, qtbot):
    queue_run(window, "sample", samples=200, batch=100, waveforms=2)
    qtbot.waitUntil(lambda: window.last_done is not None, timeout=RUN_TIMEOUT_MS)
    assert window.last_done.state == "completed", window.last_done.error
    window.bridge.pump()
    assert window.live.current_tab == "Scatter"
    assert len(window.live.points["final"]) == 200, "both batches of analog samples are on the scatter"
    assert "software" in window.live.points
    assert window.scope.frames >= 1 and window.scope.trace_names, "the run's scope traces were drawn"
