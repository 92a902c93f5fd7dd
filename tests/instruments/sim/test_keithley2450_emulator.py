"""Keithley 2450 emulation over the world: settings, readings, sweeps, buffer, clock, errors."""

import re
import time

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


@pytest.mark.parametrize("line", [':SENS:FUNC "WATT"', ":SOUR:FUNC RES", ':TRAC:CLE "mybuffer"',
                                  ':TRIG:LOAD "GradeBinning", 5'])
def test_unknown_functions_buffers_and_templates_are_illegal_parameter_values(smu, line):
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
    assert rows.shape == (3, 3)  # the sweep's buffer-clear block dropped the :READ? before it
    np.testing.assert_allclose(rows[:, 1], [0, 0.1, 0.2])
    ask(smu, "OUTPUT OFF")
    assert ask(smu, "SYST:ERR?") == '0,"No error"'
    assert smu.internal_errors == 0


def test_rst_turns_the_output_off_and_empties_the_buffers(smu):
    ask(smu, ":SOUR:VOLT 0.3;:OUTP ON;:READ?")
    ask(smu, "*RST")
    assert not smu.world.outputs.smu_on and ask(smu, ":TRAC:ACT?") == "0"
    assert float(ask(smu, ":SOUR:VOLT?")) == 0.0


# -- the native command set beyond the bench's mode ------------------------------------------------
SETTING_QUERIES = [
    f"{prefix}{q}" for prefix in (":SOUR:VOLT", ":SOUR:CURR")
    for q in ("?", ":RANG?", ":RANG:AUTO?", ":DEL?", ":DEL:AUTO?", ":DEL:USER1?", ":READ:BACK?", ":HIGH:CAP?")
] + [":SOUR:VOLT:ILIM?", ":SOUR:VOLT:ILIM:TRIP?", ":SOUR:CURR:VLIM?", ":SOUR:CURR:VLIM:TRIP?",
     ":SOUR:VOLT:PROT?", ":SOUR:VOLT:PROT:TRIP?", ":OUTP:VOLT:SMOD?", ":OUTP:CURR:SMOD?"] + [
    f":SENS:{f}:{q}" for f in ("CURR", "VOLT", "RES")
    for q in ("RANG?", "RANG:AUTO?", "RANG:AUTO:LLIM?", "NPLC?", "AZER?", "RSEN?", "AVER?", "AVER:COUN?",
              "AVER:TCON?", "DEL:USER5?", "REL?", "REL:STAT?", "UNIT?")
] + [":SENS:RES:OCOM?", ":SENS:COUN?", ":SYST:LFR?", "*OPT?", "*SRE?", "*ESE?", "*STB?", ":TRAC:POIN?",
     ':TRAC:FILL:MODE? "defbuffer2"', ":TRIG:STAT?", ":STAT:OPER?", ":STAT:QUES:COND?", ":FORM:ASC:PREC?",
     ":OUTP:INT:STAT?", ":SYST:TIME?"]


@pytest.mark.parametrize("source, sense", [("VOLT", '"CURR"'), ("CURR", '"VOLT"'), ("VOLT", '"RES"')])
def test_every_functions_settings_answer_whatever_function_is_active(smu, source, sense):
    ask(smu, f":SOUR:FUNC {source};:SENS:FUNC {sense}")
    replies = [ask(smu, q) for q in SETTING_QUERIES]
    assert all(replies), [q for q, r in zip(SETTING_QUERIES, replies, strict=True) if not r]
    assert errors(smu) == []
    assert ask(smu, ":SENS:CURR:AVER:TCON?") == "REP" and ask(smu, ":SOUR:CURR:VLIM?") == "2.100000000E+01"


def test_settings_of_an_inactive_function_are_kept_and_the_suffix_1_forms_work(smu):
    ask(smu, ":SOUR:FUNC VOLT;:SENS1:VOLT:NPLC 0.5;:SOUR1:CURR:RANG 1e-5;:SOUR:CURR:VLIM 5;:OUTP1 ON")
    assert ask(smu, ":SENS:VOLT:NPLC?") == "5.000000000E-01" and ask(smu, ":OUTP1?") == "1"
    assert float(ask(smu, ":SOUR:CURR:RANG?")) == pytest.approx(1e-5) and ask(smu, ":SOUR:CURR:RANG:AUTO?") == "0"
    assert float(ask(smu, ":SENS:CURR:NPLC?")) == 1.0 and errors(smu) == []
    ask(smu, ":SENS2:CURR:NPLC 1")
    assert [e[:4] for e in errors(smu)] == ["-113"]


