"""Report sections of the diffusion protocols: ``sample`` (scatter, time slices of the
integrator trajectories, decoded images, per-class accuracy) and ``noise-sweep``
(noise-impact heatmaps and curves), and their comparison figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from analysis import characterization_data as ld
from analysis import diffusion_data as ldd
from analysis.figures import field, nodes, noise, samples, time_scale
from analysis.metrics import nearest_default
from analysis.report_sections import Section, _label
from analysis.run_reader import Run

INTEGRATORS = ("integrator_0", "integrator_1")  # scope streams of the two integrator outputs
ACCURACY_ROWS = ("analog + RRAM decoder on the bench", "analog + software decoder", "software baseline")
#: Row 0 of files from before the decoder ran on the bench's macros (it was a simulated array).
SIMULATED_DECODER_ROW = "analog + simulated RRAM decoder"
DECODERS = {"images_rram_decoder": "RRAM decoder on the bench", "images_simulated_rram": "simulated RRAM decoder",
            "images_software": "software decoder", "images_baseline": "software baseline"}


def sections(run: Run) -> dict[str, Section]:
    """The diffusion sections that apply to ``run``."""
    found = {}
    for name, build in (("samples", sample_section), ("noise_sweep", noise_sweep_section),
                        ("time_scale", time_scale_section), ("field", field_section), ("nodes", nodes_section)):
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
    sec.figures.append(samples_figure(run, data))
    slices = _trajectories(run)
    if slices is not None:
        t, snapshots = slices
        # a conditional run stores each class's first traces (Fig. 4e): one colour per class
        groups = ld.optional(run, "waveform_condition")
        if groups is not None and len(groups) >= snapshots.shape[1]:
            groups = groups[: snapshots.shape[1]].astype(int)
        else:
            groups = None
        sec.figures.append(("time_slices", samples.time_slices(t, snapshots, "s", state_unit="V",
                                                                        run_label=_label(run), groups=groups)))
        if groups is not None and run.parameters.get("shared_noise"):
            sec.figures.append(("shared_start", _shared_start(run, data, t, snapshots, groups)))
    for name, images in data.images.items():
        cond = data.condition[: len(images)] if data.condition is not None else None
        sec.figures.append((f"decoded_{name.removeprefix('images_')}", samples.decoded_images(
            images, cond, run_label=_label(run), decoder=DECODERS.get(name, name))))
    maps = []
    while (found := ld.optional(run, f"decoder_maps_{len(maps)}")) is not None and len(found):
        maps.append(found)
    if maps:  # Fig. 4c: the decoder's feature maps as the board read them
        sec.figures.append(("decoder_maps", samples.feature_maps(maps, run_label=_label(run))))
    if data.accuracy is not None:
        rows = ((SIMULATED_DECODER_ROW, *ACCURACY_ROWS[1:]) if "images_simulated_rram" in data.images
                else ACCURACY_ROWS)
        sec.figures.append(("class_accuracy", samples.class_accuracy(data.accuracy, rows, run_label=_label(run))))
        sec.metrics["accuracy"] = {row: data.accuracy[i] for i, row in enumerate(rows[: len(data.accuracy)])}
    sec.metrics["samples"] = int(len(data.final))
    sec.metrics["scores (analog, software)"] = data.scores
    if "kl" in data.scores:
        sec.metrics["KL with sampling floor"] = ldd.kl_texts(data.scores)
    return sec


def samples_figure(run: Run, data: ldd.SampleData | None = None,
                   reference: np.ndarray | None = None) -> tuple[str, Figure]:
    """``samples``: initial noise, analog and software samples side by side and overlaid, the
    KLs with their sampling floor under them; the one definition the report and ``rrambench
    demo`` draw (the demo adds the reference ring, ``reference`` (M, 2))."""
    data = data if data is not None else ldd.load_samples(run)
    if data is None:
        raise ValueError(f"{run.path.name}: no samples recorded")
    return "samples", samples.analog_vs_software(data.final, data.software, data.initial, data.condition,
                                                 reference=reference, run_label=_label(run),
                                                 note=ldd.kl_note(data.scores))


def _trajectories(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    """Times (s) and states (T, N, 2) in V of the integrators from the stored scope segments."""
    streams = {s.name: s for s in ld.load_traces(run)}
    if not all(n in streams and streams[n].count for n in INTEGRATORS):
        return None
    a, b = (streams[n] for n in INTEGRATORS)
    n = min(a.count, b.count)
    x = np.stack([a.volts(np.arange(n)), b.volts(np.arange(n))], axis=-1)  # (N, T, 2); few stored
    return a.time(), np.transpose(x, (1, 0, 2))


def _shared_start(run: Run, data: ldd.SampleData, t: np.ndarray, snapshots: np.ndarray,
                  groups: np.ndarray) -> Figure:
    """Fig. 4f: each class's first stored trace (all from class 0's first initial noise) and
    its decoded end (the decoder on the bench where recorded, else the first decoder)."""
    first = [int(np.flatnonzero(groups == c)[0]) for c in np.unique(groups)]
    trajectories = np.stack([snapshots[:, i, :] for i in first])
    images = None
    if data.images and data.condition is not None:
        name = next((n for n in data.images if "rram" in n), next(iter(data.images)))
        decoded = data.images[name]
        images = np.stack([decoded[np.flatnonzero(data.condition == c)[0]] for c in np.unique(groups)])
    return samples.shared_start(t, trajectories, images, run_label=_label(run))


#: Above this median fraction of samples lost (diverged or outside [-4, 4]) a setting's quality
#: scores describe the few samples left, not the model: the heatmaps blank them and say so.
LOST_LIMIT = 0.5
#: Heatmap metrics that score the samples (blanked where most were lost), in the order shown.
QUALITY = ("kl_mean", "kl_pooled", "hist2d_distance", "radial_std", "accuracy")
#: What each task's reference is, for the figures' notes.
REFERENCES = {"ring": "10,000 ring points",
              "digits": "posterior draws of the real digits' latents (20 per image, every class pooled)"}


def noise_sweep_section(run: Run) -> Section | None:
    """Fig. 5e/f: per task, quality (median, IQR over worlds) against read and write noise for
    the noise-aware and plain models; heatmaps of the medians when the sweep covers a map."""
    data = ldd.load_noise_sweep(run)
    if data is None:
        return None
    sec = Section()
    shown = [k for k in (*QUALITY, "kl_mean_software", "programming_rms_error", "lost_fraction")
             if k in data.grids and np.isfinite(data.grids[k]).any()]
    if data.full:
        for m, model in enumerate(data.models):
            lost = data.grids.get("lost_fraction", np.zeros_like(data.grids[shown[0]]))[m]
            grids, labels = {}, {}
            floors = _floors(data)
            for k in shown:
                title, grid = _scaled(k, data.grids[k][m], data.units.get(k, ""))
                grids[title] = grid
                if k in QUALITY:
                    text = np.where(lost > LOST_LIMIT, np.vectorize(lambda v: f"lost\n{v:.0%}")(lost), "")
                    if k in floors:  # below the floor: samples left the score's range, not a better match
                        median, spread = floors[k][:2]
                        low = (grid < median - noise.BELOW_FLOOR * spread) & (text == "")
                        text = np.where(low, np.vectorize(lambda v: f"{v:.3g}\nbelow floor")(grid), text)
                    labels[title] = text
            tag = "noise-trained" if data.noise_trained is not None and data.noise_trained[m] else "plain"
            sec.figures.append((f"noise_heatmaps_{model}", noise.noise_heatmaps(
                data.read_noise, data.write_noise, grids, f"model {model} ({tag}), median over worlds {_label(run)}",
                labels=labels, note=f"Quality cells where the median world lost more than {LOST_LIMIT:.0%} of its "
                "samples (diverged or outside [-4, 4]) are blanked: their scores describe the few samples left; "
                f"so are cells more than {noise.BELOW_FLOOR:g} std below their sampling floor, which no sampler "
                "reaches: samples left the score's range (the 2-D histogram distance counts them in its "
                "normalisation, not in its bins over [-1, 1]), not a closer match. "
                + _floor_sentence(data, _task(model)))))
    if "kl_mean" in data.grids:
        for task, models in _tasks(data.models).items():
            sec.figures.append((f"noise_robustness_{task}", _robustness(data, task, models, _label(run))))
    floors = {"kl_floor": data.kl_floor, "kl_floor_spread": data.kl_floor_spread, "hist2d_floor": data.hist2d_floor}
    sec.metrics = {"read_noise": data.read_noise, "write_noise": data.write_noise, "models": data.models,
                   "worlds_per_setting": int(data.worlds.max()) if data.worlds is not None and data.worlds.size else 0,
                   "points_finished": int(data.worlds.sum()) if data.worlds is not None else 0,
                   "median": {k: data.grids[k] for k in shown}, "q25": {k: data.q25[k] for k in shown},
                   "q75": {k: data.q75[k] for k in shown},
                   "sampling floor": {k: v for k, v in floors.items() if v is not None}}
    return sec


def _task(model: str) -> str:
    """A shipped model's task: its name up to the first '-' (``ring-plain`` -> ring)."""
    return model.split("-", 1)[0].split(" ", 1)[0]


