"""Provenance and seeds: what a run ran on, what it simulated, and the two seeds that reproduce it.

A protocol declares what it runs on (``Protocol.bench_use``): ``noise-sweep`` opens no bench,
on a hardware config too, and records ``simulated=true``; the digits decoder of ``sample`` is
simulated on every bench, named so, listed in ``simulated_parts`` and built with the bench
config's device parameters. ``--seed`` is the run seed, ``--world-seed`` the simulated world's;
a rerun with both recorded seeds writes the same datasets bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from analysis import open_run
from analysis.diffusion_data import load_samples
from protocols.cli.main import main
from protocols.diffusion.noise_sweep import NoiseSweep
from protocols.diffusion.sample import Sample
from protocols.engine.datasets import Stream
from protocols.engine.protocol import BenchUse, Protocol, Step, simulated_work_note
from protocols.engine.run_writer import RunHeader, RunWriter
from protocols.engine.runner import RunEngine, RunState

#: Datasets holding wall-clock times (journal columns, the run's end): the only data a rerun may change.
WALL_CLOCK = {"/entry/journal/start", "/entry/journal/end", "/entry/start_time", "/entry/end_time"}
SAMPLE = ["--set", "samples=20", "--set", "batch=20", "--set", "waveforms=0", "--set", "sde=true"]
TINY_SWEEP = ["--set", "models=ring", "--set", "read_noise=1", "--set", "write_noise=1", "--set", "samples=8",
              "--set", "n_steps=50", "--set", "settle=0", "--set", "scheduler=serial", "--set", "worlds=1"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_file(capsys, *argv) -> Path:
    code, out, err = run_cli(capsys, "run", *argv)
    assert code == 0, err
    return Path(out.strip().splitlines()[-1])


def datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a run file by path, wall-clock journal columns left out."""
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(lambda name, obj: found.__setitem__("/" + name, obj[()])
                      if isinstance(obj, h5py.Dataset) else None)
    return {k: v for k, v in found.items() if k not in WALL_CLOCK}


def unreachable_hardware(tmp_path: Path) -> Path:
    """A hardware config whose instruments are nowhere: opening its bench fails at once."""
    config = tmp_path / "hardware.toml"
    config.write_text('backend = "hardware"\n[resources]\nsmu = "TCPIP0::127.0.0.1::9::SOCKET"\n'
                      'scope = "TCPIP0::127.0.0.1::9::SOCKET"\nmacro_controller = "/dev/no-such-rrambench-port"\n')
    return config


# -- seeds ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_rerun_with_the_recorded_run_and_world_seeds_writes_bit_identical_datasets(capsys, tmp_path):
    """sample (reverse SDE: draws from the run seed; reads and writes draw from the world's):
    --seed 11 --world-seed 3, then a rerun with the seeds read back from the first file.
    Changing either seed changes the samples, so both are needed and both are recorded."""
    first = run_file(capsys, "sample", *SAMPLE, "--seed", 11, "--world-seed", 3, "--out", tmp_path / "a")
    run = open_run(first)
    assert (run.seed, run.world_seed, run.simulated) == (11, 3, True)
    again = run_file(capsys, "sample", *SAMPLE, "--seed", run.seed, "--world-seed", run.world_seed,
                     "--out", tmp_path / "b")
    a, b = datasets(first), datasets(again)
    assert a.keys() == b.keys() and "/entry/data/final" in a and "/entry/pulses/read" in a
    for name in a:  # bit for bit: dtype, shape and bytes
        x, y = a[name], b[name]
        assert (x.dtype, x.shape, x.tobytes()) == (y.dtype, y.shape, y.tobytes()), name
    other_world = run_file(capsys, "sample", *SAMPLE, "--seed", 11, "--world-seed", 4, "--out", tmp_path / "c")
    other_run = run_file(capsys, "sample", *SAMPLE, "--seed", 12, "--world-seed", 3, "--out", tmp_path / "d")
    assert not np.array_equal(datasets(other_world)["/entry/data/final"], a["/entry/data/final"])
    assert not np.array_equal(datasets(other_run)["/entry/data/final"], a["/entry/data/final"])


def test_the_world_seed_defaults_to_the_configs_and_info_shows_both_seeds(capsys, tmp_path):
    config = tmp_path / "sim.toml"
    config.write_text('backend = "sim"\n[sim]\nseed = 9\n')
    path = run_file(capsys, "read-array", "--set", "macros=0", "--config", config, "--seed", 5, "--out", tmp_path)
    assert (open_run(path).seed, open_run(path).world_seed) == (5, 9)
    code, out, _ = run_cli(capsys, "info", path)
    assert code == 0
    assert "  seed       5  (run seed, --seed)" in out and "  world seed 9  (--world-seed)" in out


