"""Faults of the run catalogue: two processes writing into one catalogue at once, a run
killed mid-way (interrupted, then updated on resume), a file deleted or moved (missing,
never a crash), a damaged catalogue file (rebuilt from the files with a warning), and a
file that hangs its reader while a folder is reindexed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.catalogue import Catalogue
from analysis.isolation import CHECK_TIMEOUT
from analysis.run_reader import RunFileError, open_run
from protocols.cli.main import main

WRITER = """
import sys
from analysis.catalogue import Catalogue
from analysis.run_reader import RunFileError, open_run
from analysis.run_record import new_record
from protocols.cli.main import main
out, url, tag = sys.argv[1], sys.argv[2], sys.argv[3]
for seed in range(3):
    assert main(["run", "read-array", "--out", out, "--seed", str(seed), "--catalogue", url]) == 0
with Catalogue(url, out) as catalogue:
    for i in range(40):
        catalogue.put([new_record(f"{out}/synthetic-{tag}-{i}.h5", protocol="synthetic", status="completed",
                                  steps_completed=1, steps_total=1, started="2026-01-01T00:00:00Z", ended=None,
                                  error="", simulated=True, instruments={}, sample={}, parameters={"i": i},
                                  outcome={}, seed=i, world_seed=None, writer_pid=0, schema_version="1.2")])
