"""Figures and the metrics table of the demo, drawn from its two run files (Agg backend).

- ``samples.png``: analog and software samples side by side and overlaid, over the reference
  ring, the KLs with their sampling floor under them (the report's ``samples`` figure);
- ``time-slices.png``: the integrator trajectories the scope captured, in data units;
- ``waveforms.png``: scope waveforms of integrator 0 (envelope and examples);
- ``weights.png`` / ``conductances.png``: target vs programmed weights and conductances (the
  report's figures of those names, drawn by the same functions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def draw_figures(program_path: Path, sample_path: Path, out: Path) -> list[Path]:
    """Write the demo's PNGs into ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    from analysis import open_run
    from analysis.figures import samples as sf
    from analysis.figures.style import context, save
    from analysis.figures.waveforms import waveforms
    from analysis.report_diffusion import samples_figure
    from analysis.report_sections import conductance_figure, weights_section
    from analysis.schema import data_path
    from analysis.traces import load_traces, trace_envelope
    from protocols.diffusion.scoring import ring_reference

    prog, run = open_run(program_path), open_run(sample_path)
    reference = ring_reference()
    written = []
    with context():
        stem, fig = samples_figure(run, reference=reference)  # the report's figure, with the ring under it
        written.append(save(fig, out / f"{stem}.png"))
        streams = {s.name: s for s in load_traces(run)}
        if "integrator_0" in streams:
            x_scale = float(run.read("voltage_scales")[0]) if data_path("voltage_scales") in run.datasets \
                else float(prog.read("voltage_scales")[0])
            traj = np.stack([run.trace_volts("integrator_0"), run.trace_volts("integrator_1")], axis=-1) / x_scale
            fig = sf.time_slices(streams["integrator_0"].time(), np.swapaxes(traj, 0, 1), unit="s",
                                 reference=reference, run_label=run.path.name)
            written.append(save(fig, out / "time-slices.png"))
            stream = streams["integrator_0"]
            written.append(save(waveforms(stream, trace_envelope(stream), run_label=run.path.name),
                                out / "waveforms.png"))
        # The report's figures of the programmed network, by the same definitions and names.
        for stem, fig in [*weights_section(prog).figures, conductance_figure(prog)]:
            written.append(save(fig, out / f"{stem}.png"))
    return written


def metrics_table(sample_path: Path) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    """name -> (analog, software) of the ring metrics a sample run recorded, and name -> (median,
    spread) of the sampling floor of the KLs and the 2-D histogram distance (NaN in a file without it)."""
    from analysis import open_run
    from analysis.diffusion_data import load_samples

    run = open_run(sample_path)
    scores = load_samples(run).scores
    kl, pooled = scores["kl"], scores.get("kl_pooled", np.full(2, np.nan))
    floor, spread = (scores.get(k, np.full(4, np.nan)) for k in ("kl_floor", "kl_floor_spread"))
    table = {"histogram KL x": (kl[0, 0], kl[1, 0]), "histogram KL y": (kl[0, 1], kl[1, 1]),
             "histogram KL pooled": (pooled[0], pooled[1])}
    floors = {name: (float(floor[k]), float(spread[k])) for k, name in ((0, "histogram KL x"),
                                                                        (1, "histogram KL y"),
                                                                        (3, "histogram KL pooled"))}
    floors["hist2d distance"] = tuple(float(v) for v in scores.get("hist2d_floor", np.full(2, np.nan)))
    for name in ("mean_radius", "radial_std", "max_sector_ratio", "hist2d_distance", "mmd"):
        a, s = run.read(name)[-1]
        table[name.replace("_", " ")] = (float(a), float(s))
    table["samples"] = (float(len(run.read("final"))), float(len(run.read("software"))))
    return table, floors
