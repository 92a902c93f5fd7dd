"""Report sections of the diffusion protocols: ``sample`` (scatter, time slices of the
integrator trajectories, decoded images, per-class accuracy) and ``noise-sweep``
(noise-impact heatmaps and curves), and their comparison figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from analysis import characterization_data as ld
from analysis import diffusion_data as ldd
from analysis.figures import noise, samples, time_scale
from analysis.metrics import nearest_default
from analysis.report_sections import Section, _label
from analysis.run_reader import Run

INTEGRATORS = ("integrator_0", "integrator_1")  # scope streams of the two integrator outputs
ACCURACY_ROWS = ("analog + simulated RRAM decoder", "analog + software decoder", "software baseline")
DECODERS = {"images_simulated_rram": "simulated RRAM decoder", "images_software": "software decoder",
            "images_baseline": "software baseline"}


def sections(run: Run) -> dict[str, Section]:
    """The diffusion sections that apply to ``run``."""
    found = {}
    for name, build in (("samples", sample_section), ("noise_sweep", noise_sweep_section),
                        ("time_scale", time_scale_section)):
        sec = build(run)
        if sec is not None:
            found[name] = sec
    return found


def sample_section(run: Run) -> Section | None:
    """Initial noise, analog and software samples; trajectories in time slices; decoded images."""
    data = ldd.load_samples(run)
    if data is None:
        return None
    sec = Section()
    sets = [("initial noise", data.initial, data.condition)] if data.initial is not None else []
    sets.append(("analog solver", data.final, data.condition))
    if data.software is not None:
        sets.append(("software baseline", data.software, data.condition))
    sec.figures.append(("samples", samples.panels(sets, run_label=_label(run), heading="Generated samples")))
    slices = _trajectories(run)
    if slices is not None:
        t, snapshots = slices
        sec.figures.append(("time_slices", samples.time_slices(t, snapshots, "s", state_unit="V",
                                                                        run_label=_label(run))))
    for name, images in data.images.items():
        cond = data.condition[: len(images)] if data.condition is not None else None
        sec.figures.append((f"decoded_{name.removeprefix('images_')}", samples.decoded_images(
            images, cond, run_label=_label(run), decoder=DECODERS.get(name, name))))
    if data.accuracy is not None:
        sec.figures.append(("class_accuracy", samples.class_accuracy(data.accuracy, ACCURACY_ROWS,
                                                                     run_label=_label(run))))
        sec.metrics["accuracy"] = {row: data.accuracy[i] for i, row in enumerate(ACCURACY_ROWS[: len(data.accuracy)])}
    sec.metrics["samples"] = int(len(data.final))
    sec.metrics["scores (analog, software)"] = data.scores
    return sec


def _trajectories(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    """Times (s) and states (T, N, 2) in V of the integrators from the stored scope segments."""
    streams = {s.name: s for s in ld.load_traces(run)}
    if not all(n in streams and streams[n].count for n in INTEGRATORS):
        return None
    a, b = (streams[n] for n in INTEGRATORS)
    n = min(a.count, b.count)
    x = np.stack([a.volts(np.arange(n)), b.volts(np.arange(n))], axis=-1)  # (N, T, 2); few stored
    return a.time(), np.transpose(x, (1, 0, 2))


#: What the noise-robustness figures leave out, said in them and in the report's metrics.
NOT_SWEPT = ("Conditional task (digits): not swept, no plain conditional model is shipped "
             "(the shipped digits model is noise-aware, trained with weight-noise injection) to compare it with")
KL_NOTE = ("KL: mean over x and y of the per-coordinate 1-D histogram KL (nats; 50 bins over [-4, 4]) "
           "against 10,000 ring points; median and interquartile range (25-75 %) over simulated worlds")


def noise_sweep_section(run: Run) -> Section | None:
    """Fig. 5e/f: per task, quality (median, IQR over worlds) against read and write noise for
    the noise-aware and plain models; heatmaps of the medians when the sweep covers a map."""
    data = ldd.load_noise_sweep(run)
    if data is None:
        return None
    sec = Section()
    shown = [k for k in ("kl_mean", "kl_mean_software", "hist2d_distance", "radial_std", "programming_rms_error",
                         "lost_fraction") if k in data.grids]
    if data.full:
        for m, model in enumerate(data.models):
            grids = dict(_scaled(k, data.grids[k][m], data.units.get(k, "")) for k in shown)
            tag = "noise-trained" if data.noise_trained is not None and data.noise_trained[m] else "plain"
            sec.figures.append((f"noise_heatmaps_{model}", noise.noise_heatmaps(
                data.read_noise, data.write_noise, grids, f"model {model} ({tag}), median over worlds {_label(run)}")))
    if "kl_mean" in data.grids:
        for task, models in _tasks(data.models).items():
            sec.figures.append((f"noise_robustness_{task}", _robustness(data, task, models, _label(run))))
    sec.metrics = {"read_noise": data.read_noise, "write_noise": data.write_noise, "models": data.models,
                   "worlds_per_setting": int(data.worlds.max()) if data.worlds is not None and data.worlds.size else 0,
                   "points_finished": int(data.worlds.sum()) if data.worlds is not None else 0,
                   "median": {k: data.grids[k] for k in shown}, "q25": {k: data.q25[k] for k in shown},
                   "q75": {k: data.q75[k] for k in shown}, "not swept": NOT_SWEPT}
    return sec


def _tasks(models: Sequence[str]) -> dict[str, list[int]]:
    """Model indices per task; a shipped model's task is its name up to the first '-'
    (``ring``, ``ring-plain`` -> ring)."""
    tasks: dict[str, list[int]] = {}
    for m, model in enumerate(models):
        tasks.setdefault(model.split("-", 1)[0].split(" ", 1)[0], []).append(m)
    return tasks


def _robustness(data: ldd.NoiseSweepData, task: str, models: Sequence[int], run_label: str) -> Figure:
    """KL against read noise (write at the level nearest 1x), KL and programming error against
    write noise (read at the level nearest 1x), median line and IQR band per model."""
    i0, j0 = nearest_default(data.read_noise), nearest_default(data.write_noise)
    worlds = data.worlds if data.worlds is not None else np.isfinite(data.grids["kl_mean"]).astype(int)

    def lines(metric: str, along_read: bool, factor: float = 1.0,
              baseline: str = "") -> dict[str, tuple[bool, noise.RobustnessLine]]:
        out = {}
        for m in models:
            cut = (m, slice(None), j0) if along_read else (m, i0, slice(None))
            aware = bool(data.noise_trained is not None and data.noise_trained[m])
            out[data.models[m]] = (aware, noise.RobustnessLine(
                data.read_noise if along_read else data.write_noise, data.grids[metric][cut] * factor,
                data.q25.get(metric, data.grids[metric])[cut] * factor,
                data.q75.get(metric, data.grids[metric])[cut] * factor, worlds[cut],
                data.grids[baseline][cut] * factor if baseline in data.grids else None))
        return out

    kl = "KL divergence, mean of x and y (nats)"
    base = "kl_mean_software"  # files before it existed: no baseline drawn
    panels = [(f"read-noise multiplier (× default), write noise {data.write_noise[j0]:g}×", kl,
               lines("kl_mean", True, baseline=base)),
              (f"write-noise multiplier (× default), read noise {data.read_noise[i0]:g}×", kl,
               lines("kl_mean", False, baseline=base))]
    if "programming_rms_error" in data.grids:
        panels.append((f"write-noise multiplier (× default), read noise {data.read_noise[i0]:g}×",
                       "programming error, RMS of G+ - G- (µS)", lines("programming_rms_error", False, 1e6)))
    return noise.noise_robustness(panels, run_label, heading=f"Noise robustness, {task} (as Fig. 5e/f)",
                                  note=f"{KL_NOTE}. {NOT_SWEPT}.")


def time_scale_section(run: Run) -> Section | None:
    """Quality against time per sample over the boards of a time-scale run (points in any order)."""
    if run.protocol != "time-scale" or not ld.has(run, "time_per_sample"):
        return None
    n = min(len(run.read("rc")), len(run.read("kl")), len(run.read("time_per_sample")))
    rc, kl, tps = run.read("rc")[:n], run.read("kl")[:n], run.read("time_per_sample")[:n]
    soft = ld.optional(run, "software_kl")
    # the ring bar of protocols.diffusion.time_scale.bar (analysis does not import protocols)
    bar = 1.5 * soft[-1] + 0.02 if soft is not None and len(soft) else None
    digits = ld.optional(run, "kl_digits")
    sec = Section()
    sec.figures.append(("time_scale", time_scale.quality_vs_time(
        tps, rc, kl, bar, run.read("saturated")[:n], digits[:n] if digits is not None else None, _label(run))))
    sec.metrics = {"rc": rc, "time_per_sample": tps, "kl": kl}
    return sec


def _scaled(name: str, grid: np.ndarray, unit: str) -> tuple[str, np.ndarray]:
    """Panel title with unit, and the grid in that unit (conductances in uS)."""
    text = name.replace("_", " ")
    if unit == "S":
        return f"{text} (µS)", grid * 1e6
    return (f"{text} ({unit})" if unit else text), grid


def comparison(runs: Sequence[Run], names: Sequence[str]) -> list[tuple[str, Figure]]:
    """Side-by-side analog samples of several sample runs."""
    sets = []
    for run, name in zip(runs, names, strict=True):
        data = ldd.load_samples(run)
        if data is not None:
            sets.append((name, data.final, data.condition))
    if len(sets) < 2:
        return []
    return [("compare_samples", samples.panels(sets, heading="Analog samples of each run"))]
