"""noise-sweep: a 3x3 grid on a local Dask cluster, the same code on an existing cluster, worlds with
their median and quartiles, the Fig. 5e/f figure, files from before worlds existed, parameters."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis import diffusion_data, open_run
from analysis.figures import style
from analysis.report_diffusion import noise_sweep_section
from protocols.diffusion.noise_sweep import GRIDS, STATISTICS, NoiseSweep, run_grid, settings
from protocols.diffusion.scoring import model_vae, task_floor
from protocols.diffusion.simulated_sweep import (
    METRICS,
    SweepPoint,
    kl_ceiling,
    run_point,
    sample_quality,
    scaled_device,
    world_seeds,
)
from protocols.diffusion.tasks import ring_samples
from protocols.diffusion.weights import load_shipped
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
                  grid="full", worlds=1, scheduler="local", workers=2)
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
                      worlds=1, scheduler=address)
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
    sweep = NoiseSweep.from_values({**TINY, "read_noise": [0.5, 2.0], "write_noise": [1.0], "models": ["ring"],
                                    "worlds": 1})
    seed = int(step_rng(5, 0).integers(2**31))
    run_grid(sweep.points(seed), keep, scheduler="serial")
    for r, value in zip(reads, kl, strict=True):
        assert value == pytest.approx(serial[float(r)], rel=1e-12)


def test_write_noise_scales_programming_noise_and_relaxation_only():
    base, double = scaled_device(1.0), scaled_device(2.0)
    for name in ("pulse_c2c", "relax_sigma0", "relax_sigma_rel", "relax_drift_rel"):
        assert getattr(double, name) == pytest.approx(2 * getattr(base, name))
    assert double.read_q0 == base.read_q0 and double.v_set == base.v_set


@pytest.mark.slow
def test_a_point_returns_every_declared_metric():
    out = run_point(SweepPoint("ring", 1.0, 1.0, samples=8, n_steps=50, settle=0.0, seed=0))
    assert set(out["metrics"]) == set(METRICS) and out["final"].shape == (8, 2)


@pytest.mark.parametrize("values, match", [
    ({"scheduler": "http://x"}, "scheduler"),
    ({"read_noise": [1.0, 1.0]}, "read_noise"),
    ({"models": ["ring", "digits-plain"]}, "models: one task per sweep"),
    ({"models": ["letters"]}, "models"),
    ({"write_noise": [-1.0]}, "write_noise"),
    ({"grid": "diagonal"}, "grid"),
    ({"worlds": 0}, "worlds"),
])
def test_bad_parameters_are_refused_naming_them(values, match):
    with pytest.raises(ParameterError, match=match):
        NoiseSweep.from_values(values)


def test_axes_settings_are_two_lines_through_the_level_nearest_the_default():
    read, write = [0.5, 1.0, 4.0], [2.0, 8.0]  # write has no 1x: the line runs at 2x
    assert settings(read, write, "axes") == [(0, 0), (1, 0), (2, 0), (1, 1)]
    assert settings(read, write, "full") == [(i, j) for i in range(3) for j in range(2)]


def test_every_setting_and_model_runs_on_the_same_spawned_worlds():
    """One point per model x setting x world; the world seeds are spawned from the run seed,
    distinct, and shared by every setting and model (paired comparison)."""
    sweep = NoiseSweep.from_values({**TINY, "read_noise": [1.0, 4.0], "write_noise": [1.0, 8.0], "worlds": 3})
    points = sweep.points(seed=11)
    assert len(points) == 2 * 3 * 3
    seeds = world_seeds(11, 3)
    assert len(set(seeds)) == 3 and seeds != world_seeds(12, 3)
    assert [p.seed for p in points] == seeds * 6 and [p.world for p in points] == [0, 1, 2] * 6
    assert {(p.read_noise, p.write_noise) for p in points} == {(1.0, 1.0), (4.0, 1.0), (1.0, 8.0)}


def test_the_default_sweep_is_the_two_lines_over_eight_worlds_and_fits_a_few_minutes_on_two_cores():
    sweep = NoiseSweep.from_values({})
    assert sweep.p.grid == "axes" and sweep.p.worlds == 8 and sweep.p.workers == 2
    assert min(sweep.p.read_noise) == 0.5 and max(sweep.p.read_noise) >= 16 and max(sweep.p.write_noise) == 16
    (step,) = sweep.plan()
    assert len(sweep.points(0)) == 2 * (len(sweep.p.read_noise) + len(sweep.p.write_noise) - 1) * 8
    assert step.estimate < 300


def test_a_world_whose_samples_all_leave_the_histogram_range_scores_the_kl_ceiling():
    reference = ring_samples(2000, np.random.default_rng(0))
    lost = sample_quality(np.full((10, 2), 50.0), reference)
    assert lost["lost_fraction"] == 1.0
    assert lost["kl_mean"] == pytest.approx(kl_ceiling(reference[:, 0]), rel=0.05) and lost["kl_mean"] > 10
    good = sample_quality(ring_samples(500, np.random.default_rng(1)), reference)
    assert good["lost_fraction"] == 0.0 and good["kl_mean"] < 0.5
    assert lost["kl_pooled"] > 10 and good["kl_pooled"] < 0.5


@pytest.fixture(scope="module")
def worlds_run(tmp_path_factory) -> Path:
    """Both models, read 0.5/1/4 at write 1, write 8 at read 1, two worlds, in process."""
    path = tmp_path_factory.mktemp("sweep") / "worlds.h5"
    run_sweep(path, read_noise=[0.5, 1.0, 4.0], write_noise=[1.0, 8.0], worlds=2, scheduler="serial")
    return path


@pytest.mark.slow
def test_every_world_is_a_row_and_the_grids_are_its_median_and_quartiles(worlds_run):
    f = open_run(worlds_run)
    assert len(f.read("kl_mean")) == 2 * 4 * 2
    assert sorted(f.read("point_world").tolist()) == [0] * 8 + [1] * 8
    assert f.read("world_seeds").shape == (1, 2)
    median, q25, q75 = (f.read(f"kl_mean{STATISTICS[s]}")[-1] for s in ("median", "q25", "q75"))
    assert median.shape == (2, 3, 2)
    ran = np.isfinite(median)
    assert ran.sum() == 2 * 4 and not ran[:, 0, 1].any(), "axes: nothing off the two lines"
    assert np.all(q25[ran] <= median[ran]) and np.all(median[ran] <= q75[ran])
    rows = (f.read("point_model") == 1) & (f.read("point_write_noise") == 8.0)
    assert median[1, 1, 1] == pytest.approx(np.median(f.read("kl_mean")[rows]))
    for k in GRIDS:
        for suffix in STATISTICS.values():
            assert f.attrs(f"/entry/data/{k}{suffix}")["units"] == ("S" if k == "programming_rms_error" else "")
    data = diffusion_data.load_noise_sweep(f)
    np.testing.assert_allclose(data.grids["kl_mean"], median, equal_nan=True)
    np.testing.assert_allclose(data.q75["kl_mean"], q75, equal_nan=True)
    assert data.worlds[ran].tolist() == [2] * 8 and not data.full


@pytest.mark.slow
def test_the_report_draws_one_fig5_figure_per_task_with_a_median_line_and_iqr_band_per_model(worlds_run, tmp_path):
    with style.context():
        sec = noise_sweep_section(open_run(worlds_run))
    figures = dict(sec.figures)
    assert set(figures) == {"noise_robustness_ring"}, "axes sweep: no heatmaps; one task"
    drawn = [ax for ax in figures["noise_robustness_ring"].axes if ax.lines]
    assert [ax.get_ylabel() for ax in drawn] == ["KL, mean of x and y (nats)"] * 2 + ["KL, x and y pooled (nats)"] * 2 \
        + ["2-D histogram distance"] * 2 + ["programming error, RMS of G+ - G- (µS)"], "no accuracy for the ring"
    read, write, error = drawn[0], drawn[1], drawn[-1]
    assert "read-noise multiplier" in read.get_xlabel() and "write-noise multiplier" in write.get_xlabel()
    for ax in drawn[:-1]:
        assert len([ln for ln in ax.lines if "IQR" in ln.get_label()]) == 2 and len(ax.collections) == 2
    for ax in (read, write):
        assert len([ln for ln in ax.lines if "software" in ln.get_label()]) == 2, "noise-free baseline per model"
    f = open_run(worlds_run)
    floors = [f.read("kl_floor")[-1][2]] * 2 + [f.read("kl_floor")[-1][3]] * 2 + [f.read("hist2d_floor")[-1][0]] * 2
    for ax, floor in zip(drawn[:-1], floors, strict=True):
        (line,) = [ln for ln in ax.lines if ln.get_label().startswith("sampling floor")]
        assert line.get_ydata()[0] == pytest.approx(floor)
    assert not [ln for ln in error.lines if "floor" in ln.get_label()]
    assert set(sec.metrics["sampling floor"]) == {"kl_floor", "kl_floor_spread", "hist2d_floor"}
    outcome = f.outcome
    assert outcome["hist2d_min"]["value"] == pytest.approx(np.nanmin(f.read("hist2d_distance")))
    assert outcome["kl_pooled_floor"]["value"] == pytest.approx(f.read("kl_floor")[-1][3])
    assert outcome["hist2d_floor"]["value"] == pytest.approx(f.read("hist2d_floor")[-1][0])
    png = style.save(figures["noise_robustness_ring"], tmp_path / "noise_robustness_ring.png")
    assert png.stat().st_size > 10_000


@pytest.mark.slow
def test_a_file_from_before_worlds_is_read_and_drawn(tmp_path):
    """Old files have one world per point and no point_world, world_seeds, quartile grids,
    lost_fraction or software baseline: the view takes each point as world 0 and its value as
    median and quartiles, and the figure draws no baseline."""
    new = tmp_path / "new.h5"
    run_sweep(new, read_noise=[1.0, 2.0], write_noise=[1.0], models=["ring", "ring-plain"], worlds=1,
              scheduler="serial", samples=8, n_steps=50)
    old = tmp_path / "old.h5"
    shutil.copy(new, old)
    with h5py.File(old, "r+") as h5:
        data = h5["/entry/data"]
        for name in list(data):
            if (name in ("point_world", "world_seeds", "kl_pooled", "hist2d_floor")
                    or name.startswith(("lost_fraction", "kl_mean_software", "kl_floor", "kl_pooled_", "accuracy"))
                    or name.endswith(("_q25_grid", "_q75_grid"))):
                del data[name]
    run = open_run(old)
    view = diffusion_data.load_noise_sweep(run)
    assert "lost_fraction" not in view.grids and view.point_world.tolist() == [0] * 4
    np.testing.assert_allclose(view.grids["kl_mean"], run.read("kl_mean_grid")[-1], equal_nan=True)
    np.testing.assert_allclose(view.q25["kl_mean"], view.grids["kl_mean"], equal_nan=True)
    with style.context():
        sec = noise_sweep_section(run)
    assert sec.metrics["worlds_per_setting"] == 1
    read = dict(sec.figures)["noise_robustness_ring"].axes[0]
    assert [ln.get_label() for ln in read.lines if "software" in ln.get_label()] == []
    assert view.kl_floor is None and not [ln for ln in read.lines if "floor" in ln.get_label()]
    assert "Sampling floor unknown" in dict(sec.figures)["noise_robustness_ring"].texts[0].get_text()


@pytest.mark.slow
def test_the_conditional_task_sweeps_its_noise_aware_and_plain_models(tmp_path):
    """digits and digits-plain, one task per sweep: the digits latents' KLs and 2-D histogram distance
    with their floors, the decoded images' accuracy, no ring statistics; one figure for the task."""
    f = run_sweep(tmp_path / "digits.h5", models=["digits", "digits-plain"], read_noise=[1.0, 8.0], write_noise=[1.0],
                  worlds=1, scheduler="serial", samples=12)
    assert f.read("model_noise_trained").tolist() == [1, 0]
    accuracy, radius = f.read("accuracy"), f.read("mean_radius")
    assert len(accuracy) == 4 and np.all((accuracy >= 0) & (accuracy <= 1)) and np.isnan(radius).all()
    floor = task_floor("digits", 12)
    np.testing.assert_allclose(f.read("kl_floor")[-1], floor.median)
    np.testing.assert_allclose(f.read("hist2d_floor")[-1], floor.hist2d_floor)
    assert np.all(f.read("hist2d_distance") > 0) and np.isfinite(f.read("kl_pooled")).all()
    with style.context():
        sec = noise_sweep_section(f)
    figure = dict(sec.figures)["noise_robustness_digits"]
    labels = [ax.get_ylabel() for ax in figure.axes if ax.lines]
    assert labels.count("decoded images classified as their class") == 2 and "2-D histogram distance" in labels
    assert "digit latents" in figure.texts[0].get_text()


