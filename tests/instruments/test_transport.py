"""VisaTransport: what it sends, how failures map onto our exceptions, locking, tracing."""

import logging
import socket
import threading

import numpy as np
import pytest

from instruments.errors import InstrumentError, InstrumentTimeout, LinkError
from instruments.sim.inprocess import InProcessResource
from instruments.sim.keithley2450 import Keithley2450Emulator
from instruments.sim.servers import LoopbackServer
from instruments.sim.world import SimWorld
from instruments.transport import VisaTransport


@pytest.fixture
def emulator():
    return Keithley2450Emulator(SimWorld(seed=0))


@pytest.fixture
def recorded(emulator):
    resource = InProcessResource(emulator.handle)
    return VisaTransport(resource, name="smu"), resource


def test_write_and_queries_send_exactly_the_command(recorded):
    io, res = recorded
    io.write(":SOUR:VOLT 0.1")
    assert io.query("*IDN?").startswith("KEITHLEY")
    io.write(":OUTP ON")
    values = io.query_ascii(':READ? "defbuffer1",SOUR,READ')
    assert values.shape == (2,) and values[0] == pytest.approx(0.1)
    assert res.sent == [":SOUR:VOLT 0.1", "*IDN?", ":OUTP ON", ':READ? "defbuffer1",SOUR,READ']


def test_a_missing_reply_raises_instrument_timeout(recorded):
    io, _ = recorded
    with pytest.raises(InstrumentTimeout, match="no reply"):
        io.query(":OUTP ON")  # a command, so the instrument never answers


def test_check_errors_raises_with_the_instruments_text_and_drains_the_queue(recorded):
    io, _ = recorded
    io.write(":SOUR:VOLT 500;:FOO")
    with pytest.raises(InstrumentError) as info:
        io.check_errors()
    assert "-222" in info.value.detail and "Data out of range" in info.value.detail
    assert "-113" in info.value.detail and info.value.instrument == "smu"
    io.check_errors()  # the queue is empty now


def test_per_query_timeout_is_restored(recorded):
    io, res = recorded
    io.timeout = 1.5
    io.query("*OPC?", timeout=30.0)
    assert io.timeout == pytest.approx(1.5) and res.timeout == pytest.approx(1500)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1"])
def test_timeouts_must_be_positive_seconds(recorded, bad):
    io, _ = recorded
    with pytest.raises(ValueError, match="timeout"):
        io.timeout = bad


def test_traffic_is_traced_at_debug_on_the_instrument_logger(recorded, caplog):
    io, _ = recorded
    with caplog.at_level(logging.DEBUG, logger="rrambench.io.smu"):
        io.query("*IDN?")
    lines = [r.getMessage() for r in caplog.records if r.name == "rrambench.io.smu"]
    assert lines[0] == "> *IDN?" and lines[1].startswith("< KEITHLEY")


def test_a_closed_resource_is_a_link_error(recorded):
    io, _ = recorded
    io.close()
    with pytest.raises(LinkError):
        io.write("*CLS")


# -- over loopback through pyvisa-py ----------------------------------------------------------
@pytest.fixture
def served(emulator):
    with LoopbackServer(emulator.handle, name="smu") as server:
        io = VisaTransport.open(server.resource, name="smu", timeout=2.0)
        yield io, server
        io.close()


def test_open_sets_socket_terminations_and_queries_round_trip(served, emulator):
    io, _ = served
    assert io.resource.read_termination == "\n" and io.resource.write_termination == "\n"
    assert io.query("*IDN?") == emulator.idn
    io.write(":SOUR:VOLT 0.25")
    assert float(io.query(":SOUR:VOLT?")) == pytest.approx(0.25)
    assert list(emulator.received)[-2:] == [b":SOUR:VOLT 0.25", b":SOUR:VOLT?"]


def test_binary_blocks_are_parsed_by_pyvisa_over_the_socket():
    from instruments.sim.infiniivision import InfiniiVisionEmulator

    scope = InfiniiVisionEmulator(SimWorld(seed=0))
    with LoopbackServer(scope.handle, name="scope") as server:
        with VisaTransport.open(server.resource, name="scope", timeout=2.0) as io:
            io.write(":DIG CHAN1;:WAV:SOUR CHAN1;:WAV:FORM WORD;:WAV:POIN:MODE RAW;:WAV:POIN 2000")
            codes = io.query_binary(":WAV:DATA?", datatype="H", is_big_endian=True)
            assert codes.size == 2000 and abs(np.median(codes) - 32768) < 200
            io.write(":WAV:FORM BYTE")
            assert io.query_binary(":WAV:DATA?", datatype="B").size == 2000


def test_an_instrument_that_never_answers_times_out_over_the_socket():
    with LoopbackServer(lambda message: None, name="mute") as server:
        with VisaTransport.open(server.resource, name="mute", timeout=0.2) as io:
            with pytest.raises(InstrumentTimeout):
                io.query("*IDN?")


def test_a_dropped_connection_is_a_link_error(served):
    io, server = served
    assert io.query("*OPC?") == "1"
    server.stop()
    with pytest.raises((LinkError, InstrumentTimeout)):
        io.query("*IDN?")
    with pytest.raises(LinkError):
        for _ in range(3):  # the peer is gone: at the latest a later write fails
            io.query("*IDN?")


def test_talking_to_a_port_nobody_listens_on_is_a_link_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LinkError):  # pyvisa-py connects lazily: open or the first I/O fails
        with VisaTransport.open(f"TCPIP0::127.0.0.1::{port}::SOCKET", name="nobody", timeout=0.5) as io:
            io.query("*IDN?")


def test_a_malformed_resource_string_is_a_link_error():
    with pytest.raises(LinkError, match="cannot open"):
        VisaTransport.open("TCPIP0::127.0.0.1::notaport::SOCKET", name="bad", timeout=0.5)


def test_concurrent_threads_never_get_each_others_replies(served, emulator):
    io, _ = served
    io.write(":SOUR:VOLT 0.125")
    failures = []

    def worker(query, expected):
        for _ in range(40):
            reply = io.query(query)
            if reply != expected:
                failures.append((query, reply))

    threads = [threading.Thread(target=worker, args=("*IDN?", emulator.idn)),
               threading.Thread(target=worker, args=(":SOUR:VOLT?", "1.250000000E-01")),
               threading.Thread(target=worker, args=("*OPC?", "1"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
