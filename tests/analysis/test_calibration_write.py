"""Programming-noise calibration: pulse histories recover a known ``pulse_c2c`` (arrays and run files)."""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest

from analysis.calibration import Calibration, device_toml
from analysis.calibration_write_simulated import fit_pulse_noise, spread, step_differences
from analysis.characterization_data import PulseTable
from instruments.bench import Bench
from instruments.config import load_device_file
from instruments.sim.device_params import DeviceParams
from instruments.sim.direct import DirectArrayAccess
from instruments.sim.world import SimWorld
from protocols.characterization.write_noise import WriteNoise
from protocols.characterization.write_verify import WriteVerify
from protocols.characterization.write_verify_algorithm import write_verify
from protocols.cli.main import main
from protocols.engine.runner import RunEngine, RunState

PRIOR = DeviceParams()


def program_in_process(params: DeviceParams, seed: int, side: int = 16) -> PulseTable:
    """Write-verify random 2..65 uS targets into a side x side macro of a world; its pulse history."""
    world = SimWorld(params=params, seed=seed, n_macros=1, rows=side, cols=side)
    row, col = np.divmod(np.arange(side * side), side)
    macro = np.zeros_like(row)
    target = np.random.default_rng(seed).uniform(2e-6, 65e-6, row.size)
    log = write_verify(DirectArrayAccess(world), macro, row, col, target, now=world.clock.now,
                       sleep=world.clock.sleep).pulse_log.arrays()
    cell = log["cell"]
    return PulseTable(macro[cell], row[cell], col[cell], log["polarity"], log["amplitude"], log["width"],
                      log["gate"], log["read"].astype(np.float32), log["time"])


@pytest.mark.parametrize("c2c", [0.45, 0.7])
@pytest.mark.slow
def test_pulse_noise_fit_recovers_pulse_c2c_within_10_percent(c2c):
    """The simulation-based fit finds the chip's cycle-to-cycle noise above the prior's 0.3
    (docs/calibration.md: below ~0.2 the error of one 256-cell run grows to ~15 %)."""
    pulses = program_in_process(replace(PRIOR, pulse_c2c=c2c), seed=3)
    fit = fit_pulse_noise([pulses], PRIOR)
    assert set(fit.values) == {"pulse_c2c"}
    assert fit.values["pulse_c2c"] == pytest.approx(c2c, rel=0.10)
    assert fit.points >= 500, "consecutive pulse pairs used"


def test_step_statistic_grows_with_the_programming_noise():
    """The statistic the fit matches is monotone in pulse_c2c (else the fit is not identified)."""
    stats = [spread(step_differences(program_in_process(replace(PRIOR, pulse_c2c=c), seed=5), PRIOR))
             for c in (0.1, 0.3, 0.6)]
    assert stats[0] < stats[1] < stats[2]


def test_pulse_noise_fit_refuses_too_few_pulses():
    """A handful of pulses cannot pin the noise: a ValueError, not a guess."""
    pulses = program_in_process(PRIOR, seed=1, side=2)
    with pytest.raises(ValueError, match="pulse pairs"):
        fit_pulse_noise([pulses], PRIOR)
    with pytest.raises(ValueError, match="replays"):
        fit_pulse_noise([pulses], PRIOR, replays=0)


def run_protocol(bench, protocol, path):
    engine = RunEngine(protocol, bench, path, seed=1)
    assert engine.run() == RunState.COMPLETED, engine.error
    return path


@pytest.mark.slow
def test_calibrate_command_recovers_pulse_c2c_from_write_verify_and_write_noise_runs(tmp_path, capsys):
    """End to end over the loopback bench: a device file with pulse_c2c 0.45 -> write-verify and
    write-noise runs -> ``rrambench calibrate`` -> a device file with pulse_c2c within 10 %."""
    true = replace(PRIOR, pulse_c2c=0.45)
    (tmp_path / "true.toml").write_text(device_toml(Calibration(true)))
    (tmp_path / "bench.toml").write_text('backend = "sim"\n[sim]\nseed = 4\ndevice = "true.toml"\n')
    with Bench.from_config(tmp_path / "bench.toml") as bench:
        wv = run_protocol(bench, WriteVerify.from_values({"regions": ["0:0-15:0-15"]}), tmp_path / "wv.h5")
        wn = run_protocol(bench, WriteNoise.from_values({"cells": ["1:0-7:0-7"], "repeats": 3}), tmp_path / "wn.h5")
    out = tmp_path / "fitted.toml"
    assert main(["calibrate", str(wv), str(wn), "-o", str(out)]) == 0
    fitted = load_device_file(out)
    assert fitted.pulse_c2c == pytest.approx(0.45, rel=0.10)
    assert all(getattr(fitted, n) == getattr(PRIOR, n) for n in set(asdict(PRIOR)) - {"pulse_c2c"}), \
        "unfitted fields keep the prior"
    assert "pulse_c2c" in capsys.readouterr().out
    assert "pulse_c2c" in out.read_text().split("[calibration]")[1]
