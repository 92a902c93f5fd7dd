"""The engine's hook into the run catalogue (:mod:`analysis.catalogue`).

Every run goes through :class:`~protocols.engine.runner.RunEngine` (``rrambench run``,
``run_protocol``, the GUI, the demo), so the engine indexes it: a row when the run
file is created (from the header it wrote), again when a resume starts and when the
run ends (from the file itself). A catalogue that fails (database unreachable, disk
full, driver missing) never fails nor loses a run: one warning line, and the run goes
on; the file stays the truth and ``rrambench runs --reindex`` catches up.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.catalogue import Catalogue
    from protocols.engine.run_writer import RunHeader

log = logging.getLogger("rrambench.catalogue")


class RunIndex:
    """Indexes one run in the catalogue at ``url`` (None: ``runs.sqlite`` beside the run file)."""

    def __init__(self, url: str | None, path: Path) -> None:
        self.url, self.path = url, path
        self._record: dict[str, Any] | None = None
        self._catalogue: Catalogue | None = None
        self._warned = False

    def prepare_new(self, header: RunHeader) -> None:
        """Remember the row of a new run, from the header its file is created with."""
        from analysis.run_record import new_record
        from analysis.schema import RUNNING, SCHEMA_VERSION

        self._record = new_record(
            self.path, protocol=header.protocol, status=RUNNING, steps_completed=0, steps_total=header.steps_total,
            started=header.started, ended=None, error="", simulated=header.simulated,
            instruments=dict(header.identities), sample=dict(getattr(header, "sample", {}) or {}),
            parameters=header.parameters, outcome={}, seed=header.seed, world_seed=header.world_seed,
            writer_pid=os.getpid(), schema_version=SCHEMA_VERSION)

    def prepare_resume(self) -> None:
        """Remember the row of a run about to be resumed, read from its file (closed now)."""
        def read() -> None:
            from analysis.run_record import read_record
            from analysis.schema import RUNNING

            self._record = {**read_record(self.path), "status": RUNNING, "ended": None, "error": "",
                            "outcome": {}, "writer_pid": os.getpid()}

        self._safely("read the run to resume", read)

    def started(self) -> None:
        """Index the run as running (once its file exists)."""
        if self._record is not None:
            self._safely("index the run", lambda: self._open().put([self._record]))

    def ended(self) -> None:
        """Index the run as its file says it ended, then let the catalogue go."""
        from analysis.run_record import read_record

        try:
            self._safely("index the run's end", lambda: self._open().put([read_record(self.path)]))
        finally:
            if self._catalogue is not None:
                self._catalogue.close()
                self._catalogue = None

    def _open(self) -> Catalogue:
        from analysis.catalogue import Catalogue

        if self._catalogue is None:
            self._catalogue = Catalogue(self.url, self.path.parent)
        return self._catalogue

    def _safely(self, what: str, work: Any) -> None:
        """``work()``; any failure is one warning line (the first per run; later ones logged)."""
        try:
            work()
        except Exception as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            if self._warned:
                log.info("catalogue: could not %s: %s", what, text)
                return
            self._warned = True
            print(f"rrambench: warning: catalogue: could not {what} ({text}); the run goes on, its file is "
                  f"complete (rrambench runs --reindex {self.path.parent} catches up)", file=sys.stderr, flush=True)
