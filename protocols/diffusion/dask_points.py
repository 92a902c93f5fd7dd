"""Run a picklable function over sweep points on Dask (or in process), results as they finish.

The simulated sweeps (``time-scale``, ``noise-sweep``) hand every point to a worker
process: a ``LocalCluster`` of single-threaded processes on loopback by default, an
existing scheduler ``tcp://HOST:PORT``, or in this process in order with ``serial``
(tests, debugging).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from protocols.engine.protocol import ParameterError

log = logging.getLogger("rrambench.sweep")

CONNECT_TIMEOUT = "20s"  # to an existing scheduler


def check_scheduler(value: str) -> str:
    """``local``, ``serial`` or a scheduler address ``tcp://HOST:PORT`` (also tls://, ws://)."""
    if value in ("local", "serial") or value.split("://", 1)[0] in ("tcp", "tls", "ws", "wss") and "://" in value:
        return value
    raise ParameterError(f"scheduler={value!r}: expected local, serial or tcp://HOST:PORT")


def map_points(func: Callable[[Any], Any], points: Sequence[Any], on_result: Callable[[int, Any], None], *,
               scheduler: str = "local", workers: int = 2, check: Callable[[], None] = lambda: None) -> None:
    """``on_result(index, func(points[index]))`` for every point, in the order they finish.

    func must be importable by the workers (a module-level function); check: called
    between results (raise there to stop: the remaining futures are cancelled).
    """
    check_scheduler(scheduler)
    if scheduler == "serial":
        for index, point in enumerate(points):
            check()
            on_result(index, func(point))
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
        log.info("%d points on %s", len(points), client.scheduler.address)
        futures = client.map(func, list(points), pure=False)
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
