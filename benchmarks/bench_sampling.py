"""Closed-loop sampling of the ring on the simulated bench vs the numpy software baseline.

One run, in one process: the shipped ring model is mapped and write-verified into the
embedded simulated bench (real pyvisa/pyserial loopback stack), then N samples are
drawn on the analog loop through the board driver (streams, initial conditions,
run, end values; read noise on every conductance), and the same initial noise goes
through the numpy probability-flow sampler with the same number of solver steps.
Prints both wall times, their ratio and samples/s, and the physical sampling time the
circuit implies (duration of one closed-loop sample: steps x DAC interval, set by
RC) next to the software baseline's measured time per sample on this CPU.

    python benchmarks/bench_sampling.py              # 1,000 samples x 1,500 steps
    python benchmarks/bench_sampling.py --samples 200
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from threadpoolctl import threadpool_limits

from analysis.metrics import coordinate_kl, ring_statistics
from instruments.bench import Bench
from instruments.macro_controller_wire import LOOP_DT_STEP, LOOP_RC
from protocols.diffusion.analog import N_STEPS, initial_noise, program_network
from protocols.diffusion.loop_streams import loop_streams
from protocols.diffusion.mapping import map_score_net
from protocols.diffusion.samplers import sample_probability_flow
from protocols.diffusion.scoring import ring_reference
from protocols.diffusion.weights import load_shipped


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=N_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)

    model = load_shipped("ring")
    mapped = map_score_net(model)
    x0 = initial_noise(np.random.default_rng(args.seed + 1), args.samples)
    streams = loop_streams(mapped, model, n_steps=args.steps, dt_step=LOOP_DT_STEP, rc=LOOP_RC, sde=False)
    with Bench.from_config(seed=args.seed) as bench:
        info = bench.macro_controller.info()
        placed = program_network(bench.macro_controller, mapped, shape=(info.n_macros, info.rows, info.cols),
                                 now=bench.clock.now, sleep=bench.clock.sleep).mapped
        bench.macro_controller.load_mapping(list(placed.layers), placed.v_bias)
        start = time.perf_counter()
        bench.macro_controller.set_streams(*streams.as_args())
        bench.macro_controller.set_initial(placed.to_volts(x0))
        bench.macro_controller.run_samples(args.samples, streams.duration, False, seed=args.seed)
        analog = placed.from_volts(bench.macro_controller.fetch_end_values())
        t_analog = time.perf_counter() - start

    with threadpool_limits(limits=1, user_api="blas"):
        start = time.perf_counter()
        software = sample_probability_flow(model.net, model.sampling_sde, x0, args.steps).final
        t_software = time.perf_counter() - start

    reference = ring_reference()
    kl_a, kl_s = coordinate_kl(analog, reference), coordinate_kl(software, reference)
    start = time.perf_counter()
    sample_probability_flow(model.net, model.sampling_sde, x0[:1], args.steps)
    t_one = time.perf_counter() - start
    start = time.perf_counter()
    sample_probability_flow(model.net, model.sampling_sde, x0[:1], model.sampling.n_steps)
    t_seed = time.perf_counter() - start
    figures = {
        "samples": args.samples, "steps": args.steps, "simulated_s": t_analog, "numpy_s": t_software,
        "ratio": t_analog / t_software, "simulated_samples_per_s": args.samples / t_analog,
        "numpy_samples_per_s": args.samples / t_software, "physical_s_per_sample": streams.duration,
        "software_one_sample_s": t_one, "software_one_sample_seed_steps_s": t_seed,
        "kl_analog": np.asarray(kl_a).tolist(), "kl_software": np.asarray(kl_s).tolist(),
    }
    if args.json:
        print(json.dumps(figures))
        return figures
    print(f"ring sampling, {args.samples} samples x {args.steps} solver steps, one run")
    print(f"  simulated bench (board over loopback, read noise)  {t_analog:8.3f} s   "
          f"{args.samples / t_analog:10.0f} samples/s")
    print(f"  numpy baseline, same steps                          {t_software:8.3f} s   "
          f"{args.samples / t_software:10.0f} samples/s")
    print(f"  ratio simulated / numpy                             {t_analog / t_software:8.2f}")
    print(f"  circuit: RC {LOOP_RC * 1e3:.3g} ms, {args.steps} DAC steps of {LOOP_DT_STEP * 1e6:.3g} us")
    print(f"  physical time per sample on the circuit             {streams.duration * 1e3:8.3f} ms")
    print(f"  software baseline time per sample on this CPU       {t_software / args.samples * 1e3:8.3f} ms "
          f"(batched over {args.samples}; one sample alone: see below)")
    print(f"  software, one sample alone                          {t_one * 1e3:8.3f} ms   "
          f"(circuit speed-up {t_one / streams.duration:.1f}x)")
    print(f"  software, one sample, the seed's {model.sampling.n_steps} steps      {t_seed * 1e3:8.3f} ms   "
          f"(circuit speed-up {t_seed / streams.duration:.1f}x)")
    print(f"  KL analog {np.round(kl_a, 4).tolist()}  software {np.round(kl_s, 4).tolist()}; "
          f"mean radius {ring_statistics(analog).mean_radius:.3f} / {ring_statistics(software).mean_radius:.3f}")
    return figures


if __name__ == "__main__":
    main()