def test_a_sweep_after_a_spot_reading_fills_exactly_the_sweeps_entries(smu):
    ask(smu, ":SOUR:VOLT 0.1;:OUTP ON;:SENS:COUN 3")
    assert "," not in ask(smu, ":MEAS? 'defbuffer1'")  # :MEAS? answers the last of the 3 readings
    assert ask(smu, ":TRAC:ACT?") == "3"
    ask(smu, ":SOUR:SWE:VOLT:LIN 0,0.2,11,0,1,AUTO,ON,OFF,'defbuffer1';:INIT;*WAI")
    assert ask(smu, ":TRAC:ACT? 'defbuffer1'") == "11"
    v = values(ask(smu, ":TRAC:DATA? 1, 11, 'defbuffer1', SOUR"))
    np.testing.assert_allclose(v, np.linspace(0, 0.2, 11))
    assert errors(smu) == []


def test_fail_abort_stops_a_sweep_at_the_first_point_in_limit():
    world = SimWorld(seed=1)
    world.route(0, 3, 4)
    smu = Keithley2450Emulator(world)
    ask(smu, ":SOUR:VOLT:ILIM 1e-6;:SOUR:SWE:VOLT:LIN 0,1,21,0,1,BEST,ON")
    ask(smu, ":INIT")
    n = int(ask(smu, ":TRAC:ACT?"))
    i = values(ask(smu, f":TRAC:DATA? 1,{n},'defbuffer1',READ"))
    assert n < 21 and abs(i[-1]) >= 0.999e-6 and np.all(np.abs(i[:-1]) < 0.999e-6)
    assert ask(smu, ":SOUR:VOLT:ILIM:TRIP?") == "1"
    status, source_status = values(ask(smu, f":TRAC:DATA? {n},{n},'defbuffer1',STAT,SOURSTAT"))
    assert int(status) & 1 and int(source_status) & 4


def test_relative_time_counts_from_the_buffers_first_reading(smu):
    ask(smu, ":SOUR:VOLT 0.1;:OUTP ON;:READ?")
    smu.world.clock.sleep(100.0)
    ask(smu, ":SOUR:SWE:VOLT:LIN 0,0.2,5,0.01;:INIT")
    t = values(ask(smu, ':TRAC:DATA? 1,5,"defbuffer1",REL'))
    assert t[0] == 0 and np.all(np.diff(t) > 0) and t[-1] < 1.0
    ask(smu, ":TRAC:CLE;:READ?;:READ?")
    t = values(ask(smu, ":TRAC:DATA? 1,2,'defbuffer1',REL"))
    assert t[0] == 0 and 0 < t[1] < 1.0


def test_every_buffer_element_of_the_manual_is_answered(smu):
    elements = ["DATE", "FORM", "FRAC", "READ", "REL", "SEC", "SOUR", "SOURFORM", "SOURSTAT", "SOURUNIT",
                "STAT", "TIME", "TST", "UNIT"]
    ask(smu, ":SOUR:VOLT 0.1;:OUTP ON;:SENS:COUN 2;:READ?")
    fields = ask(smu, f':TRAC:DATA? 1,2,"defbuffer1",{",".join(elements)}').split(",")
    assert len(fields) == 2 * len(elements)
    row = dict(zip(elements, fields[:len(elements)], strict=True))
    assert row["UNIT"] == "Amp DC" and row["SOURUNIT"] == "Volt DC" and row["SOURFORM"] == "+100.0000 mV"
    assert row["FORM"].endswith("A") and float(row["READ"]) > 0
    assert re.fullmatch(r"\d\d/\d\d/\d{4}", row["DATE"]) and re.fullmatch(r"\d\d:\d\d:\d\d\.\d{9}", row["TIME"])
    assert row["TST"] == f"{row['DATE']} {row['TIME']}" and row["FRAC"] == "0." + row["TIME"][-9:]
    assert abs(int(row["SEC"]) - time.time()) < 3600
    assert int(row["STAT"]) & 0x108 == 0x108  # front terminals, first reading of the group
    assert int(row["SOURSTAT"]) & 1  # source read back
    assert ask(smu, ":FETC? 'defbuffer1', READ, REL") == ",".join(
        ask(smu, ":TRAC:DATA? 2,2,'defbuffer1',READ,REL").split(","))


def test_user_buffers_capacity_fill_mode_statistics_and_trace_trigger(smu):
    ask(smu, ":TRAC:MAKE 'mine', 4, FULL;:TRAC:FILL:MODE ONCE, 'mine';:SOUR:VOLT 0.1;:OUTP ON;:SENS:COUN 3")
    assert ask(smu, ":TRAC:POIN? 'mine'") == "4" and ask(smu, ":TRAC:FILL:MODE? 'mine'") == "ONCE"
    ask(smu, ":TRAC:TRIG 'mine';:TRAC:TRIG 'mine'")
    assert ask(smu, ":TRAC:ACT? 'mine'") == "4"  # ONCE: full after 4 of the 6 readings
    i = values(ask(smu, ":TRAC:DATA? 1,4,'mine'"))
    stats = {k: float(ask(smu, f":TRAC:STAT:{k}? 'mine'")) for k in ("AVER", "MAX", "MIN", "PK2P", "STDD")}
    assert stats["AVER"] == pytest.approx(i.mean()) and stats["STDD"] == pytest.approx(i.std(ddof=1))
    assert stats["PK2P"] == pytest.approx(i.max() - i.min())
    ask(smu, ":TRAC:STAT:CLE 'mine'")
    assert float(ask(smu, ":TRAC:STAT:AVER? 'mine'")) == pytest.approx(9.9e37)
    ask(smu, ":TRAC:POIN 20, 'mine'")
    assert ask(smu, ":TRAC:ACT? 'mine'") == "0"  # a new size clears the buffer
    ask(smu, ":TRAC:DEL 'mine'")
    ask(smu, ":TRAC:ACT? 'mine'")
    ask(smu, ":TRAC:MAKE 'defbuffer1', 10;:TRAC:DEL 'defbuffer2'")
    assert [e[:4] for e in errors(smu)] == ["-224", "-224", "-221"]


