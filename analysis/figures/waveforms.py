"""Scope waveforms: example acquisitions over the min/max envelope of all of them."""

from __future__ import annotations

from matplotlib.figure import Figure

from analysis.characterization_data import TraceEnvelope, TraceStream
from analysis.figures.style import WIDE, auto_prefix, colors, label, new_figure, no_data, scale, title


def waveforms(stream: TraceStream, env: TraceEnvelope, run_label: str = "") -> Figure:
    """Left: envelope (min..max, mean) of every acquisition and a few examples, V vs time.
    Right: histogram of each acquisition's final value (V)."""
    fig, (wave, final) = new_figure(WIDE, ncols=2, gridspec_kw={"width_ratios": [2, 1]})
    if stream.count == 0:
        no_data(wave)
        no_data(final)
    else:
        kt, tunit = scale("s", auto_prefix(stream.time()))
        t = stream.time() * kt
        wave.fill_between(t, env.minimum, env.maximum, color="0.85", lw=0, label="min..max of all")
        wave.plot(t, env.mean, color="k", lw=1.2, label="mean of all")
        for i, v, col in zip(env.example_index, env.examples, colors(len(env.examples), "plasma"), strict=True):
            wave.plot(t, v, lw=0.8, color=col, label=f"acquisition {i}")
        wave.legend(frameon=False, fontsize=7, ncols=2)
        wave.set(xlabel=label("time", tunit))
        final.hist(env.final, bins=min(60, max(10, stream.count // 10)), color="tab:blue")
        final.locator_params(axis="x", nbins=5)
    wave.set(ylabel=label("voltage", "V"), title=f"{stream.count} acquisitions of {stream.points} points")
    if stream.count == 0:
        wave.set(xlabel=label("time", "s"))
    final.set(xlabel=label("final value", "V"), ylabel="acquisitions", title="end of each acquisition")
    channel = f" ({stream.channel})" if stream.channel else ""
    title(fig, f"Scope waveforms {stream.name}{channel}", run_label)
    return fig
