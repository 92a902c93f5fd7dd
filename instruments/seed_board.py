"""Driver of the seed's sampling board (published STM32 firmware, UART 9600 baud, CR LF).

The firmware never acknowledges, has no CRC, lets its 12-bit DAC codes overflow
silently and drops a ``Go`` that arrives less than 5 s after the previous run started.
This driver makes those edges safe (``docs/seed-board.md``):

- every value is checked against what the firmware can represent (digit fields, the
  0.01 steps, the DAC range its streams reach with these settings) and refused with a
  :class:`LimitError` before a byte is sent; nothing is rounded or wrapped;
- the 5 s lock-out is kept on the bench clock: a ``go`` within it waits (``"wait"``)
  or is refused with the time left (``"refuse"``);
- each run is confirmed on the scope: armed single acquisition before ``Go``, trigger
  seen after it; a Go the board dropped is sent again once after the lock-out, then
  reported as an :class:`InstrumentError`.

Whatever text the firmware prints is discarded unread before each command.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from instruments.errors import InstrumentError, InstrumentTimeout, LimitError
from instruments.serial_link import SerialLink
from instruments.transport import Settings

log = logging.getLogger("rrambench.seed_board")

BAUD = 9600  # bit/s
TASK_TYPES = (0, 1, 2, 3, 4)  # 0/4 unconditional, 1..3 the three classes
UNCONDITIONAL = (0, 4)
BIAS_VOLTS = (0.05, 0.1, 0.2)  # V for D0, D1, D2
OFFSET_MIN, OFFSET_STEP = -0.5, 0.01  # V: offset = code * 0.01 - 0.5, code 00..99
DAC_MAX = 4095 / 2048 - 1  # largest DAC voltage (V) before the code overflows; smallest is -1 V
BETA_PEAK = 0.5  # largest |beta| of the firmware's schedule over t in [0, 1.2]
GAUSS_PEAK = 6.0  # the firmware's Gaussian (sum of 12 uniforms minus 6) stays within +-6
FIXED_SCALE = {4: 0.05}  # V per embedding unit of types with a fixed scale; others 5 x v_bias
LOCKOUT = 5.0  # s between run starts (1000 ticks of 5 ms)
WRAP_PERIOD = 600.0  # s, the firmware's tick counter wraps to 0 (120,000 ticks of 5 ms)
WRAP_MARGIN = 0.05  # s before a wrap in which no Go is sent (line time at 9600 baud, clock steps)
RUN_DURATION = 1.205  # s, 241 ticks from t = 0 to 1.2
SAMPLE_TIME = 1.0  # s after the trigger: diffusion time reaches 0 (t = 1)


def _steps(name: str, value: float, step: float, lo: int, hi: int, unit: str) -> int:
    """``value`` as a whole number of ``step`` within lo..hi, or a LimitError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LimitError(f"{name} must be a finite number, got {value!r}")
    code = round(value / step)
    unit = f" {unit}" if unit else ""
    if abs(code * step - value) > 1e-9:
        raise LimitError(f"{name} {value!r}{unit} is not a whole number of {step:g}{unit} steps: "
                         "the firmware cannot represent it")
    if not lo <= code <= hi:
        raise LimitError(f"{name} {value!r}{unit} outside {lo * step:g}..{hi * step:g}{unit}")
    return code


