"""Closed-loop analog simulation with read noise vs plain numpy forward passes.

Runs N trajectories x S fine steps of a 2->14->14->2 ReLU network (time embedding on
both hidden layers) in the simulated analog loop, with read noise on every
conductance (``AnalogLoop.run`` on a ``SimWorld``), and the same number of plain
numpy forward passes with the ideal weights (float64, Euler update, one batched pass
per step), in one process, alternating ``--repeats`` times (default 3). Prints the
median times, their ratio (target <= 3.0) and the peak memory. Both sides run
single-threaded BLAS (the machine is shared; small products
gain nothing from threads).

Then the circuit-level loop (``CircuitParams.model="circuit"``: op-amp lags, DACs, ADC,
crossbar IR drop and nonlinearity) against the ideal loop over the same physical
duration, read noise on (issue 14: ratio <= 5), and how its cost grows with the
trajectories and with the sub-steps per board interval.

    python benchmarks/bench_circuit.py            # 10,000 x 1,000
    python benchmarks/bench_circuit.py --quick    # 1,000 x 200
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
import tracemalloc
from dataclasses import replace

import numpy as np
from threadpoolctl import threadpool_limits

from instruments.macro_controller_wire import LOOP_DT_STEP, LOOP_RC, LayerRegion
from instruments.sim import loop_circuit  # noqa: F401  imported here so that no timing includes its import
from instruments.sim.circuit import CircuitParams
from instruments.sim.world import SimWorld

HIDDEN = 14
R_FEEDBACK = 20e3     # ohm
V_BIAS = 0.1          # V on the bias rows


def build_world(n_steps: int, seed: int, model: str = "ideal") -> SimWorld:
    """A world whose macros 0..2 form the 2->14->14->2 network as they are programmed."""
    world = SimWorld(seed=seed, n_macros=3)
    world.loop.params = CircuitParams(rc=LOOP_RC, dt_step=LOOP_DT_STEP, trace_rate=1 / (10 * LOOP_DT_STEP),
                                      model=model)
    layers = [
        LayerRegion(macro=0, row0=0, col0=0, n_in=2, n_out=HIDDEN, bias_rows=1, activation="relu",
                    r_feedback=R_FEEDBACK),
        LayerRegion(macro=1, row0=0, col0=0, n_in=HIDDEN, n_out=HIDDEN, bias_rows=1, activation="relu",
                    r_feedback=R_FEEDBACK),
        LayerRegion(macro=2, row0=0, col0=0, n_in=HIDDEN, n_out=2, bias_rows=1, activation="linear",
                    r_feedback=R_FEEDBACK),
    ]
    world.loop.load_mapping(layers, V_BIAS)
    rng = np.random.default_rng(seed)
    embedding = rng.uniform(-0.05, 0.05, (n_steps, HIDDEN))
    world.loop.set_streams(LOOP_DT_STEP, embedding, np.zeros(HIDDEN), np.full(n_steps, -0.5), np.ones(n_steps),
                           np.full(n_steps, 0.05))
    return world


def software_baseline(weights: list[np.ndarray], embedding: np.ndarray, x0: np.ndarray, h: float,
                      v_rail: float) -> np.ndarray:
    """The plain numpy sampler: one batched forward pass with ideal weights per Euler step."""
    (w1, b1), (w2, b2), (w3, b3) = weights
    x = x0.copy()
    for e in embedding:
        z = np.clip(x @ w1 + b1 + e, 0.0, v_rail)
        z = np.clip(z @ w2 + b2 + e, 0.0, v_rail)
        y = np.clip(z @ w3 + b3, -v_rail, v_rail)
        x = x + h * (-0.5 * x + y)
    return x


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 trajectories x 200 steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timings per side (medians compared)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)
    n_traj, n_steps = (1000, 200) if args.quick else (10_000, 1000)

    world = build_world(n_steps, args.seed)
    loop = world.loop
    x0 = np.random.default_rng(args.seed + 1).uniform(-0.4, 0.4, (n_traj, 2))
    duration = n_steps * LOOP_DT_STEP
    ideal = loop.analog_layers(noise=False)
    weights = [(lay.weights()[: lay.n_in], V_BIAS * lay.weights()[lay.n_in:].sum(axis=0)) for lay in ideal]
    embedding = loop.state_dict()["stream.embedding"]

    def ode_run():
        return loop.run(x0, duration, sde=False, rng=np.random.default_rng(2))

    def sde_run():
        return loop.run(x0, duration, sde=True, rng=np.random.default_rng(3))

    def numpy_run():
        with threadpool_limits(limits=1, user_api="blas"):
            return software_baseline(weights, embedding, x0, LOOP_DT_STEP / LOOP_RC, loop.params.v_rail)

    # The three alternate, in turned order each repeat, and the medians are compared: on the
    # shared machine one timing of the same run varied by a third between run_all runs.
    timings: dict[str, list[float]] = {"ode": [], "sde": [], "numpy": []}
    results = {}
    runs = {"ode": ode_run, "sde": sde_run, "numpy": numpy_run}
    loop.run(x0[:64], duration, sde=True, rng=np.random.default_rng(1))  # untimed: first-call costs
    for r in range(args.repeats):
        for name in (list(runs) if r % 2 == 0 else list(reversed(runs))):
            start = time.perf_counter()
            results[name] = runs[name]()
            timings[name].append(time.perf_counter() - start)
    t_ode, t_sde, t_soft = (statistics.median(timings[k]) for k in ("ode", "sde", "numpy"))
    ode, sde, software = results["ode"], results["sde"], results["numpy"]

    tracemalloc.start()
    loop.run(x0, duration, sde=True, rng=np.random.default_rng(3))
    _, peak_analog = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracemalloc.start()
    software_baseline(weights, embedding, x0, LOOP_DT_STEP / LOOP_RC, loop.params.v_rail)
    _, peak_soft = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux

    passes = n_traj * n_steps
    figures = {
        "trajectories": n_traj, "steps": n_steps, "repeats": args.repeats,
        "ode_s": t_ode, "sde_s": t_sde, "numpy_s": t_soft,
        "ratio_ode": t_ode / t_soft, "ratio_sde": t_sde / t_soft,
        "peak_traced_analog_MiB": peak_analog / 2**20, "peak_traced_numpy_MiB": peak_soft / 2**20,
        "peak_rss_MiB": rss, "rms_end_difference_V": float(np.sqrt(np.mean((ode.end - software) ** 2))),
    }
    if args.json:
        figures.update(circuit_figures(world, x0, duration, n_traj))
        print(json.dumps(figures))
        return figures
    print(f"circuit benchmark: {n_traj} trajectories x {n_steps} steps = {passes:.3g} forward passes, "
          "2->14->14->2 ReLU")
    print(f"  analog loop, ODE, read noise on : {t_ode:7.3f} s  ({passes / t_ode / 1e6:6.2f} M passes/s)")
    print(f"  analog loop, SDE, read noise on : {t_sde:7.3f} s  ({passes / t_sde / 1e6:6.2f} M passes/s)")
    print(f"  numpy forward, ideal weights    : {t_soft:7.3f} s  ({passes / t_soft / 1e6:6.2f} M passes/s)")
    print(f"  ratio analog/numpy: ODE {t_ode / t_soft:.2f}, SDE {t_sde / t_soft:.2f}  (target <= 3.0)")
    print(f"  peak traced memory: analog {peak_analog / 2**20:.1f} MiB (traces {sde.traces.nbytes / 2**20:.1f} MiB),"
          f" numpy {peak_soft / 2**20:.1f} MiB; process peak RSS {rss:.0f} MiB")
    print(f"  analog vs software end values (noise on): rms difference "
          f"{np.sqrt(np.mean((ode.end - software) ** 2)) * 1e3:.3f} mV")

    figures.update(circuit_figures(world, x0, duration, n_traj))
    print("circuit-level loop (model='circuit') vs ideal loop, same physical duration, read noise on:")
    print(f"  ideal ODE {figures['ideal_ode_s']:.3f} s, circuit ODE {figures['circuit_ode_s']:.3f} s: "
          f"ratio {figures['ratio_circuit_ode']:.2f}; SDE {figures['ideal_sde_s']:.3f} s vs "
          f"{figures['circuit_sde_s']:.3f} s: ratio {figures['ratio_circuit_sde']:.2f}  (target <= 5)")
    print("  cost vs trajectories (circuit ODE): " + ", ".join(
        f"{n}: {t:.3f} s" for n, t in figures["circuit_vs_trajectories"].items()))
    print("  cost vs sub-steps per interval (circuit ODE): " + ", ".join(
        f"{k}: {t:.3f} s" for k, t in figures["circuit_vs_substeps"].items()))
    return figures


def circuit_figures(world: SimWorld, x0: np.ndarray, duration: float, n_traj: int) -> dict:
    """Wall times (s) of the circuit-level loop against the ideal one, and its growth."""
    loop = world.loop
    base = loop.params
    times = {}
    for model in ("ideal", "circuit"):
        loop.params = replace(base, model=model)
        for sde in (False, True):
            start = time.perf_counter()
            loop.run(x0, duration, sde=sde, rng=np.random.default_rng(4))
            times[f"{model}_{'sde' if sde else 'ode'}_s"] = time.perf_counter() - start
    loop.params = replace(base, model="circuit")
    by_traj = {}
    for n in sorted({max(1, n_traj // 10), max(1, n_traj // 3), n_traj}):
        start = time.perf_counter()
        loop.run(x0[:n], duration, sde=False, rng=np.random.default_rng(5))
        by_traj[n] = time.perf_counter() - start
    by_sub = {}
    for k in (1, 2, 4):
        loop.params = replace(base, model="circuit", substeps=k)
        start = time.perf_counter()
        loop.run(x0[: max(1, n_traj // 10)], duration, sde=False, rng=np.random.default_rng(5))
        by_sub[k] = time.perf_counter() - start
    loop.params = base
    return {**times, "ratio_circuit_ode": times["circuit_ode_s"] / times["ideal_ode_s"],
            "ratio_circuit_sde": times["circuit_sde_s"] / times["ideal_sde_s"],
            "circuit_vs_trajectories": by_traj, "circuit_vs_substeps": by_sub}


if __name__ == "__main__":
    main()