def _tasks(models: Sequence[str]) -> dict[str, list[int]]:
    """Model indices per task; a shipped model's task is its name up to the first '-'
    (``ring``, ``ring-plain`` -> ring)."""
    tasks: dict[str, list[int]] = {}
    for m, model in enumerate(models):
        tasks.setdefault(_task(model), []).append(m)
    return tasks


def _robustness(data: ldd.NoiseSweepData, task: str, models: Sequence[int], run_label: str) -> Figure:
    """Per metric (mean and pooled KL, 2-D histogram distance, the digits' accuracy) against read
    noise (write at the level nearest 1x) and against write noise (read at the level nearest 1x),
    then the programming error against write noise; median line and IQR band per model, each
    score with its sampling floor."""
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

    read_axis = f"read-noise multiplier (× default), write noise {data.write_noise[j0]:g}×"
    write_axis = f"write-noise multiplier (× default), read noise {data.read_noise[i0]:g}×"
    floors = _floors(data)
    metrics = [("kl_mean", "KL, mean of x and y (nats)", "kl_mean_software"),
               ("kl_pooled", "KL, x and y pooled (nats)", ""),
               ("hist2d_distance", "2-D histogram distance", ""),
               ("accuracy", "decoded images classified as their class", "")]
    panels, panel_floors = [], []
    for metric, label, base in metrics:
        if metric not in data.grids or not np.isfinite(data.grids[metric][list(models)]).any():
            continue
        for axis, along_read in ((read_axis, True), (write_axis, False)):
            panels.append((axis, label, lines(metric, along_read, baseline=base)))
            panel_floors.append(floors.get(metric))
    if "programming_rms_error" in data.grids:
        panels.append((write_axis, "programming error, RMS of G+ - G- (µS)",
                       lines("programming_rms_error", False, 1e6)))
        panel_floors.append(None)
    return noise.noise_robustness(panels, run_label, heading=f"Noise robustness, {task} (as Fig. 5e/f)",
                                  note=f"{_quality_note(task)}. {_floor_sentence(data, task)}.",
                                  floors=panel_floors, ncols=2)


