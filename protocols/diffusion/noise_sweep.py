"""noise-sweep: read-noise x write-noise grid of simulated program-and-sample experiments, on Dask.

Every grid point, for every model (noise-trained "ring" and plain "ring-plain" by
default), is one full experiment in a fresh simulated world
(:func:`protocols.diffusion.simulated_sweep.run_point`): write-verify the mapped score network,
let it relax, sample the ring on the analog loop, score the samples. The points
run on dask.distributed: a ``LocalCluster`` of ``workers`` processes by default, an
existing cluster with ``scheduler=tcp://HOST:PORT``, or in process with
``scheduler=serial``. Results stream into the run file as points finish, so a killed
run keeps every finished point; the heatmaps are recorded once the grid is complete.
The protocol is simulated-only (``BenchUse.SIMULATED_ONLY``): a run opens no bench, on a
hardware config too, and its file records ``simulated=true``.

Run-file layout (all under ``/entry/data``; docs/calibration.md, section "noise-sweep run files"):

* axes (Constant): ``read_noise`` (R,), ``write_noise`` (W,) multipliers of the
  device model's defaults; ``model_index`` (M,) and ``model_noise_trained`` (M,) 1/0;
  the model names are the run parameter ``models``, in that order;
* one row per finished point (Stream): ``point_model`` (index), ``point_read_noise``,
  ``point_write_noise`` (multipliers), every metric of :data:`~protocols.diffusion.simulated_sweep.METRICS`
  (``kl_mean`` etc.; ``programming_rms_error`` in S, ``worker_seconds`` in s) and
  ``final_states`` (samples, 2) data units;
* heatmaps (Stream, one row, shape (M, R, W), axes model_index x read_noise x
  write_noise): ``kl_mean_grid``, ``hist2d_distance_grid``, ``radial_std_grid``,
  ``programming_rms_error_grid`` (NaN where a point is missing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from protocols.diffusion.simulated_sweep import METRIC_UNITS, METRICS, SweepPoint, run_point
from protocols.engine.datasets import Constant, Spec, Stream
from protocols.engine.protocol import BenchUse, ParameterError, Protocol, Step, param

log = logging.getLogger("rrambench.noise_sweep")

MODELS = ("ring", "ring-plain")
GRIDS = ("kl_mean", "hist2d_distance", "radial_std", "programming_rms_error")
POINT_TIME = 0.5  # s, wall time of one point on one core (200 samples; benchmarks/bench_noise_sweep.py)
CONNECT_TIMEOUT = "20s"  # to an existing scheduler


def check_scheduler(value: str) -> str:
    """``local``, ``serial`` or a scheduler address ``tcp://HOST:PORT`` (also tls://, ws://)."""
    if value in ("local", "serial") or value.split("://", 1)[0] in ("tcp", "tls", "ws", "wss") and "://" in value:
        return value
    raise ParameterError(f"scheduler={value!r}: expected local, serial or tcp://HOST:PORT")


