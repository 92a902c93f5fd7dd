"""`rrambench report`: one run, several runs with comparison figures, bad input."""

from __future__ import annotations

import json

import pytest
from figure_checks import assert_readable, data_axes
from report_runs import run_file

from analysis import open_run
from analysis.figures import style
from analysis.report_compare import comparison
from protocols.cli.main import main


@pytest.mark.slow
def test_report_command_writes_figures_and_summary_into_the_output_folder(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", str(run_file("write-verify")), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    doc = json.loads((out / "summary.json").read_text())
    assert sorted(p.name for p in out.glob("*.png")) == sorted(doc["figures"])
    stats = doc["metrics"]["programming"]["write_verify"]
    assert stats["cells"] == 64 and stats["converged_fraction"] > 0.8


@pytest.mark.slow
def test_several_runs_get_a_folder_each_and_comparison_figures(tmp_path):
    a, b = run_file("iv-sweep", seed=1), run_file("iv-sweep", seed=2)
    c, d = run_file("write-verify", seed=1), run_file("multilevel", seed=1)
    out = tmp_path / "rep"
    assert main(["report", str(a), str(b), str(c), str(d), "-o", str(out)]) == 0
    for path in (a, b, c, d):
        assert (out / path.stem / "summary.json").exists()
    names = {p.name for p in (out / "comparison").glob("*.png")}
    assert {"compare_iv.png", "compare_programming_error.png", "compare_pulses.png"} <= names
    doc = json.loads((out / "comparison" / "summary.json").read_text())
    assert set(doc["runs"]) == {a.stem, b.stem, c.stem, d.stem}


def test_comparison_overlays_one_curve_per_run_with_units():
    runs = [open_run(run_file("iv-sweep", seed=s)) for s in (1, 2)]
    with style.context():
        figs = dict(comparison(runs, ["first", "second"]))
    (ax,) = data_axes(figs["compare_iv"])
    assert [ln.get_label() for ln in ax.lines] == ["first", "second"]
    assert ax.get_xlabel() == "voltage (V)" and ax.get_ylabel() == "|current| (A)"
    assert_readable(figs["compare_iv"], "compare_iv")


def test_report_of_a_missing_or_foreign_file_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", str(tmp_path / "nope.h5"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
    foreign = tmp_path / "foreign.h5"
    foreign.write_bytes(b"not hdf5")
    assert main(["report", str(run_file("form")), str(foreign), "-o", str(out)]) == 2
    assert not out.exists(), "bad input leaves nothing behind"


def test_the_sample_comparison_writes_each_runs_scores_with_their_floors():
    runs = [open_run(run_file("sample", seed=s)) for s in (1, 2)]
    with style.context():
        figs = dict(comparison(runs, ["first", "second"]))
    note = figs["compare_samples"].texts[0].get_text()
    for name in ("first: KL x: analog", "second: KL x: analog", "2-D histogram distance: analog"):
        assert name in note
    assert note.count("(floor ") == 8
    assert_readable(figs["compare_samples"], "compare_samples")
