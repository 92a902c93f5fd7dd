"""Figures and the metrics table of the demo, drawn from its two run files (Agg backend).

- ``samples.png``: analog and software samples over the reference ring;
- ``time-slices.png``: the integrator trajectories the scope captured, in data units;
- ``waveforms.png``: scope waveforms of integrator 0 (envelope and examples);
- ``weights.png`` / ``conductances.png``: target vs programmed weights and conductances.
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
    from analysis.figures.weights import target_vs_programmed
    from analysis.schema import data_path
    from analysis.traces import load_traces, trace_envelope
    from protocols.diffusion.scoring import ring_reference

    prog, run = open_run(program_path), open_run(sample_path)
    reference = ring_reference()
    written = []
    with context():
        final, software = run.read("final"), run.read("software")
        fig = sf.scatter(np.vstack([final, software]), np.repeat([0, 1], [len(final), len(software)]),
                         classes=("analog (RRAM loop)", "software baseline"), reference=reference,
                         run_label=run.path.name, group="")
        written.append(save(fig, out / "samples.png"))
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
        written.append(save(target_vs_programmed(prog.read("target_weight"), prog.read("programmed_weight")[-1],
                                                 what="weight", unit="", run_label=prog.path.name),
                            out / "weights.png"))
        written.append(save(target_vs_programmed(prog.read("target_conductance"),
                                                 prog.read("programmed_conductance")[-1], run_label=prog.path.name),
                            out / "conductances.png"))
    return written


def metrics_table(sample_path: Path) -> dict[str, tuple[float, float]]:
    """name -> (analog, software) of the ring metrics a sample run recorded."""
    from analysis import open_run

    run = open_run(sample_path)
    kl = run.read("kl")[-1]
    table = {"histogram KL x": (kl[0, 0], kl[1, 0]), "histogram KL y": (kl[0, 1], kl[1, 1])}
    for name in ("mean_radius", "radial_std", "max_sector_ratio", "hist2d_distance", "mmd"):
        a, s = run.read(name)[-1]
        table[name.replace("_", " ")] = (float(a), float(s))
    table["samples"] = (float(len(run.read("final"))), float(len(run.read("software"))))
    return table
