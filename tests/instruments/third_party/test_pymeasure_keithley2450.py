"""PyMeasure's Keithley2450 driver, unchanged, against the simulated 2450 on loopback.

PyMeasure's docstring says the driver needs the 2450 in "SCPI 2400" mode; its source,
measure, statistics, beep and shutdown paths send native 2450 commands, which is what
these tests use. Where the driver assumes 2400 behaviour the emulator follows the 2450
manual (docs/instruments-emulated.md lists the differences).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.instruments.third_party.conftest import ROUTE

keithley = pytest.importorskip("pymeasure.instruments.keithley")


@pytest.fixture
def smu(sim):
    instrument = keithley.Keithley2450(sim.resources["smu"], read_termination="\n", write_termination="\n",
                                       timeout=2000)
    try:
        yield instrument
    finally:
        instrument.adapter.close()


def test_source_voltage_measure_current_on_the_routed_cell(smu, sim):
    g = sim.world.conductance(ROUTE[0])[ROUTE[1], ROUTE[2]]
    smu.reset()
    smu.apply_voltage(compliance_current=1e-4)
    smu.measure_current(nplc=0.1, current=1e-4, auto_range=False)
    smu.source_voltage = 0.1
    smu.enable_source()
    assert smu.source_enabled and smu.source_mode == "voltage"
    assert smu.current == pytest.approx(0.1 * g, rel=0.2)
    assert smu.compliance_current == pytest.approx(1e-4) and smu.source_voltage == pytest.approx(0.1)
    assert smu.current_range == pytest.approx(1e-4) and smu.current_nplc == pytest.approx(0.1)
    assert smu.source_voltage_range == pytest.approx(0.2)  # autorange: the 200 mV range holds 0.1 V
    assert smu.check_errors() == []


def test_source_current_measure_voltage_and_resistance(smu, sim):
    g = sim.world.conductance(ROUTE[0])[ROUTE[1], ROUTE[2]]
    smu.apply_current(compliance_voltage=2.0)
    smu.measure_voltage(nplc=1)
    smu.source_current = 1e-7
    smu.enable_source()
    assert smu.voltage == pytest.approx(1e-7 / g, rel=0.3)
    assert smu.compliance_voltage == pytest.approx(2.0) and smu.source_current == pytest.approx(1e-7)
    smu.measure_resistance(nplc=1)
    smu.wires = 4
    assert smu.resistance == pytest.approx(1 / g, rel=0.3) and smu.wires == 4
    smu.disable_source()
    assert smu.check_errors() == []


def test_buffer_statistics_of_the_readings_taken(smu):
    smu.apply_voltage(compliance_current=1e-4)
    smu.measure_current(nplc=0.1)
    smu.source_voltage = 0.1
    smu.enable_source()
    smu.write(":TRACe:CLEar")
    readings = np.array([smu.current for _ in range(6)])
    # The 2450 answers the statistics of the buffer's readings, one value each (the
    # 2400-style mean_voltage/mean_current properties index a list it does not send).
    assert smu.means == pytest.approx(readings.mean())
    assert smu.maximums == pytest.approx(readings.max()) and smu.minimums == pytest.approx(readings.min())
    assert smu.standard_devs == pytest.approx(readings.std(ddof=1))
    smu.buffer_points = 500
    assert smu.buffer_points == 500
    assert smu.check_errors() == []


def test_filters_output_off_states_and_options(smu):
    smu.current_filter_type = "MOV"
    smu.current_filter_count = 5
    smu.current_filter_state = "ON"
    assert (smu.current_filter_type, smu.current_filter_count, smu.current_filter_state) == ("MOV", 5, 1)
    smu.voltage_filter_type = "REP"
    assert smu.voltage_filter_type == "REP"
    smu.current_output_off_state = "HIMP"
    assert smu.current_output_off_state == "HIMP" and smu.voltage_output_off_state == "NORM"
    assert smu.options == "0" and smu.id.startswith("KEITHLEY INSTRUMENTS,MODEL 2450")
    assert smu.check_errors() == []


def test_beep_and_shutdown_leave_the_bench_safe(smu, sim):
    smu.beep(440, 0.05)
    smu.triad(440, 0.01)
    assert smu.complete == "1"  # the writes before this query have been handled
    assert sim.smu.beeps == [(440.0, 0.05), (440.0, 0.01), (550.0, 0.01), (660.0, 0.01)]
    smu.apply_voltage(compliance_current=1e-4)
    smu.source_voltage = 0.2
    smu.enable_source()
    assert smu.source_enabled and not sim.world.outputs_safe()
    smu.shutdown()  # ramps to 0 V, aborts the trigger model, output off
    assert smu.source_voltage == 0.0 and not smu.source_enabled and sim.world.outputs_safe()
    assert smu.check_errors() == []