def _quality_note(task: str) -> str:
    """What the robustness figure's scores are."""
    accuracy = (" Accuracy: the latents decoded by the shipped VAE in software and labelled by its classifier; "
                "a diverged latent counts as wrong." if task == "digits" else "")
    return (f"Against {REFERENCES.get(task, 'the task reference')}: KL per coordinate (1-D histograms, 50 bins over "
            "[-4, 4], mean of x and y; dashed: the noise-free software sampler from the same initial states) and "
            "pooled (both coordinates in one histogram, the authors' form); 2-D histogram distance (L2, 100 x 100 "
            "bins, the seed's calDistance: at a few hundred samples nearly every bin holds at most one sample, so it "
            "stays near its floor until samples leave its range, where it falls: x marks a median more than "
            f"{noise.BELOW_FLOOR:g} std below the floor).{accuracy} Median and interquartile range (25-75 %) over "
            "simulated worlds")


def _floors(data: ldd.NoiseSweepData) -> dict[str, tuple[float, float, str]]:
    """(median, spread, legend) of each score's sampling floor that the file recorded."""
    out = {}
    if data.kl_floor is not None and data.kl_floor_spread is not None:
        m, sd = data.kl_floor, data.kl_floor_spread
        out["kl_mean"] = (float(m[2]), float(sd[2]), f"sampling floor: {m[2]:.3g} ± {sd[2]:.2g}")
        out["kl_pooled"] = (float(m[3]), float(sd[3]), f"sampling floor: {m[3]:.3g} ± {sd[3]:.2g}")
    if data.hist2d_floor is not None and np.isfinite(data.hist2d_floor[0]):
        m, sd = data.hist2d_floor
        out["hist2d_distance"] = (float(m), float(sd), f"sampling floor: {m:.3g} ± {sd:.2g}")
    return out


