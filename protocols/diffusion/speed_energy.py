"""Speed and energy per sample of a shipped model: the analog estimate next to the software baseline.

Maps the model as the bench would (:func:`~protocols.diffusion.mapping.map_score_net`),
takes the row voltages along software probability-flow trajectories and costs the loop
with :mod:`analysis.speed_energy` (``docs/speed-energy.md``)::

    python -m protocols.diffusion.speed_energy [--model ring|ring-plain|digits] [--samples N]
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.speed_energy import (
    AnalogEstimate,
    Assumptions,
    LayerLoad,
    SoftwareBaseline,
    analog_estimate,
    measure_software,
    summary,
)
from instruments.macro_controller_wire import LOOP_DT_STEP
from protocols.diffusion.analog import N_STEPS
from protocols.diffusion.digital_baseline import DigitalTiming
from protocols.diffusion.loop_streams import loop_streams
from protocols.diffusion.mapping import MappedNetwork, map_score_net
from protocols.diffusion.samplers import sample_probability_flow
from protocols.diffusion.weights import TrainedModel, load_shipped

#: The seed paper's reference figures against its digital device (seed-facts.md "Headline").
PAPER = {
    "ring": {"speedup": 64.8, "energy_ratio": 5.2, "later_version_speedup": 69.0,
             "later_version_energy_cut": 0.315},
    "digits": {"speedup": 156.5, "energy_ratio": 4.1, "later_version_speedup": 116.5,
               "later_version_energy_cut": 0.520},
}
PAPER_SOURCE = ("arXiv 2404.05648 (first version: 64.8x / 156.5x faster, 5.2x / 4.1x less energy; a later "
                "version: 69.0x / 116.5x, energy cut 31.5 % / 52.0 %), conditional task = letters there, "
                "digits here")


def layer_loads(model: TrainedModel, mapped: MappedNetwork, n: int = 200) -> list[LayerLoad]:
    """Each mapped layer's conductances and mean squared row voltages along software trajectories.

    Row voltages are taken along software probability-flow trajectories of the network (``n``
    trajectories, 41 time slices): integrator voltages on the first layer, hidden activations on
    the next, ``v_bias`` on bias rows; with the mapping's target conductances these give the
    RRAM currents (``I = G V``) and so the array's power.
    """
    net = model.net
    rng = np.random.default_rng(0)
    labels = np.arange(n) % net.n_classes if net.conditional else None
    res = sample_probability_flow(net, model.sampling_sde, rng.standard_normal((n, net.dim)), 200,
                                  model.sampling.t_end, cond=labels,
                                  snapshot_times=np.linspace(1.0, model.sampling.t_end, 41))
    x = np.concatenate(list(res.snapshots))
    h = [np.concatenate(parts) for parts in zip(*(net.hidden_activations(s, t, labels) for s, t in
                                                 zip(res.snapshots, res.times, strict=True)), strict=True)]
    inputs = (x * mapped.x_scale, h[0] * mapped.h_scale, h[1] * mapped.h_scale)
    loads = []
    for pair, v in zip(mapped.pairs, inputs, strict=True):
        v2 = np.concatenate([np.mean(v ** 2, axis=0), np.full(pair.n_bias, mapped.v_bias ** 2)])
        loads.append(LayerLoad(pair.g_pos, pair.g_neg, v2))
    return loads


def dac_channels(model: TrainedModel) -> int:
    """DAC channels driving the loop: time (and condition) embedding, gains a b c, v_bias, initial conditions."""
    net = model.net
    return net.hidden * (2 if net.conditional else 1) + 3 + 1 + net.dim


def model_comparison(name: str = "ring", samples: int = 1000, repeats: int = 3,
                     assumptions: Assumptions | None = None) -> tuple[AnalogEstimate, SoftwareBaseline]:
    """Map the shipped model ``name`` and compare: analog estimate vs measured software baseline.

    The loop runs the default board's fine steps (``N_STEPS`` of ``LOOP_DT_STEP``).
    """
    from protocols.diffusion.digital_baseline import numpy_sampler

    model = load_shipped(name)
    mapped = map_score_net(model)
    analog = analog_estimate(layer_loads(model, mapped), duration=N_STEPS * LOOP_DT_STEP, dim=model.net.dim,
                             dac_channels=dac_channels(model), assumptions=assumptions)
    steps = model.sampling.n_steps
    return analog, measure_software(numpy_sampler(model, steps), samples, steps, repeats)


@dataclass(frozen=True)
class Transfers:
    """Host-board traffic of a sampling batch, measured on the emulated board's wire protocol.

    bytes_per_sample: link bytes (both ways) each extra sample adds (initial values in, end
    values out, their frame overhead); bytes_per_batch: bytes of one batch beyond those (run
    command, fetch framing); samples: batch sizes compared; loopback_seconds: wall time of the
    per-sample part over the loopback socket and emulator (this machine, not the board's link).
    """

    bytes_per_sample: float
    bytes_per_batch: float
    samples: tuple[int, int]
    loopback_seconds: float


def measure_transfers(model: TrainedModel, mapped: MappedNetwork, rc: float, n: int = 64) -> Transfers:
    """Count the bytes of set_initial + run_samples + fetch_end_values for 1 and ``n`` samples.

    The board is the emulated macro controller over a loopback socket (the driver and wire
    code of the real board); its loop is the ideal one (the bytes do not depend on it) and
    built with ``rc`` (s). The mapping and DAC streams are loaded once per network and
    per run of batches, so they count as setup, not per sample.
    """
    from instruments.limits import Limits
    from instruments.macro_controller import MacroController
    from instruments.serial_link import SerialLink
    from instruments.sim.macro_controller import MacroControllerEmulator
    from instruments.sim.servers import LoopbackServer
    from protocols.diffusion.analog import initial_noise
    from protocols.diffusion.time_scale import board_world, dac_updates

    world = board_world(rc, 0, "ideal")
    macro, row, col, target = mapped.cells()
    world.set_conductance(macro, row, col, target)
    server = LoopbackServer(MacroControllerEmulator(world).handle, delimiter=b"\x00", name="macro_controller").start()
    link = SerialLink.open(server.url, timeout=30.0)
    try:
        board = MacroController(link, Limits())
        info = board.loop_info()
        board.load_mapping(list(mapped.layers), mapped.v_bias)
        duration = N_STEPS * info.dt_step
        streams = loop_streams(mapped, model, n_steps=N_STEPS, dt_step=info.dt_step, rc=info.rc, sde=False,
                               cond=0 if model.net.conditional else None,
                               stream_points=dac_updates(duration, N_STEPS))
        board.set_streams(*streams.as_args())
        counts, seconds = [], []
        # a batch of 1 first, not counted: the emulator's first run builds its loop, which made
        # the wall-time slope between 1 and n samples come out negative
        for size in (1, 1, n):
            x0 = mapped.to_volts(initial_noise(np.random.default_rng(size), size, model.net.dim))
            before = link.bytes_written + link.bytes_read
            start = time.perf_counter()
            board.set_initial(x0)
            board.run_samples(size, streams.duration, False, seed=1)
            board.fetch_end_values()
            seconds.append(time.perf_counter() - start)
            counts.append(link.bytes_written + link.bytes_read - before)
    finally:
        link.close()
        server.stop()
    counts, seconds = counts[1:], seconds[1:]
    per_sample = (counts[1] - counts[0]) / (n - 1)
    return Transfers(per_sample, counts[0] - per_sample, (1, n), (seconds[1] - seconds[0]) / (n - 1))


@dataclass(frozen=True)
class TimeScaleResult:
    """What speed-energy takes from a time-scale study: per task the fastest RC meeting the bar (s),
    its closed-loop time per sample (s) and DAC updates; where it came from; the KL at that RC
    beside its sampling floor, as text."""

    rc: dict[str, float]
    time_per_sample: dict[str, float]
    dac_updates: dict[str, int]
    source: str
    path: str
    bar_met: dict[str, bool]
    quality: dict[str, str] = field(default_factory=dict)


def read_time_scale(path: str | Path, source: str = "") -> TimeScaleResult:
    """The fastest RC per task of a time-scale run file. A task with no RC meeting its bar falls back
    to the slowest RC studied (``bar_met`` False); digits without a digits study take the ring's."""
    from analysis import open_run
    from protocols.diffusion.time_scale import fastest_passing

    run = open_run(path)
    if run.protocol != "time-scale":
        raise ValueError(f"{path}: a {run.protocol!r} run, not a time-scale run")
    rc, tps, updates = run.read("rc"), run.read("time_per_sample"), run.read("dac_updates")
    if not len(rc):
        raise ValueError(f"{path}: the time-scale run recorded no point")
    names = {"ring": ("kl", "software_kl"), "digits": ("kl_digits", "software_kl_digits")}
    result: dict[str, float] = {}
    met: dict[str, bool] = {}
    for task, (kl_name, soft_name) in names.items():
        if kl_name not in {p.rsplit("/", 1)[-1] for p in run.datasets} or not len(run.read(soft_name)):
            continue
        kl = run.read(kl_name)[: len(rc)]
        fastest = fastest_passing(rc[: len(kl)], kl, run.read(soft_name)[-1])
        met[task] = math.isfinite(fastest)
        result[task] = fastest if met[task] else float(np.max(rc))
    if "digits" not in result:
        result["digits"], met["digits"] = result["ring"], met["ring"]
        source = (source or f"time-scale run file {path}") + "; digits takes the ring's RC (no digits study)"
    index = {task: int(np.flatnonzero(rc == value)[0]) for task, value in result.items()}
    quality = {task: _kl_at(run, names[task][0], index[task], "" if task == "ring" else "_digits")
               for task in result if names[task][0] in {p.rsplit("/", 1)[-1] for p in run.datasets}}
    return TimeScaleResult(result, {t: float(tps[i]) for t, i in index.items()},
                           {t: int(updates[i]) for t, i in index.items()},
                           source or f"time-scale run file {path}", str(path), met, quality)


def _kl_at(run: Any, kl_name: str, index: int, suffix: str) -> str:
    """The KL x, y and pooled and the 2-D histogram distance of point ``index``, each with the task's
    sampling floor ("floor unknown" in files written before it was recorded; scores a file does not
    hold are left out)."""
    from analysis.metrics import with_floor

    kl = run.read(kl_name)
    if index >= len(kl):
        return "KL not recorded"
    names = {p.rsplit("/", 1)[-1] for p in run.datasets}
    floor = spread = h_floor = None
    if f"kl_floor{suffix}" in names and len(run.read(f"kl_floor{suffix}")):
        floor, spread = run.read(f"kl_floor{suffix}")[-1], run.read(f"kl_floor_spread{suffix}")[-1]
    if f"hist2d_floor{suffix}" in names and len(run.read(f"hist2d_floor{suffix}")):
        h_floor = run.read(f"hist2d_floor{suffix}")[-1]
    scores = [(f"KL {axis}", float(kl[index][k]), k) for k, axis in enumerate("xy")]
    for name, label, column in ((f"kl_pooled{suffix}", "KL pooled", 3), (f"hist2d_distance{suffix}", "hist2d", None)):
        if name in names and index < len(values := run.read(name)):
            scores.append((label, float(values[index]), column))
    texts = []
    for label, value, column in scores:
        if column is None:
            shown = with_floor(value, *((None, None) if h_floor is None else (float(h_floor[0]), float(h_floor[1]))))
        else:
            shown = with_floor(value, None if floor is None else float(floor[column]),
                               None if spread is None else float(spread[column]))
        texts.append(f"{label} {shown}")
    return ", ".join(texts)


def quick_time_scale(out: Path, *, samples: int = 300, rc: Sequence[float] | None = None,
                     scheduler: str = "serial", model: str = "ring", seed: int = 1) -> Path:
    """Run a small time-scale study into ``out`` (a folder) and return its run file."""
    from protocols.diffusion.time_scale import TimeScale
    from protocols.engine.runner import RunEngine, RunState

    values: dict[str, object] = {"samples": samples, "scheduler": scheduler, "model": model}
    if rc is not None:
        values["rc"] = list(rc)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "time-scale-quick.h5"
    if path.exists():
        path.unlink()
    engine = RunEngine(TimeScale.from_values(values), None, path, seed=seed)
    if engine.run() != RunState.COMPLETED:
        raise RuntimeError(f"quick time-scale study failed: {engine.error}")
    return path


def task_comparison(task: str, scale: TimeScaleResult, transfers: Transfers, digital: Sequence[DigitalTiming],
                    assumptions: Assumptions | None = None, batch: int = 1000) -> dict[str, object]:
    """One task's result: analog at the study's fastest RC against the strongest measured digital baseline.

    Everything a reader needs to redo it is in the dict: time and energy terms, each digital
    implementation's throughput and latency, the paper's figures, every assumption with its source.
    batch: samples per board batch, over which the per-batch link bytes are shared.
    """
    model = load_shipped(task)
    mapped = map_score_net(model)
    rc = scale.rc[task]
    a = (assumptions or Assumptions()).for_rc(rc)
    transfer = a.link_time(transfers.bytes_per_sample + transfers.bytes_per_batch / batch)
    analog = analog_estimate(layer_loads(model, mapped), duration=scale.time_per_sample[task], dim=model.net.dim,
                             dac_channels=dac_channels(model), assumptions=a, transfer=transfer)
    rows = {}
    for d in digital:
        for kind, base in (("throughput", d.throughput), ("latency", d.latency)):
            rows[f"{d.name}_{kind}"] = {"time_per_sample_s": base.time_per_sample, "batch": base.samples,
                                        "steps": base.steps, "repeats": base.repeats, "cores": d.cores,
                                        "energy_per_sample_J": a.cpu_power * d.cores * base.time_per_sample}
    best = min((k for k in rows if k.endswith("_throughput")), key=lambda k: rows[k]["time_per_sample_s"])
    best_latency = min((k for k in rows if k.endswith("_latency")), key=lambda k: rows[k]["time_per_sample_s"])
    digital_t, digital_e = rows[best]["time_per_sample_s"], rows[best]["energy_per_sample_J"]
    return {
        "task": task,
        "analog_time_per_sample_s": analog.time_per_sample,
        "digital_time_per_sample_s": digital_t,
        "speedup": digital_t / analog.time_per_sample,
        "analog_energy_per_sample_J": analog.energy_per_sample,
        "digital_energy_per_sample_J": digital_e,
        "energy_ratio": digital_e / analog.energy_per_sample,
        "digital_baseline": best + " (the strongest measured: fastest batched implementation on this machine)",
        "analog_time_per_sample_without_transfers_s": analog.time_per_sample - transfer,
        "speedup_without_transfers": digital_t / (analog.time_per_sample - transfer),
        "speedup_vs_single_sample_latency": rows[best_latency]["time_per_sample_s"] / analog.time_per_sample,
        "digital_latency_baseline": best_latency,
        "digital": rows,
        "digital_steps": model.sampling.n_steps,
        "rc_s": rc,
        "rc_meets_bar": scale.bar_met[task],
        "rc_quality": scale.quality.get(task, "KL at that RC: not studied for this task"),
        "rc_source": scale.source,
        "dac_updates_per_sample": scale.dac_updates[task],
        "analog_time_terms_s": analog.time_terms,
        "analog_energy_terms_J": analog.energy_terms,
        "analog_counts": analog.counts,
        "rram_array_power_W": analog.array_power,
        "transfers": {"bytes_per_sample": transfers.bytes_per_sample, "bytes_per_batch": transfers.bytes_per_batch,
                      "batch": batch, "time_per_sample_s": transfer,
                      "how": f"measured: link bytes of set_initial + run_samples + fetch_end_values on the emulated "
                             f"board, batches of {transfers.samples[0]} and {transfers.samples[1]} samples (slope); "
                             f"time at the link rate; loopback wall time here "
                             f"{transfers.loopback_seconds:.3g} s per sample (emulator included, not the board)"},
        "excluded": "programming the conductances (write-verify, once per network), loading the mapping and the "
                    "DAC streams (once per run of batches), host-side computation",
        "paper": {**PAPER[task], "source": PAPER_SOURCE},
        "assumptions": a.table(),
    }


#: Figure file names after the seed's panels: 3f/g the ring, 4g/h the conditional task.
FIGURES = {"ring": ("fig3f_ring_time", "fig3g_ring_energy"), "digits": ("fig4g_digits_time", "fig4h_digits_energy")}


def compare_tasks(scale: TimeScaleResult, tasks: Sequence[str], *, batch: int = 1000, repeats: int = 3,
                  steps: int | None = None, torch_enabled: bool = True) -> list[dict[str, object]]:
    """:func:`task_comparison` for each task: the link's transfers measured once (on the ring's
    mapping), the digital baseline measured per task on this machine."""
    from protocols.diffusion.digital_baseline import measure

    ring = load_shipped("ring")
    transfers = measure_transfers(ring, map_score_net(ring), scale.rc["ring"])
    results = []
    for task in tasks:
        digital = measure(load_shipped(task), batch=batch, repeats=repeats, steps=steps, torch_enabled=torch_enabled)
        results.append(task_comparison(task, scale, transfers, digital, batch=batch))
    return results


def write_results(out: Path, results: Sequence[dict[str, object]]) -> list[Path]:
    """``speed-energy.json`` and the time and energy figures of each task into ``out``; the PNGs written."""
    import json

    from analysis.figures import speed_energy as figs
    from analysis.figures.style import save

    out.mkdir(parents=True, exist_ok=True)
    (out / "speed-energy.json").write_text(json.dumps(list(results), indent=1, default=jsonable) + "\n")
    written = []
    for result in results:
        time_name, energy_name = FIGURES[str(result["task"])]
        written.append(save(figs.time_per_sample(result), out / f"{time_name}.png"))
        written.append(save(figs.energy_per_sample(result), out / f"{energy_name}.png"))
    return written


def jsonable(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values (``json.dumps(default=...)``)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Analog vs software time and energy per sample.")
    parser.add_argument("--model", default="ring", help="shipped model (ring, ring-plain, digits)")
    parser.add_argument("--samples", type=int, default=1000, help="software batch size")
    args = parser.parse_args()
    est, soft = model_comparison(args.model, args.samples)
    print(summary(est, soft))
