"""The Python API: `from protocols import run_protocol` runs a protocol through the same code
path as `rrambench run` (same checks, run file, safe state, resume), returns the path,
status and outcome, draws a tqdm bar, and turns Ctrl-C into pause, then abort."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from analysis import open_run
from protocols import Protocol, Step, Stream, param, run_protocol
from protocols.cli.main import main
from protocols.engine.errors import UsageError
from protocols.engine.protocol import BenchUse

ROOT = Path(__file__).resolve().parents[2]


class Count(Protocol):
    """Count to n, one step each (no instrument)."""

    name = "count-api"
    bench_use = BenchUse.ANY

    @dataclass
    class Params:
        n: int = param(3, limits=(1, 100), help="steps")

    def datasets(self):
        return [Stream("k", units="")]

    def plan(self):
        for k in range(self.p.n):
            yield Step(f"count {k}", lambda k=k: self.record("k", float(k)))

    def outcome(self):
        return {"total": (float(self.recorded("k").sum()), "")}


def test_run_protocol_writes_the_same_run_as_the_cli_and_returns_path_status_outcome(capsys, tmp_path):
    result = run_protocol("read-array", {"macros": [0, 1]}, out=tmp_path / "api", seed=5,
                          sample={"chip": "C7", "die": 3}, progress=False)
    assert result.status == "completed" and result.error == ""
    assert result.path.parent == tmp_path / "api" and result.path.is_file()
    assert result.outcome["maps"] == (2, "") and result.outcome["median_conductance"][1] == "S"
    run = open_run(result.path)
    assert run.status == "completed" and run.sample == {"chip": "C7", "die": "3"}
    assert run.parameters["macros"] == [0, 1] and run.seed == 5
    assert main(["run", "read-array", "--set", "macros=0,1", "--seed", "5", "--out", str(tmp_path / "cli")]) == 0
    cli = open_run(capsys.readouterr().out.strip().splitlines()[-1])
    np.testing.assert_array_equal(run.read("conductance"), cli.read("conductance"))  # one code path


def test_a_class_a_progress_callback_and_the_tqdm_bar(tmp_path, capsys):
    events = []
    result = run_protocol(Count, {"n": 4}, out=tmp_path, progress=events.append)
    assert (result.status, result.outcome) == ("completed", {"total": (6.0, "")})
    assert events[-1].state == "completed" and events[-1].fraction == 1.0
    assert {e.index for e in events} >= {0, 1, 2, 3}
    assert open_run(result.path).protocol_source["reference"] == f"{__name__}:Count"
    run_protocol(Count, out=tmp_path, progress=True)
    bar = capsys.readouterr().err
    assert "count-api step 3/3 count 2 100.0%" in bar and "[completed]" in bar


@pytest.mark.parametrize("kwargs, message", [
    ({"protocol": "no-such-protocol"}, "unknown protocol 'no-such-protocol'"),
    ({"protocol": "read-array", "params": {"bias": 9.0}}, "bias"),
    ({"protocol": "read-array", "sample": {"colour": "red"}}, "--sample colour: unknown key"),
    ({"protocol": "read-array", "seed": -1}, "--seed must be >= 0"),
])
def test_bad_input_raises_one_line_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(UsageError, match=message) as caught:
        run_protocol(out=tmp_path / "runs", progress=False, **kwargs)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "runs").exists()


def test_resume_finishes_an_interrupted_run_like_the_cli(tmp_path, monkeypatch):
    from instruments.macro_controller import MacroController

    read_macro, calls = MacroController.read_macro, []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("link down")
        return read_macro(self, *args, **kwargs)

    monkeypatch.setattr(MacroController, "read_macro", failing)
    first = run_protocol("read-array", {"macros": [0, 1, 2]}, out=tmp_path, progress=False)
    assert first.status == "failed" and "link down" in first.error
    monkeypatch.undo()
    with pytest.raises(UsageError, match="--resume takes the parameters from the run file"):
        run_protocol("read-array", {"macros": [0]}, resume=first.path, progress=False)
    done = run_protocol(None, resume=first.path, progress=False)
    assert (done.path, done.status) == (first.path, "completed")
    assert open_run(first.path).steps_completed == 3


CTRL_C = textwrap.dedent('''
    import json, os, signal, sys, threading
    from dataclasses import dataclass
    from protocols import Protocol, Step, Stream, param, run_protocol

    class Slow(Protocol):
        """Drive the SMU output on, one slow step at a time."""
        name = "slow"

        @dataclass
        class Params:
            steps: int = param(50, limits=(1, 1000))

        def datasets(self):
            return [Stream("i", units="A")]

        def plan(self):
            for k in range(self.p.steps):
                yield Step(f"step {k}", self.work, estimate=0.05)

        def work(self):
            Slow.world = self.bench.world
            self.bench.smu.set_voltage(0.1)
            self.bench.smu.output_on()  # the safe state must turn it off again
            for _ in range(5):
                self.check()
                threading.Event().wait(0.01)
            self.record("i", 1e-6)

    if sys.argv[1] == "--resume":  # finish the aborted run: the same file, so the same source
        print(run_protocol(Slow, resume=sys.argv[2], progress=False).status)
        sys.exit(0)
    states = []

    def progress(event):
        states.append(event.state)
        if event.index == 2 and states.count("running") and "paused" not in states and not hasattr(progress, "sent"):
            progress.sent = True
            os.kill(os.getpid(), signal.SIGINT)  # first Ctrl-C: pause
        if event.state == "paused":
            # the run holds; a second Ctrl-C a moment later aborts it
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()

    result = run_protocol(Slow, out=sys.argv[1], progress=progress)
    print(json.dumps({"status": result.status, "path": str(result.path), "states": states,
                      "outputs_safe": Slow.world.outputs_safe(),
                      "handler_restored": signal.getsignal(signal.SIGINT) is signal.default_int_handler}))
''')


@pytest.mark.slow
def test_ctrl_c_pauses_and_a_second_ctrl_c_aborts_with_the_outputs_safe(tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "runs")], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["status"] == "aborted"
    states = report["states"]
    assert states[-2:] == ["paused", "aborted"]  # no step ran between the two Ctrl-C
    assert report["outputs_safe"] and report["handler_restored"]
    assert "pausing" in done.stderr and "Ctrl-C again aborts" in done.stderr and "aborting" in done.stderr
    assert "Traceback" not in done.stderr
    run = open_run(report["path"])
    assert run.status == "aborted" and 0 < run.steps_completed < 50
    # an aborted run finishes later, through the API as through the CLI
    resumed = subprocess.run([sys.executable, str(script), "--resume", report["path"]], capture_output=True,
                             text=True, timeout=120, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip().splitlines()[-1] == "completed"


def test_the_readme_documents_the_api_beside_the_instrument_example():
    readme = (ROOT / "README.md").read_text()
    assert "from protocols import run_protocol" in readme
    assert readme.index("from protocols import run_protocol") > readme.index("```python")
