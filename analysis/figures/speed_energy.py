"""Speed and energy figures in the manner of the seed's Fig. 3f/g (ring) and 4g/h (conditional):
time and energy per sample, analog against each measured digital implementation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from analysis.figures.style import SINGLE, footnote, label, new_figure, title

ANALOG_COLOR, DIGITAL_COLOR = "tab:red", "tab:gray"


def _bars(ax: Any, names: list[str], values: list[float], colors: list[str], unit: str) -> None:
    y = np.arange(len(names))
    ax.barh(y, values, color=colors)
    ax.set_yticks(y, names)
    ax.set_xscale("log")
    ax.invert_yaxis()
    for k, v in enumerate(values):
        ax.annotate(_si(v, unit), (v, k), textcoords="offset points", xytext=(4, -3), fontsize=8)
    ax.set_xlim(min(values) / 3, max(values) * 30)  # room for the labels on a log axis


def time_per_sample(result: Mapping[str, Any], run_label: str = "") -> Figure:
    """Horizontal bars (log scale): analog time per sample (with and without host transfers) and
    every digital row (throughput and single-sample latency); the speed-up against the strongest; under
    the panel, the analog KL at that RC beside its sampling floor (``rc_quality``, when given)."""
    fig, (ax,) = new_figure(SINGLE)
    names = ["analog (with transfers)", "analog (loop, reset, readout)"]
    values = [result["analog_time_per_sample_s"], result["analog_time_per_sample_without_transfers_s"]]
    digital = result["digital"]
    names += [k.replace("_", " ") for k in digital]
    values += [row["time_per_sample_s"] for row in digital.values()]
    _bars(ax, names, values, [ANALOG_COLOR] * 2 + [DIGITAL_COLOR] * len(digital), "s")
    ax.set(xlabel=label("time per sample", "s"),
           title=f"speed-up {result['speedup']:.3g}x vs {result['digital_baseline'].split()[0].replace('_', ' ')} "
                 f"(paper {result['paper']['speedup']}x)")
    if result.get("rc_quality"):
        footnote(fig, f"analog quality at RC {result['rc_s']:.0e} s: {result['rc_quality']}")
    title(fig, f"Time per sample, {result['task']} (RC {result['rc_s']:.0e} s)", run_label)
    return fig


def energy_per_sample(result: Mapping[str, Any], run_label: str = "") -> Figure:
    """Horizontal bars (log scale): the analog total and each of its terms (array, amplifiers, DACs,
    ADC), and the strongest digital baseline (CPU power x measured time); the ratio."""
    fig, (ax,) = new_figure(SINGLE)
    terms = {k: v for k, v in result["analog_energy_terms_J"].items() if v > 0}
    best = result["digital_baseline"].split()[0].replace("_", " ")
    names = ["analog total"] + [f"  analog: {k.replace('_', ' ')}" for k in terms] + [f"digital: {best}"]
    values = [result["analog_energy_per_sample_J"], *terms.values(), result["digital_energy_per_sample_J"]]
    _bars(ax, names, values, [ANALOG_COLOR] + ["lightsalmon"] * len(terms) + [DIGITAL_COLOR], "J")
    ax.set(xlabel=label("energy per sample", "J"),
           title=f"energy ratio {result['energy_ratio']:.3g}x (paper {result['paper']['energy_ratio']}x)")
    title(fig, f"Energy per sample, {result['task']} (RC {result['rc_s']:.0e} s)", run_label)
    return fig


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value / 1e-12:.3g} p{unit}"
