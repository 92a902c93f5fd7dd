"""Run a mapped score network on the analog loop: program it, load it, sample with it.

Two paths reach the same circuit:

* on a bench, through the board driver (``bench.macro_controller``): :func:`program_network`
  write-verifies the conductances over anything with ``pulse_batch``/``read_batch``
  (one board round trip per iteration) and :func:`board_sample` loads mapping,
  streams and initial conditions and runs the closed loop;
* in process, on a simulated world (fast tests, noise studies; the caller builds it):
  :func:`world_sample` drives ``world.loop`` directly.

States are in data units at this interface; volts are the mapping's business.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from protocols.characterization.write_verify_algorithm import (
    WriteVerifyConfig,
    WriteVerifyResult,
    averaged_read,
    write_verify,
)
from protocols.diffusion.loop_streams import LoopStreams, loop_streams
from protocols.diffusion.mapping import MappedNetwork
from protocols.diffusion.weights import TrainedModel

log = logging.getLogger(__name__)

#: Fine steps per sample: 1,500 x 1 us (the board's LOOP_DT_STEP) = 1.5 ms of physical time per sample.
N_STEPS = 1500
#: Largest |initial state| (data units) the default DAC range holds at x_scale 0.1 V.
X0_LIMIT = 5.0


@dataclass
class Programming:
    """Outcome of programming a mapped network.

    mapped: the network as finally placed (layers moved off stuck cells); final: last
    verify read of every cell (S, :meth:`MappedNetwork.cells` order); rounds: per
    write-verify pass, the (macro, row, col) cell arrays it programmed and its result;
    stuck: cells found stuck (macro, row, col).
    """

    mapped: MappedNetwork
    final: np.ndarray
    rounds: list[tuple[tuple[np.ndarray, np.ndarray, np.ndarray], WriteVerifyResult]]
    stuck: set[tuple[int, int, int]]

    @property
    def round_trips(self) -> int:
        """Board round trips of all passes."""
        return sum(result.iterations for _, result in self.rounds)

    def pulse_columns(self) -> dict[str, np.ndarray]:
        """Every pulse applied, as the run file's pulse-history columns."""
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("macro", "row", "col", "polarity", "amplitude",
                                                                "width", "gate", "read", "time")}
        for (macro, row, col), result in self.rounds:
            log_ = result.pulse_log.arrays()
            cell = log_["cell"]
            for name, values in (("macro", macro[cell]), ("row", row[cell]), ("col", col[cell])):
                cols[name].append(values)
            for name in ("polarity", "amplitude", "width", "gate", "read", "time"):
                cols[name].append(log_[name])
        return {k: np.concatenate(v) for k, v in cols.items()}


def _cell_layer(mapped: MappedNetwork) -> np.ndarray:
    """Layer index of every cell in :meth:`MappedNetwork.cells` order."""
    return np.repeat(np.arange(len(mapped.pairs)), [2 * p.g_pos.size for p in mapped.pairs])


#: Reads averaged when the reference cells are measured before their partners are programmed.
REFERENCE_READS = 8


