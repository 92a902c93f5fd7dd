"""`analysis.report` on a complete run of every protocol: PNGs and summary.json are
written, and each figure has labelled axes with units and the expected curves."""

from __future__ import annotations

import json

import numpy as np
import pytest
from figure_checks import assert_readable, data_axes, has_unit
from report_runs import available, run_file

from analysis import open_run
from analysis.figures import style
from analysis.report import report_run, sections

PROTOCOLS = available()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.slow
def test_report_of_every_protocol_writes_nonempty_pngs_and_a_summary(protocol, tmp_path):
    result = report_run(run_file(protocol), tmp_path / protocol)
    assert result.figures, f"{protocol}: no figure"
    for png in result.figures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, png
    doc = json.loads((tmp_path / protocol / "summary.json").read_text())  # strict JSON: no NaN
    assert doc["run"]["protocol"] == protocol and doc["run"]["status"] == "completed"
    assert doc["figures"] == [p.name for p in result.figures]
    assert doc["metrics"], f"{protocol}: summary without metrics"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_figure_has_labelled_axes_and_shows_data(protocol):
    with style.context():
        for name, sec in sections(open_run(run_file(protocol))).items():
            for stem, fig in sec.figures:
                assert_readable(fig, f"{protocol}/{name}/{stem}")


def _figures(protocol: str) -> dict:
    with style.context():
        return {stem: fig for sec in sections(open_run(run_file(protocol))).values() for stem, fig in sec.figures}


def test_iv_figure_draws_one_loop_per_cycle_with_volts_and_amperes():
    fig = _figures("iv-sweep")["iv_loops"]
    lin, log = data_axes(fig)
    cycles = [ln for ln in lin.lines if ln.get_label().startswith("cycle")]
    assert len(cycles) == 3
    assert lin.get_xlabel() == "voltage (V)" and has_unit(lin.get_ylabel()) and "current" in lin.get_ylabel()
    assert log.get_yscale() == "log"


def test_iv_summary_finds_set_positive_and_reset_negative_with_a_large_on_off_ratio():
    doc = report_run(run_file("iv-sweep"), run_file("iv-sweep").with_suffix(".rep")).summary
    median = doc["metrics"]["iv"]["median"]
    assert 0.3 < median["set_voltage"] < 1.5 and -1.6 < median["reset_voltage"] < -0.3
    assert median["on_off_ratio"] > 5


def test_multilevel_histogram_has_one_colour_per_level_and_levels_are_separable():
    figs = _figures("multilevel")
    hist, lin = data_axes(figs["levels"])
    assert hist.get_xlabel() == "conductance (µS)" and "64 programmed levels" in hist.get_title()
    colours = {tuple(np.round(p.get_facecolor(), 3)) for p in hist.patches}  # one step patch per level
    assert len(colours) == 64
    assert lin.get_xlabel() == "target (µS)"
    stats = sections(open_run(run_file("multilevel")))["programming"].metrics["levels"]
    assert stats["levels"] == 64 and stats["overlap"] < 0.1


def test_write_verify_figure_shows_convergence_percentiles_below_tolerance():
    fig = _figures("write-verify")["write_verify"]
    conv, rms, pulses, hist = data_axes(fig)
    assert [ln.get_label() for ln in conv.lines][:3] == ["50th percentile", "90th percentile", "99th percentile"]
    median = conv.lines[0].get_ydata()
    assert median[-1] < median[0] / 10, "the median error falls by more than 10x over the pulses"
    assert conv.get_ylabel() == "|G - target| (µS)" and hist.get_xlabel() == "programmed - target (µS)"
    assert pulses.get_xlabel() == "pulses to converge"


def test_retention_curves_one_band_per_level_and_error_histograms_at_several_times():
    figs = _figures("retention")
    curves, spread = data_axes(figs["retention"])
    assert len(curves.lines) == 4 and curves.get_xscale() == "log"
    assert curves.get_xlabel() == "time after programming (s)" and curves.get_ylabel() == "conductance (µS)"
    (errors,) = data_axes(figs["error_distributions"])
    assert len({p.get_label() for p in errors.patches}) >= 4, "a histogram per read time"
    assert errors.get_xlabel() == "G - target (µS)"


def test_pattern_figure_shows_target_programmed_and_error_maps():
    fig = _figures("pattern")["pattern"]
    panels = [ax for ax in data_axes(fig) if ax.images]
    assert [ax.get_title() for ax in panels] == ["target", "programmed", "programmed - target"]
    assert all(ax.images[0].get_array().shape == (32, 32) for ax in panels)


def test_read_array_maps_one_panel_per_macro_with_a_conductance_colour_bar():
    fig = _figures("read-array")["map_conductance"]
    panels = [ax for ax in data_axes(fig) if ax.images]
    assert [ax.get_title().split(",")[0] for ax in panels] == ["macro 0", "macro 1"]
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bars and bars[0].get_ylabel() == "conductance (µS)"