def test_current_source_drives_the_current_through_the_cell_and_reads_the_voltage(smu):
    g = smu.world.conductance(0)[3, 4]
    ask(smu, ":SOUR:FUNC CURR;:SOUR:CURR 1e-7;:SOUR:CURR:VLIM 2;:SENS:FUNC 'VOLT';:OUTP ON")
    volts = float(ask(smu, ":READ?"))
    assert volts == pytest.approx(1e-7 / g, rel=0.3)
    ask(smu, ":OUTP OFF;:SOUR:FUNC VOLT;:SOUR:VOLT 0.1;:OUTP ON")
    ohms = float(ask(smu, ":MEAS:RES?"))
    assert ohms == pytest.approx(1 / g, rel=0.3) and ask(smu, ":SENS:FUNC?") == '"RES"'
    assert errors(smu) == []


def test_open_circuit_current_source_sits_at_its_voltage_limit():
    smu = Keithley2450Emulator(SimWorld(seed=0))
    ask(smu, ":SOUR:FUNC CURR;:SOUR:CURR 1e-6;:SOUR:CURR:VLIM 3;:SENS:FUNC 'VOLT';:OUTP ON")
    assert float(ask(smu, ":READ?")) == pytest.approx(3.0) and ask(smu, ":SOUR:CURR:VLIM:TRIP?") == "1"


def test_simple_loop_template_and_empty_model(smu):
    ask(smu, ":SOUR:VOLT 0.1;:OUTP ON;:READ?")
    ask(smu, ':TRIG:LOAD "SimpleLoop", 4, 0.001, "defbuffer2";:INIT')
    assert ask(smu, ":TRAC:ACT? 'defbuffer2'") == "4" and ask(smu, ":TRAC:ACT?") == "1"
    ask(smu, ':TRIG:LOAD "Empty";:INIT')
    assert ask(smu, ":TRAC:ACT? 'defbuffer2'") == "4" and errors(smu) == []


def test_status_model_sre_ese_stb_and_a_mapped_error_event(smu):
    assert ask(smu, "*STB?") == "0"
    ask(smu, "*ESE 32;*SRE 36")  # ESB and EAV request service
    ask(smu, "FOO")
    assert int(ask(smu, "*STB?")) == 4 | 32 | 64
    ask(smu, "*CLS;:STAT:QUES:MAP 3, -222, 0;:STAT:QUES:ENAB 8;*SRE 8")
    assert ask(smu, ":STAT:QUES:MAP? 3") == "-222,0"
    ask(smu, ":SOUR:VOLT 999")
    assert int(ask(smu, "*STB?")) & (8 | 64) == 8 | 64
    assert ask(smu, ":STAT:QUES?") == "8" and ask(smu, ":STAT:QUES?") == "0"
    assert ask(smu, ":STAT:QUES:COND?") == "8"
    ask(smu, ":SYST:CLE;:STAT:CLE;:STAT:PRES")
    assert ask(smu, "*STB?") == "0" and ask(smu, ":STAT:QUES:ENAB?") == "0" and ask(smu, "*ESE?") == "32"


def test_beep_line_frequency_save_and_recall(smu):
    ask(smu, ":SYST:BEEP 440, 0.1;:SOUR:VOLT:ILIM 2e-5;*SAV 2;*RST")
    assert smu.beeps == [(440.0, 0.1)] and ask(smu, ":SYST:LFR?") == "60"
    assert float(ask(smu, ":SOUR:VOLT:ILIM?")) == pytest.approx(1.05e-4)
    ask(smu, "*RCL 2")
    assert float(ask(smu, ":SOUR:VOLT:ILIM?")) == pytest.approx(2e-5)
    ask(smu, ":SYST:BEEP 2e6, 0.1")  # the manual's range is 20 Hz to 8 kHz
    assert [e[:4] for e in errors(smu)] == ["-222"]


def test_unknown_header_query_is_113_and_answers_nothing(smu):
    assert ask(smu, ":SENS:CURR:DEL:USERNone?") is None
    assert errors(smu) == ['-113,"Undefined header; SENS:CURR:DEL:USERNONE"']
