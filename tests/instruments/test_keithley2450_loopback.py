"""Keithley2450 driver end to end: pyvisa-py over a loopback socket to the emulated 2450."""

import numpy as np
import pytest

from instruments.errors import InstrumentError, LimitError
from instruments.keithley2450 import Keithley2450
from instruments.limits import Limits
from instruments.sim.keithley2450 import Keithley2450Emulator
from instruments.sim.servers import LoopbackServer
from instruments.sim.world import SimWorld
from instruments.transport import VisaTransport


@pytest.fixture
def bench():
    world = SimWorld(seed=4)
    world.route(2, 5, 6)
    emulator = Keithley2450Emulator(world)
    with LoopbackServer(emulator.handle, name="smu") as server:
        io = VisaTransport.open(server.resource, name="smu", timeout=5.0)
        yield Keithley2450(io, Limits()), emulator, world
        io.close()


def test_identify_configure_and_read_the_routed_cell(bench):
    smu, emulator, world = bench
    assert smu.identify() == emulator.idn
    smu.reset()
    smu.configure_voltage_source(1e-4, nplc=1)
    smu.set_current_limit(2e-4)
    smu.check_errors()  # a query: the writes before it have been handled
    assert emulator.s.ilim == pytest.approx(2e-4)
    smu.set_voltage(0.1)
    assert not smu.output_enabled()
    smu.output_on()
    assert smu.output_enabled() and world.outputs.smu_on
    g = world.conductance(2)[5, 6]
    assert smu.measure_current() == pytest.approx(0.1 * g, rel=0.2)
    volts, amps = smu.read()
    assert volts == pytest.approx(0.1) and amps == pytest.approx(0.1 * g, rel=0.2)
    smu.output_off()
    assert not smu.output_enabled() and not world.outputs.smu_on


def test_dual_sweeps_show_the_bipolar_switching_loop(bench):
    smu, _, world = bench
    smu.configure_voltage_source(1e-4)
    v_set, i_set = smu.sweep_linear(0, 1.5, 31, delay=1e-3, dual=True)
    g_after_set = world.conductance(2)[5, 6]
    v_reset, i_reset = smu.sweep_linear(0, -1.8, 37, delay=1e-3, dual=True)
    g_after_reset = world.conductance(2)[5, 6]

    assert v_set.size == 62 and v_reset.size == 74
    # SET: on the way back the cell conducts far more than on the way up
    k = np.argmin(np.abs(v_set[:31] - 0.5))
    assert i_set[-1 - k] > 3 * i_set[k]
    assert np.max(i_set) <= 1e-4 * 1.001  # compliance caps the abrupt SET
    # RESET: at -0.5 V the return branch conducts less than the outgoing one
    k = np.argmin(np.abs(v_reset[:37] + 0.5))
    assert abs(i_reset[-1 - k]) < 0.5 * abs(i_reset[k])
    assert g_after_set > 3 * g_after_reset
    assert not world.outputs.smu_on  # a sweep leaves the output off


def test_list_sweep_and_software_pulse(bench):
    smu, _, world = bench
    smu.configure_voltage_source(1e-4)
    v, i = smu.sweep_list([0.0, 0.05, 0.1, 0.05, 0.0], delay=0)
    np.testing.assert_allclose(v, [0, 0.05, 0.1, 0.05, 0])
    assert i[2] > i[1] > 0
    t0 = world.clock.now()
    smu.pulse(0.2, 2e-3, world.clock)
    assert world.clock.now() - t0 >= 2e-3
    assert world.outputs_safe()


def test_instrument_error_surfaces_with_its_text(bench):
    smu, _, _ = bench
    smu._io.write(":SOUR:VOLT 999")
    with pytest.raises(InstrumentError, match=r"-222.*Data out of range"):
        smu.check_errors()


@pytest.mark.parametrize("call", [
    lambda s, w: s.set_voltage(3.2),
    lambda s, w: s.set_current_limit(5e-3),
    lambda s, w: s.configure_voltage_source(2e-3),
    lambda s, w: s.sweep_linear(-3.5, 0, 11),
    lambda s, w: s.sweep_linear(0, 1, 2, delay=0),  # 1 V per 1/60 s point = 60 V/s > 50 V/s
    lambda s, w: s.sweep_list([0.5, 4.0]),
    lambda s, w: s.pulse(3.5, 5e-3, w.clock),
    lambda s, w: s.pulse(1.0, 50e-3, w.clock),
])
def test_a_source_value_beyond_the_limits_never_reaches_the_instrument(bench, call):
    smu, emulator, world = bench
    smu._limits = Limits(sweep_rate=50.0)
    before = emulator.count
    with pytest.raises(LimitError):
        call(smu, world)
    assert emulator.count == before and len(emulator.received) == before
    assert world.outputs_safe()


def test_safe_state_twice_after_a_live_output(bench):
    smu, _, world = bench
    smu.set_voltage(0.3)
    smu.output_on()
    assert smu.output_enabled() and not world.outputs_safe()
    smu.safe_state()
    smu.safe_state()
    assert world.outputs_safe()
