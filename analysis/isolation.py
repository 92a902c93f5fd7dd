"""Reading untrusted run files in a separate process.

The HDF5 library trusts a file's internal structure: a damaged file can make it
loop forever (a corrupted global-heap reference in an attribute does) or crash the
process. Python cannot interrupt C code, so the only protection is to do the first
complete read in another process and watch it with a timeout. This module keeps one
helper process and reuses it, so checking a file costs one read, not a Python start.

Used for every file a user hands to the CLI (``info``, ``report``, ``--resume``,
``calibrate``) and by the GUI's run browser; library callers opt in with
``open_run(path, isolate=True)``.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from analysis.run_reader import RunFileError, open_run

_lock = threading.Lock()
_worker: tuple[mp.process.BaseProcess, Connection] | None = None


def _serve(conn: Connection) -> None:
    """Helper-process loop: read each file completely, answer with the error text or ''."""
    while True:
        try:
            path = conn.recv()
        except EOFError:
            return
        try:
            run = open_run(path)
            for name in run.datasets:
                run.read(name)
                run.attrs(name)
            conn.send("")
        except RunFileError as exc:
            conn.send(str(exc))


def _start() -> tuple[mp.process.BaseProcess, Connection]:
    parent, child = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(child,), daemon=True, name="rrambench-file-check")
    proc.start()
    child.close()
    return proc, parent


def _stop() -> None:
    global _worker
    if _worker is not None:
        proc, conn = _worker
        conn.close()
        proc.kill()
        proc.join(timeout=5)
        _worker = None


atexit.register(_stop)


def check_readable(path: str | Path, *, timeout: float = 30.0) -> None:
    """Read every object of ``path`` in the helper process; raise RunFileError if it
    fails, crashes the reader, or does not finish within ``timeout`` s."""
    global _worker
    path = Path(path)
    if not path.exists():
        raise RunFileError(f"{path}: no such file")
    with _lock:
        if _worker is None or not _worker[0].is_alive():
            _stop()
            _worker = _start()
        proc, conn = _worker
        try:
            conn.send(str(path))
            if not conn.poll(timeout):
                _stop()
                raise RunFileError(f"{path}: damaged run file (the HDF5 library did not finish reading it "
                                   f"within {timeout:g} s)")
            error = conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            _stop()
            raise RunFileError(f"{path}: damaged run file (reading it crashed the HDF5 library)") from None
    if error:
        raise RunFileError(error)
