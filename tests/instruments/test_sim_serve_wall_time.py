"""`rrambench sim serve` lives in wall time: clients that wait in wall time see time pass.

The embedded bench keeps its virtual clock (tests/instruments/sim/test_clock.py); the
served world's clock follows the wall clock, ``--time-scale N`` times faster, so the
seed board's 5 s lock-out, relaxation and retention waits happen as on hardware.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import pyvisa
import serial

from analysis import open_run
from instruments.bench import Bench
from instruments.config import load_config
from instruments.errors import ConfigError
from instruments.limits import Limits
from instruments.macro_controller import MacroController
from instruments.serial_link import SerialLink
from instruments.sim.clock import SimClock, WallTimeClock
from protocols.diffusion.mapping import MappingConfig, map_score_net
from protocols.diffusion.weights import load_shipped


def serve(*args: str) -> tuple[subprocess.Popen, dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "protocols.cli", "sim", "serve", "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail(f"sim serve printed nothing: {proc.stderr.read()}")
    return proc, json.loads(line)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


def wire_the_ring(resources: dict[str, str]) -> None:
    """Load the ring network's wiring on the board (what our controller does before sampling)."""
    mapped = map_score_net(load_shipped("ring"), MappingConfig(h_scale=0.05))
    link = SerialLink.open(resources["macro_controller"], name="macro_controller", timeout=2.0)
    try:
        MacroController(link, Limits()).load_mapping(list(mapped.layers), mapped.v_bias)
    finally:
        link.close()


def triggered(scope) -> bool:
    """The scope's trigger event register (read-and-clear, as on an InfiniiVision)."""
    return int(scope.query(":TER?")) == 1


def test_wall_time_clock_follows_the_wall_clock_scaled():
    clock = WallTimeClock(10.0, time_scale=100.0)
    t0 = clock.now()
    time.sleep(0.05)
    assert 10.0 + 4.0 < clock.now() < t0 + 50.0  # 0.05 s of wall time is ~5 s of bench time
    before = time.monotonic()
    clock.sleep(2.0)  # 2 s of bench time: 20 ms of wall time
    assert 0.015 < time.monotonic() - before < 1.0
    with pytest.raises(ValueError, match="time_scale"):
        WallTimeClock(time_scale=0)


def go_and_see(board, scope, wait: float = 3.0) -> bool:
    """Arm the scope, send ``Go`` as a raw client would, and say whether a run fired the trigger."""
    scope.write(":TRIG:SOUR EXT;:SING")
    scope.query("*OPC?")
    board.write(b"Go\r\n")
    board.read_until(b"\r")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if triggered(scope):  # :TER? is read-and-clear: ask once per poll
            return True
        time.sleep(0.05)
    return False


def raw_clients(resources):
    rm = pyvisa.ResourceManager("@py")
    scope = rm.open_resource(resources["scope"], read_termination="\n", write_termination="\n", timeout=5000)
    board = serial.serial_for_url(resources["seed_board"], baudrate=9600, timeout=2)
    board.write(b"In01\r\n")
    assert b"Start" in board.read_until(b"\r")
    return board, scope


# time-scaled, the lock-out shrinks to 5 s / N of wall time, and the immediate second Go comes
# after the first run's own wall time (the loop computed, the scope polled). At 10x (0.5 s) a
# loaded CI machine once took longer than that, so the scaled case runs at 2x: 2.5 s of
# lock-out, room for the first run, still 2x shorter than unscaled
@pytest.mark.parametrize("time_scale, lockout_wait", [(1.0, 5.5), (2.0, 2.75)])
@pytest.mark.slow
def test_a_raw_client_following_the_seed_board_manual_gets_runs_in_wall_time(time_scale, lockout_wait):
    """In01, Go: a run. Go again at once: dropped (the firmware's 5 s lock-out). Wait 5.5 s
    of wall time (5.5 s / N with --time-scale N), Go: a run. At time scale 1 this is the
    issue's client, which never got a second run while the served clock stood still."""
    proc, resources = serve("--time-scale", str(time_scale))
    try:
        wire_the_ring(resources)
        board, scope = raw_clients(resources)
        assert go_and_see(board, scope)
        assert not go_and_see(board, scope, wait=0.5)  # inside the lock-out: dropped
        time.sleep(lockout_wait)
        assert go_and_see(board, scope)
        board.close()
        scope.close()
    finally:
        stop(proc)


@pytest.mark.parametrize("args", [["--time-scale", "0"], ["--time-scale", "nan"],
                                  ["--time-scale", "10", "--virtual-time"]])
def test_a_bad_time_scale_is_one_line_and_exit_2(args):
    done = subprocess.run([sys.executable, "-m", "protocols.cli", "sim", "serve", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "time" in done.stderr


@pytest.mark.slow
def test_retention_through_a_hardware_config_completes_against_sim_serve_time_scaled(tmp_path):
    """The host's bench clock runs at the config's [clock].time_scale, the served world's
    at --time-scale: a retention to 2e4 s of bench time takes about 2 s of wall time."""
    proc, resources = serve("--time-scale", "1e4")
    try:
        config = tmp_path / "bench.toml"
        config.write_text(
            'backend = "hardware"\n[resources]\n'
            + "".join(f'{role} = "{resources[role]}"\n' for role in ("smu", "scope", "macro_controller"))
            + "[clock]\ntime_scale = 1e4\n"
        )
        out = tmp_path / "runs"
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "protocols.cli", "run", "retention", "--config", str(config), "--out", str(out),
             "--set", "levels=4", "--set", "per_level=8", "--set", "t_max=2e4", "--set", "points=4", "--seed", "1"],
            capture_output=True, text=True, timeout=240)
        wall = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        run = open_run(done.stdout.strip())
        assert run.status == "completed" and run.simulated is False  # a hardware bench, as far as the host knows
        assert wall > 2.0  # the waits really passed in wall time (2e4 s / 1e4)
    finally:
        stop(proc)


def test_the_embedded_bench_keeps_its_virtual_clock():
    with Bench.from_config() as bench:
        assert isinstance(bench.world.clock, SimClock)
        before = time.monotonic()
        bench.clock.sleep(1e6)
        assert time.monotonic() - before < 1.0


def test_visa_library_comes_from_the_config_and_a_missing_one_is_one_line(tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text('backend = "hardware"\n[resources]\nsmu = "TCPIP0::127.0.0.1::1::SOCKET"\n'
                      'scope = "TCPIP0::127.0.0.1::2::SOCKET"\nmacro_controller = "socket://127.0.0.1:3"\n'
                      'visa_library = "@ivi"\n')
    assert load_config(config).visa_library == "@ivi"
    assert load_config(None).visa_library == "@py"
    with pytest.raises(ConfigError, match="'@ivi'.*NI-VISA"):
        Bench.from_config(config)
    done = subprocess.run([sys.executable, "-m", "protocols.cli", "run", "read-array", "--config", str(config),
                           "--out", str(tmp_path / "runs")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "@ivi" in done.stderr
    assert not (tmp_path / "runs").exists()

