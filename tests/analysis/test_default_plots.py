"""Every protocol's run file as a generic NeXus viewer sees it: silx and nexusformat find a
default plot whose axes are datasets with units (not point indices); and the run records
its outcome (key metrics with units) and, when it opened a bench, the instruments' settings."""

from __future__ import annotations

import math
import re
import warnings

import h5py
import pytest
from report_runs import available, run_file

from analysis import open_run

nxdata = pytest.importorskip("silx.io.nxdata")
nexus = pytest.importorskip("nexusformat.nexus")

PROTOCOLS = available()

#: protocol -> (group silx and nexusformat plot, signal, axes ("." none)): docs/hdf5-schema.md, "Default plot".
EXPECTED = {
    "read-array": ("/entry/data", "conductance", ("time", "row", "col")),
    "form": ("/entry/plot", "formed_fraction", (".", "rung_voltage")),
    "iv-sweep": ("/entry/plot", "iv_current", ("iv_voltage",)),
    "write-verify": ("/entry/plot", "programmed", (".", "target")),
    "multilevel": ("/entry/plot", "readback", (".", "target")),
    "pattern": ("/entry/data", "readback", (".", "row", "col")),
    "retention": ("/entry/data", "conductance", ("time_after", ".")),
    "read-noise": ("/entry/data", "conductance", ("time", ".")),
    "write-noise": ("/entry/plot", "readback_std", (".", "target")),
    "program-model": ("/entry/plot", "programmed_weight", (".", "target_weight")),
    "sample": ("/entry/plot", "final_radius", ("final_x", "final_y")),
    "noise-sweep": ("/entry/data", "kl_mean_grid", (".", "model_index", "read_noise", "write_noise")),
    "time-scale": ("/entry/plot", "kl_mean", ("rc",)),
}


def test_every_protocol_has_an_expected_default_plot():
    assert set(PROTOCOLS) <= set(EXPECTED), "a new protocol needs its row here and in docs/hdf5-schema.md"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.slow
def test_silx_finds_a_valid_default_plot_with_axes_that_carry_units(protocol):
    group, signal, axes = EXPECTED[protocol]
    with h5py.File(run_file(protocol), "r") as h5:
        plot = nxdata.get_default(h5)
        assert plot is not None and plot.is_valid, f"{protocol}: {plot.issues if plot is not None else 'none'}"
        assert plot.group.name == group and plot.signal_dataset_name == signal
        names = [None if n is None else n.rsplit("/", 1)[-1] for n in plot.axes_dataset_names]
        assert names == [None if a == "." else a for a in axes]
        real = [a for a in plot.axes if a is not None]
        assert real, f"{protocol}: only point indices"
        assert all("units" in a.attrs for a in [*real, plot.signal])
        assert plot.signal.shape[-1] > 0, f"{protocol}: nothing to draw"
        if protocol == "sample":
            assert plot.is_x_y_value_scatter
        elif group == "/entry/plot":
            assert plot.is_curve, f"{protocol}: silx draws it as curves"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_nexusformat_finds_the_same_default_with_named_axes(protocol):
    group, signal, axes = EXPECTED[protocol]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = nexus.nxload(str(run_file(protocol)))
        try:
            plot = root.entry.plottable_data
            assert plot.nxpath == group and plot.nxsignal.nxname == signal
            named = [a.nxname for a in plot.nxaxes if not re.fullmatch(r"Axis\d+", a.nxname)]
            assert named == [a for a in axes if a != "."]
            assert all("units" in a.attrs for a in plot.nxaxes if a.nxname in named)
            if protocol == "sample":
                assert [c.nxname for c in plot.nxcoordinates] == ["final_y", "final_x"]
        finally:
            root.nxfile.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_completed_run_records_its_outcome_with_units(protocol):
    run = open_run(run_file(protocol))
    assert run.outcome, f"{protocol}: no outcome"
    for name, metric in run.outcome.items():
        assert set(metric) == {"value", "units"}, name
        value = metric["value"]
        assert value is None or isinstance(value, (int, float)) and math.isfinite(value), (name, value)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_bench_run_records_each_instruments_settings_with_units(protocol):
    run = open_run(run_file(protocol))
    if not run.instruments:  # opened no bench (noise-sweep): nothing to read
        assert run.snapshot == {}
        return
    assert list(run.snapshot) == ["smu", "scope", "macro_controller", "seed_board"]
    for name, snapshots in run.snapshot.items():
        assert list(snapshots) == ["start"] and snapshots["start"]["time"] == run.started
        assert all(set(s) == {"value", "units"} for s in snapshots["start"]["settings"].values()), name
    smu = run.snapshot["smu"]["start"]["settings"]
    assert smu["line_frequency"] == {"value": 60.0, "units": "Hz"} and smu["nplc"]["units"] == ""
    assert smu["source_limit"]["units"] == "A" and smu["identity"]["value"] == run.instruments["smu"]
