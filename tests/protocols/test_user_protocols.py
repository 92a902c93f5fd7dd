"""Researchers' own protocols: the tutorial's endurance protocol (docs/writing-a-protocol.md),
copied to a folder outside the repository, runs through `rrambench run PATH.py:Class`, dry
run, resume (a changed source refused unless --force), `list` through the config's
[protocols] paths and through an installed package's entry point; a file that does not
load is one line and exit 2, nothing written."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import open_run
from analysis.schema import PLOT, SAMPLE
from protocols.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "writing-a-protocol.md"
FAST = ["--set", "cycles=6", "--set", "read_every=2", "--set", "cols=0,1"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def tutorial_files(folder: Path) -> dict[str, Path]:
    """Every code block of the tutorial marked ``<!-- file: NAME -->``, written to ``folder``."""
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- file: (\S+) -->\n```python\n(.*?)```", text, flags=re.S)
    files = {}
    for name, code in blocks:
        files[name] = folder / name
        files[name].write_text(code, encoding="utf-8")
    return files


@pytest.fixture
def lab(tmp_path) -> Path:
    """A folder of the researcher's, outside the repository, holding the tutorial's files."""
    folder = tmp_path / "lab"
    folder.mkdir()
    assert ROOT not in folder.resolve().parents
    files = tutorial_files(folder)
    assert set(files) == {"endurance.py", "plot_endurance.py"}
    return folder


def endurance_run(capsys, lab: Path, *extra) -> Path:
    code, out, err = run_cli(capsys, "run", f"{lab / 'endurance.py'}:Endurance", *FAST,
                             "--out", lab / "runs", *extra)
    assert code == 0, err
    return Path(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_tutorials_endurance_protocol_runs_from_its_file_with_rrambench_run(lab):
    """The real command, in a process of its own started in the lab folder."""
    done = subprocess.run([sys.executable, "-m", "protocols.cli", "run", "endurance.py:Endurance", *FAST,
                           "--out", "runs", "--seed", "3", "--sample", "chip=C7"],
                          capture_output=True, text=True, cwd=lab, timeout=120)
    assert done.returncode == 0, done.stderr
    path = lab / done.stdout.strip().splitlines()[-1]
    assert "endurance outcome:" in done.stderr and "window_last" in done.stderr
    run = open_run(path)
    assert (run.protocol, run.status, run.steps_completed, run.steps_total) == ("endurance", "completed", 3, 3)
    assert run.parameters["cycles"] == 6 and run.parameters["cols"] == [0, 1]
    units = {p.rsplit("/", 1)[-1]: d.units for p, d in run.datasets.items()}
    assert units["g_set"] == units["g_reset"] == "S" and units["time"] == "s" and units["cycle"] == ""
    assert run.read("cycle").tolist() == [2, 4, 6]
    g_set, g_reset = run.read("g_set"), run.read("g_reset")
    assert g_set.shape == g_reset.shape == (3, 2) and np.all(g_set > g_reset)  # the cells switch
    assert run.outcome["cycles"]["value"] == 6
    assert run.attrs(PLOT)["signal"] == "window"
    source = run.protocol_source
    assert source["origin"] == "file" and source["class"] == "Endurance"
    assert source["reference"] == f"{(lab / 'endurance.py').resolve()}:Endurance"
    assert source["sha256"] == hashlib.sha256((lab / "endurance.py").read_bytes()).hexdigest()
    assert run.sample == {"chip": "C7"}
    figure = subprocess.run([sys.executable, str(lab / "plot_endurance.py"), str(path)],
                            capture_output=True, text=True, cwd=lab, timeout=120)
    assert figure.returncode == 0, figure.stderr
    assert Path(figure.stdout.strip()).is_file()


def test_info_shows_where_the_protocol_came_from(capsys, lab):
    path = endurance_run(capsys, lab, "--sample", "chip=C7", "--sample", "die=3")
    code, out, _ = run_cli(capsys, "info", path)
    assert code == 0
    sha = hashlib.sha256((lab / "endurance.py").read_bytes()).hexdigest()
    assert f"source     {(lab / 'endurance.py').resolve()}:Endurance  (sha256 {sha})" in out
    assert "sample     chip=C7  die=3" in out


def test_the_dry_run_checks_the_user_protocol_and_writes_nothing(capsys, lab):
    code, out, _ = run_cli(capsys, "run", f"{lab / 'endurance.py'}:Endurance", *FAST, "--dry-run",
                           "--out", lab / "runs")
    assert code == 0
    assert "endurance: parameters valid and within the safety envelope" in out and "steps              3" in out
    code, _, err = run_cli(capsys, "run", f"{lab / 'endurance.py'}:Endurance", "--set", "cols=0,40",
                           "--dry-run", "--out", lab / "runs")
    assert code == 2 and err.count("\n") == 1 and "cols=[0, 40]" in err
    code, _, err = run_cli(capsys, "run", f"{lab / 'endurance.py'}:Endurance", "--set", "set_voltage=2.9",
                           "--out", lab / "runs")
    assert code == 2 and err.count("\n") == 1  # beyond the safety envelope ([limits] set_voltage)
    assert not (lab / "runs").exists()


def test_resume_refuses_a_changed_source_unless_forced(capsys, lab, monkeypatch):
    from instruments.macro_controller import MacroController

    read_batch, calls = MacroController.read_batch, []

    def failing_read(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # the second step's first read
            raise RuntimeError("probe lifted")
        return read_batch(self, *args, **kwargs)

    monkeypatch.setattr(MacroController, "read_batch", failing_read)
    code, out, err = run_cli(capsys, "run", f"{lab / 'endurance.py'}:Endurance", *FAST, "--out", lab / "runs")
    assert code == 1 and "probe lifted" in err
    monkeypatch.undo()
    path = Path(out.strip().splitlines()[-1])
    assert (open_run(path).status, open_run(path).steps_completed) == ("failed", 1)

    source = lab / "endurance.py"
    source.write_text(source.read_text() + "\n# tuned after the first step\n")
    before = path.read_bytes()
    code, out, err = run_cli(capsys, "run", "--resume", path)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"rrambench: error: {path}: protocol source {source.resolve()} changed")
    assert "--force" in err
    assert path.read_bytes() == before  # refused: the file untouched

    code, out, err = run_cli(capsys, "run", "--resume", path, "--force")
    assert code == 0, err
    assert "rrambench: note: resuming with a changed source (--force)" in err
    run = open_run(path)
    assert (run.status, run.steps_completed) == ("completed", 3)
    assert run.resumes[-1]["protocol_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert run.protocol_source["sha256"] != run.resumes[-1]["protocol_sha256"]  # the start's hash stays


def test_the_configs_protocol_paths_list_and_run_it_by_name(capsys, lab):
    config = lab / "bench.toml"
    config.write_text('[protocols]\npaths = ["endurance.py"]\n[sample]\nchip = "C9"\noperator = "ada"\n')
    code, out, _ = run_cli(capsys, "list", "--config", config)
    assert code == 0
    assert "endurance: Cycle cells between SET and RESET; read both states every k cycles." in out
    assert f"[{(lab / 'endurance.py').resolve()}:Endurance]" in out
    assert re.search(r"set_voltage = 1.5 V\s+\[0.1 .. 3\]\s+SET pulse amplitude", out)
    assert "read-array:" in out  # the shipped ones stay
    path = endurance_run(capsys, lab, "--config", config, "--sample", "chip=C7")
    run = open_run(path)
    assert run.sample == {"chip": "C7", "operator": "ada"}  # --sample over [sample]
    code, out, err = run_cli(capsys, "run", "endurance", "--config", config, *FAST, "--dry-run")
    assert code == 0, err


def test_the_configs_protocol_paths_take_an_importable_module(capsys, lab, monkeypatch):
    """[protocols] paths may name a module on the Python path (a lab's package) instead of a file."""
    package = lab / "mylab"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cycling.py").write_text((lab / "endurance.py").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.syspath_prepend(str(lab))
    for name in ("mylab", "mylab.cycling"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    config = lab / "bench.toml"
    config.write_text('[protocols]\npaths = ["mylab.cycling"]\n')
    code, out, err = run_cli(capsys, "list", "--config", config)
    assert code == 0, err
    assert "endurance: Cycle cells between SET and RESET" in out and "mylab.cycling" in out
    code, out, err = run_cli(capsys, "run", "endurance", "--config", config, *FAST, "--out", lab / "runs")
    assert code == 0, err
    source = open_run(out.strip().splitlines()[-1]).protocol_source
    assert (source["origin"], source["reference"]) == ("module", "mylab.cycling:Endurance")


def test_the_gui_runner_lists_the_configs_protocols(lab):
    pytest.importorskip("PyQt5")
    from gui.app import protocols_of

    config = lab / "bench.toml"
    config.write_text('[protocols]\npaths = ["endurance.py:Endurance"]\n')
    found = protocols_of(config)
    assert found["endurance"].__name__ == "Endurance" and "read-array" in found
    config.write_text('[protocols]\npaths = ["missing.py"]\n')
    assert "endurance" not in protocols_of(config) and "read-array" in protocols_of(config)


def test_an_installed_package_registers_its_protocols_under_the_entry_point_group(capsys, lab, monkeypatch):
    site = lab / "site"
    package = site / "mylab_protocols"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "endurance.py").write_text((lab / "endurance.py").read_text())
    dist = site / "mylab_protocols-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mylab-protocols\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[rrambench.protocols]\nendurance = mylab_protocols.endurance:Endurance\n")
    monkeypatch.syspath_prepend(str(site))
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "endurance: Cycle cells" in out and "[mylab_protocols.endurance:Endurance]" in out
    code, out, err = run_cli(capsys, "run", "endurance", *FAST, "--out", lab / "runs")
    assert code == 0, err
    source = open_run(out.strip().splitlines()[-1]).protocol_source
    assert (source["origin"], source["reference"]) == ("module", "mylab_protocols.endurance:Endurance")
    assert source["file"] == str((package / "endurance.py").resolve())


