"""Hostile input: mutated run files, malformed configs, random CLI arguments.

Nothing may crash with a traceback, nothing is executed from a file. A mutated run
file either opens (the damage missed what we read) or raises RunFileError.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.run_reader import RunFileError, open_run
from instruments.config import load_config
from instruments.errors import ConfigError

N_MUTATIONS = 1000


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("seed")
    proc = subprocess.run(
        [sys.executable, "-m", "protocols.cli", "run", "read-array", "--set", "macros=0,1", "--seed", "1",
         "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One of: bit flips, byte overwrite runs, truncation, zeroed block, duplicated block."""
    buf = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:
        for pos in rng.integers(0, len(buf), rng.integers(1, 20)):
            buf[pos] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        pos = int(rng.integers(0, len(buf) - 64))
        buf[pos:pos + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    elif kind == 2:
        buf = buf[: int(rng.integers(0, len(buf)))]
    elif kind == 3:
        pos = int(rng.integers(0, len(buf) - 512))
        buf[pos:pos + 512] = bytes(512)
    else:
        pos, src = (int(x) for x in rng.integers(0, len(buf) - 256, 2))
        buf[pos:pos + 256] = buf[src:src + 256]
    return bytes(buf)


def exercise(path) -> None:
    """Everything an analyst does with a file: open, every dataset, every attribute."""
    run = open_run(path, isolate=True, timeout=2.0)
    run.to_json()
    for name in run.datasets:
        run.read(name)
        run.attrs(name)


@pytest.mark.slow
def test_a_thousand_mutated_run_files_give_only_clear_errors(run_file, tmp_path):
    original = open(run_file, "rb").read()
    rng = np.random.default_rng(2026)
    unhandled, opened = [], 0
    target = tmp_path / "mutant.h5"
    for case in range(N_MUTATIONS):
        target.write_bytes(mutate(original, rng))
        try:
            exercise(target)
            opened += 1
        except RunFileError:
            pass
        except Exception as exc:  # what the test is looking for: report, do not stop
            unhandled.append(f"case {case}: {type(exc).__name__}: {exc}")
    assert not unhandled, "\n".join(unhandled[:20])
    assert 0 < opened < N_MUTATIONS  # both paths were exercised


def test_info_on_a_mutated_file_is_one_line_and_exit_2(run_file, tmp_path):
    bad = tmp_path / "bad.h5"
    shutil.copy(run_file, bad)
    with open(bad, "r+b") as f:
        f.truncate(os.path.getsize(bad) // 3)
    proc = subprocess.run([sys.executable, "-m", "protocols.cli", "info", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
@pytest.mark.slow
def test_malformed_toml_is_a_config_error_never_a_crash(tmp_path, text):
    path = tmp_path / "bench.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError:
        pass


TOML_PIECES = st.sampled_from([
    "backend = 'sim'\n", "backend = 'hardware'\n", "[limits]\n", "set_voltage = 1e400\n", "set_voltage = nan\n",
    "[sim]\n", "seed = -1\n", "state = ''\n", "[resources]\n", "smu = 3\n", "[timeouts]\n", "macro_controller = inf\n",
    "[[limits]]\n", "x = [1, 2]\n", "gate_voltage = true\n", "compliance = 0\n", "[sim.state]\n",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(TOML_PIECES, max_size=8))
def test_structured_but_wrong_configs_are_config_errors(tmp_path, pieces):
    path = tmp_path / "bench.toml"
    path.write_text("".join(pieces), encoding="utf-8")
    try:
        config = load_config(path)
    except ConfigError:
        return
    assert config.backend in ("sim", "hardware")
    assert all(np.isfinite(v) and v > 0 for v in config.limits.as_dict().values())


ARG_WORDS = st.sampled_from([
    "run", "info", "list", "sim", "serve", "report", "read-array", "--set", "macros=99", "bias=nan", "bias=1e9",
    "--dry-run", "--resume", "/nonexistent.h5", "--out", "--seed", "-1", "x", "--config", "/dev/null", "=", "--json",
    "--route", "1,2", "--bogus", "", "macros=", "macros=0,0", "--allow-remote",
])


@settings(max_examples=60, deadline=None)
@given(st.lists(ARG_WORDS, min_size=1, max_size=5))
@pytest.mark.slow
def test_random_cli_arguments_never_end_in_a_traceback(args):
    if args[:2] == ["sim", "serve"] and "--host" not in args and not any(a.startswith("--route") for a in args):
        args = [*args, "--route", "x"]  # never leave a server running in this test
    proc = subprocess.run([sys.executable, "-m", "protocols.cli", *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1, 2), (args, proc.returncode, proc.stderr)