class NoiseSweep(Protocol):
    """Read-noise x write-noise grid of simulated program-and-sample experiments on Dask."""

    name = "noise-sweep"
    signal = "kl_mean_grid"
    bench_use = BenchUse.SIMULATED_ONLY  # opens no bench: every point builds its own simulated world

    @dataclass
    class Params:
        read_noise: list[float] = param([0.5, 1.0, 2.0], limits=(0.0, 100.0),
                                        help="read-noise multipliers (x device model default)")
        write_noise: list[float] = param([0.5, 1.0, 2.0], limits=(0.0, 100.0),
                                         help="write-noise multipliers (x device model default)")
        samples: int = param(200, limits=(1, 100_000), help="samples per experiment")
        models: list[str] = param(list(MODELS), choices=MODELS, help="shipped models compared")
        n_steps: int = param(1500, limits=(10, 1_000_000), help="analog loop fine steps per sample (1 us each)")
        settle: float = param(60.0, unit="s", limits=(0.0, 1e7), help="relaxation before sampling")
        scheduler: str = param("local", help="local (LocalCluster), serial (in process) or tcp://HOST:PORT")
        workers: int = param(2, limits=(1, 256), help="worker processes of the local cluster")

    def __init__(self, params=None) -> None:
        super().__init__(params)
        check_scheduler(self.p.scheduler)
        for name in ("read_noise", "write_noise", "models"):
            values = getattr(self.p, name)
            if len(set(values)) != len(values):
                raise ParameterError(f"{name} lists a value twice: {values}")

    def simulated_parts(self) -> list[str]:
        return ["every grid point: the score network programmed and sampled on a fresh simulated world "
                "(device model defaults times the noise multipliers; world seeds from the run seed)"]

    def points(self, seed: int) -> list[SweepPoint]:
        """Every experiment, model-major then read noise then write noise (flat grid order)."""
        return [SweepPoint(m, r, w, self.p.samples, self.p.n_steps, self.p.settle, seed)
                for m in self.p.models for r in self.p.read_noise for w in self.p.write_noise]

    def datasets(self) -> Sequence[Spec]:
        from protocols.diffusion.weights import load_shipped

        m, r, w = len(self.p.models), len(self.p.read_noise), len(self.p.write_noise)
        trained = [bool(load_shipped(name).meta.get("config", {}).get("noise_injection", False))
                   for name in self.p.models]
        grid_axes = (".", "model_index", "read_noise", "write_noise")
        return [
            Constant("read_noise", units="", data=np.array(self.p.read_noise),
                     long_name="read-noise multiplier (x device model default)"),
            Constant("write_noise", units="", data=np.array(self.p.write_noise),
                     long_name="write-noise multiplier (x device model default)"),
            Constant("model_index", units="", data=np.arange(m), long_name="index into the parameter 'models'"),
            Constant("model_noise_trained", units="", data=np.array(trained, dtype=np.int8),
                     long_name="1: trained with weight-noise injection"),
            Stream("point_model", units="", dtype="i2", long_name="model index of the point"),
            Stream("point_read_noise", units="", long_name="read-noise multiplier of the point"),
            Stream("point_write_noise", units="", long_name="write-noise multiplier of the point"),
            *[Stream(k, units=METRIC_UNITS.get(k, ""), long_name=k.replace("_", " ")) for k in METRICS],
            Stream("final_states", units="", shape=(self.p.samples, 2), dtype="f4",
                   long_name="sampled states (data units)"),
            *[Stream(f"{k}_grid", units=METRIC_UNITS.get(k, ""), shape=(m, r, w), axes=grid_axes,
                     long_name=f"{k.replace('_', ' ')} over model x read noise x write noise") for k in GRIDS],
        ]

    def outcome(self) -> dict:
        """Points run; the best and worst mean KL over them; the median programming error."""
        kl = self.recorded("kl_mean")
        return {"points": (int(kl.size), ""), "kl_mean_min": (float(np.nanmin(kl)), ""),
                "kl_mean_max": (float(np.nanmax(kl)), ""),
                "programming_rms_error_median": (float(np.nanmedian(self.recorded("programming_rms_error"))),
                                                 METRIC_UNITS.get("programming_rms_error", ""))}

    def plan(self) -> Iterator[Step]:
        n = len(self.p.models) * len(self.p.read_noise) * len(self.p.write_noise)
        parallel = 1 if self.p.scheduler == "serial" else self.p.workers
        yield Step(f"run {n} experiments ({self.p.scheduler})", self.sweep,
                   estimate=n * POINT_TIME * self.p.samples / 200 / parallel)

    def sweep(self) -> None:
        """Run every point, record each as it finishes, then the heatmaps."""
        points = self.points(seed=int(self.rng.integers(2**31)))
        shape = (len(self.p.models), len(self.p.read_noise), len(self.p.write_noise))
        grids = {k: np.full(shape, np.nan) for k in GRIDS}
        done = 0

        def record(index: int, result: dict) -> None:
            nonlocal done
            point, metrics = result["point"], result["metrics"]
            m, r, w = np.unravel_index(index, shape)
            self.record("point_model", m)
            self.record("point_read_noise", point.read_noise)
            self.record("point_write_noise", point.write_noise)
            for k in METRICS:
                self.record(k, metrics[k])
            self.record("final_states", result["final"])
            for k in GRIDS:
                grids[k][m, r, w] = metrics[k]
            done += 1
            self.progress(done / len(points))

        run_grid(points, record, scheduler=self.p.scheduler, workers=self.p.workers, check=self.check)
        for k in GRIDS:
            self.record(f"{k}_grid", grids[k])


def run_grid(points: Sequence[SweepPoint], on_result: Callable[[int, dict], None], *, scheduler: str = "local",
             workers: int = 2, check: Callable[[], None] = lambda: None) -> None:
    """Run :func:`run_point` on every point; ``on_result(index, result)`` as each finishes.

    scheduler: "local" (a LocalCluster of ``workers`` single-threaded processes on
    127.0.0.1, closed afterwards), "serial" (in this process, in order) or the address
    of an existing scheduler. check: called between results (raise there to stop; the
    remaining futures are cancelled).
    """
    check_scheduler(scheduler)
    if scheduler == "serial":
        for index, point in enumerate(points):
            check()
            on_result(index, run_point(point))
        return
    from distributed import Client, LocalCluster, as_completed

    # distributed logs at INFO by itself; follow the level the application chose (CLI: -v)
    logging.getLogger("distributed").setLevel(logging.getLogger().getEffectiveLevel())
    cluster = None
    if scheduler == "local":
        # every listening socket on loopback, the HTTP/dashboard ones included
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", worker_dashboard_address="127.0.0.1:0",
                               silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    try:
        log.info("noise sweep: %d points on %s", len(points), client.scheduler.address)
        futures = client.map(run_point, list(points), pure=False)
        index = {f.key: k for k, f in enumerate(futures)}
        try:
            for future in as_completed(futures):
                check()
                on_result(index[future.key], future.result())
        finally:
            client.cancel([f for f in futures if not f.done()])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
