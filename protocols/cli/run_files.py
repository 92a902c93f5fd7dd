"""The run files a user hands to the CLI: every one is read first in a watched helper process.

A damaged, truncated or foreign file (or a folder where a file is expected) is a
usage error: one line on stderr and exit code 2, within ``isolation.CHECK_TIMEOUT``
s of no progress, whatever the HDF5 library would do with it in this process
(``analysis.isolation``). Ctrl-C during the check stops the helper; the command
ends with exit code 130 and one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from protocols.engine.errors import UsageError

if TYPE_CHECKING:
    from analysis.run_reader import Run


def open_checked(path: Path) -> Run:
    """The run at ``path``, read after the isolated check; any unreadable file is a UsageError."""
    from analysis.run_reader import RunFileError, open_run

    try:
        return open_run(path, isolate=True)
    except RunFileError as exc:
        raise UsageError(_one_line(str(exc))) from None


def check(path: Path) -> None:
    """Raise UsageError unless the whole file at ``path`` reads in the watched helper."""
    from analysis.isolation import check_readable
    from analysis.run_reader import RunFileError

    try:
        check_readable(path)
    except RunFileError as exc:
        raise UsageError(_one_line(str(exc))) from None


def runs_in(folder: Path) -> list[Path]:
    """The run files (``*.h5``, hidden files aside) of ``folder``, by name: by start time
    for the timestamped names ``rrambench run`` gives."""
    return sorted(p for p in folder.glob("*.h5") if not p.name.startswith("."))


def _one_line(text: str) -> str:
    return " ".join(text.split())
