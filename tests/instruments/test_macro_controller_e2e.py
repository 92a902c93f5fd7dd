"""MacroController end to end: pyserial ``socket://`` -> loopback server -> board emulator -> world.

Each test protects one promise of docs/macro-controller-protocol.md or of the driver's
contract (SI units, limits before bytes, retries without double application).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from instruments.errors import InstrumentError, InstrumentTimeout, LimitError, LinkError
from instruments.limits import Limits
from instruments.macro_controller import MacroController
from instruments.macro_controller_wire import PULSE_CELL, Op, decode, encode, max_cells
from instruments.serial_link import SerialLink
from instruments.sim.macro_controller import MacroControllerEmulator
from instruments.sim.servers import LoopbackServer
from instruments.sim.world import SimWorld

TWO_MACROS = np.unravel_index(np.arange(2048), (2, 32, 32))
BIAS, WINDOW = float(np.float32(0.1)), float(np.float32(1e-6))  # default read, as sent on the wire


class Rig:
    """World, board emulator, loopback server and a driver connected through pyserial."""

    def __init__(self, seed: int = 3, timeout: float = 1.0, **driver) -> None:
        self.world = SimWorld(seed=seed)
        self.board = MacroControllerEmulator(self.world)
        self.faults = self.world.faults["macro_controller"]
        self.server = LoopbackServer(self.board.handle, delimiter=b"\x00", name="macro_controller",
                                     faults=self.faults).start()
        self.link = SerialLink.open(self.server.url, timeout=timeout)
        self.ctl = MacroController(self.link, Limits(), **driver)

    def close(self) -> None:
        self.link.close()
        self.server.stop()


@pytest.fixture
def rig():
    """A fresh rig (its world matches a twin SimWorld(seed=3))."""
    r = Rig()
    yield r
    r.close()


@pytest.fixture(scope="module")
def shared():
    """One rig for tests that need no fresh world (pyserial's close sleeps 0.3 s)."""
    r = Rig()
    yield r
    r.close()


def program_pulses(n: int, seed: int = 0):
    """A write-verify-like iteration: per-cell polarity, amplitude, width and gate."""
    rng = np.random.default_rng(seed)
    pol = rng.choice([-1, 1], n)
    amp = np.where(pol > 0, rng.uniform(0.8, 1.8, n), rng.uniform(0.8, 2.2, n))
    return pol, amp, rng.uniform(50e-9, 1e-6, n), rng.uniform(0.8, 1.6, n)


def twin_pulse_and_read(twin: SimWorld, cells, pol, amp, wid, gate, frame_cells: int) -> np.ndarray:
    """The same pulses applied in-process, frame by frame, with the wire's float32 values."""
    f32 = [np.asarray(x, np.float32).astype(float) for x in (amp, wid, gate)]
    out = []
    for s in range(0, len(pol), frame_cells):
        sl = slice(s, s + frame_cells)
        m, r, c = (x[sl] for x in cells)
        twin.pulse(m, r, c, pol[sl], f32[0][sl], f32[1][sl], f32[2][sl])
        out.append(twin.read(m, r, c, bias=BIAS, window=WINDOW))
    return np.concatenate(out).astype(np.float32)


def test_identify_reports_identity_protocol_and_geometry(shared):
    assert shared.ctl.identify() == "RRAMBENCH,MACRO-CONTROLLER-SIM,SIM0001,5.0"   # version 5: read-only entries
    info = shared.ctl.info()
    assert (info.protocol, info.n_macros, info.rows, info.cols) == (5, 8, 32, 32)
    status = shared.ctl.status()
    assert status.last_error == 0 and status.routed is None and not status.integrators_running


def test_pulse_batch_over_the_link_applies_exactly_the_in_process_pulses(rig):
    pol, amp, wid, gate = program_pulses(2048)
    g = rig.ctl.pulse_batch(*TWO_MACROS, pol, amp, wid, gate)
    twin = SimWorld(seed=3)
    expected = twin_pulse_and_read(twin, TWO_MACROS, pol, amp, wid, gate, 2048)
    np.testing.assert_array_equal(g.astype(np.float32), expected)
    np.testing.assert_array_equal(rig.world.conductance()[:2], twin.conductance()[:2])


def test_read_only_entries_ride_in_the_pulse_batch_over_the_link(rig):
    """Polarity 0, amplitude 0: the cell is read, not pulsed, in the same frame and round trip as
    the pulses (write-verify's confirmation reads); the reads are the in-process ones."""
    pol, amp, wid, gate = program_pulses(2048, seed=2)
    pol[1::2], amp[1::2], gate[1::2] = 0, 0.0, 0.0  # every other cell only read
    trips, frames = rig.ctl.round_trips, rig.board.count
    g = rig.ctl.pulse_batch(*TWO_MACROS, pol, amp, wid, gate)
    assert (rig.ctl.round_trips - trips, rig.board.count - frames) == (1, 1)
    twin = SimWorld(seed=3)
    p = pol != 0
    m, r, c = TWO_MACROS
    twin.pulse(m[p], r[p], c[p], pol[p], *(np.asarray(x, np.float32).astype(float)[p] for x in (amp, wid, gate)))
    np.testing.assert_array_equal(g.astype(np.float32), twin.read(m, r, c, bias=BIAS, window=WINDOW).astype(np.float32))
    np.testing.assert_array_equal(rig.world.conductance()[:2], twin.conductance()[:2])


@pytest.mark.parametrize("protocol", [4, 5])
def test_write_verify_sends_read_only_entries_only_to_a_board_that_takes_them(monkeypatch, protocol):
    """A board of protocol 4 would refuse a polarity 0: write-verify's confirmations then go in
    batches of their own. The board is asked its protocol once, before the first iteration."""
    import instruments.macro_controller_wire as wire
    from protocols.characterization.write_verify_algorithm import write_verify

    monkeypatch.setattr(wire, "PROTOCOL_VERSION", protocol)  # what the emulator's IDENTIFY says
    rig = Rig()
    try:
        cells = np.arange(64)
        target = np.random.default_rng(0).uniform(5e-6, 60e-6, 64)
        result = write_verify(rig.ctl, np.zeros(64, int), cells // 32, cells % 32, target,
                              now=rig.world.clock.now)
        assert rig.ctl.round_trips == result.iterations + 1, "one IDENTIFY, then one round trip per iteration"
        assert rig.board.refused == 0
        if protocol == 4:
            assert rig.ctl.pulse_cells_per_frame == 0
            assert result.confirm_along == 0 and result.confirm_batches > 0
        else:
            assert rig.ctl.pulse_cells_per_frame == max_cells(Op.PULSE_BATCH)
            assert result.confirm_along > 0
    finally:
        rig.close()


def test_two_macro_batch_costs_one_round_trip_and_one_frame(shared):
    before_trips, before_frames = shared.ctl.round_trips, shared.board.count
    shared.ctl.pulse_batch(*TWO_MACROS, 1, 1.2, 100e-9, 1.2)
    shared.ctl.read_batch(*TWO_MACROS)
    assert shared.ctl.round_trips - before_trips == 2
    assert shared.board.count - before_frames == 2


def test_small_max_payload_splits_a_batch_into_the_documented_number_of_frames():
    rig = Rig(max_payload=1024)
    try:
        per_frame = max_cells(Op.PULSE_BATCH, 1024)
        assert per_frame == 63  # (1024 - 8) // 16
        pol, amp, wid, gate = program_pulses(2048, seed=1)
        g = rig.ctl.pulse_batch(*TWO_MACROS, pol, amp, wid, gate)
        assert rig.board.count == -(-2048 // per_frame)
        twin = SimWorld(seed=3)
        np.testing.assert_array_equal(
            g.astype(np.float32), twin_pulse_and_read(twin, TWO_MACROS, pol, amp, wid, gate, per_frame))
    finally:
        rig.close()


def test_reads_return_siemens_close_to_the_true_conductance(shared):
    truth = shared.world.conductance(0)
    g_map = shared.ctl.read_macro(0, bias=0.1, window=1e-6)
    assert g_map.shape == (32, 32)
    rel = np.abs(g_map - truth) / truth
    assert np.percentile(rel, 90) < 0.1
    g = shared.ctl.read_batch(0, np.arange(32), 5)
    assert np.percentile(np.abs(g - truth[:, 5]) / truth[:, 5], 90) < 0.1


def test_route_and_unroute_switch_the_smu_matrix(shared):
    shared.ctl.route(2, 3, 4)
    assert shared.world.routed == (2, 3, 4)
    assert shared.ctl.status().routed == (2, 3, 4)
    shared.ctl.unroute()
    assert shared.world.routed is None


def test_safe_state_leaves_the_world_safe(shared):
    shared.world.outputs.dac_max = 0.3
    shared.ctl.safe_state()
    assert shared.world.outputs_safe()


def test_board_error_surfaces_as_instrument_error_with_its_text(shared):
    with pytest.raises(InstrumentError, match=r"outside 8 macros of 32x32") as info:
        shared.ctl.read_batch(8, 0, 0)
    assert "BAD_ARGUMENT" in info.value.detail
    status = shared.ctl.status()
    assert status.last_error == 4 and "outside 8 macros" in status.error_text
    assert shared.ctl.status().last_error == 0  # reading the status cleared it


@pytest.mark.parametrize("call", [
    lambda c: c.pulse_batch(0, 0, 0, 1, 2.5, 100e-9, 1.0),       # SET amplitude > 2.0 V
    lambda c: c.pulse_batch(0, 0, 0, -1, 2.6, 100e-9, 1.0),      # RESET amplitude > 2.5 V
    lambda c: c.pulse_batch(0, 0, [0, 1], 1, 1.0, 100e-9, [1.0, 3.4]),  # gate > 3.3 V
    lambda c: c.pulse_batch(0, 0, 0, 1, 1.0, 5e-9, 1.0),         # width < 10 ns
    lambda c: c.pulse_batch(0, 0, 0, 1, 1.0, 20e-3, 1.0),        # width > 10 ms
    lambda c: c.pulse_batch(0, 0, 0, 1, 1.0, 100e-9, 1.0, bias=0.6),
    lambda c: c.read_batch(0, 0, 0, bias=0.51),
    lambda c: c.read_macro(0, bias=-0.7),
    lambda c: c.load_mapping([], 0.1) if False else c.load_mapping(
        [dict(macro=0, row0=0, col0=0, n_in=2, n_out=14, bias_rows=1, activation="relu",
              r_feedback=1e4)], 0.6),
    lambda c: c.set_streams(1e-3, np.full((5, 14), 0.6), np.zeros(14), *np.ones((3, 5))),
    lambda c: c.set_streams(1e-3, np.zeros((5, 14)), np.full(14, -0.9), *np.ones((3, 5))),
    lambda c: c.set_initial(np.array([[0.1, 0.2], [0.3, 0.55]])),
], ids=["set", "reset", "gate", "width-short", "width-long", "verify-bias", "read-bias", "macro-bias",
        "mapping-bias", "embedding", "condition", "initial"])
def test_values_beyond_limits_raise_before_any_byte_reaches_the_board(shared, call):
    shared.ctl.status()
    received = len(shared.board.received)
    with pytest.raises(LimitError):
        call(shared.ctl)
    shared.ctl.status()  # a later frame: anything the refused call sent would be in by now
    assert len(shared.board.received) == received + 1
    assert decode(shared.board.received[-1]).op == Op.STATUS


def _with_one(values, k: int, value) -> np.ndarray:
    out = np.array(values, dtype=float)
    out[k] = value
    return out


_RESETS = np.full(2048, -1)  # every cell a RESET but the one a case makes a SET
_MIXED = _with_one(_RESETS, 1500, 1)


@pytest.mark.parametrize(("call", "error"), [
    # A SET cell above the SET limit in a batch of RESETs below the (higher) RESET limit.
    (lambda c: c.pulse_batch(*TWO_MACROS, _MIXED, _with_one(np.full(2048, 2.4), 1500, 2.1), 100e-9, 1.0),
     LimitError),
    (lambda c: c.pulse_batch(*TWO_MACROS, _RESETS, _with_one(np.full(2048, 2.4), 7, 2.6), 100e-9, 1.0),
     LimitError),
    (lambda c: c.pulse_batch(*TWO_MACROS, 1, _with_one(np.full(2048, 1.0), 2047, np.nan), 100e-9, 1.0),
     LimitError),
    (lambda c: c.pulse_batch(*TWO_MACROS, -1, _with_one(np.full(2048, 1.0), 0, np.inf), 100e-9, 1.0),
     LimitError),
    (lambda c: c.pulse_batch(*TWO_MACROS, 1, 1.0, _with_one(np.full(2048, 1e-7), 3, 5e-9), 1.0), LimitError),
    (lambda c: c.pulse_batch(*TWO_MACROS, 1, 1.0, 100e-9, _with_one(np.full(2048, 1.0), 9, np.nan)), LimitError),
    (lambda c: c.pulse_batch(*TWO_MACROS, _with_one(_MIXED, 5, 0), 1.0, 100e-9, 1.0), ValueError),
    (lambda c: c.pulse_batch(*TWO_MACROS, 1, _with_one(np.full(2048, 1.0), 5, -0.1), 100e-9, 1.0), ValueError),
    (lambda c: c.pulse_batch(TWO_MACROS[0], _with_one(TWO_MACROS[1], 4, 256).astype(int), TWO_MACROS[2], 1,
                             1.0, 100e-9, 1.0), ValueError),
    (lambda c: c.read_batch(TWO_MACROS[0], TWO_MACROS[1], _with_one(TWO_MACROS[2], 4, -1).astype(int)),
     ValueError),
    (lambda c: c.read_batch(0, 0, [0, 1.5]), ValueError),
], ids=["set-among-resets", "reset", "nan-amplitude", "inf-amplitude", "width", "nan-gate", "polarity",
        "negative-amplitude", "row-256", "col-negative", "fractional-index"])
def test_one_bad_cell_of_a_full_batch_refuses_it_before_any_byte(shared, call, error):
    """The driver checks the arguments as given, before broadcasting them, with one reduction
    where every cell is within both pulse limits: what it lets through must still be safe."""
    shared.ctl.status()
    received = len(shared.board.received)
    with pytest.raises(error):
        call(shared.ctl)
    shared.ctl.status()
    assert len(shared.board.received) == received + 1


def test_a_reset_between_the_set_and_the_reset_limits_is_sent(shared):
    """2.3 V is above the SET limit (2.0 V) and below the RESET limit (2.5 V): a RESET there is allowed."""
    pol = np.array([1, -1, -1])
    g = shared.ctl.pulse_batch(0, 3, [0, 1, 2], pol, [1.9, 2.3, 2.5], 100e-9, [1.0, 3.3, 2.0])
    assert g.shape == (3,) and np.all(g > 0)
    frame = np.frombuffer(decode(shared.board.received[-1]).payload, PULSE_CELL, offset=8)
    np.testing.assert_array_equal(frame["polarity"], pol)
    np.testing.assert_allclose(frame["amplitude"], [1.9, 2.3, 2.5], rtol=1e-7)


def test_disconnect_mid_operation_raises_link_error_within_the_timeout():
    rig = Rig(timeout=1.0)
    try:
        rig.faults.disconnect_after = 2
        rig.ctl.identify()
        rig.ctl.identify()
        start = time.monotonic()
        with pytest.raises(LinkError):
            rig.ctl.pulse_batch(*TWO_MACROS, 1, 1.2, 100e-9, 1.2)
        assert time.monotonic() - start < 1.0
    finally:
        rig.close()


def test_repeated_frame_with_the_same_seq_is_answered_from_cache_not_applied_again(rig):
    # What a host retry looks like on the wire: the identical frame, twice.
    import struct

    cell = struct.pack("<BBBbfff", 0, 4, 4, 1, 1.5, 1e-6, 1.4)
    frame = encode(77, Op.PULSE_BATCH, struct.pack("<ff", 0.1, 1e-6) + cell)
    with rig.link.lock:
        rig.link.write(frame)
        first = rig.link.read_message()
        rig.link.write(frame)
        second = rig.link.read_message()
    assert first == second and decode(first).payload[0] == 0
    assert rig.board.executed == 1
    twin = SimWorld(seed=3)
    twin.pulse(0, 4, 4, 1, np.float32(1.5), np.float32(1e-6), np.float32(1.4))
    twin.read(0, 4, 4, BIAS, WINDOW)
    np.testing.assert_array_equal(rig.world.conductance(0), twin.conductance(0))


def test_lost_replies_are_retried_with_the_same_seq_and_pulses_applied_once(caplog):
    rig = Rig(timeout=0.1, retries=20)
    try:
        rig.faults.missing_reply_rate = 0.4
        pol, amp, wid, gate = program_pulses(2048, seed=2)
        with caplog.at_level(logging.INFO, logger="rrambench.io.macro_controller"):
            for _ in range(4):
                g = rig.ctl.pulse_batch(*TWO_MACROS, pol, amp, wid, gate)
        assert rig.ctl.retries > 0
        assert sum("retry" in r.getMessage() for r in caplog.records) == rig.ctl.retries
        twin = SimWorld(seed=3)
        for _ in range(4):
            expected = twin_pulse_and_read(twin, TWO_MACROS, pol, amp, wid, gate, 2048)
        np.testing.assert_array_equal(g.astype(np.float32), expected)
        assert rig.board.executed == 4
    finally:
        rig.close()


def test_corrupted_link_completes_a_2048_cell_program_and_read_with_correct_data(caplog):
    # 1e-3 flipped bytes per byte in both directions; frames kept small (docs: noisy links).
    rig = Rig(timeout=0.2, retries=30, max_payload=512)
    try:
        rig.faults.corrupt_rate = 1e-3
        rig.faults.drop_rate = 1e-4
        pol, amp, wid, gate = program_pulses(2048, seed=4)
        with caplog.at_level(logging.INFO, logger="rrambench.io.macro_controller"):
            g = rig.ctl.pulse_batch(*TWO_MACROS, pol, amp, wid, gate)
            reread = rig.ctl.read_batch(*TWO_MACROS)
        rig.faults.corrupt_rate = rig.faults.drop_rate = 0.0
        per_frame = max_cells(Op.PULSE_BATCH, 512)
        twin = SimWorld(seed=3)
        np.testing.assert_array_equal(
            g.astype(np.float32), twin_pulse_and_read(twin, TWO_MACROS, pol, amp, wid, gate, per_frame))
        per_read = max_cells(Op.READ_BATCH, 512)
        expected = np.concatenate([twin.read(*(x[s:s + per_read] for x in TWO_MACROS), BIAS, WINDOW)
                                   for s in range(0, 2048, per_read)])
        np.testing.assert_array_equal(reread.astype(np.float32), expected.astype(np.float32))
        retries = [r for r in caplog.records if "retry" in r.getMessage()]
        assert rig.ctl.retries > 0 and len(retries) == rig.ctl.retries
    finally:
        rig.close()


def test_initial_conditions_larger_than_a_frame_are_staged_and_arrive_intact(rig):
    x0 = np.random.default_rng(0).uniform(-0.5, 0.5, (10000, 2))  # 80 kB > one frame
    rig.ctl.set_initial(x0)
    assert rig.board.count == 3  # two STAGE chunks + EXEC_STAGED
    np.testing.assert_array_equal(rig.board.ops._x0, x0.astype(np.float32))


def test_bad_driver_arguments_are_value_errors_naming_the_argument(shared):
    before = shared.board.count
    with pytest.raises(ValueError, match="polarity"):
        shared.ctl.pulse_batch(0, 0, 0, 0, 1.0, 1e-7, 1.0)
    with pytest.raises(ValueError, match="amplitude"):
        shared.ctl.pulse_batch(0, 0, 0, 1, -1.0, 1e-7, 1.0)
    with pytest.raises(ValueError, match="row"):
        shared.ctl.read_batch(0, 256, 0)
    with pytest.raises(ValueError, match="window"):
        shared.ctl.read_batch(0, 0, 0, window=0)
    assert shared.board.count == before


def test_board_that_never_answers_gives_instrument_timeout_after_the_retries():
    rig = Rig(timeout=0.05, retries=2)
    try:
        rig.faults.missing_reply_rate = 1.0
        with pytest.raises(InstrumentTimeout, match="after 2 retries"):
            rig.ctl.status()
        assert rig.ctl.retries == 2 and rig.board.count == 3  # one frame, two retransmissions
    finally:
        rig.close()


def test_unreachable_port_is_a_link_error():
    with pytest.raises(LinkError, match="cannot open"):
        SerialLink.open("socket://127.0.0.1:1", timeout=0.5)
