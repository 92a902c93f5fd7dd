"""Keithley2450 driver: the exact command strings of every method (in-process transcript)."""

import numpy as np
import pytest

from instruments.errors import InstrumentError, LimitError
from instruments.keithley2450 import Keithley2450
from instruments.limits import Limits
from instruments.sim.clock import SimClock
from instruments.sim.inprocess import InProcessResource
from instruments.sim.keithley2450 import Keithley2450Emulator
from instruments.sim.world import SimWorld
from instruments.transport import VisaTransport

ERR = ":SYST:ERR?"


@pytest.fixture
def rig():
    world = SimWorld(seed=2)
    world.route(0, 1, 1)
    emulator = Keithley2450Emulator(world)
    resource = InProcessResource(emulator.handle)
    smu = Keithley2450(VisaTransport(resource, name="smu"), Limits())
    return smu, resource, world


def sent_by(rig, call):
    smu, resource, _ = rig
    resource.sent.clear()
    result = call(smu)
    return resource.sent, result


def test_identify_reset_and_error_check(rig):
    sent, idn = sent_by(rig, lambda s: s.identify())
    assert sent == ["*IDN?"] and idn.startswith("KEITHLEY INSTRUMENTS,MODEL 2450")
    assert sent_by(rig, lambda s: s.reset())[0] == ["*RST;*CLS"]
    assert sent_by(rig, lambda s: s.check_errors())[0] == [ERR]


def test_configure_voltage_source(rig):
    sent, _ = sent_by(rig, lambda s: s.configure_voltage_source(1e-4, nplc=0.1))
    assert sent == [
        ":SOUR:FUNC VOLT;:SOUR:VOLT:RANG:AUTO 1;:SOUR:VOLT:ILIM 0.0001",
        ':SENS:FUNC "CURR";:SENS:CURR:RANG:AUTO 1;:SENS:CURR:NPLC 0.1',
        ERR,
    ]


@pytest.mark.parametrize("call, expected", [
    (lambda s: s.set_current_limit(5e-4), [":SOUR:VOLT:ILIM 0.0005"]),
    (lambda s: s.set_voltage(-0.25), [":SOUR:VOLT -0.25"]),
    (lambda s: s.output_on(), [":OUTP ON"]),
    (lambda s: s.output_off(), [":OUTP OFF"]),
    (lambda s: s.output_enabled(), [":OUTP?"]),
    (lambda s: s.measure_current(), [":MEAS:CURR?"]),
    (lambda s: s.read(), [':READ? "defbuffer1",SOUR,READ']),
    (lambda s: s.safe_state(), [":ABOR;:SOUR:VOLT 0;:OUTP OFF;*OPC?"]),
])
def test_one_line_per_instrument_function(rig, call, expected):
    assert sent_by(rig, call)[0] == expected


def test_read_returns_level_and_current(rig):
    smu, _, world = rig
    smu.set_voltage(0.1)
    smu.output_on()
    volts, amps = smu.read()
    assert volts == pytest.approx(0.1)
    assert amps == pytest.approx(0.1 * world.conductance(0)[1, 1], rel=0.2)
    assert smu.output_enabled()


def test_dual_linear_sweep_transcript(rig):
    sent, (v, i) = sent_by(rig, lambda s: s.sweep_linear(0, 1.5, 4, delay=1e-3, dual=True))
    assert sent == [
        ':TRAC:CLE "defbuffer1"',
        ':SOUR:SWE:VOLT:LIN 0,1.5,4,0.001,1,BEST,OFF,ON,"defbuffer1"',
        ERR, ":INIT", "*OPC?", ':TRAC:ACT? "defbuffer1"',
        ':TRAC:DATA? 1,8,"defbuffer1",SOUR,READ', ":OUTP OFF", ERR,
    ]
    np.testing.assert_allclose(v, [0, 0.5, 1, 1.5, 1.5, 1, 0.5, 0])
    assert i.shape == (8,)


