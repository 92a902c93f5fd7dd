"""The protocol base class and steps (the registry is protocols.engine.registry).

A protocol says what the experiment is and nothing else::

    class Retention(Protocol):
        \"\"\"Program levels, then read them back at log-spaced times.\"\"\"
        name = "retention"

        @dataclass
        class Params:
            levels: int = param(8, limits=(2, 64), help="conductance levels")
            t_max: float = param(1e6, unit="s", limits=(1, 1e8), help="last read time")

        def datasets(self):
            return [Stream("conductance", units="S", shape=(64,))]

        def plan(self):
            yield Step("program levels", self.program_levels)
            for t in np.geomspace(1, self.p.t_max, 20):
                yield Step(f"read at {t:.3g} s", partial(self.read_at, t))

The engine (:mod:`protocols.engine.runner`) owns running, pausing, aborting, the journal,
the run file and the safe state. Inside a step a protocol uses ``self.bench``,
``self.rng`` (seeded per step, so resume replays it), ``self.record*`` to store
data, ``self.recorded(name)`` to read back what earlier steps stored, ``self.check()``
in long loops (abort/pause point) and ``self.progress()``.

Resume: ``--resume`` runs the remaining steps in a new process, on a fresh protocol
instance whose ``datasets()`` was called again (deterministic per-run state such as
cell selections belongs there). Anything a step learns on the bench and a later step
needs (a programming time, a placement, every batch's samples for a final metric)
must be recorded and read back with ``self.recorded(name)``, never kept only in
memory: memory holds only the steps run in this process.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from protocols.engine import params as _params
from protocols.engine.datasets import Spec
from protocols.engine.params import ParameterError, ParamSpec, param

if TYPE_CHECKING:
    from instruments.bench import Bench
    from instruments.limits import Limits
    from protocols.engine.bench_shape import BenchShape

__all__ = ["BenchUse", "Protocol", "Step", "StepContext", "param", "ParameterError", "simulated_work_note"]

log = logging.getLogger("rrambench.protocols")


class BenchUse(str, enum.Enum):
    """What a protocol runs on (``Protocol.bench_use``): the provenance of its data.

    * ``NEEDS`` ("needs"): it drives the bench's instruments. ``rrambench run`` opens the
      configured bench, hardware or the embedded simulated one; ``simulated`` records which.
    * ``ANY`` ("any"): it touches no instrument and no simulated world (software only): it
      runs beside any bench, opens none and records ``simulated=false``.
    * ``SIMULATED_ONLY`` ("simulated-only"): it runs only on simulated worlds it builds
      itself. It opens no bench, whatever the config says, and records ``simulated=true``.
    """

    NEEDS = "needs"
    ANY = "any"
    SIMULATED_ONLY = "simulated-only"


@dataclass(frozen=True)
class Step:
    """One numbered unit of work: a name for the journal and a callable doing it.

    ``estimate``: expected duration in s (bench time), used by dry-run and the ETA.
    """

    name: str
    action: Callable[[], Any]
    estimate: float = 0.0


class StepContext:
    """What the engine hands a protocol while a step runs (sink, token, rng, progress)."""

    def __init__(self, *, index: int, rng: np.random.Generator, record: Callable[..., None],
                 check: Callable[[], None], progress: Callable[[float], None],
                 recorded: Callable[[str], np.ndarray]) -> None:
        self.index, self.rng = index, rng
        self.record, self.check, self.progress = record, check, progress
        self.recorded = recorded


class Protocol:
    """Base class of every protocol. Subclasses set ``name`` and define ``Params``.

    ``params``: a validated ``Params`` instance (defaults when None). ``bench_use``
    (:class:`BenchUse`) says whether it needs the bench, runs beside any, or runs only on
    simulated worlds; ``simulated_parts()`` names simulated work a bench protocol does.
    """

    name: ClassVar[str] = ""
    signal: ClassVar[str | None] = None  # stream NeXus plots by default (first Stream if None)
    bench_use: ClassVar[BenchUse] = BenchUse.NEEDS  # what it runs on (BenchUse); the engine honours it

    @dataclass
    class Params:
        pass

    def __init__(self, params: Any = None) -> None:
        if params is None:
            params = _params.build(self.Params)
        elif not isinstance(params, self.Params):
            raise TypeError(f"{type(self).__name__} expects {self.Params.__qualname__}, got {type(params).__name__}")
        else:
            _params.validate(params)
        self.p = params
        self.bench: Bench | None = None
        self._ctx: StepContext | None = None

    # -- what a protocol defines ------------------------------------------------------
    def datasets(self) -> Sequence[Spec]:
        """Everything the run records, declared before the first step (see protocols.engine.datasets).

        Called once the bench is open (``self.bench`` is set), before any step runs.
        """
        raise NotImplementedError

    def plan(self) -> Iterator[Step]:
        """The numbered steps of the run, in order. Must not touch instruments."""
        raise NotImplementedError

    def run_step(self, step: Step) -> None:
        """Run one step (the engine calls this; override to wrap every step)."""
        step.action()

    def check_limits(self, limits: Limits) -> None:
        """Refuse parameters beyond the safety envelope (dry-run; before any I/O).

        The default checks each parameter declared with ``envelope=`` against the
        :class:`~instruments.limits.Limits` method of that name.
        """
        for spec in self.param_specs():
            if spec.envelope is not None:
                getattr(limits, spec.envelope)(getattr(self.p, spec.name))

    def validate(self, shape: BenchShape) -> None:
        """Refuse (ValueError, one line naming the parameter) every input the run would refuse
        before its first step: cross-parameter rules, cells against the board's geometry
        (``shape``, :class:`~protocols.engine.bench_shape.BenchShape`), overlapping
        selections, files named in parameters (exist, right format, right shape).

        The one place of these checks: ``rrambench run --dry-run`` calls it (no instrument
        opened) and the engine calls it before the first step, before the run file exists.
        Needs no instrument (``self.bench`` may be None); what it computes may be kept for
        ``datasets()``. The default accepts everything.
        """

    def simulated_parts(self) -> list[str]:
        """What this run computes on simulated worlds of its own, whatever the bench: one
        line each, recorded as the run attribute ``simulated_parts`` (a run on a hardware
        bench also says so on the console). A simulated-only protocol: the whole run."""
        if self.bench_use is BenchUse.SIMULATED_ONLY:
            return [f"the whole run: {self.name} runs only on simulated worlds"]
        return []

    def estimate_duration(self) -> float:
        """Expected duration in s: the sum of the steps' estimates."""
        return float(sum(step.estimate for step in self.plan()))

    def outcome(self) -> dict[str, tuple[Any, str]]:
        """The key metrics of a completed run: name -> (value, unit), SI units ("" none).

        Computed from what the run recorded (``self.recorded``, so a resumed run's earlier
        steps count), after the last step; the engine stores them in ``/entry/outcome``,
        ``rrambench run`` prints them and ``rrambench info`` shows them. Default: none.
        """
        return {}

    # -- helpers for steps --------------------------------------------------------------
    @property
    def rng(self) -> np.random.Generator:
        """This step's random generator, seeded from (run seed, step index)."""
        return self._context().rng

    @property
    def step_index(self) -> int:
        return self._context().index

    def record(self, name: str, value: Any) -> None:
        """Append one row (shape of the declared stream) to stream ``name``."""
        self._context().record("row", name, value)

    def record_rows(self, name: str, rows: Any) -> None:
        """Append several rows (shape ``(n, *stream.shape)``) to stream ``name``."""
        self._context().record("rows", name, rows)

    def record_trace(self, name: str, codes: np.ndarray, preamble: Mapping[str, float]) -> None:
        """Append one scope acquisition (raw integer codes and the scope's preamble).

        The run file keeps ``codes`` itself, not a copy, until it writes it (at the
        latest when the step ends): do not change the array in place meanwhile. Arrays a
        driver returns (``Waveform.codes``) are new for each acquisition.
        """
        self._context().record("trace", name, codes, preamble)

    def record_pulses(self, **columns: Any) -> None:
        """Append pulses: macro, row, col, polarity, amplitude (V), width (s), gate (V), read (S), time (s)."""
        self._context().record("pulses", None, columns)

    def recorded(self, name: str) -> np.ndarray:
        """Every row stream ``name`` holds so far in this run, shape ``(rows, *stream.shape)``.

        Includes what earlier steps recorded before a ``--resume`` (in another process)
        and the current step's rows; a step whose later work depends on an earlier step
        reads it here instead of keeping it in memory. KeyError for an undeclared stream.
        """
        return self._context().recorded(name)

    def check(self) -> None:
        """Abort/pause point inside long steps: raises Aborted, blocks while paused."""
        self._context().check()

    def progress(self, fraction: float) -> None:
        """Report how far the current step is, 0..1."""
        self._context().progress(fraction)

    # -- class-level introspection ------------------------------------------------------
    @classmethod
    def param_specs(cls) -> list[ParamSpec]:
        return _params.specs(cls.Params)

    @classmethod
    def from_assignments(cls, assignments: Sequence[str]) -> Protocol:
        """Instance with parameters parsed from ``--set k=v`` strings."""
        return cls(_params.parse_assignments(cls.Params, assignments))

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Protocol:
        """Instance with parameters from typed values (a run file's JSON, the GUI form)."""
        return cls(_params.build(cls.Params, values))

    def parameters(self) -> dict[str, Any]:
        """Parameter values, JSON-serialisable."""
        return _params.as_dict(self.p)

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""

    # -- engine side ------------------------------------------------------------------
    def _bind(self, bench: Bench | None) -> None:
        self.bench = bench

    def _enter_step(self, ctx: StepContext | None) -> None:
        self._ctx = ctx

    def _context(self) -> StepContext:
        if self._ctx is None:
            raise RuntimeError("step helpers are only available while the engine runs a step")
        return self._ctx


def simulated_work_note(protocol: Protocol) -> str:
    """The line a run on a hardware config prints (``rrambench run``) or logs (the GUI) when
    part or all of ``protocol`` runs on simulated worlds; "" when nothing is simulated."""
    parts = protocol.simulated_parts()
    if protocol.bench_use is BenchUse.SIMULATED_ONLY:
        return (f"{protocol.name} runs only on simulated worlds: the hardware bench is not opened "
                "and the run file records simulated=true")
    if parts:
        return (f"{protocol.name} on the hardware bench simulates part of its work (run attribute "
                f"simulated_parts): {'; '.join(parts)}")
    return ""
