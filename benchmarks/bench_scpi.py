"""SCPI query round trip: our driver stack vs a bare pyvisa query on the same resource.

Both go through pyvisa-py over a loopback socket to the emulated Keithley 2450, so
the ratio is the cost of the transport (lock, exception mapping, trace logger) and
the driver method on top of pyvisa. Target: ratio <= 1.3.

Run: ``python benchmarks/bench_scpi.py [--queries N]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from instruments.keithley2450 import Keithley2450
from instruments.limits import Limits
from instruments.sim.keithley2450 import Keithley2450Emulator
from instruments.sim.servers import LoopbackServer
from instruments.sim.world import SimWorld
from instruments.transport import VisaTransport

TARGET = 1.3


def timed(call, n: int) -> float:
    """Mean seconds per call over ``n`` calls."""
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=400, help="queries per round")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (median is reported)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)

    emulator = Keithley2450Emulator(SimWorld(seed=0))
    with LoopbackServer(emulator.handle, name="smu") as server:
        io = VisaTransport.open(server.resource, name="smu", timeout=5.0)
        smu = Keithley2450(io, Limits())
        bare = io.resource  # the very same pyvisa resource
        timed(smu.identify, 50)  # warm up both paths
        timed(lambda: bare.query("*IDN?"), 50)
        ratios, ours, theirs = [], [], []
        for _ in range(args.rounds):
            t_bare = timed(lambda: bare.query("*IDN?"), args.queries)
            t_ours = timed(smu.identify, args.queries)
            ratios.append(t_ours / t_bare)
            ours.append(t_ours)
            theirs.append(t_bare)
        io.close()

    ratio = statistics.median(ratios)
    figures = {"queries": args.queries, "rounds": args.rounds, "bare_us": statistics.median(theirs) * 1e6,
               "driver_us": statistics.median(ours) * 1e6, "ratio": ratio}
    if args.json:
        print(json.dumps(figures))
        return figures
    print(f"bare pyvisa query('*IDN?'):   {statistics.median(theirs) * 1e6:8.1f} us per round trip")
    print(f"Keithley2450.identify():      {statistics.median(ours) * 1e6:8.1f} us per round trip")
    print(f"ratio driver / bare pyvisa:   {ratio:8.3f}  (target <= {TARGET}, "
          f"{'met' if ratio <= TARGET else 'NOT met'})")
    return figures


if __name__ == "__main__":
    main()
