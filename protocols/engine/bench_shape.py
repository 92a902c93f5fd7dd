"""What a run's inputs are checked against before its first step: :class:`BenchShape`.

``Protocol.validate(shape)`` refuses every input the run would refuse (cross-parameter
rules, cells against the board's geometry, overlapping selections, files named in
parameters). Both paths call it with the same protocol code:

* ``rrambench run --dry-run`` with :meth:`BenchShape.of_config`: known from the bench
  config alone, no instrument opened;
* :class:`~protocols.engine.runner.RunEngine`, before the first step and before the run
  file exists, with :meth:`BenchShape.of_bench`: what the open bench reports.

On the simulated bench the two are the same by construction: its world is the board as
built (:data:`~instruments.macro_controller_wire.BOARD_MACROS` macros of
``BOARD_ROWS`` x ``BOARD_COLS``, loop constants ``LOOP_RC`` and ``LOOP_DT_STEP``). On
hardware the dry run assumes the board as built, and the run checks against the geometry
the board reports at IDENTIFY and the loop constants it reports at LOOP_INFO: only a board
of another size or time base can refuse (or accept) there what the dry run did not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from instruments.macro_controller_wire import BOARD_COLS, BOARD_MACROS, BOARD_ROWS, LOOP_DT_STEP, LOOP_RC

if TYPE_CHECKING:
    from instruments.bench import Bench
    from instruments.config import BenchConfig

__all__ = ["BenchShape"]


@dataclass(frozen=True)
class BenchShape:
    """The bench facts protocols validate against: the macro controller's geometry
    (macros, rows, columns), the board that runs ``sample``'s loop (``[sampler] board``),
    whether the bench has the seed's board, and the macro controller's loop constants
    (integrator time constant ``loop_rc`` and fine step ``loop_dt_step``, s)."""

    n_macros: int = BOARD_MACROS
    rows: int = BOARD_ROWS
    cols: int = BOARD_COLS
    sampler_board: str = "macro_controller"
    seed_board: bool = True
    loop_rc: float = LOOP_RC
    loop_dt_step: float = LOOP_DT_STEP

    @property
    def geometry(self) -> tuple[int, int, int]:
        """(n_macros, rows, cols), the arguments of the cell selections."""
        return self.n_macros, self.rows, self.cols

    def describe(self) -> str:
        return (f"{self.n_macros} macros of {self.rows}x{self.cols}, loop RC {self.loop_rc:g} s, "
                f"fine step {self.loop_dt_step:g} s")

    @classmethod
    def of_config(cls, config: BenchConfig) -> BenchShape:
        """Without opening an instrument: the board as built, the config's sampling board,
        a seed board when simulated or named in ``[resources]``."""
        return cls(sampler_board=config.sampler_board,
                   seed_board=config.simulated or "seed_board" in config.resources)

    @classmethod
    def of_bench(cls, bench: Bench | None) -> BenchShape:
        """What the open bench reports (the board's IDENTIFY and LOOP_INFO); the board as built
        when there is no bench (a protocol that touches no instrument)."""
        if bench is None:
            return cls()
        board = bench.macro_controller
        info, loop = board.info(), board.loop
        return cls(info.n_macros, info.rows, info.cols, bench.config.sampler_board, bench.seed_board is not None,
                   loop.rc, loop.dt_step)
