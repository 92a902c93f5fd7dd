"""`rrambench list`, `run` and `info`: outputs, exit codes, and no file left on bad input."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass

import pytest

import protocols.engine.registry
from analysis import open_run
from protocols.cli.main import main
from protocols.engine.datasets import Stream
from protocols.engine.progress import ProgressEvent, TerminalBar
from protocols.engine.protocol import Protocol, Step, param


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_each_protocol_with_units_limits_and_help(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    assert "read-array:" in out
    assert re.search(r"bias = 0.1 V\s+\[0.01 .. 0.5\]\s+read voltage", out)


def test_run_writes_a_timestamped_file_and_prints_its_path_last(capsys, tmp_path):
    code, out, err = run_cli(capsys, "run", "read-array", "--set", "macros=0,3", "--out", tmp_path,
                             "--seed", "4")
    assert code == 0, err
    path = out.strip().splitlines()[-1]
    assert re.fullmatch(re.escape(str(tmp_path)) + r"/\d{8}T\d{6}Z-read-array\.h5", path)
    run = open_run(path)
    assert (run.status, run.steps_completed, run.seed, run.world_seed) == ("completed", 2, 4, 0), \
        "--seed is the run seed; the world seed is the config's [sim] seed"
    assert run.parameters["macros"] == [0, 3]


def test_dry_run_validates_and_estimates_without_writing_anything(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "run", "read-array", "--set", "repeats=100", "--dry-run",
                           "--out", tmp_path)
    assert code == 0
    assert "steps              1" in out and "estimated duration 2 s" in out
    assert list(tmp_path.iterdir()) == []


BAD_INPUT = {
    "unknown protocol": (["run", "no-such-protocol"], "unknown protocol"),
    "unknown --set key": (["run", "read-array", "--set", "volume=3"], "unknown parameter 'volume'"),
    "mistyped value": (["run", "read-array", "--set", "repeats=many"], "expected an integer"),
    "value outside its limits": (["run", "read-array", "--set", "window=1"], "outside its limits"),
    "malformed --set": (["run", "read-array", "--set", "repeats"], "key=value"),
    "unreadable config": (["run", "read-array", "--config", "/no/such/bench.toml"], "cannot read"),
    "beyond the safety envelope": (["run", "read-array", "--set", "bias=0.3", "--config", "{tight}"],
                                   "exceeds the safety limit"),
    "macro the board lacks": (["run", "read-array", "--set", "macros=12"], "8 macros"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_on_stderr_exit_2_and_no_file(capsys, tmp_path, case):
    argv, message = BAD_INPUT[case]
    tight = tmp_path / "tight.toml"
    tight.write_text('backend = "sim"\n[limits]\nread_voltage = 0.2\n')
    out_dir = tmp_path / "out"
    argv = [a.replace("{tight}", str(tight)) for a in argv]
    code, out, err = run_cli(capsys, *argv, "--out", out_dir)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not out_dir.exists(), "nothing is left behind, not even the --out folder"


def _not_a_run(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("not hdf5")
    return path


def _truncated_run(tmp_path, capsys):
    _, out, _ = run_cli(capsys, "run", "read-array", "--out", tmp_path / "src", "--seed", "1")
    data = open(out.strip().splitlines()[-1], "rb").read()
    path = tmp_path / "cut.h5"
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.mark.parametrize("make", [_not_a_run, _truncated_run])
@pytest.mark.parametrize("command", [["info"], ["info", "--json"], ["run", "--resume"]])
def test_unreadable_run_files_are_a_clear_error_with_exit_2(capsys, tmp_path, make, command):
    path = make(tmp_path, capsys) if make is _truncated_run else make(tmp_path)
    code, _, err = run_cli(capsys, *command, path)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and str(path) in err


def test_info_json_is_the_stable_document(capsys, tmp_path):
    _, out, _ = run_cli(capsys, "run", "read-array", "--out", tmp_path, "--seed", "2")
    code, doc, _ = run_cli(capsys, "info", out.strip().splitlines()[-1], "--json")
    assert code == 0
    doc = json.loads(doc)
    assert set(doc) == {"status", "protocol", "steps_completed", "steps_total", "parameters",
                        "started", "ended", "error", "datasets", "outcome", "snapshot",
                        "protocol_source", "sample"}
    assert doc["datasets"]["/entry/data/conductance"] == {"shape": [1, 32, 32], "dtype": "float32",
                                                          "units": "S"}
    assert all(set(d) == {"shape", "dtype", "units"} for d in doc["datasets"].values())


def test_resuming_a_completed_run_is_refused(capsys, tmp_path):
    _, out, _ = run_cli(capsys, "run", "read-array", "--out", tmp_path, "--seed", "2")
    code, _, err = run_cli(capsys, "run", "--resume", out.strip().splitlines()[-1])
    assert code == 2 and "already completed" in err


class Boom(Protocol):
    """Fails in its second step."""

    name = "boom"

    @dataclass
    class Params:
        steps: int = param(3, limits=(1, 10), help="steps")

    def datasets(self):
        return [Stream("x", units="V")]

    def plan(self):
        for i in range(self.p.steps):
            yield Step(f"step {i}", lambda i=i: self.work(i))

    def work(self, i):
        if i == 1:
            raise RuntimeError("the cell caught fire")
        self.record("x", float(i))


def test_an_exception_in_a_step_fails_the_run_with_its_text_and_exit_1(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(protocols.engine.registry, "registry", lambda paths=(): {"boom": Boom})
    code, out, err = run_cli(capsys, "run", "boom", "--out", tmp_path)
    assert code == 1
    assert "the cell caught fire" in err
    run = open_run(out.strip().splitlines()[-1])
    assert run.status == "failed" and run.error == "RuntimeError: the cell caught fire"
    assert run.steps_completed == 1


def test_an_error_after_the_steps_ran_is_the_runs_failure_never_exit_2(capsys, tmp_path, monkeypatch):
    """Exit 2 is for bad input only: a ValueError raised while the run ends (after its file
    exists) is reported as the run's failure, exit 1, and the file's path is printed."""
    from protocols.engine.runner import RunEngine

    finish = RunEngine._finish

    def broken_finish(self, writer, final):
        finish(self, writer, final)
        raise ValueError("the disk said no")

    monkeypatch.setattr(RunEngine, "_finish", broken_finish)
    code, out, err = run_cli(capsys, "run", "read-array", "--out", tmp_path)
    assert code == 1 and "the disk said no" in err
    assert out.strip().endswith(".h5")


def test_terminal_bar_redraws_one_line_and_ends_it():
    stream = io.StringIO()
    bar = TerminalBar(stream, width=10)
    bar(ProgressEvent(index=0, total=4, name="read macro 0", fraction=0.0, eta=None, state="running"))
    bar(ProgressEvent(index=2, total=4, name="read macro 2", fraction=0.5, eta=65.0, state="paused"))
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[#####.....]  50.0%  step 3/4  read macro 2  ETA 1 min 05 s [paused]" in text
