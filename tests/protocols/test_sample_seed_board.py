"""sample through the seed's sampling board (issue 10): board choice, refusals, ring quality.

The quality test runs on the default device, relaxation on: the seed board takes 5 s
per sample (its lock-out), so 400 samples span 2,000 s of bench time, over which
relaxation alone would ruin the ring (KL 0.675 / 0.281 without refresh). ``sample``
therefore touches the network up every ``REFRESH_EVERY`` samples on this board
(docs/seed-board.md); 400 samples is the fewest at which the sector statistic is
stable across world seeds (200: the software baseline itself sits at the 1.5 bar).
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis import open_run
from instruments.bench import Bench
from instruments.config import parse_config
from instruments.sim.world import SimWorld
from protocols.diffusion.sample import Sample
from protocols.diffusion.seed_board_sampler import REFRESH_EVERY
from protocols.engine.protocol import ParameterError
from protocols.engine.runner import RunEngine, RunState


@pytest.fixture(scope="module")
def bench():
    with Bench.from_config(world=SimWorld(seed=5)) as b:
        yield b


@pytest.mark.slow
@pytest.mark.xfail(strict=False, raises=AssertionError, reason=(
    "open: with the cells' read noise as a 1/f spectrum (issue 14) the seed board's ring KL x rose from 0.054 to "
    "0.088 against a bar of 0.079 (0.077 with the loop's read noise off: the conductances, not the loop's noise); "
    "its 5 s per sample and 2,000 s run let each cell's 1/f process wander further than the macro controller's "
    "milliseconds; not yet explained. Not strict since 2026-12-03: with write-verify's confirmations riding in "
    "its pulse batches this world passes by 0.0003 (KL 0.0456, 0.0244 against bars 0.0459, 0.0387) and world 6 "
    "fails (0.0417, 0.0826); before, both failed (0.0838, 0.0480 and 0.0471, 0.0551): which side of the bar a "
    "world lands on is the programming's luck, not a fix"))
def test_a_ring_sampled_through_the_seed_board_meets_the_ring_quality_bar(bench, tmp_path):
    """Issue 6's ring acceptance through the seed board on the default (relaxing) device: radius
    within 0.05 of 0.7, KL within 1.5x the software baseline's (same initial noise, read on the
    scope) + 0.02, no 30-degree sector above 1.5x its share; the run file says the seed board
    ran it, one Go per sample, and holds the refreshes that kept the network on target."""
    runs_before = bench.seed_board.runs
    engine = RunEngine(Sample.from_values({"samples": 400, "batch": 400, "waveforms": 2, "board": "seed_board"}),
                       bench, tmp_path / "s.h5", seed=7)
    assert engine.run() == RunState.COMPLETED, engine.error
    run = open_run(tmp_path / "s.h5")
    kl, radius, sector = run.read("kl")[-1], run.read("mean_radius")[-1], run.read("max_sector_ratio")[-1]
    assert abs(radius[0] - 0.7) < 0.05
    assert np.all(kl[0] <= 1.5 * kl[1] + 0.02), kl
    assert sector[0] <= 1.5
    assert int(run.read("sampler_board")) == 1
    task, bias, coef, noise_scale = run.read("seed_board_settings")
    assert (task, bias, noise_scale) == (4, 0.1, 0.2) and 0.01 <= coef <= 3.99
    assert bench.seed_board.runs - runs_before == 400
    assert run.read("refresh_samples").tolist() == list(range(REFRESH_EVERY, 400, REFRESH_EVERY))
    rms = run.read("refresh_rms_error")
    assert np.all(rms[:, 1] < rms[:, 0])   # every refresh brought the pairs back towards their targets
    initial = run.read("initial")
    assert abs(np.std(initial) - 1.0) < 0.1  # the board's start values are N(0, 1) in data units
    volts = run.trace_volts("integrator_0")
    assert volts.shape == (2, 250)
    t = run.trace_time("integrator_0")
    k = int(np.argmin(np.abs(t - 1.0)))
    assert np.all(np.abs(volts[:, k] - run.read("final")[:2, 0] * run.read("voltage_scales")[0]) < 0.005)


@pytest.mark.parametrize(("values", "message"), [
    ({"board": "seed_board", "sde": True}, "probability-flow ODE only"),
    ({"board": "seed_board", "model": "digits"}, "unconditional type 4 only"),
])
def test_what_the_seed_board_cannot_run_is_refused_before_anything_is_programmed(bench, tmp_path, values,
                                                                                 message):
    engine = RunEngine(Sample.from_values({"samples": 10, **values}), bench, tmp_path / "bad.h5", seed=1)
    with pytest.raises(ValueError, match=message):
        engine.run()


def test_the_board_parameter_is_checked_and_overrides_the_bench_config(bench):
    with pytest.raises(ParameterError, match="board"):
        Sample.from_values({"board": "seed"})
    saved = bench.config
    try:
        bench.config = parse_config({"sampler": {"board": "seed_board"}})
        proto = Sample.from_values({})
        proto._bind(bench)
        assert proto.sampler_board == "seed_board"
        proto = Sample.from_values({"board": "macro_controller"})
        proto._bind(bench)
        assert proto.sampler_board == "macro_controller"
    finally:
        bench.config = saved


@pytest.mark.slow
def test_a_seed_board_run_is_bit_repeatable_with_the_same_seeds(tmp_path):
    """The driver pays each line's time on the bench clock and the emulator never moves it
    for a line, so no thread races another for the bench time: two runs with the same run
    and world seeds record the same samples, refreshes and pulses, bit for bit."""
    runs = []
    for name in ("a", "b"):
        with Bench.from_config(world=SimWorld(seed=5)) as b:
            engine = RunEngine(Sample.from_values({"samples": 30, "batch": 30, "waveforms": 1,
                                                   "board": "seed_board"}), b, tmp_path / f"{name}.h5", seed=7)
            assert engine.run() == RunState.COMPLETED, engine.error
        runs.append(open_run(tmp_path / f"{name}.h5"))
    for key in ("final", "refresh_conductance", "refresh_time"):
        assert np.array_equal(runs[0].read(key), runs[1].read(key)), key
