"""Typed loaders over open_run: the arrays each protocol recorded, streamed scope traces,
and an analysis package that needs no instrument stack."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from report_runs import run_file

from analysis import characterization_data as ld
from analysis import diffusion_data as ldd
from analysis import open_run
from analysis.traces import trace_envelope


def test_analysis_imports_no_instrument_or_protocol_module():
    code = ("import sys, analysis, analysis.report, analysis.characterization_data, analysis.diffusion_data, "
            "analysis.device_metrics, analysis.report_diffusion, protocols.cli.report\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pyvisa', 'pyvisa_py', 'serial', 'instruments') or m.startswith('protocols.') and "
            "m not in ('protocols.cli', 'protocols.cli.report'))\n"
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_programming_loader_matches_targets_cells_and_pulse_table():
    run = open_run(run_file("write-verify"))
    data = ld.load_programming(run)
    assert data.target.shape == data.final.shape == (64,)
    assert data.programmed.shape == (1, 64) and data.pulses_per_cell.shape == (64,)
    assert len(data.pulses) == int(data.pulses_per_cell.sum()), "one pulse-table row per pulse applied"
    assert set(zip(data.pulses.row.tolist(), data.pulses.col.tolist(), strict=True)) <= set(
        zip(data.cell_row.tolist(), data.cell_col.tolist(), strict=True))
    assert np.all(data.pulses.polarity != 0) and np.all(data.pulses.amplitude > 0)


def test_program_model_is_read_as_a_programming_of_its_conductance_pairs():
    run = open_run(run_file("program-model"))
    assert ld.programming_prefixes(run) == [""]
    weights = ld.load_weights(run)
    assert weights.target_weight.shape == weights.programmed_weight.shape
    assert weights.programming.target.size == weights.programming.cell_row.size


def test_iv_retention_read_noise_write_noise_form_views_have_protocol_shapes():
    iv = ld.load_iv(open_run(run_file("iv-sweep")))
    assert iv.voltage.shape == iv.current.shape and iv.voltage.shape[0] == 3
    ret = ld.load_retention(open_run(run_file("retention")))
    assert ret.g.shape == (len(ret.time), 64) and np.all(np.diff(ret.time) > 0)
    rn = ld.load_read_noise(open_run(run_file("read-noise")))
    series = rn.series()
    assert len(series) == 8 and all(g.shape == (8, 16) for *_, g in series), "4 windows x 2 intervals x 8 reads"
    wn = ld.load_write_noise(open_run(run_file("write-noise")))
    assert wn.readback.shape == wn.erased.shape == (3, 24)
    form = ld.load_form(open_run(run_file("form")))
    assert form.form_voltage.shape == form.read_current.shape == (16,)


def test_scope_traces_stream_in_blocks_equal_to_a_whole_read():
    run = open_run(run_file("sample"))
    (stream,) = [s for s in ld.load_traces(run) if s.name == "integrator_0"]
    whole = run.trace_volts("integrator_0")
    blocks = [(first, v) for first, v in stream.iter_volts(rows=3)]
    assert [first for first, _ in blocks] == [0, 3, 6, 9] and max(len(v) for _, v in blocks) == 3
    np.testing.assert_allclose(np.concatenate([v for _, v in blocks]), whole, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stream.time(), run.trace_time("integrator_0"))
    env = trace_envelope(stream, examples=3)
    np.testing.assert_allclose(env.maximum, whole.max(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(env.mean, whole.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(env.final, whole[:, -1], rtol=1e-6, atol=1e-6)
    assert env.examples.shape == (3, stream.points)


def test_sample_and_noise_sweep_views():
    s = ldd.load_samples(open_run(run_file("sample")))
    assert s.final.shape == s.software.shape == s.initial.shape == (100, 2)
    assert set(s.scores) >= {"kl", "mean_radius"}
    sweep = ldd.load_noise_sweep(open_run(run_file("noise-sweep")))
    assert sweep.grids["kl_mean"].shape == (1, 3, 2) and np.isfinite(sweep.grids["kl_mean"]).all()
    run = open_run(run_file("noise-sweep"))
    np.testing.assert_allclose(sweep.grids["kl_mean"], run.read("kl_mean_grid")[-1], equal_nan=True)


def test_common_length_cuts_row_aligned_streams_a_killed_writer_left_uneven():
    a, b, c = ld.common_length(np.arange(5), np.arange(4), None)
    assert len(a) == len(b) == 4 and c is None
