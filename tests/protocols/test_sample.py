"""sample on the simulated bench: board closed loop, scope segments, software baseline, scoring."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import open_run
from instruments.bench import Bench
from protocols.engine import RunEngine, RunState
from protocols.program_model import ProgramModel
from protocols.sample import Sample


@pytest.fixture(scope="module")
def bench():
    with Bench.from_config(seed=5) as b:
        yield b


def _run(bench, path, **values):
    engine = RunEngine(Sample.from_values(values), bench, path, seed=7)
    assert engine.run() == RunState.COMPLETED, engine.error
    return open_run(path)


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


def test_a_placement_run_is_refused_with_program_true(bench, tmp_path):
    proto = Sample.from_values({"samples": 10, "placement_run": "x.h5"})
    engine = RunEngine(proto, bench, tmp_path / "bad.h5", seed=1)
    with pytest.raises(ValueError, match="placement_run"):
        engine.run()


def test_digits_decoded_through_the_rram_decoder_are_classified_as_well_as_the_baseline(bench, tmp_path):
    """Conditional sampling class by class; latents decoded in software and on the simulated
    RRAM decoder; per class, RRAM-decoded analog samples are classified as their digit at
    >= 90% of the rate of the software baseline."""
    run = _run(bench, tmp_path / "d.h5", model="digits", samples=150, batch=150, waveforms=0, software_steps=1500)
    cond = run.read("condition")
    assert np.bincount(cond).tolist() == [150, 150, 150]
    assert run.read("images_rram").shape == run.read("images_baseline").shape == (450, 64)
    accuracy = run.read("accuracy")[-1]
    rram, baseline = accuracy[0], accuracy[2]
    assert np.all(rram >= 0.9 * baseline), accuracy
