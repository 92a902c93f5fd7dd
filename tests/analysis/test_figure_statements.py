"""Figures state only true things (issue 17): the I-V figure marks the protocol's RESET onset,
levels are separable by a stated rule with failed cells left out, axes ignore a stuck cell and
count it, every cycle drawn or the figure says how many, no label cut off, one definition of
the demo's and the report's figures, analog and software told apart, µS and ±, and the
write-verify panels of a sample run show its pulse table."""

from __future__ import annotations

import numpy as np
import pytest
from figure_checks import data_axes
from matplotlib.figure import Figure
from matplotlib.image import imread
from report_runs import run_file

from analysis import device_metrics as dm
from analysis import open_run
from analysis.figures import levels, retention, samples, style
from analysis.report import report_run, sections


def _figures(path) -> dict[str, Figure]:
    with style.context():
        return {stem: fig for sec in sections(open_run(path)).values() for stem, fig in sec.figures}


def _footnote(fig: Figure) -> str:
    """The text under the panels (figure-level texts other than the title)."""
    return "\n".join(t.get_text() for t in fig.texts)


def _all_text(fig: Figure) -> list[str]:
    """Every piece of text a figure shows: titles, axis labels, tick labels, legends, notes."""
    out = [fig.get_suptitle(), _footnote(fig)]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_title("left"), ax.get_xlabel(), ax.get_ylabel()]
        out += [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return out


# -- 1, 4: the I-V figure ------------------------------------------------------------------------
def test_iv_figure_marks_the_reset_onset_the_protocol_records_and_says_what_it_marks():
    path = run_file("iv-sweep", cycles=12)
    run = open_run(path)
    lin, log = data_axes(_figures(path)["iv_loops"])
    marks = {ln.get_label().rsplit(" ", 2)[0]: ln.get_xdata()[0] for ln in lin.lines
             if not ln.get_label().startswith("cycle")}
    assert set(marks) == {"SET", "RESET onset"}
    assert marks["RESET onset"] == pytest.approx(np.nanmedian(run.read("v_reset")), abs=1e-9)
    assert marks["SET"] == pytest.approx(np.nanmedian(run.read("v_set")), abs=1e-9)
    assert -0.95 < marks["RESET onset"] < -0.7, "the onset, not the largest drop of log G (-1.1 V and below)"
    note = _footnote(_figures(path)["iv_loops"])
    assert "RESET onset (first point of the falling negative branch where I/V drops below 90 %" in note


def test_iv_figure_says_how_many_of_its_cycles_it_draws():
    fig = _figures(run_file("iv-sweep", cycles=12))["iv_loops"]
    lin, _ = data_axes(fig)
    drawn = [ln.get_label() for ln in lin.lines if ln.get_label().startswith("cycle")]
    assert len(drawn) == 10 and drawn[0] == "cycle 0" and drawn[-1] == "cycle 11", "spread over all cycles"
    assert "10 of 12 cycles drawn" in _footnote(fig) and "all 12 analysed" in _footnote(fig)
    few = _figures(run_file("iv-sweep"))["iv_loops"]  # 3 cycles: all drawn, nothing to say
    assert "cycles drawn" not in _footnote(few)


def test_the_iv_parameters_are_the_protocols_switching_voltages():
    from protocols.characterization import iv_sweep

    assert iv_sweep.switching_voltages is dm.switching_voltages, "one definition"
    up = np.arange(0.0, 1.5, 0.02)
    v = np.concatenate([up, up[::-1], -up, -up[::-1]])
    on = np.concatenate([up >= 1.0, np.ones(up.size, bool), up < 0.8, np.zeros(up.size, bool)])
    i = np.clip(v * np.where(on, 100e-6, 5e-6), -1e-4, 1e-4)
    p = dm.iv_parameters(v, i, compliance=1e-4)
    assert (p.set_voltage, p.reset_voltage) == pytest.approx(dm.switching_voltages(v, i, 1e-4))


# -- 2: level separability ---------------------------------------------------------------------------
def _levels_with_a_stuck_cell(per_level: int = 16):
    """64 levels 2..65 µS, errors within the ±0.4 µS write-verify band; one cell of level 27 stuck
    at 1.3 µS (what the default multilevel run shows)."""
    rng = np.random.default_rng(1)
    target = np.linspace(2e-6, 65e-6, 64)
    level = np.repeat(np.arange(64), per_level)
    g = target[level] + rng.uniform(-0.4e-6, 0.4e-6, level.size)
    stuck = np.zeros(level.size, bool)
    k = np.flatnonzero(level == 27)[0]
    g[k], stuck[k] = 1.3e-6, True
    return g, level, target, stuck


def test_a_stuck_cell_is_counted_apart_and_the_stated_rule_finds_every_level_separable():
    g, level, target, stuck = _levels_with_a_stuck_cell()
    stats = dm.level_separability(g, level, target, failed=stuck)
    assert stats.separable == 64 and stats.failed_cells == 1 and stats.cells == g.size - 1
    assert "at most 1 % of their cells" in stats.rule and "left out" in stats.rule
    with_stuck = dm.level_separability(g, level, target)
    assert with_stuck.separable < 64 and with_stuck.failed_cells == 0, "the stuck cell spoils levels 0 and 26-28"
    crossing = g.copy()
    crossing[np.flatnonzero(level == 10)[:2]] = target[11]  # 2 of 32 cells read as the next level
    assert dm.level_separability(crossing, level, target, failed=stuck).separable == 62


def test_levels_figure_states_the_rule_and_the_failed_cells():
    g, level, target, stuck = _levels_with_a_stuck_cell()
    with style.context():
        fig = levels.level_histograms(g, level, target, failed=stuck)
    hist, lin = data_axes(fig)
    assert hist.get_title() == "64 programmed levels: 64 separable"
    note = _footnote(fig)
    assert "Separable: 64 of 64 levels. Rule: two adjacent levels are separable when at most 1 %" in note
    assert "1 cell failed to program" in note
    means = lin.containers[0].lines[0].get_ydata()
    assert np.allclose(means, target * 1e6, atol=0.4), "the stuck cell is not in level 27's mean"


def test_multilevel_report_and_outcome_count_separable_levels_without_the_failed_cells():
    path = run_file("multilevel", per_level=8)
    stats = sections(open_run(path))["programming"].metrics["levels"]
    run = open_run(path)
    failed = run.read("stuck")[-1].astype(bool) | ~run.read("converged")[-1].astype(bool)
    assert stats["failed_cells"] == int(failed.sum()) and stats["levels"] == 64
    assert stats["cells"] == failed.size - failed.sum()
    assert "at most 1 %" in stats["rule"]
    assert run.outcome["separable_levels"]["value"] == stats["separable"], "the protocol's outcome: same rule"
    assert run.outcome["failed_cells"]["value"] == stats["failed_cells"]


# -- 3: the retention error axis --------------------------------------------------------------------
def test_retention_error_axis_ignores_a_stuck_cell_and_counts_it():
    rng = np.random.default_rng(0)
    err = rng.normal(0, 0.3e-6, (4, 500))
    err[:, 7] = -50e-6  # stuck at its floor
    failed = np.zeros(500, bool)
    failed[7] = True
    with style.context():
        fig = retention.error_distributions(np.array([1.0, 10, 100, 1000]), err, failed=failed)
    (ax,) = data_axes(fig)
    lo, hi = ax.get_xlim()
    assert -2 < lo < -0.5 and 0.5 < hi < 2, "µS: the axis spans the cells, not the stuck one"
    assert "1 cell beyond it at some time shown, not drawn (-50 to" in _footnote(fig)
    assert "1 of them failed to program" in _footnote(fig)


def test_retention_spread_and_fit_leave_the_failed_cells_out_and_say_so():
    path = run_file("retention")
    run = open_run(path)
    failed = run.read("stuck")[-1].astype(bool) | ~run.read("converged")[-1].astype(bool)
    sec = sections(run)["retention"]
    assert sec.metrics["failed_cells_left_out"] == int(failed.sum())
    g = run.read("conductance")[:, ~failed]
    fit = dm.retention_fit(run.read("time_after"), g, run.read("level")[~failed])
    assert sec.metrics["retention_fit"]["slope_per_decade"] == pytest.approx(fit.slope_per_decade)
    with style.context():
        fig = retention.retention_curves(np.array([1.0, 10.0]), np.ones((2, 4)) * 1e-5, None, left_out=2)
    assert "2 cells that failed to program (stuck or not converged) left out" in _footnote(fig)


# -- 5: no label cut off -----------------------------------------------------------------------------
def test_time_slices_saved_without_cut_off_labels(tmp_path):
    """Equal-aspect panels in a short figure (the demo's time slices): the saved PNG has white
    margins all round, so no tick or axis label runs off its edge."""
    rng = np.random.default_rng(0)
    with style.context():
        fig = samples.time_slices(np.linspace(0, 1.5e-3, 50), rng.normal(0, 1, (50, 100, 2)), unit="s",
                                  reference=rng.normal(0, 0.7, (500, 2)))
        png = style.save(fig, tmp_path / "slices.png")
    img = imread(png)[..., :3]
    for edge in (img[:2], img[-2:], img[:, :2], img[:, -2:]):
        assert edge.min() > 0.95, "ink at the edge of the image: something is cut off"


# -- 6, 7: the demo's figures are the report's ------------------------------------------------------
@pytest.mark.slow
def test_demo_and_report_draw_the_same_weights_conductances_and_samples_figures(tmp_path):
    from protocols.diffusion.demo_figures import draw_figures

    program, sample = run_file("program-model"), run_file("sample")
    demo = {p.stem: p for p in draw_figures(program, sample, tmp_path / "demo")}
    report = {p.stem: p for p in report_run(program, tmp_path / "report").figures}
    for stem in ("weights", "conductances"):
        assert np.array_equal(imread(demo[stem]), imread(report[stem])), f"{stem}.png differs"
    assert "samples" in demo and "samples" in {p.stem for p in report_run(sample, tmp_path / "rs").figures}


def test_analog_and_software_samples_differ_in_colour_and_marker_with_a_legend():
    fig = _figures(run_file("sample"))["samples"]
    axes = data_axes(fig)
    assert [ax.get_title().split(" (")[0] for ax in axes] == [
        "initial noise", "analog solver", "software baseline", "analog and software overlaid"]
    overlay = {ln.get_label(): ln for ln in axes[-1].lines}
    analog, software = overlay["analog solver"], overlay["software baseline"]
    assert analog.get_color() != software.get_color() and analog.get_marker() != software.get_marker()
    assert {t.get_text() for t in axes[-1].get_legend().get_texts()} >= {"analog solver", "software baseline"}


# -- 8: µS and ± -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["write-verify", "multilevel", "retention", "sample", "read-array"])
def test_figures_write_micro_and_plus_minus(protocol):
    texts = [t for fig in _figures(run_file(protocol)).values() for t in _all_text(fig)]
    assert not [t for t in texts if "uS" in t or "+-" in t or "(us)" in t]
    assert any("µS" in t for t in texts)


def test_the_scale_of_micro_units_is_written_with_the_micro_sign():
    assert style.scale("S", "u") == (1e6, "µS") and style.label("spread", "S", "u") == "spread (µS)"


# -- 9: the write-verify panels of a sample run ---------------------------------------------------------
def test_sample_report_finds_the_write_verify_pulse_table():
    path = run_file("sample")
    sec = sections(open_run(path))["programming"]
    fig = dict(sec.figures)["write_verify"]
    conv, rms, pulses, hist = data_axes(fig)
    for ax in (conv, rms, pulses, hist):
        assert not [t for t in ax.texts if t.get_text().startswith("no ")], ax.get_title()
    per_cell = pulses.patches
    assert sum(p.get_height() for p in per_cell) == open_run(path).read("target_conductance").size
    stats = sec.metrics["write_verify"]
    assert stats["pulses_max"] > 0 and stats["pulses_median"] > 0
    assert sec.metrics["pulses_per_cell_from"].startswith("pulse table")
    assert 0 < len(rms.lines[0].get_ydata()) <= len(np.unique(open_run(path).read("/entry/pulses/time")))


def test_batch_rms_error_follows_each_cells_latest_read():
    target = np.array([10.0, 20.0, 30.0])
    cell = np.array([0, 1, 0, 1, 2, 2])
    read = np.array([14.0, 23.0, 11.0, 20.0, 36.0, 30.0])
    batch = dm.pulse_batches(np.array([1.0, 1.0, 2.0, 2.0, 3.0, 4.0]))
    assert batch.tolist() == [0, 0, 1, 1, 2, 3]
    rms = dm.batch_rms_error(cell, read, batch, target)
    assert rms == pytest.approx([np.sqrt((16 + 9) / 2), np.sqrt(1 / 2), np.sqrt((1 + 36) / 3), np.sqrt(1 / 3)])
