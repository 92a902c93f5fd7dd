"""Reading untrusted run files in a separate process.

The HDF5 library trusts a file's internal structure: a damaged file can make it
loop (a corrupted global-heap reference in an attribute does), retry its reads for
minutes, or crash the process. Python cannot interrupt C code, so the only
protection is to do the first complete read in another process and watch it. This
module keeps one helper process (``python -m analysis.isolation``) and reuses it, so
checking a file costs one read, not a Python start.

The helper reads the file's metadata, then every dataset in slices of at most
``SLICE_BYTES``, and reports progress after each piece: a file counts as damaged
when ``timeout`` s pass without progress (a healthy file of any size passes; a
looping read fails within ``timeout``). The helper runs in its own session with its
stderr discarded: Ctrl-C at the terminal reaches only the caller, which stops the
helper, and nothing the HDF5 library prints on a damaged file reaches the user.

Used for every file a user hands to the CLI (``info``, ``report``, ``calibrate``,
``run --resume``) and by the GUI's run browser (from a background thread); library
callers opt in with ``open_run(path, isolate=True)``.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from analysis.run_reader import RunFileError, _guard, _open, open_run

#: s without progress after which a file counts as damaged. Reading the metadata or one
#: slice of a healthy file takes well under a second, even on a loaded machine.
CHECK_TIMEOUT = 5.0
#: s the helper may take to start (Python, numpy, h5py): a property of the machine, not the file.
START_TIMEOUT = 120.0
#: Largest read of one dataset, bytes: memory of the helper, and the unit of progress.
SLICE_BYTES = 16 << 20

_lock = threading.Lock()
_helper: _Helper | None = None


class _Helper:
    """The helper process and its line protocol: one JSON object per line each way."""

    def __init__(self) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        main = threading.current_thread() is threading.main_thread()
        # Own session (process group on Windows): Ctrl-C at the terminal is the caller's alone.
        alone = {"start_new_session": True} if os.name == "posix" else \
            {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "analysis.isolation", str(os.getpid()), "1" if main else "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, **alone)
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name="rrambench-file-check-reader").start()
        if self.receive(START_TIMEOUT) != {"ready": True}:
            self.stop()
            raise RunFileError("the file-check helper process did not start")

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next message; None after ``timeout`` s of silence. EOFError if the helper died."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            raise EOFError("the file-check helper exited")
        return json.loads(line)

    def _read(self) -> None:
        """Reader thread: the helper's lines into the queue, None at its end."""
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                self._lines.put(line)
        except (OSError, ValueError):
            pass
        self._lines.put(None)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def _stop() -> None:
    global _helper
    if _helper is not None:
        _helper, helper = None, _helper
        helper.stop()


atexit.register(_stop)


def check_readable(path: str | Path, *, timeout: float = CHECK_TIMEOUT) -> None:
    """Read every object of ``path`` in the helper process; raise RunFileError if it
    fails, crashes the reader, or makes no progress for ``timeout`` s.

    Thread-safe (one check at a time). Any interruption (KeyboardInterrupt) stops the
    helper, whatever it was doing, and propagates.
    """
    global _helper
    path = Path(path)
    if not path.exists():
        raise RunFileError(f"{path}: no such file")
    if path.is_dir():
        raise RunFileError(f"{path}: a folder, not a run file")
    with _lock:
        try:
            if _helper is None or _helper.proc.poll() is not None:
                _stop()
                _helper = _Helper()
            _helper.send({"path": str(path.resolve())})
            while True:
                message = _helper.receive(timeout)
                if message is None:
                    _stop()
                    raise RunFileError(f"{path}: damaged run file (the HDF5 library made no progress reading "
                                       f"it for {timeout:g} s)")
                if "error" in message:
                    break
        except RunFileError:
            raise
        except (EOFError, OSError, ValueError):  # the helper died, or its answer is garbled
            _stop()
            raise RunFileError(f"{path}: damaged run file (reading it crashed the HDF5 library)") from None
        except BaseException:
            _stop()  # interrupted mid-check: the helper's state is unknown
            raise
    if message["error"]:
        raise RunFileError(message["error"].replace(str(path.resolve()), str(path)))


# -- the helper process -----------------------------------------------------------------------
def _read_all(path: Path, progress) -> None:
    """Open ``path`` as ``open_run`` does, then read every attribute and every dataset in slices."""
    run = open_run(path)
    progress()
    with _open(path) as h5:
        for name in run.datasets:
            run.attrs(name)
            with _guard(path, name):
                ds = h5[name]
                if not ds.shape or ds.shape[0] == 0:
                    ds[()]
                    continue
                row = max(1, ds.dtype.itemsize * (ds.size // ds.shape[0]))
                step = max(1, SLICE_BYTES // row)
                for start in range(0, ds.shape[0], step):
                    ds[start:start + step]
                    progress()


def _die_with_parent(parent: int, main_thread: bool) -> None:
    """End this helper when the caller dies, even while HDF5 loops (Linux; elsewhere best effort)."""
    if main_thread and sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG, bound to the forking thread
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(0)


def _serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    def send(message: dict[str, Any]) -> None:
        stdout.write(json.dumps(message).encode() + b"\n")
        stdout.flush()

    send({"ready": True})
    for line in stdin:
        path = Path(json.loads(line)["path"])
        try:
            _read_all(path, lambda: send({"progress": True}))
            send({"error": ""})
        except RunFileError as exc:
            send({"error": str(exc)})
        except Exception as exc:  # anything else the damage provokes is still damage
            send({"error": f"{path}: damaged run file ({type(exc).__name__}: {exc})"})


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(int(sys.argv[1]), sys.argv[2] == "1")
    _serve(sys.stdin.buffer, sys.stdout.buffer)
