"""sample on the simulated bench: board closed loop, scope segments, software baseline, scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis import open_run
from analysis.run_reader import RunFileError
from instruments.bench import Bench
from protocols.cli.main import main
from protocols.diffusion.program_model import ProgramModel
from protocols.diffusion.sample import Sample
from protocols.engine.runner import RunEngine, RunState


@pytest.fixture(scope="module")
def bench():
    with Bench.from_config(seed=5) as b:
        yield b


def _run(bench, path, **values):
    engine = RunEngine(Sample.from_values(values), bench, path, seed=7)
    assert engine.run() == RunState.COMPLETED, engine.error
    return open_run(path)


@pytest.mark.slow
def test_ring_samples_waveforms_and_baseline_are_recorded(bench, tmp_path):
    """Final samples (N x 2, data units), the same initial noise through the software sampler,
    and one scope segment per stored sample whose integrator trace starts at the initial
    condition and ends at the final sample (in volts: data units times x_scale)."""
    run = _run(bench, tmp_path / "s.h5", samples=300, batch=150, waveforms=6)
    final, software, initial = run.read("final"), run.read("software"), run.read("initial")
    assert final.shape == software.shape == initial.shape == (300, 2)
    assert run.datasets["/entry/instrument/scope/integrator_0"].shape == (6, 250)
    x_scale = run.read("voltage_scales")[0]
    for k, name in enumerate(("integrator_0", "integrator_1")):
        volts = run.trace_volts(name)
        assert np.all(np.abs(volts[:, 0] - initial[:6, k] * x_scale) < 0.01)
        assert np.all(np.abs(volts[:, -1] - final[:6, k] * x_scale) < 0.01)
    t = run.trace_time("integrator_0")
    assert t[-1] == pytest.approx(float(run.read("duration")), rel=0.02)
    embedding = run.trace_volts("embedding")
    assert np.ptp(embedding[0]) > 0.01, "the time-embedding DAC moves during the run"
    radius = np.hypot(final[:, 0], final[:, 1])
    assert np.mean(np.abs(radius - 0.7) < 0.15) > 0.85
    kl = run.read("kl")[-1]
    assert kl.shape == (2, 2) and np.all(kl[0] <= 1.5 * kl[1] + 0.05)
    assert abs(run.read("mean_radius")[-1][0] - 0.7) < 0.05


@pytest.mark.slow
def test_sampling_uses_the_placement_of_a_program_model_run(bench, tmp_path):
    """program=false with placement_run: no programming here, the loop uses the regions the
    program-model run recorded, and the samples still form the ring."""
    engine = RunEngine(ProgramModel.from_values({"model": "ring"}), bench, tmp_path / "pm.h5", seed=2)
    assert engine.run() == RunState.COMPLETED
    run = _run(bench, tmp_path / "s.h5", samples=200, batch=200, waveforms=0, program=False,
               placement_run=str(tmp_path / "pm.h5"))
    assert "/entry/pulses/macro" not in run.datasets
    assert abs(run.read("mean_radius")[-1][0] - 0.7) < 0.05


def test_sample_run_has_the_issue_layout_as_links_listed_once(bench, tmp_path, capsys):
    """Issue 6's layout: /entry/samples/final (N x 2, data units), /entry/samples/software and
    waveforms under /entry/waveforms/ resolve to the recorded data (soft links, nothing
    copied); no condition for an unconditional model; `rrambench info` lists each dataset once."""
    path = tmp_path / "layout.h5"
    run = _run(bench, path, samples=12, batch=12, waveforms=2, program=False)
    final = run.read("/entry/samples/final")
    assert final.shape == (12, 2)
    np.testing.assert_array_equal(final, run.read("final"))
    assert run.attrs("/entry/samples/final")["units"] == ""
    assert "data units" in run.attrs("/entry/samples/final")["long_name"]
    np.testing.assert_array_equal(run.read("/entry/samples/software"), run.read("software"))
    assert run.read("/entry/waveforms/integrator_0").shape == (2, 250)
    with pytest.raises(RunFileError):
        run.read("/entry/samples/condition")
    assert main(["info", str(path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["datasets"]
    assert "/entry/data/final" in listed and "/entry/instrument/scope/embedding" in listed
    assert not [p for p in listed if p.startswith(("/entry/samples", "/entry/waveforms"))]


def test_the_outcome_holds_each_kl_with_its_sampling_floor(bench, tmp_path, capsys):
    """Per-coordinate (mean of x, y) and pooled KL of the analog samples and of the baseline, each
    with the sampling floor at the run's sample count, dimensionless, in /entry/outcome; the data
    keep the floor per column (x, y, mean, pooled); `rrambench info` shows the floor beside the KL."""
    from protocols.diffusion.scoring import task_floor

    path = tmp_path / "kl.h5"
    run = _run(bench, path, samples=40, batch=40, steps=200, waveforms=0, program=False)
    names = ("kl_analog", "kl_software", "kl_floor", "kl_floor_spread", "kl_pooled_analog", "kl_pooled_software",
             "kl_pooled_floor", "kl_pooled_floor_spread", "hist2d_analog", "hist2d_software", "hist2d_floor",
             "hist2d_floor_spread")
    assert set(names) <= set(run.outcome)
    assert all(run.outcome[k]["units"] == "" for k in names)
    floor = task_floor("ring", 40)
    assert run.outcome["kl_floor"]["value"] == pytest.approx(floor.median[2])
    assert run.outcome["kl_pooled_floor"]["value"] == pytest.approx(floor.median[3])
    np.testing.assert_allclose(run.read("kl_floor")[-1], floor.median)
    assert run.read("kl_pooled").shape == (1, 2) and run.read("kl_floor_spread").shape == (1, 4)
    assert 0 < run.outcome["kl_floor_spread"]["value"] < run.outcome["kl_floor"]["value"]
    np.testing.assert_allclose(run.read("hist2d_floor")[-1], floor.hist2d_floor)
    assert run.outcome["hist2d_floor"]["value"] == pytest.approx(floor.hist2d_floor[0])
    assert run.read("hist2d_distance")[-1][0] == pytest.approx(run.outcome["hist2d_analog"]["value"])
    assert main(["info", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "kl_analog" in shown and f"(floor {floor.median[2]:.3g} ± {floor.spread[2]:.2g})" in shown
    from protocols.cli.quantities import outcome_lines

    lines = outcome_lines(run.outcome, indent="")
    assert not [ln for ln in lines if ln.startswith(("kl_floor", "kl_pooled_floor"))], "beside the KL, not alone"
    assert [ln for ln in lines if ln.startswith("kl_pooled_analog") and "(floor " in ln]
    assert [ln for ln in lines if ln.startswith("hist2d_analog") and f"(floor {floor.hist2d_floor[0]:.3g}" in ln]


def test_a_placement_run_is_refused_with_program_true(bench, tmp_path):
    proto = Sample.from_values({"samples": 10, "placement_run": "x.h5"})
    engine = RunEngine(proto, bench, tmp_path / "bad.h5", seed=1)
    with pytest.raises(ValueError, match="placement_run"):
        engine.run()


@pytest.mark.slow
def test_digits_decoded_on_the_benchs_macros_are_classified_as_well_as_the_baseline(bench, tmp_path):
    """Conditional sampling class by class; the VAE's deconvolution decoder write-verified into
    macros the score network leaves free (its programming recorded as decoder_*, its pulses in
    the run's pulse table) and the latents decoded through the board, and in software; nothing
    simulated on purpose. Per class, bench-decoded analog samples are classified as their digit
    at >= 90% of the rate of the software baseline."""
    run = _run(bench, tmp_path / "d.h5", model="digits", samples=150, batch=150, waveforms=0, software_steps=1500)
    cond = run.read("condition")
    assert np.bincount(cond).tolist() == [150, 150, 150]
    np.testing.assert_array_equal(run.read("/entry/samples/condition"), cond)
    assert run.read("images_rram_decoder").shape == run.read("images_baseline").shape == (450, 64)
    assert "bench's RRAM macros" in run.attrs("images_rram_decoder")["long_name"]
    assert run.simulated_parts == []
    net_macros, dec_macros = set(run.read("cell_macro")[-1]), set(run.read("decoder_cell_macro")[-1])
    assert dec_macros and not dec_macros & net_macros
    assert dec_macros <= set(run.read("/entry/pulses/macro").tolist())
    assert run.read("decoder_layer_region").shape[1:] == (5, 6)
    assert abs(run.read("decoder_programmed_weight")[-1] - run.read("decoder_target_weight")).mean() < 0.05
    accuracy = run.read("accuracy")[-1]
    rram, baseline = accuracy[0], accuracy[2]
    assert np.all(rram >= 0.9 * baseline), accuracy
    # the latents' KL against the encoded real digits, with the floor of 450 draws from them
    assert run.read("kl").shape == (1, 2, 2) and run.read("kl_pooled").shape == (1, 2)
    assert {"kl_analog", "kl_floor", "kl_pooled_analog", "kl_pooled_floor"} <= set(run.outcome)
    assert 0 < run.outcome["kl_floor"]["value"] < run.outcome["kl_analog"]["value"]


def test_a_decoder_that_cannot_fit_the_free_macros_is_refused_before_the_run():
    """decoder_macro=7 leaves one macro for five tiles: refused in validate (dry run and engine)."""
    from protocols.engine.bench_shape import BenchShape
    from protocols.engine.params import ParameterError

    proto = Sample.from_values({"model": "digits", "decoder_macro": 7})
    with pytest.raises(ParameterError, match="decoder_macro=7: decoder: its 5 tiles do not fit macros \\[7\\]"):
        proto.validate(BenchShape())
    Sample.from_values({"model": "digits", "decoder_macro": 5}).validate(BenchShape())