"""


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def rrambench(*argv, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "protocols.cli", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _steps_done(path: Path) -> int:
    try:
        return open_run(path).steps_completed
    except RunFileError:  # still being created
        return 0


@pytest.mark.slow
def test_two_processes_write_runs_into_one_catalogue_at_once(catalogue_url, tmp_path):
    url = catalogue_url or str(tmp_path / "shared.sqlite")  # one catalogue for two folders
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / tag), url, tag],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        assert "warning" not in err, err
    with Catalogue(url) as catalogue:
        rows = catalogue.query()
    real = [r for r in rows if r["protocol"] == "read-array"]
    assert len(real) == 6 and {r["status"] for r in real} == {"completed"}
    assert len([r for r in rows if r["protocol"] == "synthetic"]) == 80
    assert {Path(r["path"]).parent.name for r in real} == {"a", "b"}


@pytest.mark.slow
def test_a_run_killed_mid_way_is_interrupted_then_updated_on_resume(catalogue_url, tmp_path, capsys):
    opt = ["--catalogue", catalogue_url] if catalogue_url else []
    proc = rrambench("run", "read-array", "--set", "macros=0,1,2,3", "--set", "repeats=400", "--seed", "2",
                     "--out", tmp_path, *opt)
    try:
        deadline = time.monotonic() + 120
        row = None
        while time.monotonic() < deadline and proc.poll() is None:
            if (tmp_path / "runs.sqlite").exists() or catalogue_url:
                with Catalogue(catalogue_url, tmp_path) as catalogue:
                    rows = catalogue.query()
                if rows and rows[0]["status"] == "running" and _steps_done(Path(rows[0]["path"])) >= 1:
                    row = rows[0]  # killed after a step: its world checkpoint exists to resume from
                    break
            time.sleep(0.05)
        assert row is not None, "the run was indexed as running while it ran"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    code, out, err = cli(capsys, "runs", tmp_path, "--json", *opt)
    (killed,) = json.loads(out)
    assert killed["status"] == "interrupted" and killed["path"] == row["path"], "a dead writer's row"
    code, out, err = cli(capsys, "runs", tmp_path, "--status", "interrupted", *opt)
    assert code == 0 and Path(row["path"]).name in out
    code, out, err = cli(capsys, "run", "--resume", row["path"], *opt)
    assert code == 0, err
    code, out, err = cli(capsys, "runs", tmp_path, "--json", *opt)
    (resumed,) = json.loads(out)
    assert resumed["status"] == "completed" and resumed["steps_completed"] == resumed["steps_total"]
    assert resumed["started"] == row["started"] and resumed["outcome"], "the same run, updated"


def test_a_deleted_or_moved_file_is_listed_missing_never_a_crash(catalogue_url, tmp_path, capsys):
    opt = ["--catalogue", catalogue_url] if catalogue_url else []
    first, second = tmp_path / "first", tmp_path / "second"
    paths = []
    for seed in (1, 2):
        code, out, err = cli(capsys, "run", "read-array", "--out", first, "--seed", seed, *opt)
        assert code == 0, err
        paths.append(Path(out.strip().splitlines()[-1]))
    second.mkdir()
    moved = second / paths[0].name
    paths[0].rename(moved)
    code, out, err = cli(capsys, "runs", first, *opt)
    assert code == 0, err
    lines = {line.split()[-1]: line for line in out.strip().splitlines()}
    assert " missing " in lines[paths[0].name] and " completed " in lines[paths[1].name]
    code, out, _ = cli(capsys, "runs", first, "--status", "missing", "--json", *opt)
    assert [r["path"] for r in json.loads(out)] == [str(paths[0])]
    code, out, err = cli(capsys, "report", first, "-o", tmp_path / "rep", *opt)
    assert code == 0 and "1 catalogued run file(s) are gone" in err, "report skips the missing run"
    code, out, err = cli(capsys, "runs", "--reindex", second, *opt)
    assert code == 0 and "indexed 1 run(s)" in out
    code, out, _ = cli(capsys, "runs", second, "--json", *opt)
    assert [r["path"] for r in json.loads(out)] == [str(moved)] and json.loads(out)[0]["missing"] is False
    paths[1].unlink()
    code, out, err = cli(capsys, "runs", first, "--json", *opt)
    assert code == 0 and {r["missing"] for r in json.loads(out)} == {True}
    code, out, err = cli(capsys, "runs", "--reindex", first, *opt)
    assert code == 0 and "indexed 0 run(s)" in out, "the files are the truth: gone files leave the index"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_catalogue_file_is_rebuilt_from_the_files_with_a_warning(tmp_path, capsys, damage):
    for seed in (1, 2):
        assert cli(capsys, "run", "read-array", "--out", tmp_path, "--seed", seed)[0] == 0
    index = tmp_path / "runs.sqlite"

    def spoil() -> None:
        data = index.read_bytes()
        index.write_bytes(os.urandom(len(data)) if damage == "garbage" else data[:len(data) // 3])

    spoil()
    code, out, err = cli(capsys, "runs", tmp_path, "--json")
    assert code == 0, err
    assert len(json.loads(out)) == 2
    assert err.count("\n") == 1 and "warning: catalogue" in err and "is damaged" in err and "rebuilt" in err
    assert list(tmp_path.glob("runs.sqlite.damaged-*")), "the damaged file is kept aside"
    spoil()  # damaged while a run starts: the engine rebuilds it too, and the run is indexed
    code, out, err = cli(capsys, "run", "read-array", "--out", tmp_path, "--seed", 3)
    assert code == 0 and "is damaged" in err
    with Catalogue(None, tmp_path) as catalogue:
        assert [r["status"] for r in catalogue.query()] == ["completed"] * 3


@pytest.mark.slow
def test_reindexing_a_folder_with_a_file_that_hangs_the_reader_skips_it_within_the_check_timeout(tmp_path, capsys):
    assert cli(capsys, "run", "read-array", "--out", tmp_path, "--seed", 1)[0] == 0
    os.mkfifo(tmp_path / "hanging.h5")  # opening it blocks forever: a reader that never progresses
    start = time.monotonic()
    code, out, err = cli(capsys, "runs", "--reindex", tmp_path)
    assert code == 0 and "indexed 1 run(s)" in out and "1 damaged file(s) skipped" in out
    assert "hanging.h5" in err and f"no progress reading it for {CHECK_TIMEOUT:g} s" in err
    assert time.monotonic() - start < CHECK_TIMEOUT + 30
