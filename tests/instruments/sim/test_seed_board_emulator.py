"""Emulated seed sampling board: the firmware's parsing, pacing, lock-out and DAC overflow."""

from __future__ import annotations

import numpy as np
import pytest

from instruments.macro_controller_wire import LayerRegion
from instruments.sim.seed_board import SeedBoardEmulator, dac, irwin_hall
from instruments.sim.world import SimWorld


@pytest.fixture
def board():
    world = SimWorld(seed=2)
    return SeedBoardEmulator(world, seed=3)


def test_a_line_is_taken_at_the_time_it_is_read_without_moving_the_clock(board):
    """The sender pays the line time (the driver's test checks it): the emulator never moves
    the clock for a line, so it cannot race the driver's thread for the bench time."""
    t0 = board.world.clock.now()
    board.handle(b"N016\r")
    assert board.world.clock.now() == t0


def test_commands_set_what_the_firmware_computes_and_nothing_is_checked(board):
    assert board.handle(b"O0099\r") == b"Offset set1: -0.500000\nOffset set2: 0.490000\r"
    board.handle(b"C250\r")
    board.handle(b"C000\r")  # the firmware keeps the old value when 0
    assert board.coef == pytest.approx(2.5)
    board.handle(b"N999\r")
    assert board.noise_scale == pytest.approx(9.99)
    board.handle(b"D0\r")
    assert board.scale == pytest.approx(0.5)  # the bias only reaches the scale at the next init
    board.handle(b"In01\r")
    assert (board.task, board.noise, board.scale) == ("0", True, pytest.approx(0.25))
    board.handle(b"O5:50\r")  # ':' is '9' + 1: the firmware takes it as the digit 10
    assert board.offsets[0] == pytest.approx(0.1)


def test_a_line_without_cr_is_kept_as_data_of_the_next_one(board):
    board.handle(b"C1")
    board.handle(b"50\r")
    assert board.received == [b"C1\n50"]
    assert board.coef == pytest.approx(1.0)


def test_dac_codes_overflow_silently_as_in_the_firmware():
    out = dac(np.array([0.0, 0.5, 0.9995, 1.0, 1.2, -1.0, -1.1]))
    assert out[:3] == pytest.approx([0.0, 0.5, 4094 / 2048 - 1])  # codes truncate
    assert out[3] == -1.0 and out[4] < -0.7  # 2048 x 2.2 = 4505 codes wraps to 409
    assert out[5] == -1.0 and out[6] > 0.8


def test_the_firmwares_gaussian_has_unit_variance_and_is_bounded_by_6():
    z = irwin_hall(np.random.default_rng(0), (200_000,))
    assert np.var(z) == pytest.approx(1.0, rel=0.02)
    assert np.abs(z).max() <= 6.0


def test_streams_are_the_firmware_time_base_and_beta_proportional(board):
    board.handle(b"D1\r")
    board.handle(b"In41\r")
    board.handle(b"N020\r")
    board.handle(b"C200\r")
    s = board.streams()
    assert s["t"].size == 241 and s["t"][-1] == pytest.approx(1.2)
    assert s["fx"][0] == pytest.approx(-0.125, abs=1e-3) and s["g2"][0] == pytest.approx(0.5, abs=1e-3)
    assert s["embedding"].shape == (241, 14) and np.abs(s["embedding"]).max() <= 0.0505
    early, late = s["noise"][:40], s["noise"][180:200]
    assert early.std() > 5 * late.std()  # noise times beta: large at t = 0, small near t = 1


def test_a_go_within_5_s_of_the_last_run_is_dropped_silently(board):
    world = board.world
    fired = []
    world.add_trigger_listener(lambda traces, dt, t0: fired.append(t0))
    world.loop.load_mapping([LayerRegion(0, 0, 0, 2, 14, 1), LayerRegion(1, 0, 0, 14, 14, 1),
                             LayerRegion(2, 0, 0, 14, 2, 1, "linear")], 0.1)
    board.handle(b"In41\r")
    board.handle(b"N020\r")
    board.handle(b"Go\r")
    world.clock.sleep(2.0)
    assert board.handle(b"Go\r") == b"\r"  # no acknowledgement, no error: just nothing
    world.clock.sleep(2.0)
    board.handle(b"Go\r")
    assert (board.runs, board.dropped, len(fired)) == (2, 1, 2)
    assert fired[1] - fired[0] > 5.0
