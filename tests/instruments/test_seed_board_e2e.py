"""The seed's sampling board end to end: driver over pyserial, emulated firmware over
loopback, runs confirmed and read on the scope through pyvisa-py.

The ring model is placed in the macros with the world's oracle (exact conductances),
so this tests the board path, not write-verify. The ``sample`` protocol was not ready
when this was written: the sampling test drives the pieces (driver + scope) directly.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.metrics import coordinate_kl, ring_statistics
from instruments.infiniivision import InfiniiVision3000X
from instruments.limits import Limits
from instruments.seed_board import SAMPLE_TIME, SeedBoard
from instruments.serial_link import SerialLink
from instruments.sim.serve import SimInstruments
from instruments.sim.world import SimWorld
from instruments.transport import VisaTransport
from protocols.diffusion.mapping import MappingConfig, map_score_net
from protocols.diffusion.tasks import ring_samples
from protocols.diffusion.weights import load_shipped

OUTPUT_GAIN_RATIO = 2.0  # emulated board: network-output input has twice the drift input's gain


@pytest.fixture(scope="module")
def bench():
    model = load_shipped("ring")
    mapped = map_score_net(model, MappingConfig(h_scale=0.05))  # type 4: 0.05 V per hidden unit
    world = SimWorld(seed=7)
    macro, row, col, g = mapped.cells()
    world.set_conductance(macro, row, col, g, unstick=True)
    world.loop.load_mapping(list(mapped.layers), mapped.v_bias)  # the board's fixed wiring
    with SimInstruments(world) as sim:
        link = SerialLink.open(sim.resources["seed_board"], name="seed_board", baudrate=9600)
        io = VisaTransport.open(sim.resources["scope"], name="scope", timeout=5.0)
        scope = InfiniiVision3000X(io, Limits())
        scope.reset()
        for ch in (1, 2):
            scope.configure_channel(ch, scale=0.05)
        scope.set_timebase(0.125, 0.625)  # 0 .. 1.25 s after the trigger
        scope.set_edge_trigger("EXT", 0.5)
        board = SeedBoard(link, world.clock, scope=scope)
        yield board, scope, world, model, mapped, sim
        io.close()
        link.close()


def configure(board: SeedBoard, model, mapped) -> None:
    coef = model.net.amplitude * mapped.x_scale / (2 * OUTPUT_GAIN_RATIO * mapped.y_scale)
    board.set_bias(0.1)
    board.init(4, True)
    board.set_offsets(0.0, 0.0)
    board.set_coefficient(round(coef, 2))
    board.set_noise_scale(round(2 * mapped.x_scale, 2))  # start spread (charge phase) = x_scale


def read_sample(scope: InfiniiVision3000X) -> tuple[np.ndarray, np.ndarray]:
    """Trajectory (2, P) V and its times (P,) s from channels 1 and 2."""
    waves = scope.fetch_channels([1, 2], fmt="WORD", points=500)
    return np.vstack([waves[1].volts, waves[2].volts]), waves[1].time


def test_init_and_go_give_a_closed_loop_trajectory_on_the_scope_channels(bench):
    board, scope, world, model, mapped, _ = bench
    fired = []

    def listener(traces, dt, t0):
        fired.append(traces)

    world.add_trigger_listener(listener)
    configure(board, model, mapped)
    board.go()
    volts, t = read_sample(scope)
    world.remove_trigger_listener(listener)
    truth = fired[-1][0, :2]  # the integrators as the circuit computed them, 5 ms apart
    expected = np.array([np.interp(t, np.arange(truth.shape[1]) * 5e-3, ch) for ch in truth])
    ok = np.isfinite(volts)
    assert np.max(np.abs(volts[ok] - expected[ok])) < 0.01  # what the scope shows is that run
    radius = np.hypot(*volts[:, np.argmin(np.abs(t - SAMPLE_TIME))]) / mapped.x_scale
    assert 0.4 < radius < 1.0  # the loop carried the start value onto the ring (0.7)
    assert np.ptp(volts[0][ok[0]]) > 0.01  # the integrators moved: the loop is closed


@pytest.mark.slow
def test_sampling_the_ring_through_the_seed_board_meets_the_ring_quality_bar(bench):
    board, scope, world, model, mapped, sim = bench
    configure(board, model, mapped)
    board.runs = sim.seed_board.dropped = 0
    samples = []
    for _ in range(100):
        board.go()
        volts, t = read_sample(scope)
        samples.append(volts[:, np.argmin(np.abs(t - SAMPLE_TIME))])
    x = np.array(samples) / mapped.x_scale
    stats = ring_statistics(x)
    kl = coordinate_kl(x, ring_samples(10_000, np.random.default_rng(1)))
    assert abs(stats.mean_radius - 0.7) < 0.05
    assert stats.radial_std < 0.1
    assert np.all(kl < 0.35)  # 100 samples: the histogram KL floor alone is ~0.1
    assert board.runs == 100 and sim.seed_board.dropped == 0  # every Go confirmed, none dropped
