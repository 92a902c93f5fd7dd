"""`rrambench sim serve`: the simulated instruments for outside tools."""

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest
import pyvisa
import serial

from instruments.sim.world import SimWorld


def start(*args):
    proc = subprocess.Popen(
        [sys.executable, "-m", "protocols.cli", "sim", "serve", "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail(f"sim serve printed nothing: {proc.stderr.read()}")
    return proc, json.loads(line)


def test_serve_prints_resources_listens_on_loopback_only_and_saves_state_on_sigterm(tmp_path):
    state = tmp_path / "world.npz"
    proc, resources = start("--seed", "4", "--state", str(state), "--route", "0,2,3")
    try:
        assert set(resources) == {"smu", "scope", "macro_controller", "seed_board"}
        assert resources["smu"].startswith("TCPIP0::127.0.0.1::") and resources["smu"].endswith("::SOCKET")
        assert resources["macro_controller"].startswith("socket://127.0.0.1:")
        listening = [c.laddr for c in psutil.Process(proc.pid).net_connections() if c.status == "LISTEN"]
        assert len(listening) == 4 and all(addr.ip == "127.0.0.1" for addr in listening)

        rm = pyvisa.ResourceManager("@py")
        smu = rm.open_resource(resources["smu"], read_termination="\n", write_termination="\n", timeout=5000)
        assert "2450" in smu.query("*IDN?")
        # The routed cell is formed and switches: a SET sweep reaches the compliance.
        smu.write(":SOUR:FUNC VOLT;:SOUR:VOLT:ILIM 1e-4;:SENS:FUNC \"CURR\"")
        smu.write(":SOUR:VOLT 0.1;:OUTP ON")
        i_read = float(smu.query(":MEAS:CURR?"))
        smu.write(":OUTP OFF")
        assert 1e-8 < abs(i_read) < 1e-4
        smu.close()
        port = serial.serial_for_url(resources["macro_controller"], timeout=1)
        port.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    world = SimWorld.load(state)
    assert world.routed == (0, 2, 3) and world.outputs_safe()


def test_a_non_loopback_host_is_refused_without_allow_remote():
    proc = subprocess.run(
        [sys.executable, "-m", "protocols.cli", "sim", "serve", "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "allow-remote" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("route", ["0,1", "9,0,0", "a,b,c"])
def test_a_bad_route_is_one_line_and_exit_2(route):
    proc = subprocess.run(
        [sys.executable, "-m", "protocols.cli", "sim", "serve", "--route", route],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )
    assert proc.returncode == 2
    assert "--route" in proc.stderr and proc.stderr.count("\n") == 1