def test_the_conditional_models_are_the_shipped_pair_on_one_vae():
    aware, plain = (load_shipped(name) for name in ("digits", "digits-plain"))
    assert aware.net.conditional and plain.net.conditional
    assert plain.meta["config"]["noise_injection"] is False and plain.meta["config"]["noise_std"] == 0.0
    assert aware.meta["config"]["noise_std"] > 0
    assert plain.meta["config"]["vae"] == aware.meta["config"]["vae"] == "digits-vae.npz"
    assert model_vae("digits-plain") is not None
    sweep = NoiseSweep.from_values({"models": ["digits", "digits-plain"]})
    assert sweep.task == "digits" and NoiseSweep.from_values({}).task == "ring"


@pytest.mark.slow
def test_the_heatmaps_blank_quality_where_most_samples_were_lost(tmp_path):
    """A cell whose median world lost most samples shows "lost" in every quality heatmap, not a
    score of the few samples left; programming error and the lost fraction itself stay."""
    path = tmp_path / "map.h5"
    run_sweep(path, models=["ring"], read_noise=[1.0, 4.0], write_noise=[1.0, 2.0], grid="full", worlds=1,
              scheduler="serial", samples=8, n_steps=50)
    with h5py.File(path, "r+") as h5:
        data = h5["/entry/data"]
        rows = (data["point_read_noise"][:] == 4.0) & (data["point_write_noise"][:] == 2.0)
        lost = data["lost_fraction"][:]
        lost[rows] = 0.97
        data["lost_fraction"][:] = lost
    with style.context():
        sec = noise_sweep_section(open_run(path))
    figure = dict(sec.figures)["noise_heatmaps_ring"]
    for ax in figure.axes:
        title = ax.get_title()
        if not title:
            continue
        texts = [t.get_text() for t in ax.texts]
        quality = title.split(" (")[0] in ("kl mean", "kl pooled", "hist2d distance", "radial std")
        assert texts.count("lost\n97%") == (1 if quality else 0), title
    assert "blanked" in figure.texts[0].get_text()


def test_a_score_far_below_its_sampling_floor_is_marked_not_shown_as_a_better_match():
    """The 2-D histogram distance falls when samples leave its range (they stay in its normalisation):
    a median more than 3 std below the floor is marked in the robustness panels."""
    from analysis.figures import noise

    levels = np.array([1.0, 4.0, 16.0])
    line = noise.RobustnessLine(levels, np.array([0.100, 0.099, 0.080]), np.array([0.099, 0.098, 0.07]),
                                np.array([0.101, 0.1, 0.09]), np.array([2, 2, 2]))
    with style.context():
        fig = noise.noise_robustness([("write noise", "2-D histogram distance", {"ring": (True, line)})],
                                     floors=[(0.1, 0.0016, "sampling floor")])
    (marks,) = [ln for ln in fig.axes[0].lines if ln.get_label().startswith("more than 3 std below the floor")]
    assert marks.get_xdata().tolist() == [16.0]
