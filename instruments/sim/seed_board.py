"""Emulation of the seed's sampling-board firmware (STM32, 9600 baud ASCII) over a world.

``SeedBoardEmulator(world).handle(line)`` takes one line (LF removed by the loopback
server) and does what the published firmware does with it (``docs/seed-board.md``):

- ``In<type><noise>`` init: type '0'/'4' unconditional, '1'..'3' the three classes;
  noise '0'/'1'. Latches the embedding scale (5 v_bias, 0.05 V for type 4).
- ``O<aa><bb>`` offsets ``aa * 0.01 - 0.5`` V of the two noise channels.
- ``C<ddd>`` coefficient ``ddd * 0.01`` (kept only when 0 < value < 10).
- ``D<0|1|2>`` bias 0.05 / 0.1 / 0.2 V (takes effect at the next ``In``).
- ``N<ddd>`` noise scale ``ddd * 0.01``.
- ``Go`` one sample, unless fewer than 1000 ticks (5 s) passed since the last run
  started (or since the tick counter wrapped, every 600 s): then it is dropped silently.

Like the firmware it answers only informational ``printf`` lines (never an
acknowledgement), parses digits without any check and lets DAC codes overflow
(``(uint16_t)(2048 (1 + v))`` into a 12-bit DAC). A line is taken at the world time
it is read: the sender pays its ``bytes x 10 / 9600`` s of line time (our driver advances
the bench clock before writing), so the emulator never moves the clock for a line and
never races the driver for it. A run drives ``world.loop`` (the
same macros and wiring as our board) with the firmware's time base and fires the
scope trigger.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

log = logging.getLogger("rrambench.sim.seed_board")

BAUD = 9600  # bit/s of the firmware's UART
TICK = 5e-3  # s, period of the firmware's timer
T_STEP = 0.005  # firmware time advanced per tick
T_STOP = 1.2  # firmware time where a run ends
LOCKOUT_TICKS = 1000  # a Go is taken only when the tick counter exceeds this (5 s)
WRAP_TICKS = 120_000  # the tick counter wraps to 0 every 600 s
BIAS_CODES = {"0": 0.05, "1": 0.1, "2": 0.2}  # V per D<digit>
BETA_MIN, BETA_DELTA = 0.001, 0.499  # the firmware's beta(t) = (1 - t) delta + min
DAC_HALF = 2048  # 12-bit DAC: code = 2048 (1 + v)


@dataclass(frozen=True)
class SeedBoardCircuit:
    """Analog constants of the emulated sampling board (SI units; docs/seed-board.md).

    rc: integrator time constant (s, > 0). input_gain: gain (V/V) of every integrator
    input (x times the fx DAC, network output times the g2 DAC, noise DAC), chosen so
    that one second of run is one unit of diffusion time with the sampling beta twice
    the firmware's (beta scale 2): input_gain = 4 rc / 1 s. uptime: how long the board
    has been powered when the emulation starts (s, >= 0; the firmware drops a Go in its
    first 5 s).
    """

    rc: float = 0.1
    input_gain: float = 0.4
    output_gain: float = 0.8
    noise_gain: float = 0.1
    uptime: float = 10.0

    def __post_init__(self) -> None:
        for name in ("rc", "input_gain", "output_gain", "noise_gain"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"SeedBoardCircuit.{name} must be > 0, got {getattr(self, name)!r}")
        if not (math.isfinite(self.uptime) and self.uptime >= 0):
            raise ValueError(f"SeedBoardCircuit.uptime must be >= 0 s, got {self.uptime!r}")
        if TICK > self.rc / 10:
            raise ValueError(f"SeedBoardCircuit.rc must be >= {10 * TICK} s (one tick per fine step)")


@dataclass(frozen=True)
class TaskTable:
    """What the firmware has flashed for one task type: 7 frequencies, 14 condition values."""

    frequencies: np.ndarray  # (7,) dimensionless
    condition: np.ndarray  # (14,) data units added to each embedding value
    fixed_scale: float | None = None  # V per unit; None: 5 x v_bias at init


def shipped_tables(models: Path | None = None) -> dict[str, TaskTable]:
    """Firmware tables "flashed" from our shipped models (as the seed flashed its own).

    '0': ring at 5 v_bias per unit, '4': ring at a fixed 0.05 V per unit (the scale our
    mapping gives its hidden layers), '1'..'3': digits classes 0..2.
    """
    if models is None:
        from instruments.paths import data_dir

        models = data_dir() / "models"
    with np.load(models / "ring.npz", allow_pickle=False) as ring, \
            np.load(models / "digits.npz", allow_pickle=False) as digits:
        zeros = np.zeros(2 * ring["frequencies"].size)
        tables = {"0": TaskTable(ring["frequencies"].copy(), zeros),
                  "4": TaskTable(ring["frequencies"].copy(), zeros, fixed_scale=0.05)}
        for k in range(3):
            tables[str(k + 1)] = TaskTable(digits["frequencies"].copy(), digits["class_embedding"][k].copy())
    return tables


def dac(volts: np.ndarray) -> np.ndarray:
    """What a 12-bit DAC outputs (V) for ``(uint16_t)(2048 (1 + v))``: quantised, and
    wrapped modulo 4096 codes beyond its range, as the firmware lets it happen."""
    code = np.trunc(DAC_HALF * (1.0 + np.asarray(volts, dtype=float))).astype(np.int64)
    return (code & 0xFFF) / DAC_HALF - 1.0


def irwin_hall(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """The firmware's Gaussian: sum of 12 uniforms minus 6 (variance 1, within +-6)."""
    return rng.random((12, *shape)).sum(axis=0) - 6.0


