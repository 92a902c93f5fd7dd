"""Run files of every protocol for the report tests: small parameters, run once per test
process on the embedded simulated bench, cached by (protocol, parameters)."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from protocols.engine.registry import get_protocol, registry
from protocols.engine.runner import RunEngine, RunState

# Small, fast parameter sets: every protocol of the catalogue that exists in this checkout.
SMALL: dict[str, dict[str, Any]] = {
    "read-array": {"macros": [0, 1], "repeats": 2},
    "iv-sweep": {"cycles": 3, "step": 0.05},
    "form": {"cells": ["0:0-3:0-3"]},
    "write-verify": {"regions": ["0:0-7:0-7"]},
    "multilevel": {"levels": 64, "per_level": 4},
    "pattern": {},
    "retention": {"levels": 4, "per_level": 16, "points": 6},
    "read-noise": {"repeats": 8, "cells": ["0:0-1:0-7"]},
    "write-noise": {"cells": ["0:0-3:0-5"], "repeats": 3},
    "program-model": {},
    "sample": {"samples": 100, "batch": 100, "steps": 200, "waveforms": 10},
    "noise-sweep": {"read_noise": [0.5, 1.0, 2.0], "write_noise": [1.0, 2.0], "samples": 50, "n_steps": 200,
                    "scheduler": "serial", "models": ["ring"], "grid": "full", "worlds": 1},
    "time-scale": {"rc": [1e-3, 1e-5], "samples": 50, "n_steps": 200, "scheduler": "serial"},
}

_DIR = Path(tempfile.mkdtemp(prefix="rrambench-report-runs-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
_CACHE: dict[str, Path] = {}


def available() -> list[str]:
    """Catalogue protocols present in this checkout that have a small parameter set."""
    return [name for name in registry() if name in SMALL]


def killed_run_file(protocol: str, at_step: int = 0, **overrides: Any) -> Path:
    """A run of ``protocol`` whose process SIGKILLs itself in the middle of step ``at_step``
    (at that step's first progress report, or at its start): the file a power cut or
    ``kill -9`` leaves, status still "running", earlier steps journalled."""
    import subprocess
    import sys

    params = {**SMALL.get(protocol, {}), **overrides}
    path = _DIR / f"killed-{len(list(_DIR.glob('killed-*')))}-{protocol}.h5"
    script = KILL_SCRIPT.format(protocol=protocol, params=json.dumps(params), path=str(path), at=at_step)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, f"{protocol}: expected SIGKILL, got {proc.returncode}: {proc.stderr[-2000:]}"
    return path


KILL_SCRIPT = """
import json, os, signal
from instruments.bench import Bench
from protocols.engine.registry import get_protocol
from protocols.engine.runner import RunEngine
proto = get_protocol({protocol!r}).from_values(json.loads({params!r}))
def on_progress(event):
    if event.state == "running" and event.index >= {at}:
        os.kill(os.getpid(), signal.SIGKILL)
with Bench.from_config(seed=1) as bench:
    engine = RunEngine(proto, bench, {path!r}, seed=1)
    engine.subscribe(on_progress)
    engine.run()
"""


def run_file(protocol: str, seed: int = 1, **overrides: Any) -> Path:
    """Path of a completed run of ``protocol`` (small parameters, ``overrides`` on top)."""
    from instruments.bench import Bench

    params = {**SMALL.get(protocol, {}), **overrides}
    key = json.dumps([protocol, seed, params], sort_keys=True)
    if key not in _CACHE:
        path = _DIR / f"{len(_CACHE):03d}-{protocol}.h5"
        proto = get_protocol(protocol).from_values(params)
        with Bench.from_config(seed=seed) as bench:
            engine = RunEngine(proto, bench, path, seed=seed)
            state = engine.run()
        assert state == RunState.COMPLETED, f"{protocol}: {engine.error}"
        _CACHE[key] = path
    return _CACHE[key]