def test_read_noise_figure_has_a_point_per_window_and_a_spectrum_per_series():
    fig = _figures("read-noise")["read_noise"]
    win, psd = data_axes(fig)
    windows = open_run(run_file("read-noise")).parameters["windows"]
    assert len(win.lines[0].get_xdata()) == len(windows)
    assert win.get_xlabel() == "integration window (s)" and psd.get_xlabel() == "frequency (Hz)"
    assert len(psd.lines) >= len(windows)


def test_sample_report_has_scatter_time_slices_and_scope_waveforms():
    figs = _figures("sample")
    assert [ax.get_title().split(" (")[0] for ax in data_axes(figs["samples"])] == [
        "initial noise", "analog solver", "software baseline", "analog and software overlaid"]
    slices = data_axes(figs["time_slices"])
    assert len(slices) == 6 and all(ax.get_xlabel() == "x1 (V)" for ax in slices)
    wave, final = data_axes(figs["waveforms_integrator_0"])
    assert wave.get_ylabel() == "voltage (V)" and has_unit(wave.get_xlabel())


def test_noise_sweep_report_has_heatmaps_over_the_grid_and_curves_per_model():
    figs = _figures("noise-sweep")
    heat = [ax for ax in data_axes(figs["noise_heatmaps_ring"]) if ax.images]
    assert heat and all(ax.images[0].get_array().shape == (3, 2) for ax in heat)
    assert heat[0].get_xlabel() == "write noise (x default)"
    read = data_axes(figs["noise_robustness_ring"])[0]
    (median,) = [ln for ln in read.lines if "IQR" in ln.get_label()]
    assert len(median.get_xdata()) == 3 and "read-noise multiplier" in read.get_xlabel()


def test_decoded_images_figure_has_one_row_per_class():
    from analysis.figures.samples import decoded_images

    rng = np.random.default_rng(0)
    images, cond = rng.random((30, 8, 8)), np.repeat([0, 1, 2], 10)
    with style.context():
        fig = decoded_images(images, cond, per_class=5)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 15
    assert [ax.get_title(loc="left") for ax in shown[::5]] == ["class 0", "class 1", "class 2"]


@pytest.mark.slow
def test_conditional_sample_report_has_decoded_images_and_class_accuracy(tmp_path):
    path = run_file("sample", model="digits", samples=12, batch=12, steps=200, waveforms=4)
    result = report_run(path, tmp_path)
    names = {p.name for p in result.figures}
    assert {"decoded_rram_decoder.png", "decoded_software.png", "decoded_baseline.png",
            "class_accuracy.png"} <= names
    accuracy = result.summary["metrics"]["samples"]["accuracy"]
    assert set(accuracy) == {"analog + RRAM decoder on the bench", "analog + software decoder", "software baseline"}
    assert all(len(row) == 3 and all(0 <= a <= 1 for a in row) for row in accuracy.values())
    figs = _figures_of(path)
    (bars,) = data_axes(figs["class_accuracy"])
    assert len(bars.patches) == 9 and bars.get_ylabel() == "accuracy (fraction)"


@pytest.mark.slow
def test_conditional_run_draws_the_classes_in_time_one_shared_start_and_the_decoders_feature_maps(tmp_path):
    """Figs. 4c, 4e, 4f: each class's first traces; with shared_noise every class starts from
    class 0's initial noise; the decoder's layer maps of one latent per class, read on the bench."""
    path = run_file("sample", model="digits", samples=6, batch=6, steps=200, waveforms=3, shared_noise=True)
    run = open_run(path)
    initial, cond = run.read("initial"), run.read("condition")
    for c in (1, 2):
        np.testing.assert_array_equal(initial[cond == c], initial[cond == 0])
    assert run.read("waveform_condition").tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    maps = [run.read(f"decoder_maps_{k}") for k in range(3)]
    assert [len(m) for m in maps] == [3, 3, 3] and maps[-1].shape[-1] == 8
    figs = _figures_of(path)
    assert {"time_slices", "shared_start", "decoder_maps"} <= set(figs)
    legend = figs["time_slices"].axes[-1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["class 0 (3)", "class 1 (3)", "class 2 (3)"]
    paths = [line for line in figs["shared_start"].axes[0].get_lines() if len(line.get_xdata()) > 2]
    starts = np.array([(p.get_xdata()[0], p.get_ydata()[0]) for p in paths])
    assert len(paths) == 3 and np.ptp(starts, axis=0).max() < 1e-3  # one start, as the scope saw it (V)
    assert len(figs["decoder_maps"].axes) == 3 * sum(m.shape[1] for m in maps)
    assert_readable(figs["time_slices"], "time_slices")


def _figures_of(path) -> dict:
    with style.context():
        return {stem: fig for sec in sections(open_run(path)).values() for stem, fig in sec.figures}
