"""noise-sweep: a 3x3 grid on a local Dask cluster, the same code on an existing cluster, parameters."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis import open_run
from protocols.diffusion.noise_sweep import NoiseSweep, run_grid
from protocols.diffusion.simulated_sweep import METRICS, SweepPoint, run_point, scaled_device
from protocols.engine.protocol import ParameterError
from protocols.engine.runner import RunEngine, RunState, step_rng

TINY = {"samples": 16, "n_steps": 100, "settle": 1.0}
DASK = Path(sys.executable).with_name("dask")


def run_sweep(path: Path, **values) -> object:
    engine = RunEngine(NoiseSweep.from_values({**TINY, **values}), None, path, seed=5)
    assert engine.run() == RunState.COMPLETED, engine.error
    return open_run(path)


@pytest.mark.slow
def test_3x3_grid_of_both_models_completes_on_a_local_dask_cluster(tmp_path):
    """Every point of 2 models x 3 read x 3 write levels is recorded, and the heatmaps are full."""
    f = run_sweep(tmp_path / "sweep.h5", read_noise=[0.5, 1.0, 2.0], write_noise=[0.5, 1.0, 2.0],
                  scheduler="local", workers=2)
    assert len(f.read("kl_mean")) == 18
    seen = set(zip(f.read("point_model").tolist(), f.read("point_read_noise").tolist(),
                   f.read("point_write_noise").tolist(), strict=True))
    assert seen == {(m, r, w) for m in (0, 1) for r in (0.5, 1.0, 2.0) for w in (0.5, 1.0, 2.0)}
    grid = f.read("kl_mean_grid")
    assert grid.shape == (1, 2, 3, 3) and np.all(np.isfinite(grid)) and np.all(grid >= 0)
    assert f.read("final_states").shape == (18, 16, 2)
    assert f.read("model_noise_trained").tolist() == [1, 0], "ring is noise-trained, ring-plain is not"
    nxdata = f.attrs("/entry/data")
    assert nxdata["signal"] == "kl_mean_grid" and nxdata["axes"] == [".", "model_index", "read_noise", "write_noise"]
    err = f.read("programming_rms_error_grid")[0]
    assert np.all(err[:, :, 2] > err[:, :, 0]), "more write noise leaves larger weight errors"


@pytest.mark.slow
def test_the_same_code_path_runs_on_an_existing_cluster_and_matches_the_serial_results(tmp_path):
    """A scheduler and a worker started as separate processes on 127.0.0.1 run the sweep;
    each point's result is a function of the point alone (identical to running it in process)."""
    scheduler_file = tmp_path / "scheduler.json"
    procs = []
    try:
        procs.append(subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                       "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                                       "--scheduler-file", str(scheduler_file)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 30
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(subprocess.Popen([str(DASK), "worker", "--scheduler-file", str(scheduler_file),
                                       "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1",
                                       "--no-dashboard", "--dashboard-address", "127.0.0.1:0"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        f = run_sweep(tmp_path / "remote.h5", read_noise=[0.5, 2.0], write_noise=[1.0], models=["ring"],
                      scheduler=address)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    kl = f.read("kl_mean")
    reads = f.read("point_read_noise")
    assert sorted(reads.tolist()) == [0.5, 2.0]
    serial = {}

    def keep(index: int, result: dict) -> None:
        serial[result["point"].read_noise] = result["metrics"]["kl_mean"]

    # the run's points share one seed drawn from the step's generator (run seed 5, step 0)
    sweep = NoiseSweep.from_values({**TINY, "read_noise": [0.5, 2.0], "write_noise": [1.0], "models": ["ring"]})
    seed = int(step_rng(5, 0).integers(2**31))
    run_grid(sweep.points(seed), keep, scheduler="serial")
    for r, value in zip(reads, kl, strict=True):
        assert value == pytest.approx(serial[float(r)], rel=1e-12)


def test_write_noise_scales_programming_noise_and_relaxation_only():
    base, double = scaled_device(1.0), scaled_device(2.0)
    for name in ("pulse_c2c", "relax_sigma0", "relax_sigma_rel", "relax_drift_rel"):
        assert getattr(double, name) == pytest.approx(2 * getattr(base, name))
    assert double.read_q0 == base.read_q0 and double.v_set == base.v_set


def test_a_point_returns_every_declared_metric():
    out = run_point(SweepPoint("ring", 1.0, 1.0, samples=8, n_steps=50, settle=0.0, seed=0))
    assert set(out["metrics"]) == set(METRICS) and out["final"].shape == (8, 2)


@pytest.mark.parametrize("values, match", [
    ({"scheduler": "http://x"}, "scheduler"),
    ({"read_noise": [1.0, 1.0]}, "read_noise"),
    ({"models": ["digits"]}, "models"),
    ({"write_noise": [-1.0]}, "write_noise"),
])
def test_bad_parameters_are_refused_naming_them(values, match):
    with pytest.raises(ParameterError, match=match):
        NoiseSweep.from_values(values)
