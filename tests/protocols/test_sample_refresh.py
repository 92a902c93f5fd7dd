"""The touch-up refresh of ``sample`` (refresh_every): where it falls, what it pulses, what it records.

A long run through the seed board (5 s per sample) lets programmed conductances relax
away from their targets; the refresh re-reads the network and write-verifies only the
cells that left their tolerance, against the targets of the original programming.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis import open_run
from instruments.bench import Bench
from instruments.sim.world import SimWorld
from protocols.diffusion.board_sampler import Batch
from protocols.diffusion.sample import Sample
from protocols.diffusion.seed_board_sampler import REFRESH_EVERY
from protocols.engine.runner import RunEngine, RunState


@pytest.fixture(scope="module")
def bench():
    with Bench.from_config(world=SimWorld(seed=11)) as b:   # default device: relaxation on
        yield b


def test_refreshes_fall_every_refresh_every_samples_and_never_before_the_first_or_after_the_last():
    proto = Sample.from_values({"samples": 60, "batch": 40, "waveforms": 30, "board": "seed_board",
                                "refresh_every": 25})
    batches = proto.batches()
    assert [b.size for b in batches] == [25, 15, 10, 10]        # batch 40 split at sample 25; batch 20 at 50
    assert [b.refresh_before for b in batches] == [False, True, False, True]
    assert [b.samples_before for b in batches] == [0, 25, 40, 50]
    assert [b.waveforms for b in batches] == [25, 5, 0, 0]      # the first 30 samples keep their traces
    assert [b.index for b in batches] == [0, 0, 1, 1]


def test_the_default_refreshes_the_seed_board_only_and_leaves_our_board_s_batches_alone():
    seed = Sample.from_values({"samples": 100, "batch": 100, "board": "seed_board"})
    assert seed.refresh_interval == REFRESH_EVERY and 20 <= REFRESH_EVERY <= 50
    ours = Sample.from_values({"samples": 2500, "batch": 1000, "waveforms": 20, "board": "macro_controller"})
    assert ours.refresh_interval == 0
    assert ours.batches() == [Batch(0, None, 1000, 20, False, 0), Batch(1, None, 1000, 0, False, 1000),
                              Batch(2, None, 500, 0, False, 2000)]
    off = Sample.from_values({"samples": 100, "batch": 100, "board": "seed_board", "refresh_every": 0})
    assert not any(b.refresh_before for b in off.batches())


def test_a_refresh_pulses_only_the_cells_that_relaxed_out_of_tolerance_and_records_it(bench, tmp_path):
    """After one slow sample (seconds of relaxation) many cells are out of the 0.4 uS band: the
    refresh pulses those (and no others), brings the pair error back under the band, and the
    run file holds per refresh the count, RMS before/after, the read-back and the pulses."""
    engine = RunEngine(Sample.from_values({"samples": 3, "batch": 3, "waveforms": 0, "board": "seed_board",
                                           "refresh_every": 1}), bench, tmp_path / "r.h5", seed=3)
    assert engine.run() == RunState.COMPLETED, engine.error
    run = open_run(tmp_path / "r.h5")
    pulsed, rms = run.read("refresh_pulsed_cells"), run.read("refresh_rms_error")
    t_refresh = run.read("refresh_time")
    assert run.read("refresh_samples").tolist() == [1, 2]
    assert np.all(np.diff(t_refresh) > 5.0)                  # one seed-board sample (>= 5 s lock-out) apart
    n_cells = run.read("target_conductance").size
    assert 0.05 * n_cells < pulsed[0] < 0.9 * n_cells         # some cells relaxed out, most did not
    assert np.all(rms[:, 1] < rms[:, 0]) and np.all(rms[:, 1] < 0.4e-6), rms
    # the pulses of the first refresh are in the pulse table, on exactly that many distinct cells
    time = run.read("/entry/pulses/time")
    cells = np.stack([run.read(f"/entry/pulses/{k}") for k in ("macro", "row", "col")], axis=1)
    first = cells[(time >= t_refresh[0]) & (time < t_refresh[1])]
    assert len(np.unique(first, axis=0)) == pulsed[0]
    mapped = {tuple(c) for c in np.stack([run.read(k)[-1] for k in ("cell_macro", "cell_row", "cell_col")], 1)}
    assert {tuple(c) for c in first} <= mapped
    # against the SAME targets: every pair's difference G+ - G- is back near its programmed target
    g, target = run.read("refresh_conductance")[0], run.read("target_conductance")
    err = _pair_errors(g - target, run)
    assert np.mean(np.abs(err) <= 2 * 0.4e-6) > 0.97


def _pair_errors(delta: np.ndarray, run) -> np.ndarray:
    """(G+ - G-) - (T+ - T-) per pair from per-cell deviations, layer by layer (G+ block, G- block)."""
    out, k = [], 0
    for n_in, n_out, bias in run.read("layer_region")[-1][:, 3:]:
        n = (n_in + bias) * n_out
        out.append(delta[k:k + n] - delta[k + n:k + 2 * n])
        k += 2 * n
    assert k == delta.size
    return np.concatenate(out)