@pytest.mark.parametrize("argv, message", [
    (["read-array", "--world-seed", "-1"], "--world-seed must be >= 0"),
    (["noise-sweep", "--world-seed", "1"], "opens no bench"),
    (["read-array", "--world-seed", "1", "--config", "{hardware}"], "hardware bench"),
])
def test_world_seed_is_refused_where_it_seeds_nothing(capsys, tmp_path, argv, message):
    argv = [a.replace("{hardware}", str(unreachable_hardware(tmp_path))) for a in argv]
    code, _, err = run_cli(capsys, "run", *argv, "--out", tmp_path / "out")
    assert code == 2 and message in err
    assert not (tmp_path / "out").exists()


# -- provenance ----------------------------------------------------------------------------
def test_noise_sweep_on_an_unreachable_hardware_config_opens_no_bench_and_records_simulated(capsys, tmp_path):
    config = unreachable_hardware(tmp_path)
    code, _, err = run_cli(capsys, "run", "read-array", "--config", config, "--out", tmp_path / "refused")
    assert code == 1 and "bench" in err, "the control: this config's bench cannot be opened"
    code, out, err = run_cli(capsys, "run", "noise-sweep", *TINY_SWEEP, "--config", config, "--seed", 2,
                             "--out", tmp_path)
    assert code == 0, err
    assert "note: noise-sweep runs only on simulated worlds" in err
    run = open_run(out.strip().splitlines()[-1])
    assert (run.status, run.simulated, run.world_seed, run.seed) == ("completed", True, None, 2)
    assert run.instruments == {} and run.bench_config == {}, "no instrument identity of a bench it never opened"
    assert run.simulated_parts and "simulated world" in run.simulated_parts[0]
    assert len(run.read("kl_mean")) == 1
    code, out, _ = run_cli(capsys, "info", run.path)
    assert "bench      none opened (simulated worlds)" in out and "world seed -" in out


class _Touch:
    """A bench stand-in that fails the test if anything uses it."""

    def __getattr__(self, name):
        raise AssertionError(f"a simulated-only protocol touched the bench ({name})")


class _SimulatedOnly(Protocol):
    name = "simulated-only-test"
    bench_use = BenchUse.SIMULATED_ONLY

    def datasets(self):
        return [Stream("had_bench", units="", dtype="i1")]

    def plan(self):
        yield Step("check", lambda: self.record("had_bench", self.bench is not None))


def test_the_engine_hands_a_simulated_only_protocol_no_bench_even_when_given_one(tmp_path):
    """The GUI runs protocols on its connected bench: a simulated-only one never sees it."""
    engine = RunEngine(_SimulatedOnly(), _Touch(), tmp_path / "s.h5", seed=1)
    assert engine.run() == RunState.COMPLETED, engine.error
    run = open_run(tmp_path / "s.h5")
    assert run.read("had_bench").tolist() == [0]
    assert (run.simulated, run.world_seed, run.instruments) == (True, None, {})
    assert run.simulated_parts == ["the whole run: simulated-only-test runs only on simulated worlds"]


def test_protocols_declare_what_they_run_on_and_what_they_simulate():
    assert NoiseSweep.bench_use is BenchUse.SIMULATED_ONLY and Sample.bench_use is BenchUse.NEEDS
    digits, ring = Sample.from_values({"model": "digits"}), Sample.from_values({"model": "ring"})
    assert ring.simulated_parts() == [] and simulated_work_note(ring) == ""
    assert digits.simulated_parts() == [] and simulated_work_note(digits) == ""  # its decoder is on the bench
    assert "not opened" in simulated_work_note(NoiseSweep())


def test_images_of_files_before_the_rename_load_under_the_new_name(tmp_path):
    path = tmp_path / "old.h5"
    header = RunHeader(protocol="sample", parameters={}, seed=1, started="2026-01-01T00:00:00Z", steps_total=1)
    specs = [Stream("final", units="", shape=(2,)), Stream("images_rram", units="", shape=(64,), dtype="f4")]
    writer = RunWriter.create(path, header, specs)
    writer.append("final", np.zeros((2, 2)))
    writer.append("images_rram", np.ones((2, 64), dtype=np.float32))
    writer.finish("completed", ended="2026-01-01T00:00:01Z")
    images = load_samples(open_run(path)).images
    assert list(images) == ["images_simulated_rram"] and images["images_simulated_rram"].shape == (2, 8, 8)