def _floor_sentence(data: ldd.NoiseSweepData, task: str) -> str:
    """The sentence on the sampling floors: the same scores of as many fresh samples of the task."""
    floors = _floors(data)
    if not floors:
        return "Sampling floor unknown (not recorded in this file)"
    names = {"kl_mean": "KL mean of x and y", "kl_pooled": "pooled KL", "hist2d_distance": "2-D histogram distance"}
    values = ", ".join(f"{names[k]} {m:.3g} ± {sd:.2g}" for k, (m, sd, _) in floors.items())
    what = "ring points" if task == "ring" else "digit latents"
    return (f"Sampling floor (the same score of as many fresh {what}, median ± std over draws): {values}"
            + ("" if "hist2d_distance" in floors else "; 2-D histogram distance: floor not recorded in this file"))


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
    floors, texts = {}, {}
    scores: dict[str, dict[str, tuple[np.ndarray, tuple[float, float]]]] = {}
    for task, suffix in (("ring", ""), ("digits", "_digits")):
        if task == "digits" and digits is None:
            continue
        floor, spread = (ld.optional(run, f"{k}{suffix}") for k in ("kl_floor", "kl_floor_spread"))
        known = floor is not None and spread is not None and len(floor) and len(spread)
        floors[task] = (float(floor[-1][2]), float(spread[-1][2])) if known else (np.nan, np.nan)
        h_floor = ld.optional(run, f"hist2d_floor{suffix}")
        h_known = h_floor is not None and len(h_floor)
        texts[task] = (f"{task}: x {floor[-1][0]:.3g} ± {spread[-1][0]:.2g}, y {floor[-1][1]:.3g} ± "
                       f"{spread[-1][1]:.2g}, pooled {floor[-1][3]:.3g} ± {spread[-1][3]:.2g}" if known
                       else f"{task}: unknown (not recorded in this file)")
        if h_known:
            texts[task] += f", 2-D histogram distance {h_floor[-1][0]:.3g} ± {h_floor[-1][1]:.2g}"
        for name, ylabel, pick in (("kl_pooled", "KL, x and y pooled (nats)", 3),
                                   ("hist2d_distance", "2-D histogram distance", None)):
            values = ld.optional(run, name + suffix)
            if values is None or len(values) < n:
                continue
            if pick is None:
                floor_of = (float(h_floor[-1][0]), float(h_floor[-1][1])) if h_known else (np.nan, np.nan)
            else:
                floor_of = (float(floor[-1][pick]), float(spread[-1][pick])) if known else (np.nan, np.nan)
            scores.setdefault(ylabel, {})[task] = (values[:n], floor_of)
    note = ("KL: 1-D histogram KL per coordinate (nats, 50 bins over [-4, 4]); pooled: x and y in one histogram (the "
            "authors' form); 2-D histogram distance: L2 between 100 x 100-bin histograms (the seed's calDistance). "
            "Sampling floor (the same score of as many fresh reference samples as a point draws; median ± std over "
            "draws): " + "; ".join(texts.values()))
    sec = Section()
    sec.figures.append(("time_scale", time_scale.quality_vs_time(
        tps, rc, kl, bar, run.read("saturated")[:n], digits[:n] if digits is not None else None, _label(run),
        floors=floors, note=note, scores=scores)))
    sec.metrics = {"rc": rc, "time_per_sample": tps, "kl": kl, "sampling floor": texts}
    for name in ("kl_pooled", "hist2d_distance", "kl_pooled_digits", "hist2d_distance_digits"):
        values = ld.optional(run, name)
        if values is not None:
            sec.metrics[name] = values[:n]
    return sec


def _scaled(name: str, grid: np.ndarray, unit: str) -> tuple[str, np.ndarray]:
    """Panel title with unit, and the grid in that unit (conductances in µS)."""
    text = name.replace("_", " ")
    if unit == "S":
        return f"{text} (µS)", grid * 1e6
    return (f"{text} ({unit})" if unit else text), grid


