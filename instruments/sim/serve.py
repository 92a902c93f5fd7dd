"""The simulated instruments of one world, each on its own loopback socket.

Used by the embedded simulated bench (``backend = "sim"``) and by
``rrambench sim serve``, which lets outside tools (PyMeasure, QCoDeS, a terminal)
talk to the simulator like to hardware.
"""

from __future__ import annotations

import logging

from instruments.sim.infiniivision import InfiniiVisionEmulator
from instruments.sim.keithley2450 import Keithley2450Emulator
from instruments.sim.macro_controller import MacroControllerEmulator
from instruments.sim.seed_board import SeedBoardEmulator
from instruments.sim.servers import LoopbackServer
from instruments.sim.world import SimWorld

log = logging.getLogger("rrambench.sim")


class SimInstruments:
    """SMU, scope, controller-board and seed sampling-board emulators of ``world``
    behind loopback servers.

    Parameters
    ----------
    world:
        The shared physical state.
    host:
        Bind address (loopback unless ``allow_remote``).
    ports:
        Ports for smu, scope and controller; 0 picks free ports (the seed's sampling
        board, ``seed_board``, always takes a free port).
    """

    def __init__(
        self,
        world: SimWorld,
        *,
        host: str = "127.0.0.1",
        ports: tuple[int, int, int] = (0, 0, 0),
        allow_remote: bool = False,
    ) -> None:
        self.world = world
        self.smu = Keithley2450Emulator(world)
        self.scope = InfiniiVisionEmulator(world)
        self.macro_controller = MacroControllerEmulator(world)
        self.seed_board = SeedBoardEmulator(world)
        common = {"host": host, "allow_remote": allow_remote}
        self.servers = {
            "smu": LoopbackServer(self.smu.handle, delimiter=b"\n", name="smu",
                                  faults=world.faults["smu"], port=ports[0], seed=1, **common),
            "scope": LoopbackServer(self.scope.handle, delimiter=b"\n", name="scope",
                                    faults=world.faults["scope"], port=ports[1], seed=2, **common),
            "macro_controller": LoopbackServer(self.macro_controller.handle, delimiter=b"\x00", name="macro_controller",
                                         faults=world.faults["macro_controller"], port=ports[2], seed=3, **common),
            "seed_board": LoopbackServer(self.seed_board.handle, delimiter=b"\n", name="seed_board",
                                           seed=4, **common),
        }

    def start(self) -> SimInstruments:
        try:
            for server in self.servers.values():
                server.start()
        except OSError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def __enter__(self) -> SimInstruments:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def resources(self) -> dict[str, str]:
        """Resource strings: VISA for the SCPI instruments, pyserial URLs for the boards."""
        return {
            "smu": self.servers["smu"].resource,
            "scope": self.servers["scope"].resource,
            "macro_controller": self.servers["macro_controller"].url,
            "seed_board": self.servers["seed_board"].url,
        }
