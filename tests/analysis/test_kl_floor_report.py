"""Issue 17, KL: every report figure and summary that shows a KL or the 2-D histogram distance shows
its sampling floor beside it (the same score of as many fresh reference samples), and files written
before floors existed say "floor unknown" instead of failing."""

from __future__ import annotations

import numpy as np
from report_runs import run_file

from analysis import open_run
from analysis.diffusion_data import kl_note, kl_texts
from analysis.figures import style
from analysis.report import sections


def _sections(protocol: str, **overrides) -> dict:
    with style.context():
        return sections(open_run(run_file(protocol, **overrides)))


def _texts(fig) -> str:
    """Every text of a figure: footnotes, titles, legend entries."""
    out = [t.get_text() for t in fig.texts] + [fig.get_suptitle()]
    for ax in fig.axes:
        out += [ln.get_label() for ln in ax.lines] + [ax.get_title()]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return "\n".join(out)


def test_the_sample_report_writes_each_kl_beside_its_floor_in_figure_and_summary():
    sec = _sections("sample")["samples"]
    figure = _texts(dict(sec.figures)["samples"])
    for name in ("KL x: analog", "KL y: analog", "KL pooled: analog", "2-D histogram distance: analog"):
        assert name in figure
    assert figure.count("(floor ") == 4 and "fresh reference samples" in figure
    texts = sec.metrics["KL with sampling floor"]
    assert set(texts) == {"KL x", "KL y", "KL pooled", "2-D histogram distance"}
    assert all("(floor " in t for t in texts.values())


def test_the_time_scale_figure_draws_the_floor_and_names_it():
    """Per-coordinate KL, pooled KL and the 2-D histogram distance, each panel with its task's floor."""
    sec = _sections("time-scale")["time_scale"]
    figure = dict(sec.figures)["time_scale"]
    text = _texts(figure)
    assert "ring sampling floor" in text and "Sampling floor" in text
    assert "ring: x" in sec.metrics["sampling floor"]["ring"]
    assert "2-D histogram distance" in sec.metrics["sampling floor"]["ring"]
    for ylabel in ("KL, x and y pooled (nats)", "2-D histogram distance"):
        (ax,) = [ax for ax in figure.axes if ax.get_ylabel() == ylabel]
        assert [ln for ln in ax.lines if ln.get_label().startswith("ring sampling floor")]
    assert len(sec.metrics["hist2d_distance"]) == len(sec.metrics["rc"])


def test_the_noise_robustness_figure_draws_the_floor_of_its_kl():
    sec = _sections("noise-sweep")["noise_sweep"]
    fig = dict(sec.figures)["noise_robustness_ring"]
    scored = [ax for ax in fig.axes if ax.get_ylabel().startswith(("KL", "2-D histogram"))]
    assert len(scored) == 6, "mean and pooled KL, 2-D histogram distance; against read and write noise"
    for ax in scored:
        (floor,) = [ln for ln in ax.lines if ln.get_label().startswith("sampling floor")]
        assert 0 < floor.get_ydata()[0] < 1
    assert "Sampling floor (the same score of as many fresh ring points" in _texts(fig)
    assert "2-D histogram distance" in _texts(fig).split("Sampling floor")[1]


def test_a_file_without_floors_shows_them_as_unknown():
    """Sample runs written before issue 17 hold ``kl`` only: no pooled KL, no floor."""
    scores = {"kl": np.array([[0.05, 0.04], [0.03, 0.02]])}
    texts = kl_texts(scores)
    assert texts["KL x"] == "analog 0.05 (floor unknown), software 0.03"
    assert texts["KL pooled"] == "analog - (floor unknown), software -"
    assert "floor unknown" in kl_note(scores) and kl_note({}) == ""