def comparison(runs: Sequence[Run], names: Sequence[str]) -> list[tuple[str, Figure]]:
    """Side-by-side analog samples of several sample runs, each run's scores with their floors under them."""
    sets, notes = [], []
    for run, name in zip(runs, names, strict=True):
        data = ldd.load_samples(run)
        if data is not None:
            sets.append((name, data.final, data.condition))
            texts = ldd.kl_texts(data.scores)
            if texts:
                notes.append(f"{name}: " + "; ".join(f"{k}: {v}" for k, v in texts.items()))
    if len(sets) < 2:
        return []
    note = "\n".join(notes)
    if notes:
        note += ("\nKL: 1-D histograms, 50 bins over [-4, 4], nats; pooled: x and y in one histogram; 2-D histogram "
                 "distance: 100 x 100 bins. Floor: the same score of as many fresh reference samples.")
    return [("compare_samples", samples.panels(sets, heading="Analog samples of each run", note=note))]


def field_section(run: Run) -> Section | None:
    """Fig. 3d: the network's output field measured through the loop, beside the software score."""
    analog, software = ld.optional(run, "field_analog"), ld.optional(run, "field_software")
    points, times = ld.optional(run, "field_points"), ld.optional(run, "field_time")
    if analog is None or software is None or points is None or times is None or not len(analog):
        return None
    n = min(len(analog), len(software), len(times))
    analog, software, times = analog[:n], software[:n], times[:n]
    err = np.sqrt(np.mean((analog - software) ** 2, axis=(1, 2)))
    ref = np.sqrt(np.mean(software**2, axis=(1, 2)))
    note = ("Measured through the closed loop: a = 0, b = +1 and -1, constant time embedding, a short run "
            "from each grid point; output voltage = change of the integrators x RC / run time (mean of the "
            "two signs), converted to score by the mapping's output scale. Relative RMS error per t: "
            + ", ".join(f"t = {t:.3g}: {e / r:.3g}" for t, e, r in zip(times, err, ref, strict=True)) + ".")
    fig = field.vector_field(points, times, analog, software, run_label=_label(run), note=note)
    return Section([("vector_field", fig)], {"times": times, "relative_rms_error": err / ref,
                                              "points": int(len(points))})


def nodes_section(run: Run) -> Section | None:
    """Fig. 3a: every node's waveform during one sampling (sample 0); Fig. 3c: each layer's input voltages."""
    data = ldd.load_nodes(run)
    if data is None:
        return None
    last = len(data.layer_outputs) - 1
    groups = [("integrators (layer 1 inputs), scope channels 1 and 2", ["integrator 0", "integrator 1"],
               data.integrators[0])]
    for k in range(len(data.layer_outputs)):
        index, volts = data.nodes(k, 0)
        name = (f"output layer: {len(index)} of {data.layer_outputs[k]} nodes" if k == last else
                f"hidden layer {k + 1}: ReLU outputs of {len(index)} of {data.layer_outputs[k]} nodes "
                f"(layer {k + 2} inputs)")
        groups.append((name, [f"node {i}" for i in index], volts))
    samples_run = int(data.sample.max()) + 1
    runs = len(np.unique(np.stack([data.layer, data.node]), axis=1).T)
    how = ("Integrators on scope channels 1 and 2; each hidden and output node through the board's monitor "
           "multiplexer (MONITOR_SELECT) on channel 4, one node per run: every run repeats the same sampling "
           f"(probability-flow ODE, the same initial condition and board seed). Sample 0 of {samples_run}; "
           f"{runs} node runs.")
    figs = [("nodes_waveforms", nodes.node_waveforms(data.time, groups, run_label=_label(run), note=how))]
    inputs = data.layer_inputs()
    names = ["layer 1: integrators"] + [f"layer {k + 2}: hidden layer {k + 1} outputs" for k in range(last)]
    note = (f"Every recorded sample ({samples_run}) and time point ({data.time.size} per trace, scope traces "
            "with the scope's input noise). Log counts.")
    figs.append(("layer_inputs", nodes.layer_inputs(inputs, names, run_label=_label(run), note=note)))
    ranges = {name: [float(np.nanmin(v)), float(np.nanmax(v))] for name, v in zip(names, inputs, strict=True)
              if v.size}
    return Section(figs, {"samples": samples_run, "node_runs": runs, "input_range_V": ranges})
