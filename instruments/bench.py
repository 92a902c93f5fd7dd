"""The bench: the instruments opened from one configuration file.

``Bench.from_config()`` opens the SMU, the scope and the controller board from
resource strings, and the seed's sampling board (``bench.seed_board``) where there
is one: always on the simulated bench, on hardware when ``[resources].seed_board``
is set (``None`` otherwise). With ``backend = "sim"`` it first starts an embedded simulated
world behind loopback servers and then connects through pyvisa (pyvisa-py) and
pyserial exactly as it would to hardware, so nothing above the transports can tell
the two apart (except ``bench.simulated``, which the run file records).

As a context manager the bench puts every instrument in its safe state on every
exit path: normal end, exception, abort.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from instruments.config import SEED_BOARD_TIMEOUT, BenchConfig, load_config
from instruments.errors import BenchError
from instruments.infiniivision import InfiniiVision3000X
from instruments.keithley2450 import Keithley2450
from instruments.limits import Limits
from instruments.macro_controller import MacroController
from instruments.seed_board import BAUD, SeedBoard
from instruments.serial_link import SerialLink
from instruments.transport import Settings, VisaTransport

log = logging.getLogger("rrambench.bench")


class WallClock:
    """Time on real hardware: seconds of wall time (Unix time).

    ``time_scale`` N > 1 only for a hardware config pointed at ``rrambench sim serve
    --time-scale N``: bench time then passes N times faster than wall time, from now on.
    """

    def __init__(self, time_scale: float = 1.0) -> None:
        self.time_scale = float(time_scale)
        self._wall0 = time.time()

    def now(self) -> float:
        return self._wall0 + (time.time() - self._wall0) * self.time_scale

    def sleep(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        time.sleep(seconds / self.time_scale)


class Bench:
    """SMU, scope, controller board (and the seed's board, or None), their safety envelope
    and the bench clock."""

    def __init__(
        self,
        *,
        smu: Keithley2450,
        scope: InfiniiVision3000X,
        macro_controller: MacroController,
        config: BenchConfig,
        clock: Any,
        world: Any = None,
        sim: Any = None,
        transports: tuple = (),
        seed_board: SeedBoard | None = None,
    ) -> None:
        self.smu, self.scope, self.macro_controller = smu, scope, macro_controller
        self.seed_board = seed_board  # the seed's sampling board, None when the bench has none
        self.config = config
        self.clock = clock
        self.world = world  # SimWorld on the simulated bench, None on hardware
        self._sim = sim
        self._transports = transports
        self._state_path: Path | None = None
        self._closed = False

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        path: str | Path | BenchConfig | None = None,
        *,
        seed: int | None = None,
        state: str | Path | None = None,
        world: Any = None,
    ) -> Bench:
        """Open the bench described by ``path`` (default: the shipped simulated bench).

        ``seed`` and ``state`` override the config's ``[sim]`` values; ``world`` hands
        in an existing SimWorld (tests, GUI) instead of creating one.
        """
        config = path if isinstance(path, BenchConfig) else load_config(path)
        if config.simulated:
            return cls._open_simulated(config, seed=seed, state=state, world=world)
        return cls._open(config, config.resources, clock=WallClock(config.time_scale))

    @classmethod
    def _open_simulated(cls, config: BenchConfig, *, seed, state, world) -> Bench:
        from instruments.sim.serve import SimInstruments
        from instruments.sim.world import SimWorld

        state_path = Path(state) if state else config.state
        if world is None:
            if state_path is not None and state_path.exists():
                world = SimWorld.load(state_path)
            else:
                world = SimWorld(params=config.device_params(), seed=config.seed if seed is None else seed,
                                 formed=config.formed)
        sim = SimInstruments(world).start()
        try:
            bench = cls._open(config, sim.resources, clock=world.clock, world=world, sim=sim)
        except BaseException:
            sim.stop()
            raise
        bench._state_path = state_path
        return bench

    @classmethod
    def _open(cls, config: BenchConfig, resources: dict[str, str], *, clock, world=None, sim=None) -> Bench:
        opened: list = []
        try:
            library = config.visa_library
            smu_io = VisaTransport.open(resources["smu"], name="smu", timeout=config.timeouts["smu"], backend=library)
            opened.append(smu_io)
            scope_io = VisaTransport.open(resources["scope"], name="scope", timeout=config.timeouts["scope"],
                                          backend=library)
            opened.append(scope_io)
            link = SerialLink.open(resources["macro_controller"], name="macro_controller",
                                   timeout=config.timeouts["macro_controller"])
            opened.append(link)
            seed_board_link = None
            if resources.get("seed_board"):
                seed_board_link = SerialLink.open(resources["seed_board"], name="seed_board", baudrate=BAUD,
                                              timeout=config.timeouts.get("seed_board", SEED_BOARD_TIMEOUT))
                opened.append(seed_board_link)
        except BaseException:
            for io in opened:
                io.close()
            raise
        limits = config.limits
        scope = InfiniiVision3000X(scope_io, limits)
        return cls(
            smu=Keithley2450(smu_io, limits),
            scope=scope,
            macro_controller=MacroController(link, limits),
            seed_board=SeedBoard(seed_board_link, clock, scope=scope) if seed_board_link is not None else None,
            config=config,
            clock=clock,
            world=world,
            sim=sim,
            transports=tuple(opened),
        )

    # -- properties -------------------------------------------------------------------
    @property
    def simulated(self) -> bool:
        return self.world is not None

    @property
    def limits(self) -> Limits:
        return self.config.limits

    @property
    def resources(self) -> dict[str, str]:
        return self._sim.resources if self._sim is not None else dict(self.config.resources)

    def identities(self) -> dict[str, str]:
        """``*IDN?``-style identity of each instrument that can identify itself (the seed's
        board cannot: it never replies; :meth:`snapshot` records its resource instead)."""
        return {"smu": self.smu.identify(), "scope": self.scope.identify(),
                "macro_controller": self.macro_controller.identify()}

    def snapshot(self) -> dict[str, Any]:
        """Settings to record in a run file: config, resources, identities, the sampling
        board chosen, the seed board's resource ("" when the bench has none) and, under
        ``"instruments"``, :meth:`instrument_settings`."""
        return {
            "config": self.config.as_dict(),
            "resources": self.resources,
            "identities": self.identities(),
            "simulated": self.simulated,
            "sampler_board": self.config.sampler_board,
            "seed_board": self.resources.get("seed_board", "") if self.seed_board is not None else "",
            "instruments": self.instrument_settings(),
        }

    def instrument_settings(self) -> dict[str, Settings]:
        """Each instrument's ``snapshot()`` by its name (``smu``, ``scope``, ``macro_controller``,
        ``seed_board`` when the bench has one): what it is set to now, setting -> (value, unit).
        The SCPI instruments and the controller board are asked; the seed's board, which
        never replies, is described by what its driver last set."""
        instruments = {"smu": self.smu, "scope": self.scope, "macro_controller": self.macro_controller}
        if self.seed_board is not None:
            instruments["seed_board"] = self.seed_board
        return {name: inst.snapshot() for name, inst in instruments.items()}

    # -- safety -------------------------------------------------------------------------
    def safe_state(self) -> list[str]:
        """Put every instrument in its safe state; attempt all, return the failures.

        The board goes first: it carries the array, so its DACs and pulse generator
        are zeroed even when the SMU link is broken; the seed's board (noise off,
        offsets 0 V) next.
        """
        failures = []
        instruments = [("macro_controller", self.macro_controller), ("smu", self.smu), ("scope", self.scope)]
        if self.seed_board is not None:
            instruments.insert(1, ("seed_board", self.seed_board))
        for name, inst in instruments:
            try:
                inst.safe_state()
            except (BenchError, OSError) as exc:
                log.error("safe state of %s failed: %s", name, exc)
                failures.append(f"{name}: {exc}")
        return failures

    def save_state(self, path: str | Path | None = None) -> None:
        """Persist the simulated world (no-op on hardware, whose state is physical)."""
        if self.world is None:
            return
        target = Path(path) if path is not None else self._state_path
        if target is not None:
            self.world.save(target)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for io in self._transports:
            try:
                io.close()
            except (BenchError, OSError) as exc:
                log.warning("closing %s: %s", io, exc)
        if self._sim is not None:
            self._sim.stop()
        self.save_state()

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.safe_state()
        finally:
            self.close()