def program_network(access: Any, mapped: MappedNetwork, config: WriteVerifyConfig | None = None, *,
                    shape: tuple[int, int, int], now: Callable[[], float] = lambda: 0.0,
                    check: Callable[[], None] = lambda: None, sleep: Callable[[float], None] | None = None,
                    max_relocations: int = 8) -> Programming:
    """Program every conductance pair of ``mapped``, reference cells first.

    Pass 1 write-verifies the reference cells (the cell of each pair at ``g_min``; both
    cells of a zero weight) and reads them back (``REFERENCE_READS`` averaged reads);
    pass 2 write-verifies each active cell to its measured partner plus the pair's
    target difference. Write-verify stops as soon as a cell enters its tolerance band,
    so cells reached from above (all reference cells: they come down by RESET) end
    biased high by about half the band; programming the active cell against the
    measured reference removes that bias from the weight (G+ - G-).

    A layer whose region holds a cell found stuck is moved to a stuck-free region
    (:meth:`MappedNetwork.relocated`) and programmed again, up to ``max_relocations``
    times; a network whose regions share macros (the VAE decoder's tiles) keeps a region
    on its stuck cells when no stuck-free one is left (a few pairs wrong, logged), any
    other refuses (ValueError). access: ``pulse_batch``/``read_batch`` provider (``bench.macro_controller`` or
    ``DirectArrayAccess``); shape: (n_macros, rows, cols) of the board; config:
    write-verify settings; now, sleep, check: the bench clock (s) and the run's
    cancellation point.
    """
    cfg = config or WriteVerifyConfig()
    outcome = Programming(mapped, np.zeros(mapped.cells()[3].size), [], set())
    todo = np.ones(outcome.final.size, dtype=bool)
    for attempt in range(max_relocations + 1):
        found = _program_pairs(access, outcome, todo, cfg, now=now, sleep=sleep, check=check)
        if not found:
            break
        outcome.stuck |= found
        if attempt == max_relocations:
            (log.warning if max_relocations else log.info)(
                "%d stuck cells left in the network after %d relocations", len(found), attempt)
            break
        moved = outcome.mapped.relocated(outcome.stuck, shape, strict=not outcome.mapped.shared_macros)
        changed = [k for k, (a, b) in enumerate(zip(moved.layers, outcome.mapped.layers, strict=True)) if a != b]
        if not changed:
            log.warning("%d stuck cells left in place: no stuck-free region is left for their layers", len(found))
            break
        log.info("stuck cells %s: moving layers %s", sorted(found), changed)
        outcome.mapped = moved
        todo = np.isin(_cell_layer(moved), changed)
    failed = sum(int(r.failed.sum()) for _, r in outcome.rounds)
    log.info("programmed %d cells in %d round trips (%d passes): %d stuck cells avoided, %d cells out of budget",
             outcome.final.size, outcome.round_trips, len(outcome.rounds), len(outcome.stuck), failed)
    return outcome


def _program_pairs(access: Any, outcome: Programming, todo: np.ndarray, cfg: WriteVerifyConfig, *,
                   now: Callable[[], float], sleep: Callable[[float], None] | None,
                   check: Callable[[], None]) -> set[tuple[int, int, int]]:
    """Reference cells, then active cells, of the ``todo`` cells; returns the stuck cells found."""
    macro, row, col, target = outcome.mapped.cells()
    partner, active = outcome.mapped.partners()
    stuck: set[tuple[int, int, int]] = set()

    def run(sel: np.ndarray, goal: np.ndarray) -> None:
        if not np.any(sel):
            return
        cells = (macro[sel], row[sel], col[sel])
        result = write_verify(access, *cells, goal[sel], cfg, now=now, sleep=sleep, check=check)
        outcome.final[sel] = result.final
        outcome.rounds.append((cells, result))
        hit = result.stuck
        stuck.update((int(m), int(r), int(c)) for m, r, c in zip(*(a[hit] for a in cells), strict=True))

    reference = todo & ~active
    run(reference, target)
    if np.any(reference):
        check()
        outcome.final[reference] = averaged_read(access, macro[reference], row[reference], col[reference],
                                                 REFERENCE_READS, cfg.read_bias, cfg.read_window)
    gap = np.abs(target - target[partner])
    run(todo & active, outcome.final[partner] + gap)
    return stuck


def check_noise_limit(limit: float) -> None:
    """Refuse DACs holding less than 3 sigma of the N(0, I) initial noise (``limit`` in data units)."""
    if not limit >= 3.0:
        raise ValueError(f"limit {limit:g} data units would truncate the initial noise: the DACs must hold "
                         "at least 3 sigma (lower x_scale)")


def initial_noise(rng: np.random.Generator, n: int, dim: int = 2, limit: float = X0_LIMIT) -> np.ndarray:
    """N(0, I) initial states (n, dim), data units, each within ±limit.

    A row with a coordinate beyond ``limit`` (probability 6e-7 per coordinate at 5) is
    drawn again: the DACs cannot hold it, and clipping it would bias the sample.
    """
    check_noise_limit(limit)
    x = rng.standard_normal((n, dim))
    bad = np.any(np.abs(x) > limit, axis=1)
    while np.any(bad):
        log.info("redrawing %d initial states beyond ±%g data units", int(bad.sum()), limit)
        x[bad] = rng.standard_normal((int(bad.sum()), dim))
        bad = np.any(np.abs(x) > limit, axis=1)
    return x


