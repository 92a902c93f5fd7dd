"""Report sections of the diffusion protocols: ``sample`` (scatter, time slices of the
integrator trajectories, decoded images, per-class accuracy) and ``noise-sweep``
(noise-impact heatmaps and curves), and their comparison figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from analysis import characterization_data as ld
from analysis import diffusion_data as ldd
from analysis.figures import noise, samples
from analysis.report_sections import Section, _label
from analysis.run_reader import Run

INTEGRATORS = ("integrator_0", "integrator_1")  # scope streams of the two integrator outputs
ACCURACY_ROWS = ("analog + simulated RRAM decoder", "analog + software decoder", "software baseline")
DECODERS = {"images_simulated_rram": "simulated RRAM decoder", "images_software": "software decoder",
            "images_baseline": "software baseline"}


def sections(run: Run) -> dict[str, Section]:
    """The diffusion sections that apply to ``run``."""
    found = {}
    for name, build in (("samples", sample_section), ("noise_sweep", noise_sweep_section)):
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


def noise_sweep_section(run: Run) -> Section | None:
    """Heatmaps of every metric over read x write noise per model, and curves through the default."""
    data = ldd.load_noise_sweep(run)
    if data is None:
        return None
    sec = Section()
    shown = [k for k in ("kl_mean", "hist2d_distance", "radial_std", "programming_rms_error") if k in data.grids]
    for m, model in enumerate(data.models):
        grids = dict(_scaled(k, data.grids[k][m], data.units.get(k, "")) for k in shown)
        tag = "noise-trained" if data.noise_trained is not None and data.noise_trained[m] else "plain"
        sec.figures.append((f"noise_heatmaps_{model}", noise.noise_heatmaps(
            data.read_noise, data.write_noise, grids, f"model {model} ({tag}) {_label(run)}")))
    if "kl_mean" in data.grids:
        kl = data.grids["kl_mean"]
        j = int(np.argmin(np.abs(data.write_noise - 1.0)))
        i = int(np.argmin(np.abs(data.read_noise - 1.0)))
        sec.figures.append(("noise_curves_read", noise.noise_curves(
            data.read_noise, {mod: kl[m, :, j] for m, mod in enumerate(data.models)}, "KL divergence (mean of x, y)",
            f"read noise (x default), at write noise {data.write_noise[j]:g}x", _label(run))))
        sec.figures.append(("noise_curves_write", noise.noise_curves(
            data.write_noise, {mod: kl[m, i, :] for m, mod in enumerate(data.models)}, "KL divergence (mean of x, y)",
            f"write noise (x default), at read noise {data.read_noise[i]:g}x", _label(run))))
    sec.metrics = {"read_noise": data.read_noise, "write_noise": data.write_noise, "models": data.models,
                   "points_finished": int(np.isfinite(data.grids[shown[0]]).sum()) if shown else 0,
                   "grids": {k: data.grids[k] for k in shown}}
    return sec


def _scaled(name: str, grid: np.ndarray, unit: str) -> tuple[str, np.ndarray]:
    """Panel title with unit, and the grid in that unit (conductances in uS)."""
    text = name.replace("_", " ")
    if unit == "S":
        return f"{text} (uS)", grid * 1e6
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
