"""Keithley 2450 emulation over the world: settings, readings, sweeps, buffer, clock, errors."""

import numpy as np
import pytest

from instruments.sim.keithley2450 import Keithley2450Emulator
from instruments.sim.world import SimWorld


@pytest.fixture
def smu():
    world = SimWorld(seed=1)
    world.route(0, 3, 4)
    return Keithley2450Emulator(world)


def ask(smu, line):
    reply = smu.handle(line.encode())
    return None if reply is None else reply.decode()


def errors(smu):
    out = []
    while not (entry := ask(smu, ":SYST:ERR?")).startswith("0,"):
        out.append(entry)
    return out


def values(reply):
    return np.array([float(x) for x in reply.split(",")])


def test_identity_and_language():
    smu = Keithley2450Emulator(SimWorld(seed=0))
    assert ask(smu, "*IDN?").startswith("KEITHLEY INSTRUMENTS,MODEL 2450,")
    assert ask(smu, "*LANG?") == "SCPI"
    assert ask(smu, ":SENS:FUNC?") == '"CURR:DC"'


def test_output_and_level_drive_the_worlds_smu_state(smu):
    ask(smu, ":SOUR:FUNC VOLT;:SOUR:VOLT 0.2;:SOUR:VOLT:ILIM 1e-4")
    assert not smu.world.outputs.smu_on
    ask(smu, ":OUTP ON")
    assert smu.world.outputs.smu_on and smu.world.outputs.smu_level == pytest.approx(0.2)
    assert ask(smu, ":OUTP?") == "1"
    ask(smu, ":SOUR:VOLT 0;:OUTP OFF")
    assert smu.world.outputs_safe()


def test_a_reading_is_ohms_law_on_the_routed_cell_and_lands_in_defbuffer1(smu):
    g = smu.world.conductance(0)[3, 4]
    ask(smu, ":SOUR:VOLT 0.1;:OUTP ON")
    amps = float(ask(smu, ":READ?"))
    assert amps == pytest.approx(0.1 * g, rel=0.2)
    volts, amps2 = values(ask(smu, ':READ? "defbuffer1", SOUR, READ'))
    assert volts == pytest.approx(0.1) and amps2 == pytest.approx(0.1 * g, rel=0.2)
    assert float(ask(smu, ":MEAS:CURR?")) == pytest.approx(0.1 * g, rel=0.2)
    assert ask(smu, ':TRAC:ACT? "defbuffer1"') == "3"
    ask(smu, ":TRAC:CLE")
    assert ask(smu, ":TRAC:ACT?") == "0"


def test_unrouted_smu_sees_an_open_circuit():
    smu = Keithley2450Emulator(SimWorld(seed=0))
    ask(smu, ":SOUR:VOLT 1;:OUTP ON")
    assert abs(float(ask(smu, ":MEAS:CURR?"))) < 1e-9


def test_reading_with_output_off_answers_nan_and_queues_a_settings_conflict(smu):
    assert float(ask(smu, ":READ?")) == pytest.approx(9.9e37)
    assert errors(smu)[0].startswith("-221")


def test_readings_advance_the_world_clock_by_their_integration_time(smu):
    ask(smu, ":SOUR:VOLT 0.1;:OUTP ON;:SENS:CURR:NPLC 10;:SOUR:VOLT:DEL 0")
    before = smu.world.clock.now()
    ask(smu, ":READ?")
    assert smu.world.clock.now() - before == pytest.approx(10 / 60, rel=0.01)


def test_dual_linear_sweep_shows_the_set_switching_loop(smu):
    ask(smu, ":SOUR:VOLT:ILIM 1e-4;:TRAC:CLE")
    ask(smu, ':SOUR:SWE:VOLT:LIN 0, 1.5, 31, 0, 1, BEST, OFF, ON, "defbuffer1"')
    ask(smu, ":INIT;*WAI")
    assert ask(smu, "*OPC?") == "1"
    n = int(ask(smu, ':TRAC:ACT? "defbuffer1"'))
    assert n == 62
    v, i = values(ask(smu, f':TRAC:DATA? 1,{n},"defbuffer1",SOUR,READ')).reshape(-1, 2).T
    assert v[0] == 0 and v[30] == pytest.approx(1.5) and v[-1] == 0
    up, down = i[:31], i[31:][::-1]
    assert np.max(np.abs(i)) <= 1e-4 * 1.001  # compliance holds
    at_half = np.argmin(np.abs(v[:31] - 0.5))
    assert down[at_half] > 3 * up[at_half]  # SET happened: low -> high conductance
    assert errors(smu) == []


