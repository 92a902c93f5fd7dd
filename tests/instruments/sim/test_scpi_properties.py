"""Property tests: arbitrary input never crashes or wedges the SCPI emulators."""

import socket

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instruments.sim.infiniivision import InfiniiVisionEmulator
from instruments.sim.keithley2450 import Keithley2450Emulator
from instruments.sim.servers import LoopbackServer
from instruments.sim.world import SimWorld

HEADERS = [
    ":SOUR:VOLT", ":SOUR:VOLT:ILIM", ":SENS:CURR:NPLC", ":OUTP", ":READ?", ":MEAS:CURR?", ":TRAC:DATA?",
    ":SOUR:SWE:VOLT:LIN", ":SOUR:LIST:VOLT", ":SOUR:SWE:VOLT:LIST", ":INIT", ":TRAC:CLE", "*IDN?",
    ":CHAN1:SCAL", ":CHAN2:OFFS", ":TIM:SCAL", ":TRIG:EDGE:SOUR", ":ACQ:SEGM:COUN", ":ACQ:MODE",
    ":WAV:FORM", ":WAV:POIN", ":WAV:DATA?", ":WAV:PRE?", ":DIG", ":SING", ":TER?", "*RST", "SYST:ERR?",
]
ARGS = ["1", "-1", "0.5", "1e3", "1e-9", "ON", "OFF", "MAX", "CHAN1", "SEGM", "WORD", '"defbuffer1"',
        "'x'", "SOUR", "READ", "3", "0", "abc", "#", "1,2,3", "", "9e99", "-0.0"]

printable_lines = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=80)
grammar_lines = st.lists(
    st.tuples(st.sampled_from(HEADERS), st.lists(st.sampled_from(ARGS), max_size=4)), min_size=1, max_size=4
).map(lambda cmds: ";".join(f"{h} {','.join(a)}".strip() for h, a in cmds))


def emulators():
    world = SimWorld(seed=0)
    world.route(0, 0, 0)
    return [Keithley2450Emulator(world), InfiniiVisionEmulator(world)]


EMULATORS = emulators()
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def drain(emulator):
    return emulator.handle(b":SYST:ERR:ALL?")


@SETTINGS
@given(line=st.one_of(printable_lines, grammar_lines))
def test_random_lines_never_raise_and_never_hit_an_emulator_bug(line):
    for emulator in EMULATORS:
        reply = emulator.handle(line.encode("latin-1"))
        assert reply is None or isinstance(reply, bytes)
        assert emulator.internal_errors == 0, drain(emulator)
        assert emulator.handle(b"*IDN?") == emulator.idn.encode()  # still answering
        drain(emulator)


@SETTINGS
@given(word=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=9, max_size=14),
       arg=st.sampled_from(ARGS))
def test_an_unknown_header_is_queued_as_113(word, arg):
    for emulator in EMULATORS:
        drain(emulator)
        emulator.handle(f":{word} {arg}".encode())
        assert emulator.handle(b"SYST:ERR?").startswith(b"-113,")


@SETTINGS
@given(line=grammar_lines, cut=st.integers(min_value=0, max_value=5))
def test_an_unbalanced_quote_is_a_syntax_error(line, cut):
    for emulator in EMULATORS:
        drain(emulator)
        emulator.handle((line + ' "' + "x" * cut).encode())
        assert b"-102," in emulator.handle(b":SYST:ERR:ALL?")


@pytest.mark.parametrize("make", [Keithley2450Emulator, InfiniiVisionEmulator])
def test_random_bytes_over_loopback_leave_the_server_answering(make):
    rng = np.random.default_rng(7)
    emulator = make(SimWorld(seed=0))
    with LoopbackServer(emulator.handle, name="fuzz") as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        for _ in range(200):
            junk = rng.integers(1, 256, rng.integers(0, 60), dtype=np.uint8).tobytes().replace(b"\n", b" ")
            s.sendall(junk + b"\n")
        s.sendall(b"*CLS;*IDN?\n")
        data = b""
        while not data.endswith(emulator.idn.encode() + b"\n"):
            chunk = s.recv(65536)
            assert chunk, "server closed the connection"
            data += chunk
    assert emulator.count == 201 and emulator.internal_errors == 0
