"""`rrambench demo`, reduced to a few samples, end to end on the embedded simulated bench."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import open_run
from protocols.cli.main import main
from protocols.diffusion.demo import run_demo, summary


@pytest.mark.slow
def test_reduced_demo_writes_readable_run_files_figures_and_a_summary(tmp_path):
    """Program, sample, score and draw: two completed run files, the PNGs, and a table
    with the analog and software metrics side by side."""
    out = tmp_path / "demo"
    result = run_demo(out, samples=120, waveforms=8)
    text = summary(result)
    assert "histogram KL x" in text and "mean radius" in text and "analog" in text
    assert "histogram KL pooled" in text and "sampling floor" in text
    floor, spread = result.floors["histogram KL x"]
    assert 0 < spread < floor and f"{floor:.4g} ± {spread:.2g}" in text
    analog, software = result.metrics["mean radius"]
    assert abs(analog - 0.7) < 0.05 and abs(software - 0.7) < 0.05
    program, sample = open_run(out / "program-model.h5"), open_run(out / "sample.h5")
    assert program.status == sample.status == "completed"
    assert program.protocol == "program-model" and sample.protocol == "sample"
    assert sample.read("final").shape == (120, 2)
    assert np.isfinite(sample.read("kl")).all()
    for name in ("samples", "time-slices", "waveforms", "weights", "conductances"):
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.slow
def test_the_command_prints_the_table_and_a_second_run_keeps_the_first_files(tmp_path, capsys):
    """`rrambench demo` prints the summary; run files are never overwritten."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--samples", "10"]) == 0
    assert "histogram KL y" in capsys.readouterr().out
    assert main(["demo", "--out", str(out), "--samples", "10"]) == 0
    assert (out / "sample.h5").is_file() and (out / "sample-1.h5").is_file()


@pytest.mark.parametrize("args", [["--samples", "1"], ["--seed", "-3"]])
def test_bad_demo_arguments_are_one_line_errors_with_exit_code_2(tmp_path, capsys, args):
    assert main(["demo", "--out", str(tmp_path / "d"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rrambench: error:") and err.count("\n") == 1
    assert not (tmp_path / "d").exists()
