"""The run catalogue on SQLite and PostgreSQL: every run indexed when it starts and when it
ends, ``rrambench runs`` with its filters and ``--json``, ``report`` with the same filters,
``--reindex``, the ``[catalogue]`` config table and bad input (one line, exit 2)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from analysis.catalogue import Catalogue, CatalogueError, RunFilter, check_url, parse_filters
from instruments.config import parse_config
from instruments.errors import ConfigError
from protocols.cli.main import main
from protocols.engine.datasets import Stream
from protocols.engine.protocol import Protocol, Step, param
from protocols.engine.runner import RunEngine, RunState


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run(capsys, folder: Path, url: str | None, *extra: str) -> Path:
    """One read-array run into ``folder``, indexed in ``url``'s catalogue; its file."""
    code, out, err = cli(capsys, "run", "read-array", "--out", folder, "--seed", "3",
                         *(["--catalogue", url] if url else []), *extra)
    assert code == 0, err
    assert "warning" not in err, err
    return Path(out.strip().splitlines()[-1])


class Gated(Protocol):
    """Two steps; the first waits for the test's gate, so the run can be seen running."""

    name = "gated-catalogue"

    @dataclass
    class Params:
        level: float = param(0.5, unit="V", limits=(0, 1), help="recorded value")

    gate = threading.Event()

    def datasets(self):
        return [Stream("value", units="V")]

    def plan(self):
        yield Step("wait", self.wait, estimate=1.0)
        yield Step("record", lambda: self.record("value", self.p.level), estimate=1.0)

    def wait(self) -> None:
        while not self.gate.wait(0.01):
            self.check()


def test_a_run_is_indexed_running_when_it_starts_and_with_its_outcome_when_it_ends(catalogue_url, tmp_path):
    Gated.gate.clear()
    engine = RunEngine(Gated.from_values({"level": 0.25}), None, tmp_path / "g.h5", seed=5,
                       header={"sample": {"chip": "C7", "die": "3"}}, catalogue=catalogue_url)
    thread = threading.Thread(target=engine.run)
    thread.start()
    try:
        assert engine.wait_for({RunState.RUNNING}, 10)
        with Catalogue(catalogue_url, tmp_path) as catalogue:
            for _ in range(500):  # the row appears once the file exists
                rows = catalogue.query()
                if rows:
                    break
                threading.Event().wait(0.01)
            (row,) = rows
            assert (row["status"], row["steps_completed"], row["steps_total"]) == ("running", 0, 2)
            assert row["parameters"] == {"level": 0.25} and row["sample"] == {"chip": "C7", "die": "3"}
    finally:
        Gated.gate.set()
        thread.join(30)
    with Catalogue(catalogue_url, tmp_path) as catalogue:
        (row,) = catalogue.query(parse_filters(chip="C7", where=["level<0.3"]))
    assert (row["status"], row["steps_completed"], row["seed"]) == ("completed", 2, 5)
    assert row["ended"] and row["started"] < row["ended"] and row["missing"] is False


def test_a_cli_run_records_what_run_prints(catalogue_url, tmp_path, capsys):
    path = run(capsys, tmp_path, catalogue_url, "--sample", "chip=C9", "--sample", "operator=ada")
    code, out, err = cli(capsys, "runs", tmp_path, "--json", *(["--catalogue", catalogue_url] if catalogue_url
                                                                else []))
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["path"] == str(path.resolve()) and row["protocol"] == "read-array" and row["status"] == "completed"
    assert {"started", "ended", "sample", "parameters"} <= set(row)
    assert row["sample"] == {"chip": "C9", "operator": "ada"}
    assert row["simulated"] is True and row["seed"] == 3 and row["world_seed"] == 0
    assert "smu" in row["instruments"] and row["outcome"]["median_conductance"]["units"] == "S"