def test_list_sweep_sends_chunks_of_100_with_append(rig):
    volts = np.round(np.linspace(0, 0.5, 250), 4)
    sent, (v, i) = sent_by(rig, lambda s: s.sweep_list(volts, delay=0))
    assert sent[0] == ':TRAC:CLE "defbuffer1"'
    assert sent[1].startswith(":SOUR:LIST:VOLT 0,0.002,") and sent[1].count(",") == 99
    assert sent[2].startswith(":SOUR:LIST:VOLT:APP ") and sent[3].count(",") == 49
    assert sent[4] == ':SOUR:SWE:VOLT:LIST 1,0,1,OFF,"defbuffer1"'
    assert sent[5:] == [ERR, ":INIT", "*OPC?", ':TRAC:ACT? "defbuffer1"',
                        ':TRAC:DATA? 1,250,"defbuffer1",SOUR,READ', ":OUTP OFF", ERR]
    np.testing.assert_allclose(v, volts)


def test_software_pulse_holds_the_level_for_the_width_on_the_bench_clock(rig):
    clock = SimClock()
    sent, _ = sent_by(rig, lambda s: s.pulse(1.0, 5e-3, clock))
    assert sent == [":SOUR:VOLT 1;:OUTP ON;*OPC?", ":OUTP OFF;:SOUR:VOLT 0;*OPC?"]
    assert clock.now() == pytest.approx(5e-3)
    assert rig[2].outputs_safe()


def test_pulse_output_goes_off_even_when_the_wait_is_interrupted(rig):
    class Interrupted(SimClock):
        def sleep(self, seconds):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sent_by(rig, lambda s: s.pulse(1.0, 5e-3, Interrupted()))
    assert rig[1].sent[-1] == ":OUTP OFF;:SOUR:VOLT 0;*OPC?" and rig[2].outputs_safe()


@pytest.mark.parametrize("call", [
    lambda s: s.set_voltage(3.01),
    lambda s: s.set_voltage(float("nan")),
    lambda s: s.set_current_limit(2e-3),
    lambda s: s.configure_voltage_source(1.1e-3),
    lambda s: s.sweep_linear(0, 3.5, 10),
    lambda s: s.sweep_linear(0, 2.0, 2, delay=0),  # 2 V in one 1/60 s step: 120 V/s > 100 V/s
    lambda s: s.sweep_list([0, 1, -3.2]),
    lambda s: s.pulse(-3.5, 5e-3, SimClock()),
    lambda s: s.pulse(1.0, 20e-3, SimClock()),
])
def test_every_source_value_beyond_the_limits_raises_before_anything_is_sent(rig, call):
    smu, resource, _ = rig
    smu._limits = Limits(sweep_rate=100.0)
    resource.sent.clear()
    with pytest.raises(LimitError):
        call(smu)
    assert resource.sent == []


@pytest.mark.parametrize("call, word", [
    (lambda s: s.pulse(1.0, 1e-4, SimClock()), "width"),
    (lambda s: s.sweep_linear(0, 1, 1), "points"),
    (lambda s: s.sweep_linear(0, 1, 5, delay=1e-6), "delay"),
    (lambda s: s.sweep_list([]), "voltages"),
    (lambda s: s.configure_voltage_source(1e-4, nplc=20), "nplc"),
    (lambda s: s.set_current_limit(-1e-4), "compliance"),
])
def test_invalid_arguments_are_refused_by_name_before_sending(rig, call, word):
    smu, resource, _ = rig
    resource.sent.clear()
    with pytest.raises(ValueError, match=word):
        call(smu)
    assert resource.sent == []


def test_an_instrument_error_surfaces_with_its_text(rig):
    smu, _, _ = rig
    smu._limits = Limits(smu_voltage=300.0)  # a looser envelope than the instrument's range
    with pytest.raises(InstrumentError, match="Data out of range"):
        smu.sweep_linear(0, 250, 1001, delay=0.1)


def test_safe_state_twice_in_any_state(rig):
    smu, _, world = rig
    smu.set_voltage(0.5)
    smu.output_on()
    smu.safe_state()
    smu.safe_state()
    assert world.outputs_safe()
