"""The simulated bench's physical state: macros, clock, routing, outputs, analog loop.

One :class:`SimWorld` is shared by the three instrument emulators, the tests and
the GUI. Every public method takes ``world.lock`` (an ``RLock``) and validates its
arguments before it changes anything. Index arguments (``macro``, ``row``, ``col``)
are integers or integer arrays that broadcast; a batch of pulses or reads is
applied array-parallel and advances the virtual clock once (by the longest pulse
width or by the read window). See ``docs/architecture.md`` for the contract and
``docs/device-model.md`` for the physics.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from instruments.macro_controller_wire import BOARD_COLS, BOARD_MACROS, BOARD_ROWS
from instruments.sim.circuit import AnalogLoop
from instruments.sim.clock import SimClock
from instruments.sim.device import CELL_NOISE, CELL_PARAMS, CELL_STATE, CellArray, DeviceParams
from instruments.sim.device_validation import check_pulse_args, check_read_args, flat_index
from instruments.sim.world_io import read_state, write_state
from instruments.sim.world_state import FaultConfig, OutputState, default_faults

log = logging.getLogger(__name__)

STATE_FORMAT = 1
TriggerListener = Callable[[np.ndarray, float, float], None]


class SimWorld:
    """Macros of TaOx 1T1R cells with a virtual clock, an SMU switch matrix and an analog loop."""

    def __init__(self, params: DeviceParams | None = None, seed: int = 0, n_macros: int = BOARD_MACROS,
                 rows: int = BOARD_ROWS, cols: int = BOARD_COLS, formed: bool = True) -> None:
        """``seed``: integer >= 0 seeding every random draw; ``n_macros``, ``rows``, ``cols``:
        macro count and macro size (>= 1); ``formed=False`` starts cells pristine."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        for name, value in (("n_macros", n_macros), ("rows", rows), ("cols", cols)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.params = params if params is not None else DeviceParams()
        self.seed = int(seed)
        self.shape = (int(n_macros), int(rows), int(cols))
        self.lock = threading.RLock()
        self.clock = SimClock()
        self.rng = np.random.default_rng(self.seed)
        self.cells = CellArray(self.params, self.shape, self.rng, formed=bool(formed))
        self.outputs = OutputState()
        self.faults: dict[str, FaultConfig] = default_faults()
        self._listeners: list[TriggerListener] = []
        self.loop = AnalogLoop(self)

    @property
    def n_macros(self) -> int:
        """Number of macros."""
        return self.shape[0]

    @property
    def rows(self) -> int:
        """Rows (word lines) per macro."""
        return self.shape[1]

    @property
    def cols(self) -> int:
        """Columns (bit lines) per macro."""
        return self.shape[2]

    # -- array operations --------------------------------------------------------------
    def pulse(self, macro: ArrayLike, row: ArrayLike, col: ArrayLike, polarity: ArrayLike,
              amplitude: ArrayLike, width: ArrayLike, gate: ArrayLike) -> None:
        """Apply one programming pulse to each addressed cell, all in parallel.

        ``polarity`` +1 SET / -1 RESET; ``amplitude`` V (magnitude >= 0); ``width`` s
        (> 0); ``gate`` word-line V (>= 0). All arguments broadcast with the indices.
        The clock advances once, by the longest width.
        """
        with self.lock:
            idx, shape = flat_index(self.shape, macro, row, col)
            pol, amp, wid, gat = check_pulse_args(shape, polarity, amplitude, width, gate)
            if idx.size == 0:
                return
            duration = float(wid.max())
            self.cells.pulse(idx, pol, amp, wid, gat, self.clock.now() + duration, self.rng)
            self.clock.sleep(duration)

    def read(self, macro: ArrayLike, row: ArrayLike, col: ArrayLike, bias: ArrayLike = 0.1,
             window: float = 1e-6) -> np.ndarray | float:
        """Noisy conductance I/V (S) of the addressed cells at ``bias`` (V, non-zero) over
        ``window`` (s, > 0). Shape of the broadcast indices (a float for scalars)."""
        with self.lock:
            idx, shape = flat_index(self.shape, macro, row, col)
            b, w = check_read_args(shape, bias, window)
            values = self.cells.read(idx, b, w, self.clock.now() + w, self.rng)
            self.clock.sleep(w)
            return float(values[0]) if shape == () else values.reshape(shape)

    def read_macro(self, macro: int, bias: float = 0.1, window: float = 1e-6) -> np.ndarray:
        """Noisy conductances (S) of a whole macro, shape (rows, cols); one clock advance."""
        rows, cols = np.meshgrid(np.arange(self.rows), np.arange(self.cols), indexing="ij")
        with self.lock:
            flat_index(self.shape, macro, 0, 0)
            if np.ndim(macro) != 0:
                raise ValueError(f"macro must be one macro index, got {macro!r}")
            return self.read(macro, rows, cols, bias=bias, window=window)

    def conductance(self, macro: int | None = None) -> np.ndarray:
        """True conductances (S), relaxation applied up to now: (n_macros, rows, cols) or,
        for one ``macro``, (rows, cols). The oracle for tests and analysis; like any
        observation it draws the relaxation increments from the world's generator."""
        with self.lock:
            if macro is not None:
                flat_index(self.shape, macro, 0, 0)
                if np.ndim(macro) != 0:
                    raise ValueError(f"macro must be one macro index or None, got {macro!r}")
            g = self.cells.true_conductance(self.clock.now(), self.rng)
            return g if macro is None else g[int(macro)]

    def set_conductance(self, macro: ArrayLike, row: ArrayLike, col: ArrayLike, g: ArrayLike,
                        unstick: bool = False) -> None:
        """Test/analysis oracle: give the addressed cells exactly ``g`` (S, within
        [g_min, g_max] of the params), as if perfectly programmed now (relaxation starts
        now). Stuck cells keep their value unless ``unstick``. No clock advance, no draws."""
        with self.lock:
            idx, shape = flat_index(self.shape, macro, row, col)
            try:
                values = np.broadcast_to(np.asarray(g, dtype=float), shape).ravel()
            except (TypeError, ValueError):
                raise ValueError(f"g must be conductances in S broadcasting to {shape}, got {g!r}") from None
            p = self.params
            if not np.all(np.isfinite(values)) or np.any((values < p.g_min) | (values > p.g_max)):
                raise ValueError(f"g must be finite and within [{p.g_min:g}, {p.g_max:g}] S")
            if np.bincount(idx, minlength=self.cells.g.size).max(initial=0) > 1:
                raise ValueError("macro, row, col address a cell twice")
            self.cells.set_exact(idx, values, self.clock.now(), bool(unstick))

    # -- SMU routing and quasi-static measurements -------------------------------------------
    def route(self, macro: int, row: int, col: int) -> None:
        """Connect the SMU to one cell (switch matrix)."""
        with self.lock:
            for name, v in (("macro", macro), ("row", row), ("col", col)):
                if np.ndim(v) != 0:
                    raise ValueError(f"{name} must be one index, got {v!r}")
            flat_index(self.shape, macro, row, col)
            self.outputs.routed = (int(macro), int(row), int(col))

    def ensure_formed(self, macro: int, row: int, col: int) -> None:
        """Form one cell if it is still pristine: a DC forming ramp under 100 uA compliance.

        Used by ``rrambench sim serve --route`` so an outside tool finds a switching cell;
        the routing is restored afterwards.
        """
        with self.lock:
            idx, _ = flat_index(self.shape, macro, row, col)
            if bool(self.cells.formed[int(np.ravel(idx)[0])]):
                return
            previous = self.outputs.routed
            self.route(macro, row, col)
            ramp = np.linspace(0.0, self.params.v_form + 5 * self.params.v_form_d2d, 60)
            self.smu_sweep(np.concatenate([ramp, ramp[::-1]]), 100e-6)
            self.outputs.routed = previous

    def unroute(self) -> None:
        """Disconnect the SMU from every cell."""
        with self.lock:
            self.outputs.routed = None

    @property
    def routed(self) -> tuple[int, int, int] | None:
        """(macro, row, col) of the cell the SMU is routed to, or None."""
        with self.lock:
            return self.outputs.routed

    def smu_measure(self, voltage: float, compliance: float) -> float:
        """Source ``voltage`` (V) on the routed cell with current limit ``compliance`` (A, > 0)
        and return the measured current (A). Open circuit (~1 pA noise) when nothing is
        routed. The clock advances by one SMU point time."""
        return float(self.smu_sweep([voltage], compliance)[0])

    def smu_sweep(self, voltages: Sequence[float] | np.ndarray, compliance: float) -> np.ndarray:
        """Source each voltage (V) in turn on the routed cell; currents (A). The cell
        switches as the sweep goes (abrupt SET, gradual RESET, forming)."""
        with self.lock:
            v = np.asarray(voltages, dtype=float).ravel() if _is_numeric(voltages) else None
            if v is None or not np.all(np.isfinite(v)):
                raise ValueError(f"voltages must be finite numbers in V, got {voltages!r}")
            c = float(compliance) if _is_numeric(compliance) and np.ndim(compliance) == 0 else math.nan
            if not math.isfinite(c) or c <= 0:
                raise ValueError(f"compliance must be a finite current > 0 A, got {compliance!r}")
            p, out = self.params, np.empty(v.size)
            target = self.outputs.routed
            for k, volts in enumerate(v):
                self.clock.sleep(p.smu_point_time)
                if target is None:
                    out[k] = p.smu_floor_noise * self.rng.standard_normal()
                    continue
                i = (target[0] * self.rows + target[1]) * self.cols + target[2]
                out[k] = self.cells.iv_point(i, float(volts), c, p.smu_point_time,
                                             self.clock.now(), self.rng)
            return out

    # -- outputs ------------------------------------------------------------------------------
    def safe_state(self) -> None:
        """SMU off at 0 V, DACs to 0 V, integrators held; safe to call any time, twice.
        Routing is kept (a routed cell with the SMU off carries no current)."""
        with self.lock:
            self.outputs.smu_on = False
            self.outputs.smu_level = 0.0
            self.outputs.dac_max = 0.0
            self.loop.safe_state()  # integrators held

    def outputs_safe(self) -> bool:
        """True when no source of the bench drives anything."""
        with self.lock:
            return self.outputs.is_safe()

    # -- scope trigger ------------------------------------------------------------------------
    def add_trigger_listener(self, fn: TriggerListener) -> None:
        """Call ``fn(traces, dt, t0)`` whenever the board fires the scope trigger."""
        with self.lock:
            self._listeners.append(fn)

    def remove_trigger_listener(self, fn: TriggerListener) -> None:
        """Stop calling ``fn``; ValueError if it was not registered."""
        with self.lock:
            self._listeners.remove(fn)

    def fire_trigger(self, traces: np.ndarray, dt: float, t0: float) -> None:
        """Hand node-voltage ``traces`` (samples, channels, points; V) sampled every ``dt`` s
        from virtual time ``t0`` s to every trigger listener."""
        with self.lock:
            listeners = list(self._listeners)
        for fn in listeners:
            fn(traces, dt, t0)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the whole physical state to ``path`` (.npz, atomic): conductances, per-cell
        parameters, relaxation state, clock, RNG state, routing, outputs, loop.

        Injected link faults are not saved: they are a test's conditions on the wires, not
        the bench's state, and a resumed run must not inherit a fault a test switched on."""
        with self.lock:
            arrays = {f"cell.{k}": v for k, v in self.cells.state_dict().items()}
            loop_state = self.loop.state_dict()
            scalars, nones = [], []
            for key, value in loop_state.items():
                if value is None:
                    nones.append(key)
                    continue
                arr = np.asarray(value)
                if arr.dtype == object:
                    raise ValueError(f"loop state {key!r} is not a numpy array or scalar")
                if not isinstance(value, np.ndarray):
                    scalars.append(key)
                arrays[f"loop.{key}"] = arr
            meta = {
                "format": STATE_FORMAT, "params": self.params.to_json(), "seed": self.seed,
                "shape": list(self.shape), "clock": self.clock.now(),
                "rng": self.rng.bit_generator.state, "outputs": self.outputs.as_dict(),
                "loop_scalars": scalars, "loop_none": nones,
            }
            target = write_state(path, arrays, meta)
            log.debug("world state saved to %s at t=%.6g s", target, meta["clock"])
            return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> SimWorld:
        """Restore a world saved by :meth:`save`; it continues exactly where it stopped."""
        arrays, meta = read_state(path)
        if meta.get("format") != STATE_FORMAT:
            raise ValueError(f"{path}: unsupported world state format {meta.get('format')!r}")
        world = cls.__new__(cls)
        world.params = DeviceParams.from_json(meta["params"])
        world.seed = int(meta["seed"])
        world.shape = tuple(int(s) for s in meta["shape"])
        world.lock = threading.RLock()
        world.clock = SimClock(float(meta["clock"]))
        world.rng = np.random.Generator(np.random.PCG64())
        world.rng.bit_generator.state = meta["rng"]
        names = CELL_PARAMS + CELL_STATE
        missing = [n for n in names if f"cell.{n}" not in arrays]
        if missing:
            raise ValueError(f"{path}: world state lacks cell arrays {', '.join(missing)}")
        world.cells = CellArray.from_state(world.params, world.shape,
                                           {n: arrays[f"cell.{n}"] for n in names + CELL_NOISE
                                            if f"cell.{n}" in arrays})
        world.outputs = OutputState.from_dict(meta["outputs"])
        world.faults = default_faults()  # links start healthy (files of older versions kept faults)
        world._listeners = []
        world.loop = AnalogLoop(world)
        loop_state = {k[len("loop."):]: v for k, v in arrays.items() if k.startswith("loop.")}
        for key in meta["loop_scalars"]:
            loop_state[key] = loop_state[key].item()
        loop_state.update({key: None for key in meta["loop_none"]})
        world.loop.load_state_dict(loop_state)
        return world


def _is_numeric(value) -> bool:
    try:
        np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return False
    return True
