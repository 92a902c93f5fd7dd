"""Crossbar with IR drop, access transistors and device nonlinearity: error and cost.

Error: the fast solution (``FastCrossbar``) against the exact nodal solve
(``solve_nodal``) on a 32 x 32 array (conductances uniform in 1-100 uS, row voltages
uniform in 0-0.5 V) with the default parasitics and with the wires made 10 and 100
times more resistive, and on the seed network's regions (2 -> 14 -> 14 -> 2 as
differential pairs with one bias row, each region at row 0, column 0 of its 32 x 32
macro). Error is the largest |fast - exact| over a column, relative to the column
current (all row voltages >= 0) or to the sum of the absolute cell currents of the
column (signed row voltages, where a column current may cancel to ~0).

Cost: one call of the fast solution for N trajectories (default 10,000), float32 and
float64, single-threaded BLAS, per region and for the three layers of one loop step,
against a plain matrix product of the same inputs and outputs (best of three batches
of calls: the machine is shared).

    python benchmarks/bench_crossbar.py
    python benchmarks/bench_crossbar.py --json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from threadpoolctl import threadpool_limits

from instruments.sim.crossbar import CrossbarParams, FastCrossbar, region_leads, solve_nodal
from instruments.sim.device_params import DeviceParams
from instruments.sim.device_physics import nonlinearity

MACRO_ROWS = 32
HIDDEN = 14
V_BIAS = 0.1        # V on the bias row
V_RAIL = 0.5        # V, activation rail: the hidden and output layers' row voltages
#: (rows incl. the bias row, differential outputs, largest |row voltage| in V, signed inputs)
SEED_LAYERS = {"input 2->14": (3, HIDDEN, 2.5, True), "hidden 14->14": (HIDDEN + 1, HIDDEN, V_RAIL, False),
               "output 14->2": (HIDDEN + 1, 2, V_RAIL, False)}


def max_error(fast: FastCrossbar, g: np.ndarray, volts: np.ndarray, p: CrossbarParams,
              leads: tuple[float, float], signed: bool) -> float:
    """Largest column error of ``fast`` against the nodal solve, relative as the docstring says."""
    device = DeviceParams()
    worst = 0.0
    for v in volts:
        exact = solve_nodal(g, v, p, device, lead_row=leads[0], lead_col=leads[1]).column_currents
        scale = (np.abs(v * nonlinearity(v, device))[:, None] * g).sum(axis=0) if signed else np.abs(exact)
        worst = max(worst, float(np.max(np.abs(fast.column_currents(v[None])[0] - exact) / scale)))
    return worst


def error_table(rng: np.random.Generator, n_vectors: int) -> dict[str, float]:
    rows = {}
    g = rng.uniform(1e-6, 100e-6, (32, 32))
    volts = rng.uniform(0.0, 0.5, (n_vectors, 32))
    for k in (0, 1, 10, 100):
        p = CrossbarParams(r_row=CrossbarParams().r_row * k, r_col=CrossbarParams().r_col * k)
        rows[f"32x32, wires x{k}"] = max_error(FastCrossbar.build(g, 0.5, p), g, volts, p, (0.0, 0.0), False)
    p = CrossbarParams()
    for name, (n_rows, n_out, v_max, signed) in SEED_LAYERS.items():
        g = rng.uniform(1e-6, 140e-6, (n_rows, 2 * n_out))
        leads = region_leads(0, 0, n_rows, MACRO_ROWS, p)
        for vm in sorted({0.5, v_max}):
            volts = rng.uniform(-vm if signed else 0.0, vm, (n_vectors, n_rows))
            volts[:, -1] = V_BIAS
            fast = FastCrossbar.build(g, vm, p, lead_row=leads[0], lead_col=leads[1])
            rows[f"{name}, |V| <= {vm} V (K={fast.order})"] = max_error(fast, g, volts, p, leads, signed)
    return rows


def per_call(fn, repeat: int, batches: int = 3) -> float:
    """Seconds per call: the best of ``batches`` averages over ``repeat`` calls (a shared machine)."""
    fn()
    best = float("inf")
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best


def cost_table(rng: np.random.Generator, n_traj: int, repeat: int) -> dict[str, dict[str, float]]:
    p = CrossbarParams()
    table: dict[str, dict[str, float]] = {}
    for dtype in (np.float32, np.float64):
        step_fast = step_plain = 0.0
        for name, (n_rows, n_out, v_max, _signed) in SEED_LAYERS.items():
            g = rng.uniform(1e-6, 140e-6, (n_rows, 2 * n_out))
            leads = region_leads(0, 0, n_rows, MACRO_ROWS, p)
            start = time.perf_counter()
            fast = FastCrossbar.build(g, v_max, p, lead_row=leads[0], lead_col=leads[1], dtype=dtype)
            build = time.perf_counter() - start
            pair = fast.fold_rows(slice(n_rows - 1, n_rows), V_BIAS).differential(n_out)
            v_t = rng.uniform(0.0, v_max, (n_rows - 1, n_traj)).astype(dtype)
            out = np.empty((n_out, n_traj), dtype=dtype)
            weights = np.ascontiguousarray(rng.standard_normal((n_out, n_rows - 1)), dtype=dtype)
            t_fast = per_call(lambda pair=pair, v_t=v_t, out=out: pair.column_currents_t(v_t, out=out), repeat)
            t_plain = per_call(lambda w=weights, v_t=v_t, out=out: np.matmul(w, v_t, out=out), repeat)
            table[f"{name} {dtype.__name__}"] = {"build_s": build, "fast_ms": 1e3 * t_fast,
                                                 "plain_ms": 1e3 * t_plain, "order": pair.order}
            step_fast += t_fast
            step_plain += t_plain
        table[f"one step, 3 layers {dtype.__name__}"] = {"fast_ms": 1e3 * step_fast, "plain_ms": 1e3 * step_plain}
    g = rng.uniform(1e-6, 100e-6, (32, 32))
    v = rng.uniform(0.0, 0.5, 32)
    table["nodal solve 32x32, one vector"] = {"ms": 1e3 * per_call(lambda: solve_nodal(g, v), 5)}
    return table


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200, help="calls averaged per timing")
    parser.add_argument("--vectors", type=int, default=8, help="row-voltage vectors per error figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    with threadpool_limits(1):
        result = {"errors": error_table(rng, args.vectors), "cost": cost_table(rng, args.trajectories, args.repeat),
                  "trajectories": args.trajectories}
    if args.json:
        print(json.dumps(result))
    else:
        print("fast vs nodal, largest relative column-current error")
        for name, err in result["errors"].items():
            print(f"  {name:42s} {err:.2e}")
        print(f"cost per call, {args.trajectories} trajectories (single-threaded BLAS)")
        for name, row in result["cost"].items():
            print(f"  {name:42s} " + "  ".join(f"{k} {v:.3g}" for k, v in row.items()))
    return result


if __name__ == "__main__":
    main()