@dataclass(frozen=True)
class AnalogSamples:
    """Outcome of one closed-loop batch: final states (N, D) data units, the traces
    (N, D + 2, P) V and their spacing (s) when available, saturation flags (N,)."""

    final: np.ndarray
    traces: np.ndarray | None
    trace_dt: float
    saturated: np.ndarray | None


def world_sample(world: Any, mapped: MappedNetwork, model: TrainedModel, x0: np.ndarray, *, sde: bool,
                 rng: np.random.Generator, cond: int | None = None, n_steps: int = N_STEPS,
                 read_noise_scale: float | None = None, stream_points: int | None = None) -> AnalogSamples:
    """Sample on ``world.loop`` in process: load mapping and streams, run from ``x0`` (data units).

    read_noise_scale: override of the loop's read-noise multiplier for this run (None keeps it);
    stream_points: DAC updates per sample (None: one per fine step; fewer where the DAC's
    update rate cannot follow the board's step, :func:`~protocols.diffusion.loop_streams.loop_streams`).
    """
    loop = world.loop
    saved = loop.params
    if read_noise_scale is not None:
        loop.params = replace(saved, read_noise_scale=float(read_noise_scale))
    try:
        streams = loop_streams(mapped, model, n_steps=n_steps, dt_step=loop.params.dt_step, rc=loop.params.rc,
                               sde=sde, cond=cond, stream_points=stream_points)
        loop.load_mapping(list(mapped.layers), mapped.v_bias)
        loop.set_streams(*streams.as_args())
        result = loop.run(mapped.to_volts(x0), streams.duration, sde, rng)
    finally:
        loop.params = saved
    return AnalogSamples(mapped.from_volts(result.end), result.traces, result.trace_dt, result.saturated)


def board_load(board: Any, mapped: MappedNetwork) -> None:
    """Tell the board which macro regions form the network."""
    board.load_mapping(list(mapped.layers), mapped.v_bias)


def board_sample(board: Any, mapped: MappedNetwork, streams: LoopStreams, x0: np.ndarray, *, sde: bool,
                 seed: int, before_run: Callable[[], None] | None = None) -> np.ndarray:
    """One batch on the board: streams, initial conditions, run (fires the scope trigger), end values.

    x0: (N, D) initial states (data units); seed: the board's noise seed (0..2^32-1);
    before_run: called right before the run starts (arm the scope there). Returns the
    final states (N, D) in data units.
    """
    board.set_streams(*streams.as_args())
    board.set_initial(mapped.to_volts(x0))
    if before_run is not None:
        before_run()
    board.run_samples(len(x0), streams.duration, sde, seed=seed)
    return mapped.from_volts(board.fetch_end_values())


def resolve_model(name: str) -> TrainedModel:
    """A shipped score network by name ("ring", "ring-plain", "digits", "digits-plain") or a model file path."""
    import zipfile
    from pathlib import Path

    from protocols.characterization.files import load_error
    from protocols.diffusion.weights import SHIPPED, load_shipped

    if name in SHIPPED:
        return load_shipped(name)
    path = Path(name)
    if path.suffix != ".npz" or not path.is_file():
        raise ValueError(f"model must be one of {', '.join(s for s in SHIPPED if s != 'digits-vae')} "
                         f"or an existing .npz file, got {name!r}")
    try:
        return TrainedModel.load(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"model={name!r}: not a readable score-network file ({load_error(exc)})") from None


def scaled_noise(params: Any, write_verify_config: WriteVerifyConfig | None, factor: float
                 ) -> tuple[Any, WriteVerifyConfig]:
    """Device parameters and write-verify settings with write noise times ``factor`` (>= 0).

    Write noise here is everything that leaves a programmed cell off its target: the
    cycle-to-cycle spread of each pulse (``pulse_c2c``), the relaxation spread after
    programming (``relax_sigma0``, ``relax_sigma_rel``) and the write-verify tolerance
    band. Read noise is scaled separately (``CircuitParams.read_noise_scale``).
    """
    if not factor >= 0:
        raise ValueError(f"factor must be >= 0, got {factor}")
    cfg = write_verify_config or WriteVerifyConfig()
    return (replace(params, pulse_c2c=factor * params.pulse_c2c, relax_sigma0=factor * params.relax_sigma0,
                    relax_sigma_rel=factor * params.relax_sigma_rel),
            replace(cfg, tolerance=factor * cfg.tolerance))