def test_runs_filters_newest_first_and_report_takes_the_same_filters(catalogue_url, tmp_path, capsys):
    opt = ["--catalogue", catalogue_url] if catalogue_url else []
    low = run(capsys, tmp_path, catalogue_url, "--set", "bias=0.05", "--sample", "chip=A1")
    high = run(capsys, tmp_path, catalogue_url, "--set", "bias=0.2", "--sample", "chip=B2")
    code, out, _ = cli(capsys, "runs", tmp_path, *opt)
    assert code == 0 and out.index(high.name) < out.index(low.name), "newest first"
    for filters, expected in [(["--where", "bias>0.1"], [high]), (["--where", "bias<=0.05"], [low]),
                              (["--chip", "A1"], [low]), (["--protocol", "form"], []),
                              (["--status", "completed", "--since", "2000-01-01"], [high, low]),
                              (["--until", "2000-01-01"], []), (["--where", "bias!=0.2", "--chip", "A1"], [low])]:
        code, out, err = cli(capsys, "runs", tmp_path, "--json", *opt, *filters)
        assert code == 0, err
        assert [Path(r["path"]).name for r in json.loads(out)] == [p.name for p in expected], filters
    code, out, err = cli(capsys, "report", tmp_path, "--where", "bias>0.1", "-o", tmp_path / "rep", *opt)
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1, "one run selected: one report"
    assert high.name in (tmp_path / "rep" / "summary.json").read_text() and low.name not in out


def test_reindex_rebuilds_the_index_from_the_files_and_skips_damaged_ones(catalogue_url, tmp_path, capsys):
    opt = ["--catalogue", catalogue_url] if catalogue_url else []
    good = run(capsys, tmp_path, catalogue_url)
    (tmp_path / "truncated.h5").write_bytes(good.read_bytes()[:4096])
    (tmp_path / "text.h5").write_text("not a run")
    if catalogue_url is None:
        (tmp_path / "runs.sqlite").unlink()
    code, out, err = cli(capsys, "runs", "--reindex", tmp_path, *opt)
    assert code == 0, err
    assert "indexed 1 run(s)" in out and "2 damaged file(s) skipped" in out
    assert err.count("warning: skipped") == 2 and "truncated.h5" in err and "text.h5" in err
    code, out, _ = cli(capsys, "runs", tmp_path, "--json", *opt)
    assert [r["path"] for r in json.loads(out)] == [str(good.resolve())]


def test_the_catalogue_attribute_reads_as_the_run_attributes_and_sample_do(tmp_path, capsys):
    """Schema 1.3 copies the fixed fields into one attribute for reindexing; a file without it
    (1.2) reads the same record from its attributes and /entry/sample, and a damaged copy is
    a damaged file, never a wrong record."""
    import h5py

    from analysis.run_reader import RunFileError
    from analysis.run_record import read_record

    path = run(capsys, tmp_path, None, "--sample", "chip=C7", "--sample", "die=3")
    record = read_record(path)
    assert record["sample"] == {"chip": "C7", "die": "3"} and record["protocol"] == "read-array"
    assert record["schema_version"] == "1.3" and record["steps_completed"] == record["steps_total"] == 1
    old = tmp_path / "old.h5"
    old.write_bytes(path.read_bytes())
    with h5py.File(old, "r+") as h5:
        del h5["entry"].attrs["catalogue"]
        h5["entry"].attrs["schema_version"] = "1.2"
    again = read_record(old)
    assert {k: v for k, v in again.items() if k not in ("path", "schema_version")} == \
        {k: v for k, v in record.items() if k not in ("path", "schema_version")}
    with h5py.File(old, "r+") as h5:  # a run that did not complete: its steps are counted in the journal
        h5["entry/status"][()] = b"aborted"
    assert (read_record(old)["status"], read_record(old)["steps_completed"]) == ("aborted", 1)
    with h5py.File(old, "r+") as h5:
        h5["entry"].attrs["catalogue"] = json.dumps({"protocol": "read-array"})
    with pytest.raises(RunFileError, match="catalogue"):
        read_record(old)


