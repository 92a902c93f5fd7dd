"""SeedBoard driver: exact bytes on the wire, refusals before sending, the 5 s lock-out.

The board end is a real loopback server that records every line it receives (the
firmware sends no acknowledgement, so the recording is the whole conversation).
"""

from __future__ import annotations

import time

import pytest

from instruments.errors import LimitError
from instruments.seed_board import RUN_DURATION, SeedBoard
from instruments.serial_link import SerialLink
from instruments.sim.clock import SimClock
from instruments.sim.servers import LoopbackServer


class Recorder:
    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def __call__(self, message: bytes) -> None:
        self.lines.append(message + b"\n")  # the server strips the LF delimiter


@pytest.fixture
def rig():
    rec = Recorder()
    with LoopbackServer(rec, delimiter=b"\n", name="seed_board") as server:
        link = SerialLink.open(server.url, name="seed_board", baudrate=9600)
        clock = SimClock(100.0)
        yield SeedBoard(link, clock), rec, clock
        link.close()


def wire(rec: Recorder, count: int) -> list[bytes]:
    """The first ``count`` lines the server received (waits briefly for them)."""
    deadline = time.monotonic() + 2.0
    while len(rec.lines) < count and time.monotonic() < deadline:
        time.sleep(0.002)
    return rec.lines[:count]


def configure(board: SeedBoard) -> None:
    board.set_bias(0.1)
    board.init(4, True)
    board.set_offsets(0.0, 0.0)
    board.set_coefficient(2.26)
    board.set_noise_scale(0.2)


def test_each_call_sends_exactly_the_firmware_command_with_cr_lf(rig):
    board, rec, _ = rig
    board.set_bias(0.2)
    board.set_bias(0.05)
    board.init(0, True)
    board.init(4, False)
    board.set_offsets(-0.5, 0.49)
    board.set_offsets(0.07, -0.12)
    board.set_coefficient(0.01)
    board.set_coefficient(3.99)
    board.set_noise_scale(0.0)
    board.set_noise_scale(0.16)
    board.go()
    assert wire(rec, 11) == [b"D2\r\n", b"D0\r\n", b"In01\r\n", b"In40\r\n", b"O0099\r\n", b"O5738\r\n",
                             b"C001\r\n", b"C399\r\n", b"N000\r\n", b"N016\r\n", b"Go\r\n"]


@pytest.mark.parametrize("call, args, words", [
    ("set_bias", (0.15,), "only 0.05, 0.1, 0.2"),
    ("init", (5, True), "task type"),
    ("set_offsets", (0.5, 0.0), "offset first"),
    ("set_offsets", (0.0, -0.51), "offset second"),
    ("set_offsets", (0.005, 0.0), "0.01 V steps"),
    ("set_coefficient", (0.0,), "coefficient"),
    ("set_coefficient", (4.0,), "beyond"),        # 0.5 x 0.5 x 4 overflows the 12-bit DAC
    ("set_coefficient", (1.234,), "0.01 steps"),
    ("set_noise_scale", (10.0,), "noise scale"),
    ("set_noise_scale", (0.34,), "noise DACs"),   # 6 x 0.34 x 0.5 > 1 V: the code would wrap
    ("set_noise_scale", (float("nan"),), "finite"),
])
def test_values_the_firmware_cannot_represent_raise_before_sending(rig, call, args, words):
    board, rec, _ = rig
    board.set_bias(0.1)
    board.set_offsets(0.0, 0.0)
    with pytest.raises(LimitError, match=words):
        getattr(board, call)(*args)
    time.sleep(0.05)
    assert rec.lines == [b"D1\r\n", b"O5050\r\n"]


def test_init_refuses_an_embedding_scale_that_overflows_its_dacs(rig):
    board, rec, _ = rig
    board.set_bias(0.2)             # scale 5 x 0.2 = 1 V per unit: sin + 0 reaches 1 V
    with pytest.raises(LimitError, match="embedding reaches 1 V"):
        board.init(0, True)
    with pytest.raises(LimitError, match="condition peak is unknown"):
        board.init(1, True)
    time.sleep(0.05)
    assert rec.lines == [b"D2\r\n"]


def test_go_refuses_until_every_dac_setting_is_known(rig):
    board, rec, _ = rig
    board.set_bias(0.1)
    board.init(4, True)
    with pytest.raises(LimitError, match="offsets, coefficient, noise_scale not set"):
        board.go()
    time.sleep(0.05)
    assert b"Go\r\n" not in rec.lines


def test_each_line_costs_its_bytes_at_9600_baud_of_bench_time_before_the_board_reads_it(rig):
    board, rec, clock = rig
    t0 = clock.now()
    board.set_noise_scale(0.16)  # "N016" + CR LF: 6 bytes
    assert clock.now() - t0 == pytest.approx(6 * 10 / 9600)
    assert board.line_free == pytest.approx(clock.now())
    assert wire(rec, 1) == [b"N016\r\n"]


def test_go_within_the_lockout_waits_on_the_bench_clock(rig):
    board, rec, clock = rig
    configure(board)
    first = board.go()
    second = board.go()
    # Lock-out counted from the moment the first Go had arrived (4 bytes at 9600 baud after
    # it was written) to the writing of the second one, which arrives as late again.
    assert second - first == pytest.approx(board.lockout + 4 * 10 / 9600)
    assert clock.now() == pytest.approx(second + RUN_DURATION)
    assert wire(rec, 7).count(b"Go\r\n") == 2


def test_go_within_the_lockout_is_refused_with_the_time_left_under_refuse_policy(rig):
    board, rec, clock = rig
    board.policy = "refuse"
    configure(board)
    board.go()
    with pytest.raises(LimitError, match=r"go refused: 3.8\d* s of the board's 5.01 s lock-out remain"):
        board.go()
    clock.sleep(3.9)
    board.go()
    assert wire(rec, 7).count(b"Go\r\n") == 2


def test_go_never_lands_where_the_firmware_counter_wraps(rig):
    """The firmware's tick counter wraps every 600 s after a run start; a Go arriving in the
    first 5 s of a lap is dropped. The driver waits those windows out (and the end of a lap,
    where the line would arrive after the wrap)."""
    board, rec, clock = rig
    configure(board)
    first = board.go()
    clock.sleep(600.0 - (clock.now() - first) + 1.0)  # 1 s into the next lap
    second = board.go()
    assert (second - first) % 600.0 >= board.lockout
    clock.sleep(600.0 - (clock.now() - second) % 600.0 - 0.01)  # 10 ms before a wrap
    third = board.go()
    assert (third - second) % 600.0 >= board.lockout