def test_list_sweep_sources_the_list_in_order_with_append(smu):
    ask(smu, ":SOUR:LIST:VOLT 0,0.1,0.2")
    ask(smu, ":SOUR:LIST:VOLT:APP 0.1,0")
    assert ask(smu, ":SOUR:LIST:VOLT:POIN?") == "5"
    ask(smu, ':SOUR:SWE:VOLT:LIST 1, 0.001, 1, OFF, "defbuffer1";:INIT')
    data = values(ask(smu, ':TRAC:DATA? 1, 5, "defbuffer1", SOUR, READ')).reshape(-1, 2)
    np.testing.assert_allclose(data[:, 0], [0, 0.1, 0.2, 0.1, 0])
    assert errors(smu) == []


def test_trace_data_relative_time_column_grows(smu):
    ask(smu, ":SOUR:SWE:VOLT:LIN 0,0.2,5,0.01;:INIT")
    t = values(ask(smu, ':TRAC:DATA? 1,5,"defbuffer1",REL'))
    assert np.all(np.diff(t) > 0)


@pytest.mark.parametrize("line", [
    ":SOUR:VOLT 211", ":SOUR:VOLT:ILIM 2", ":SOUR:VOLT:ILIM 0", ":SENS:CURR:NPLC 20",
    ":SOUR:SWE:VOLT:LIN 0,1,1", ":SOUR:SWE:VOLT:LIN 0,300,5", ":SOUR:LIST:VOLT 0,250",
    ':TRAC:DATA? 1,5,"defbuffer1"',
])
def test_values_beyond_the_instruments_ranges_are_refused_with_222(smu, line):
    ask(smu, line)
    assert [e[:4] for e in errors(smu)] == ["-222"]
    assert smu.s.level == 0.0 and smu.internal_errors == 0


@pytest.mark.parametrize("line", [':SENS:FUNC "VOLT"', ":SOUR:FUNC CURR", ':TRAC:CLE "mybuffer"'])
def test_modes_the_emulation_lacks_are_illegal_parameter_values(smu, line):
    ask(smu, line)
    assert [e[:4] for e in errors(smu)] == ["-224"]


def test_pymeasure_keithley2450_command_strings_work(smu):
    """The strings PyMeasure's Keithley2450 sends (reference/instruments.md)."""
    for line in ["*RST;:stat:pres;:*CLS;", ":SOUR:FUNC VOLT", ":SOUR:VOLT:RANG:AUTO 1",
                 ":SOUR:VOLT:ILIM 0.0001", ":SENS:FUNC 'CURR';:SENS:CURR:NPLC 1.000000;",
                 ":SENS:CURR:RANG:AUTO 1;", ":SOUR:VOLT:LEV 0.1", "OUTPUT ON", ":ABOR",
                 ":SOUR:VOLT:DEL:AUTO 1", ":FORM:DATA ASCII"]:
        assert ask(smu, line) is None, line
    assert ask(smu, "OUTPUT?") == "1"
    assert ask(smu, ":SOUR:FUNC?") == "VOLT"
    assert float(ask(smu, ":SOUR:VOLT?")) == pytest.approx(0.1)
    assert float(ask(smu, ":SOUR:VOLT:ILIM?")) == pytest.approx(1e-4)
    assert float(ask(smu, ":READ?")) > 0
    ask(smu, ":SOUR:SWE:VOLT:LIN 0, 0.2, 3, 0.0001, 1, BEST, ON, OFF, \"defbuffer1\"")
    ask(smu, ":INIT")
    end = int(ask(smu, ':TRACe:ACTual:END? "defbuffer1"'))
    rows = values(ask(smu, f':TRAce:DATA? 1, {end}, "defbuffer1", RELative, SOURce, READing')).reshape(-1, 3)
    assert rows.shape == (4, 3)
    ask(smu, "OUTPUT OFF")
    assert ask(smu, "SYST:ERR?") == '0,"No error"'
    assert smu.internal_errors == 0


def test_rst_turns_the_output_off_and_empties_the_buffers(smu):
    ask(smu, ":SOUR:VOLT 0.3;:OUTP ON;:READ?")
    ask(smu, "*RST")
    assert not smu.world.outputs.smu_on and ask(smu, ":TRAC:ACT?") == "0"
    assert float(ask(smu, ":SOUR:VOLT?")) == 0.0