BAD = {
    "malformed --where": (["--where", "bias"], "--where 'bias'"),
    "text with <": (["--where", "mode<abc"], "compares numbers"),
    "bad date": (["--since", "monday"], "ISO 8601"),
    "bad status": (["--status", "done"], "--status 'done'"),
    "until before since": (["--since", "2026-02-01", "--until", "2026-01-01"], "is not after"),
    "unknown database": (["--catalogue", "mysql://u@h/db"], "postgresql://"),
    "not a folder": (["no-such-folder"], "not a folder"),
    "bad limit": (["--limit", "0"], "--limit"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_filters_are_one_line_and_exit_2(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv, text = BAD[case]
    code, out, err = cli(capsys, "runs", *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("rrambench: error: ") and text in err, err


def test_the_same_filters_refuse_the_same_input_in_report(tmp_path, capsys):
    code, _, err = cli(capsys, "report", tmp_path, "--where", "v<x")
    assert code == 2 and err.count("\n") == 1 and "compares numbers" in err


def test_a_postgresql_url_without_its_driver_is_one_line(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a))
    with pytest.raises(CatalogueError, match=r"pip install 'rrambench\[postgresql\]'"):
        check_url("postgresql://lab@db.example/runs")
    code, out, err = cli(capsys, "run", "read-array", "--out", tmp_path, "--catalogue", "postgresql://lab@db/runs")
    assert code == 2 and err.count("\n") == 1 and "PostgreSQL driver is not installed" in err
    assert not any(tmp_path.iterdir()), "refused before anything was written"


def test_the_gui_search_text_parses_like_the_command_line():
    flt = RunFilter.from_text("protocol=write-verify status=completed chip=C7 since=2026-11-23 v_max>=1.2 'mode=a b'")
    assert flt == parse_filters(protocol="write-verify", status="completed", chip="C7", since="2026-11-23",
                                where=["v_max>=1.2", "mode=a b"])


def test_the_config_names_the_catalogue(tmp_path):
    config = parse_config({"catalogue": {"url": "postgresql://lab@db/runs"}}, source=str(tmp_path / "b.toml"))
    assert config.catalogue_url == "postgresql://lab@db/runs"
    local = parse_config({"catalogue": {"url": "index.sqlite"}}, source=str(tmp_path / "b.toml"))
    assert local.catalogue_url == str(tmp_path / "index.sqlite"), "a file is relative to the config"
    assert parse_config({}).catalogue_url is None
    for table, text in [({"catalogue": {"uri": "x"}}, "unknown key [catalogue].uri"),
                        ({"catalogue": {"url": ""}}, "[catalogue].url must be")]:
        with pytest.raises(ConfigError, match=text.replace("[", r"\[").replace("]", r"\]")):
            parse_config(table)


def test_the_configs_catalogue_url_indexes_the_runs_and_runs_reads_it_without_the_option(catalogue_url, tmp_path,
                                                                                          capsys):
    """A bench config naming the catalogue ([catalogue] url: a lab's PostgreSQL database, or a
    file) sends `run` there and `runs --config` reads it from there, no --catalogue given."""
    url = catalogue_url or str(tmp_path / "lab" / "index.sqlite")
    config = tmp_path / "bench.toml"
    config.write_text(f'[catalogue]\nurl = "{url}"\n')
    code, out, err = cli(capsys, "run", "read-array", "--config", config, "--out", tmp_path / "runs", "--seed", "3")
    assert code == 0 and "warning" not in err, err
    path = Path(out.strip().splitlines()[-1])
    assert not (tmp_path / "runs" / "runs.sqlite").exists(), "indexed in the config's catalogue, not beside the run"
    code, out, err = cli(capsys, "runs", "--config", config, "--json")
    assert code == 0, err
    assert [r["path"] for r in json.loads(out)] == [str(path.resolve())]
    with Catalogue(url, tmp_path) as catalogue:
        assert [r["path"] for r in catalogue.query()] == [str(path.resolve())]


def test_parameters_are_indexed_as_json_text_and_finite_numbers():
    from analysis.catalogue import _parameter_rows

    values = {"i": 3, "f": 2.5, "tiny": 1e-7, "yes": True, "s": "pulses", "l": [0, 1], "nan": float("nan"),
              "inf": float("inf"), "none": None, "d": {"k": 1}}
    rows = {r["name"]: r for r in _parameter_rows(7, values)}
    for name, value in values.items():
        assert rows[name]["text"] == (value if isinstance(value, str) else json.dumps(value)), name
    assert [rows[n]["number"] for n in ("i", "f", "yes", "nan", "s")] == [3.0, 2.5, 1.0, None, None]