class SeedBoardEmulator:
    """The sampling board's firmware, reading lines, over one world.

    tables: task type character -> :class:`TaskTable` (default :func:`shipped_tables`);
    circuit: analog constants; seed: seed of the firmware's noise generator.
    ``received`` lists every complete command line, ``runs`` counts runs started and
    ``dropped`` the Go commands dropped by the lock-out.
    """

    def __init__(self, world, *, tables: dict[str, TaskTable] | None = None,
                 circuit: SeedBoardCircuit | None = None, seed: int = 0) -> None:
        self.world = world
        self.tables = tables
        self.circuit = circuit or SeedBoardCircuit()
        self._rng = np.random.default_rng(seed)
        self.received: list[bytes] = []
        self.runs = 0
        self.dropped = 0
        self._partial = b""
        self._tick_ref = world.clock.now() - self.circuit.uptime  # tick counter's zero
        # firmware variables and their power-up values
        self.task = "0"
        self.noise = False
        self.offsets = (0.0, 0.0)  # V
        self.coef = 1.0
        self.noise_scale = 1.0
        self.v_bias = 0.1  # V
        self.scale = 0.5  # V per embedding unit, latched at init
        self.bias_latched = 0.1  # V on the bias rows, latched at init
        self.initialised = False

    # -- the UART receive interrupt and the main loop ---------------------------------
    def handle(self, message: bytes) -> bytes | None:
        """Informational text the firmware prints (CR ending; the server adds LF), or None."""
        if not message.endswith(b"\r"):  # LF without CR: the firmware keeps it as data
            self._partial += message + b"\n"
            return None
        line, self._partial = self._partial + message[:-1], b""
        self.received.append(line)
        if len(line) < 1:
            return None
        text = line.decode("latin-1")
        if line[:2] == b"In":
            return self._init(text)
        if line[:2] == b"Go":
            self._go()
            return b"\r"
        command = {"O": self._offsets, "C": self._coefficient, "D": self._bias, "N": self._noise_scale}.get(text[0])
        return command(text) if command else None

    @staticmethod
    def _digits(text: str, first: int, count: int) -> int:
        """Characters minus '0' as the firmware computes them: no check at all."""
        padded = text.ljust(first + count, "\0")
        return sum((ord(padded[first + k]) - 48) * 10 ** (count - 1 - k) for k in range(count))

    def _init(self, text: str) -> bytes:
        padded = text.ljust(4, "\0")
        tables = self._tables()
        if padded[2] in tables:
            self.task = padded[2]
            table = tables[self.task]
            self.scale = table.fixed_scale if table.fixed_scale is not None else 5 * self.v_bias
            self.bias_latched = self.v_bias
        if padded[3] in "01":
            self.noise = padded[3] == "1"
        self.initialised = True
        return f"Type:{padded[2]}\tStart...\r".encode("latin-1")

    def _offsets(self, text: str) -> bytes:
        self.offsets = (self._digits(text, 1, 2) * 0.01 - 0.5, self._digits(text, 3, 2) * 0.01 - 0.5)
        return f"Offset set1: {self.offsets[0]:f}\nOffset set2: {self.offsets[1]:f}\r".encode()

    def _coefficient(self, text: str) -> bytes:
        value = self._digits(text, 1, 3) * 0.01
        if 0 < value < 10:
            self.coef = value
        return f"Coef: {self.coef:f}\r".encode()

    def _bias(self, text: str) -> bytes:
        self.v_bias = BIAS_CODES.get(text[1:2], self.v_bias)
        return f"V_bias and DAC coef: {self.v_bias:f}\r".encode()

    def _noise_scale(self, text: str) -> bytes:
        self.noise_scale = self._digits(text, 1, 3) * 0.01
        return f"Noise Scale: {self.noise_scale:f}\r".encode()

    def _tables(self) -> dict[str, TaskTable]:
        if self.tables is None:
            self.tables = shipped_tables()
        return self.tables

    # -- the timer interrupt: one run ----------------------------------------------------
    def _go(self) -> None:
        now = self.world.clock.now()
        ticks = int((now - self._tick_ref) / TICK) % WRAP_TICKS
        if ticks <= LOCKOUT_TICKS:
            self.dropped += 1
            log.info("Go dropped: %d ticks since the last run (the firmware needs > %d)", ticks, LOCKOUT_TICKS)
            return
        self._tick_ref = now
        self.runs += 1
        self.run()

    def streams(self) -> dict[str, np.ndarray]:
        """DAC outputs (V) of each tick of a run, as the firmware computes them.

        t: (K,) firmware time; fx, g2: (K,) drift DACs; embedding: (K, 14); noise: (K, 2)
        noise DACs (Irwin-Hall draws times noise scale times beta, plus the offsets).
        """
        table = self._tables()[self.task]
        t = np.arange(round(T_STOP / T_STEP) + 1) * T_STEP
        beta = (1.0 - t) * BETA_DELTA + BETA_MIN
        arg = 2.0 * np.pi * np.outer(1.0 - t, table.frequencies)
        features = np.concatenate([np.sin(arg), np.cos(arg)], axis=1)
        noise = np.asarray(self.offsets) + (
            irwin_hall(self._rng, (t.size, 2)) * self.noise_scale * beta[:, None] if self.noise else 0.0)
        return {"t": t, "beta": beta, "fx": dac(-0.25 * beta), "g2": dac(0.5 * beta * self.coef),
                "embedding": dac(self.scale * (features + table.condition)), "noise": dac(noise)}

    def run(self) -> None:
        """One sample: charge the integrators from the noise DACs, integrate, fire the trigger."""
        world, loop, circuit = self.world, self.world.loop, self.circuit
        s = self.streams()
        with world.lock:
            if not loop.layers or loop.layers[0].n_in != 2:
                log.error("run skipped: the macros are not wired as a 2-input network (load a mapping)")
                return
            if any(self.offsets):
                log.warning("offsets %s V: the simulated integrators have no offset to cancel and the "
                            "circuit model has no DC input, so they act on the start value only", self.offsets)
            saved = loop.state_dict()
            h = TICK / circuit.rc
            try:
                # the seed board's own circuit (SeedBoardCircuit; its DACs quantise in dac()), not the
                # macro controller's parts, which loop_circuit.py models: the ideal loop
                loop.params = replace(loop.params, rc=circuit.rc, dt_step=TICK, trace_rate=1.0 / TICK,
                                      model="ideal")
                loop.load_mapping(loop.layers, self.bias_latched)
                amplitude = math.sqrt(h) * circuit.noise_gain * self.noise_scale * np.abs(s["beta"])
                loop.set_streams(TICK, s["embedding"], np.zeros(s["embedding"].shape[1]),
                                 -circuit.input_gain * s["fx"], circuit.output_gain * s["g2"], amplitude)
                t0 = world.clock.now()
                x0 = s["noise"][:1]  # 100 us charge phase: integrators take the noise DAC voltages
                result = loop.run(x0, s["t"].size * TICK, self.noise, self._rng)
            finally:
                loop.load_state_dict(saved)
            world.fire_trigger(result.traces, result.trace_dt, t0)


__all__ = ["BAUD", "TICK", "SeedBoardEmulator", "SeedBoardCircuit", "TaskTable", "dac", "shipped_tables"]
