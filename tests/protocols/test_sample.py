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


def test_a_placement_run_is_refused_with_program_true(bench, tmp_path):
    proto = Sample.from_values({"samples": 10, "placement_run": "x.h5"})
    engine = RunEngine(proto, bench, tmp_path / "bad.h5", seed=1)
    with pytest.raises(ValueError, match="placement_run"):
        engine.run()


def test_digits_decoded_through_the_simulated_rram_decoder_are_classified_as_well_as_the_baseline(bench, tmp_path):
    """Conditional sampling class by class; latents decoded in software and on the simulated
    RRAM decoder (named simulated, listed in simulated_parts); per class, RRAM-decoded analog
    samples are classified as their digit at >= 90% of the rate of the software baseline."""
    run = _run(bench, tmp_path / "d.h5", model="digits", samples=150, batch=150, waveforms=0, software_steps=1500)
    cond = run.read("condition")
    assert np.bincount(cond).tolist() == [150, 150, 150]
    np.testing.assert_array_equal(run.read("/entry/samples/condition"), cond)
    assert run.read("images_simulated_rram").shape == run.read("images_baseline").shape == (450, 64)
    assert "simulated RRAM" in run.attrs("images_simulated_rram")["long_name"]
    assert len(run.simulated_parts) == 1 and "decoder" in run.simulated_parts[0]
    accuracy = run.read("accuracy")[-1]
    rram, baseline = accuracy[0], accuracy[2]
    assert np.all(rram >= 0.9 * baseline), accuracy
