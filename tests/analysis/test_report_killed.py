"""Every analysis function works on a file left by a killed writer: a run SIGKILLed
mid-step (status still "running") reports as interrupted with whatever it recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from figure_checks import assert_readable
from report_runs import available, killed_run_file

from analysis import characterization_data as ld
from analysis import diffusion_data as ldd
from analysis import open_run
from analysis.figures import style
from analysis.report import report_run, sections

# Step at which each run is killed: mid-way where the plan has several steps.
KILL_AT = {"retention": 3, "read-noise": 3, "read-array": 1, "sample": 1}
LOADERS = (ld.load_pulses, ld.load_traces, ld.load_iv, ld.load_retention, ld.load_read_noise,
           ld.load_write_noise, ld.load_form, ld.load_weights, ldd.load_samples, ldd.load_noise_sweep)


@pytest.mark.parametrize("protocol", available())
@pytest.mark.slow
def test_report_and_loaders_work_on_a_run_killed_mid_step(protocol, tmp_path):
    path = killed_run_file(protocol, at_step=KILL_AT.get(protocol, 0))
    run = open_run(path)
    assert run.status == "interrupted" and run.steps_completed < run.steps_total
    for load in LOADERS:
        load(run)  # None or a (possibly empty) view; never an exception
    for prefix in ld.programming_prefixes(run):
        ld.load_programming(run, prefix)
    result = report_run(path, tmp_path)
    assert result.figures and all(p.stat().st_size > 5_000 for p in result.figures)
    doc = json.loads((tmp_path / "summary.json").read_text())
    assert doc["run"]["status"] == "interrupted" and doc["run"]["ended"] is None
    with style.context():
        for sec in sections(run).values():
            for stem, fig in sec.figures:
                assert_readable(fig, f"{protocol}/{stem}")


@pytest.mark.slow
def test_partial_retention_run_reports_the_reads_it_completed(tmp_path):
    run = open_run(killed_run_file("retention", at_step=3))
    data = ld.load_retention(run)
    assert len(data.time) == run.steps_completed - 1 == 2, "programming step + two read times journalled"
    doc = report_run(run.path, tmp_path).summary
    assert len(doc["metrics"]["retention"]["error_std_by_time"]) == 2


@pytest.mark.slow
def test_report_cli_on_a_read_array_run_sigkilled_from_outside(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "protocols.cli", "run", "read-array", "--set", "macros=0,1,2,3",
                             "--set", "repeats=400", "--seed", "3", "--out", str(out)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        path = None
        while time.monotonic() < deadline and path is None:
            files = list(out.glob("*.h5"))
            try:
                if files and open_run(files[0]).steps_completed >= 1:
                    path = files[0]
            except (OSError, ValueError):
                pass  # being created
            if proc.poll() is not None:
                pytest.fail(f"run ended before the kill: {proc.stderr.read()}")
            time.sleep(0.01)
        assert path is not None, "no step completed in time"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    done = subprocess.run([sys.executable, "-m", "protocols.cli", "report", str(path), "-o", str(tmp_path / "rep")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert doc["run"]["status"] == "interrupted"
    assert Path(tmp_path / "rep" / "map_conductance.png").stat().st_size > 10_000
