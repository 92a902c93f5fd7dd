"""QCoDeS's own Keithley2450 driver, unchanged, against ``rrambench sim serve``."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

qcodes_keithley = pytest.importorskip("qcodes.instrument_drivers.Keithley")

MODULES = ("_source_voltage", "_source_current", "_sense_current", "_sense_voltage", "_sense_resistance")
#: Parameters QCoDeS itself cannot get in a snapshot (no sweep set up yet): no instrument I/O.
NO_IO = {"sweep_axis", "sweep", "user_number", "current", "voltage", "resistance", "block_during_ramp"}
_names = itertools.count()


@pytest.fixture
def smu(served):
    instrument = qcodes_keithley.Keithley2450(f"smu{next(_names)}", served["smu"], timeout=5)
    try:
        yield instrument
    finally:
        instrument.close()


def drain_errors(smu) -> list[str]:
    out = []
    while not (entry := smu.ask(":SYSTem:ERRor?")).startswith("0,"):
        out.append(entry)
    return out


def snapshot_values(snap: dict) -> dict[str, object]:
    """Every parameter value of a snapshot, by submodule.parameter."""
    values = {name: p.get("value") for name, p in snap["parameters"].items()}
    for sub_name, sub in snap.get("submodules", {}).items():
        values.update({f"{sub_name}.{k}": v for k, v in snapshot_values(sub).items()})
    return values


def test_snapshot_with_update_takes_well_under_a_second_per_function_and_answers_everything(smu):
    for module in MODULES:
        smu.submodules[module].user_number(1)  # QCoDeS needs one to build its DELay:USER<n> query
    drain_errors(smu)
    start = time.perf_counter()
    snap = smu.snapshot(update=True)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0  # no timeout: each is the driver's 5 s
    values = snapshot_values(snap)
    missing = [k for k, v in values.items() if v is None and k.split(".")[-1] not in NO_IO]
    assert missing == []
    assert values["_sense_voltage.nplc"] == "1.000000000E+00" and values["_source_current.limit"] == 21.0
    assert values["_sense_resistance.four_wire_measurement"] is False
    assert values["_source_voltage.limit_tripped"] is False and values["line_frequency"] == "60"
    assert drain_errors(smu) == []


def test_snapshot_in_the_drivers_default_state_fails_only_on_its_malformed_user_delay_query(smu):
    smu.visa_handle.timeout = 300  # ms: QCoDeS sends DELay:USERNone?, unanswered as on a 2450
    drain_errors(smu)
    start = time.perf_counter()
    values = snapshot_values(smu.snapshot(update=True))
    assert time.perf_counter() - start < 5 * 0.3 + 2.0  # the five user_delay queries time out, nothing else
    missing = sorted(k for k, v in values.items() if v is None and k.split(".")[-1] not in NO_IO)
    assert missing == [f"{m}.user_delay" for m in sorted(MODULES)]
    errors = drain_errors(smu)
    assert len(errors) == 5 and all(e.startswith("-113,") and "DELAY:USERNONE" in e for e in errors)


def test_sense_sweep_after_a_spot_reading_returns_exactly_the_sweeps_points(smu):
    smu.source_function("voltage")
    smu.sense_function("current")
    smu.source.limit(1e-4)
    smu.source.voltage(0.1)
    smu.output_enabled(True)
    spot = smu.sense.current()
    assert 1e-8 < spot < 1e-4
    smu.source.sweep_setup(0.0, 0.2, 11)
    smu.sense.sweep.setpoints = (smu.source.sweep_axis,)
    currents = smu.sense.sweep()
    assert currents.shape == (11,)
    assert abs(currents[0]) < spot / 20  # 0 V first: not the stale spot reading
    assert currents[-1] == pytest.approx(2 * spot, rel=0.3) and np.all(np.diff(currents) > 0)
    buffer = smu.buffer("defbuffer1")
    assert buffer.number_of_readings() == 0  # the driver clears the buffer after reading it
    smu.output_enabled(False)
    assert drain_errors(smu) == []


def test_buffers_elements_last_reading_and_a_user_buffer(smu):
    smu.source_function("voltage")
    smu.sense_function("current")
    smu.source.voltage(0.05)
    smu.output_enabled(True)
    buffer = smu.buffer("defbuffer1")
    buffer.clear_buffer()
    buffer.elements(["measurement", "source_value", "relative_time", "timestamp", "measurement_unit"])
    smu.sense.count(3)
    smu.sense.current()
    last = buffer.get_last_reading().split(",")
    assert len(last) == 5 and float(last[1]) == pytest.approx(0.05) and last[4] == "Amp DC"
    rows = np.array(buffer.get_data(1, 3)).reshape(3, 5)
    relative = rows[:, 2].astype(float)
    assert relative[0] == 0 and np.all(np.diff(relative) > 0)
    assert np.all(rows[1:, 3] > rows[:-1, 3])  # timestamps grow
    with smu.buffer("scratch", size=100, style="COMPact") as scratch:
        assert scratch.size() == 100 and scratch.number_of_readings() == 0
        scratch.trigger_start()
        assert scratch.number_of_readings() == 3
    smu.sense.count(1)
    smu.output_enabled(False)
    smu.reset()
    assert drain_errors(smu) == []