class SeedBoard:
    """The seed's sampling board: init, offsets, coefficient, bias, noise scale, go.

    Parameters
    ----------
    link:
        Serial link to the board (``SerialLink.open(url, baudrate=9600)``).
    clock:
        Bench clock (``now()``, ``sleep(s)``): virtual on the simulated bench.
    scope:
        Scope driver used to confirm each run (``single``, ``wait_triggered``), or None
        to send ``Go`` unconfirmed (transcript tests only).
    lockout:
        Minimum time between two run starts, s (>= 5.0; a margin over the firmware's
        1000 ticks is added by default).
    policy:
        ``"wait"``: a go within the lock-out waits on the bench clock; ``"refuse"``: it
        raises :class:`LimitError` with the time left.
    condition_peak:
        Largest |condition value| (data units) flashed for each conditional task type,
        needed to check its embedding DACs; types without an entry are refused.
    confirm_timeout:
        Wall time to wait for the scope's trigger after ``Go``, s (> 0).
    """

    name = "seed_board"

    def __init__(self, link: SerialLink, clock: Any, *, scope: Any = None, lockout: float = LOCKOUT + 0.01,
                 policy: str = "wait", condition_peak: Mapping[int, float] | None = None,
                 confirm_timeout: float = 2.0) -> None:
        if not (math.isfinite(lockout) and lockout >= LOCKOUT):
            raise ValueError(f"lockout must be >= {LOCKOUT} s (the firmware's), got {lockout!r}")
        if policy not in ("wait", "refuse"):
            raise ValueError(f"policy must be 'wait' or 'refuse', got {policy!r}")
        if not confirm_timeout > 0:
            raise ValueError(f"confirm_timeout must be > 0 s, got {confirm_timeout!r}")
        self._link, self._clock, self.scope = link, clock, scope
        self.lockout, self.policy, self.confirm_timeout = float(lockout), policy, float(confirm_timeout)
        self.condition_peak = {0: 0.0, 4: 0.0, **dict(condition_peak or {})}
        # What the board holds, as far as this driver set it (None: unknown since power-up).
        self.task: int | None = None
        self.noise: bool | None = None
        self.v_bias: float | None = None
        self.offsets: tuple[float, float] | None = None
        self.coefficient: float | None = None
        self.noise_scale: float | None = None
        self.last_go: float | None = None  # bench-clock time of the last confirmed run start
        self.line_free = -math.inf  # bench time (s) the UART has sent everything written so far
        self.runs = 0

    # -- commands ------------------------------------------------------------------------
    def set_bias(self, volts: float) -> None:
        """Bias ``D<0|1|2>``: 0.05, 0.1 or 0.2 V; latched (with the embedding scale
        5 x volts) by the next :meth:`init`."""
        if volts not in BIAS_VOLTS:
            raise LimitError(f"bias {volts!r} V: the firmware offers only {', '.join(map(str, BIAS_VOLTS))} V")
        self._send(f"D{BIAS_VOLTS.index(volts)}")
        self.v_bias = float(volts)

    def init(self, task: int, noise: bool) -> None:
        """Init ``In<type><noise>``: task type 0/4 unconditional, 1-3 the three classes;
        noise on (1) or off (0). Refused when its time-embedding DACs would overflow."""
        if isinstance(task, bool) or task not in TASK_TYPES:
            raise LimitError(f"task type must be one of {TASK_TYPES}, got {task!r}")
        scale = FIXED_SCALE.get(task)
        if scale is None:
            if self.v_bias is None:
                raise LimitError(f"set_bias first: type {task}'s embedding scale is 5 x the bias")
            scale = 5 * self.v_bias
        if task not in self.condition_peak:
            raise LimitError(f"task type {task}: its condition peak is unknown (pass condition_peak)")
        peak = scale * (1.0 + self.condition_peak[task])
        if peak > DAC_MAX:
            raise LimitError(f"task type {task} with bias {self.v_bias} V: embedding reaches {peak:.3g} V, "
                             f"beyond the DAC range {DAC_MAX:.4g} V (choose a lower bias)")
        self._send(f"In{task}{int(bool(noise))}")
        self.task, self.noise = task, bool(noise)

    def set_offsets(self, first: float, second: float) -> None:
        """Noise-channel offsets ``O<aa><bb>``, V: -0.50 to +0.49 in 0.01 V steps."""
        codes = []
        for name, volts in (("first", first), ("second", second)):
            if isinstance(volts, bool) or not isinstance(volts, (int, float)) or not -0.5 <= volts <= 0.49 + 1e-9:
                raise LimitError(f"offset {name} {volts!r} V outside -0.50..+0.49 V")
            codes.append(_steps(f"offset {name}", volts - OFFSET_MIN, OFFSET_STEP, 0, 99, "V"))
        self._check_noise(self.noise_scale, (first, second))
        self._send(f"O{codes[0]:02d}{codes[1]:02d}")
        self.offsets = (float(first), float(second))

    def set_coefficient(self, value: float) -> None:
        """Score coefficient ``C<ddd>``: 0.01 to 9.99 in 0.01 steps (the firmware ignores 0),
        and its DAC (0.5 x beta x value) must stay below the DAC range: value <= 3.99."""
        code = _steps("coefficient", value, 0.01, 1, 999, "")
        if 0.5 * BETA_PEAK * value > DAC_MAX:
            raise LimitError(f"coefficient {value}: its DAC reaches {0.5 * BETA_PEAK * value:.3g} V, "
                             f"beyond {DAC_MAX:.4g} V (at most 3.99)")
        self._send(f"C{code:03d}")
        self.coefficient = float(value)

    def set_noise_scale(self, value: float) -> None:
        """Noise scale ``N<ddd>``: 0.00 to 9.99 in 0.01 steps, such that 6 x value x 0.5
        plus |offset| stays within the noise DACs' range."""
        code = _steps("noise scale", value, 0.01, 0, 999, "")
        self._check_noise(value, self.offsets)
        self._send(f"N{code:03d}")
        self.noise_scale = float(value)

    def go(self) -> float:
        """Run one sample (``Go``); returns the bench-clock time the run started (s).

        Waits for or refuses the lock-out, arms the scope, confirms the trigger, then
        waits on the bench clock until the run is over (RUN_DURATION).
        """
        missing = [n for n in ("task", "offsets", "coefficient", "noise_scale") if getattr(self, n) is None]
        if missing:
            raise LimitError(f"go refused: {', '.join(missing)} not set since the driver opened "
                             "(the firmware's power-up values can overflow its DACs)")
        self._check_noise(self.noise_scale, self.offsets)
        for attempt in (1, 2):
            self._respect_lockout()
            if self.scope is not None:
                self.scope.single()
                self.scope.check_errors()  # arming raised no error (single() returns once armed)
            self._send("Go")
            # The firmware starts its lock-out counter when the Go line has arrived: after
            # everything written before it has crossed the 9600-baud line, then Go itself.
            started = self.line_free
            if self.scope is None or self._confirmed():
                break
            log.warning("%s: no trigger after Go (attempt %d): the board dropped it", self.name, attempt)
            self.last_go = started  # the board may have restarted its counter: wait a full lock-out
            if attempt == 2:
                raise InstrumentError(self.name, f"Go not confirmed: no scope trigger within "
                                      f"{self.confirm_timeout:g} s, twice (board off, uninitialised or unwired?)")
        self.last_go = started
        self.runs += 1
        self._clock.sleep(max(0.0, started + RUN_DURATION - self._clock.now()))  # until the run is over
        return started

    def snapshot(self) -> Settings:
        """What this driver last set on the board (name -> (value, unit)): the firmware
        answers nothing, so these are the driver's record since it opened, None where
        nothing was set (the power-up values are unknown). Also the line, the lock-out
        and the runs confirmed so far."""
        first, second = self.offsets if self.offsets is not None else (None, None)
        return {
            "task": (self.task, ""),
            "noise": (self.noise, ""),
            "v_bias": (self.v_bias, "V"),
            "offset_first": (first, "V"),
            "offset_second": (second, "V"),
            "coefficient": (self.coefficient, ""),
            "noise_scale": (self.noise_scale, ""),
            "baud": (BAUD, "bit/s"),
            "lockout": (self.lockout, "s"),
            "policy": (self.policy, ""),
            "runs": (self.runs, ""),
        }

    def safe_state(self) -> None:
        """Noise off and offsets to 0 V (``In<type>0``, ``O5050``): the board has no other
        source to zero; safe to call twice, and before any init (then type 0)."""
        self._send("O5050")
        self.offsets = (0.0, 0.0)
        task = self.task if self.task is not None else 0
        self._send(f"In{task}0")
        self.task, self.noise = task, False

    # -- internals -----------------------------------------------------------------------
    def _check_noise(self, scale: float | None, offsets: tuple[float, float] | None) -> None:
        if scale is None or offsets is None:
            return
        worst = GAUSS_PEAK * scale * BETA_PEAK + max(abs(o) for o in offsets)
        if worst > DAC_MAX:
            raise LimitError(f"noise scale {scale} with offsets {offsets} V: the noise DACs reach "
                             f"{worst:.3g} V, beyond {DAC_MAX:.4g} V (6 x scale x 0.5 + |offset|)")

    def _respect_lockout(self) -> None:
        if self.last_go is None:
            return  # the counter's phase after power-up is unknown: go() retries a dropped Go
        # The firmware's tick counter restarts at each run and wraps every WRAP_PERIOD; a Go
        # is taken only more than LOCKOUT into the current lap. Near the end of a lap the Go
        # line could arrive after the wrap, so wait for the next lap's lock-out there too.
        into_lap = (self._clock.now() - self.last_go) % WRAP_PERIOD
        if into_lap < self.lockout:
            left = self.lockout - into_lap
        elif into_lap > WRAP_PERIOD - WRAP_MARGIN:
            left = WRAP_PERIOD - into_lap + self.lockout
        else:
            return
        if self.policy == "refuse":
            raise LimitError(f"go refused: {left:.3g} s of the board's {self.lockout:g} s lock-out remain "
                             "(the firmware would drop it silently)")
        log.info("%s: waiting %.3g s for the lock-out", self.name, left)
        self._clock.sleep(left)

    def _confirmed(self) -> bool:
        try:
            self.scope.wait_triggered(self.confirm_timeout)
        except InstrumentTimeout:
            return False
        return True

    def _send(self, command: str) -> None:
        """One command line; printed text from earlier commands is discarded first."""
        data = command.encode("ascii") + b"\r\n"
        with self._link.lock:
            self._link.discard_input()
            # At 9600 baud the bytes take ~1 ms each to cross the line, after whatever was
            # written before them. The sender pays that time on the bench clock before the
            # line is handed over, so the board reads it at the bench time it has arrived:
            # on the simulated bench only this thread moves the clock around a line, which
            # keeps a run bit-repeatable (the emulator never races the driver for `now`).
            # On hardware the real UART adds its line time once more after write(): the
            # board then sees each Go later than `line_free`, never earlier, so the
            # lock-out still holds.
            self.line_free = max(self._clock.now(), self.line_free) + len(data) * 10 / BAUD
            self._clock.sleep(max(0.0, self.line_free - self._clock.now()))
            self._link.write(data)


__all__ = ["BAUD", "LOCKOUT", "RUN_DURATION", "SAMPLE_TIME", "SeedBoard"]
