"""Protocols: the run engine, the characterization and diffusion protocols, the CLI.

The face for protocol authors::

    from protocols import Protocol, Step, param, Stream

and for scripts and notebooks, running a protocol through the engine::

    from protocols import run_protocol

* :mod:`protocols.engine`: the run engine (protocol base class, parameters, dataset
  declarations, state machine, journal, run-file writer, registry);
* :mod:`protocols.characterization`: forming, I-V, write-verify, levels, retention, noise;
* :mod:`protocols.diffusion`: the diffusion model and the protocols that run it on the bench;
* :mod:`protocols.cli`: the ``rrambench`` command.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Loaded on first use (PEP 562), so a module that only needs the CLI or a helper
# (``rrambench report`` on a laptop) does not import the engine.
_FACE = {
    "Constant": "protocols.engine.datasets", "Link": "protocols.engine.datasets",
    "Plot": "protocols.engine.datasets", "PulseHistory": "protocols.engine.datasets",
    "Spec": "protocols.engine.datasets",
    "Stream": "protocols.engine.datasets", "Traces": "protocols.engine.datasets",
    "ParameterError": "protocols.engine.params", "param": "protocols.engine.params",
    "Protocol": "protocols.engine.protocol", "Step": "protocols.engine.protocol",
    "BenchUse": "protocols.engine.protocol",
    "run_protocol": "protocols.api", "RunResult": "protocols.engine.launch",
}
__all__ = [
    "BenchUse", "Constant", "Link", "ParameterError", "Plot", "Protocol", "PulseHistory", "Spec", "Step", "Stream",
    "Traces", "param", "RunResult", "run_protocol",
]

if TYPE_CHECKING:
    from protocols.api import run_protocol
    from protocols.engine.datasets import Constant, Link, Plot, PulseHistory, Spec, Stream, Traces
    from protocols.engine.launch import RunResult
    from protocols.engine.params import ParameterError, param
    from protocols.engine.protocol import BenchUse, Protocol, Step


def __getattr__(name: str) -> Any:
    if name in _FACE:
        return getattr(importlib.import_module(_FACE[name]), name)
    raise AttributeError(f"module 'protocols' has no attribute {name!r}")
