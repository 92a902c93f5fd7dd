"""Fixtures for third-party drivers (QCoDeS, PyMeasure) run unchanged against the simulator.

``served``: ``rrambench sim serve --json`` as a subprocess (wall-time world, as an outside
user meets it), one per module. ``sim``: the same instruments in-process
(:class:`~instruments.sim.serve.SimInstruments`, virtual time), for tests that need the
world itself (a routed cell's conductance, signals at the scope's inputs).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from instruments.sim.serve import SimInstruments
from instruments.sim.world import SimWorld

ROUTE = (0, 1, 2)  # the cell the SMU sees


@pytest.fixture(scope="module")
def served():
    proc = subprocess.Popen(
        [sys.executable, "-m", "protocols.cli", "sim", "serve", "--json", "--route", ",".join(map(str, ROUTE))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail(f"sim serve printed nothing: {proc.stderr.read()}")
    try:
        yield json.loads(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


@pytest.fixture
def sim():
    world = SimWorld(seed=0)
    world.route(*ROUTE)
    with SimInstruments(world) as instruments:
        yield instruments