BROKEN = {
    "syntax error": ("x = (\n", "X", "bad.py: line 1: SyntaxError: '(' was never closed"),
    "exception on import": ("raise RuntimeError('no board here')\n", "X",
                            "bad.py: import failed: RuntimeError: no board here"),
    "missing class": ("from protocols import Protocol\n", "Endurance",
                      "bad.py: no class 'Endurance' (protocols defined there: none)"),
    "not a protocol": ("class X:\n    pass\n", "X",
                       "bad.py: X is not a Protocol subclass (from protocols import Protocol)"),
    "no name": ("from protocols import Protocol\nclass X(Protocol):\n    pass\n", "X", "bad.py: X sets no name"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_user_file_that_does_not_load_is_one_line_and_exit_2(capsys, tmp_path, case):
    text, cls, message = BROKEN[case]
    (tmp_path / "bad.py").write_text(text)
    for extra in ([], ["--dry-run"]):
        code, out, err = run_cli(capsys, "run", f"{tmp_path / 'bad.py'}:{cls}", "--out", tmp_path / "runs", *extra)
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith(f"rrambench: error: {tmp_path}/{message}"), err
        assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_missing_file_in_run_or_the_config_is_one_line_and_exit_2(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", tmp_path / "nope.py:X", "--out", tmp_path / "runs")
    assert code == 2 and err == f"rrambench: error: {tmp_path}/nope.py: no such file\n"
    config = tmp_path / "bench.toml"
    config.write_text('[protocols]\npaths = ["nope.py"]\n')
    code, _, err = run_cli(capsys, "list", "--config", config)
    assert code == 2 and err == f"rrambench: error: {tmp_path}/nope.py: no such file\n"
    config.write_text('[protocols]\npaths = "nope.py"\n')
    code, _, err = run_cli(capsys, "list", "--config", config)
    assert code == 2 and err.count("\n") == 1 and "[protocols].paths must be a list" in err
    assert not (tmp_path / "runs").exists()


def test_the_sample_is_an_nxsample_group_of_strings(capsys, lab):
    import h5py

    path = endurance_run(capsys, lab, "--sample", "chip=C7", "--sample", "die=3", "--sample", "notes=after bake")
    with h5py.File(path, "r") as h5:
        group = h5[SAMPLE]
        assert group.attrs["NX_class"] == "NXsample"
        assert {k: group[k].asstr()[()] for k in group} == {"chip": "C7", "die": "3", "notes": "after bake"}
        assert all(group[k].attrs["units"] == "" for k in group)
    assert all(not p.startswith(SAMPLE) for p in open_run(path).datasets)
