"""Following a live run: each step as it is journalled, then the run as it ended.

``rrambench info --follow RUN.h5`` prints what :func:`follow` yields. It holds the
file open as an SWMR reader and polls it with ``Dataset.refresh()``, as any viewer
may (docs/hdf5-schema.md, "Watching a live run"): the writer writes the end of the
run into the run-state datasets without reopening the file, so following a run
never stands in its way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from analysis.run_reader import (
    JournalEntry,
    Run,
    _open,
    _plain,
    _writer_alive,
    journal_entries,
    open_run,
)
from analysis.schema import ENTRY, JOURNAL, JOURNAL_COLUMNS, RUNNING, RunField

#: s between two looks at the file.
POLL = 0.5


def follow(path: str | Path, *, poll: float = POLL) -> Iterator[JournalEntry | Run]:
    """Yield every journal entry of the run at ``path`` (those already written first)
    as it lands, then the :class:`Run` as it ended, once its status is no longer
    ``running`` or its writer is gone (then it reads ``interrupted``).

    A schema-1.0 file (run state in attributes, written after the writer's SWMR
    session) is not followed: its entries so far, then the run as it reads now.
    """
    path = Path(path)
    seen = 0
    with _open(path) as h5:
        entry = h5[ENTRY]
        writer = {k: _plain(v) for k, v in entry.attrs.items()}
        status = entry[RunField.STATUS] if RunField.STATUS in entry else None
        columns = {c: h5[f"{JOURNAL}/{c}"] for c, *_ in JOURNAL_COLUMNS} if JOURNAL in h5 else {}
        while True:
            if h5.swmr_mode:
                for ds in [*columns.values(), *([status] if status is not None else [])]:
                    ds.refresh()
            # The status first: the writer journals every step before it writes the final status.
            ended = status is None or _plain(status[()]) != RUNNING or not _writer_alive(writer)
            if columns:
                for item in journal_entries(columns, seen):
                    seen += 1
                    yield item
            if ended:
                break
            time.sleep(poll)
    yield open_run(path)
