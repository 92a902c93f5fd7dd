"""rrambench speed-energy: one JSON object per task with the measured figures, assumptions and sources;
figures and JSON with -o; bad options in one line, exit 2."""

from __future__ import annotations

import json

import pytest

from protocols.cli.main import main
from protocols.cli.speed_energy import KEYS
from protocols.diffusion.speed_energy import FIGURES
from protocols.diffusion.time_scale import TimeScale
from protocols.engine.runner import RunEngine, RunState

FAST = ["--steps", "20", "--batch", "8", "--repeats", "1"]  # a tiny digital baseline: seconds, not minutes
NO_TORCH = [*FAST, "--no-torch"]  # importing torch alone takes seconds: the slow test covers it


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own refusals exit from the parser
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny time-scale run file (ideal loop, 2 boards)."""
    path = tmp_path_factory.mktemp("ts") / "ts.h5"
    params = {"rc": [1e-3, 1e-5], "samples": 24, "n_steps": 100, "scheduler": "serial", "loop_model": "ideal"}
    engine = RunEngine(TimeScale.from_values(params), None, path, seed=4)
    assert engine.run() == RunState.COMPLETED, engine.error
    return path


@pytest.mark.parametrize("argv, message", [
    (["--batch", "0"], "--batch: must be >= 1"),
    (["--model", "letters"], "invalid choice"),
    (["--rc", "1e-3,fast"], "--rc: expected comma-separated time constants"),
    (["--time-scale", "/nonexistent/ts.h5"], "no such file"),
    (["--frobnicate"], "unrecognized arguments"),
])
def test_a_bad_option_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, "speed-energy", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert out == ""


def test_a_file_that_is_not_a_time_scale_run_is_refused(capsys, tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_bytes(b"not hdf5")
    code, _, err = run_cli(capsys, "speed-energy", "--time-scale", bad, *FAST)
    assert code == 2 and "--time-scale" in err and len(err.strip().splitlines()) == 1, err


def test_json_prints_one_object_per_task_with_the_measured_figures_and_every_source(capsys, study):
    code, out, err = run_cli(capsys, "speed-energy", "--json", "--time-scale", study, *NO_TORCH)
    assert code == 0, err
    lines = out.strip().splitlines()
    results = [json.loads(line) for line in lines[:2]]
    assert [r["task"] for r in results] == ["ring", "digits"]
    for r in results:
        assert set(KEYS) <= set(r)
        assert r["speedup"] == pytest.approx(r["digital_time_per_sample_s"] / r["analog_time_per_sample_s"])
        assert r["energy_ratio"] == pytest.approx(r["digital_energy_per_sample_J"] / r["analog_energy_per_sample_J"])
        assert str(study) in r["rc_source"], "where the RC came from is explicit"
        assert r["transfers"]["bytes_per_sample"] > 0 and "measured" in r["transfers"]["how"]
        assert "programming" in r["excluded"]
        assert r["analog_time_terms_s"]["transfer"] > 0
        assert all(row["source"] for row in r["assumptions"])
        names = {row["name"]: row["value"] for row in r["assumptions"]}
        assert names["amp_part"] == "TI OPA2320" and "dac_part" in names and "adc_part" in names
        digital = r["digital"]
        assert {"numpy_throughput", "numpy_latency"} <= set(digital)
        best = min(v["time_per_sample_s"] for k, v in digital.items() if k.endswith("throughput"))
        assert r["digital_time_per_sample_s"] == best, "compared with the strongest baseline"
        assert "speedup" in r["paper"] and "source" in r["paper"]
    assert results[0]["paper"]["speedup"] == 64.8 and results[1]["paper"]["speedup"] == 156.5


@pytest.mark.slow
def test_out_writes_the_json_and_the_figures_of_both_tasks(capsys, study, tmp_path):
    pytest.importorskip("torch")
    code, out, err = run_cli(capsys, "speed-energy", "--json", "--time-scale", study, *FAST, "-o", tmp_path)
    assert code == 0, err
    for line in out.strip().splitlines()[:2]:
        assert {"torch_throughput", "torch_latency"} <= set(json.loads(line)["digital"])
    written = json.loads((tmp_path / "speed-energy.json").read_text())
    assert [r["task"] for r in written] == ["ring", "digits"]
    for task in ("ring", "digits"):
        for name in FIGURES[task]:
            assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_torch_is_skipped_on_request_and_the_table_names_every_assumption(capsys, study):
    code, out, err = run_cli(capsys, "speed-energy", "--model", "ring", "--time-scale", study, *NO_TORCH)
    assert code == 0, err
    assert "== ring" in out and "== digits" not in out
    assert "torch" not in out.split("digital measured:")[1].split("\n")[0]
    for word in ("speed-up", "OPA2320", "link_rate", "excluded: programming"):
        assert word in out
    (quality,) = [ln for ln in out.splitlines() if ln.startswith("quality at that RC:")]
    assert "KL x" in quality and "(floor " in quality, "the KL at the RC used, beside its sampling floor"
    assert quality.count("(floor ") == 4, "KL x, y, pooled and the 2-D histogram distance, each with its floor"


@pytest.mark.slow
def test_without_a_file_a_quick_study_runs_and_says_so(capsys, tmp_path):
    code, out, err = run_cli(capsys, "speed-energy", "--json", "--model", "ring", "--samples", "16",
                             "--rc", "1e-3,1e-5", *FAST, "-o", tmp_path)
    assert code == 0, err
    r = json.loads(out.strip().splitlines()[0])
    assert "quick time-scale study run here" in r["rc_source"] and r["rc_s"] in (1e-3, 1e-5)
    assert (tmp_path / "time-scale-quick.h5").is_file()
