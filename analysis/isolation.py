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
import functools
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

try:
    import fcntl  # POSIX: the answer pipes' size
except ImportError:  # Windows
    fcntl = None

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
        self.proc = _spawn()
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


def _spawn() -> subprocess.Popen:
    """A new helper process (``python -m analysis.isolation``) talking on its stdin and stdout."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    main = threading.current_thread() is threading.main_thread()
    # Own session (process group on Windows): Ctrl-C at the terminal is the caller's alone.
    alone = {"start_new_session": True} if os.name == "posix" else \
        {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return subprocess.Popen(
        [sys.executable, "-m", "analysis.isolation", str(os.getpid()), "1" if main else "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, **alone)


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
    path = Path(path)
    message = _ask(path, {}, timeout)
    if message["error"]:
        raise RunFileError(message["error"].replace(str(path.resolve()), str(path)))


def _ask(path: Path, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send ``request`` about ``path`` to the shared helper; its final answer (RunFileError on
    a missing file, a hang or a crash)."""
    global _helper
    if not path.exists():
        raise RunFileError(f"{path}: no such file")
    if path.is_dir():
        raise RunFileError(f"{path}: a folder, not a run file")
    with _lock:
        try:
            if _helper is None or _helper.proc.poll() is not None:
                _stop()
                _helper = _Helper()
            _helper.send({"path": str(path.resolve()), **request})
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
    return message


def read_records(paths: Iterable[str | Path], *, timeout: float = CHECK_TIMEOUT,
                 workers: int | None = None) -> Iterator[tuple[Path, dict[str, Any] | str]]:
    """The catalogue record (:func:`analysis.run_record.read_record`) of each file, read in
    watched helpers: ``(path, record)``, or ``(path, one-line reason)`` for a file that is
    damaged, hangs the HDF5 library for ``timeout`` s or crashes its reader. In no set order.
    The helpers start at the first record asked for; :class:`RecordReader` starts them at once."""
    with RecordReader(paths, timeout=timeout, workers=workers) as reader:
        yield from reader


class RecordReader:
    """:func:`read_records` with its helpers started when it is made, so that the caller's
    own work (a catalogue's tables, its transaction) overlaps their start; iterate it once,
    and close it (a context manager) whether or not it was iterated.

    Indexing a folder must cost about one open per file, so this keeps ``workers`` helpers
    (default: up to 2, one per core) busy with several requests each, instead of one
    checked round trip per file. On POSIX the helpers are forked from this process when it
    runs no other thread (no Python start-up per helper), else started as programs; a
    helper that hangs or dies is replaced and the files it had not answered are sent again.
    """

    def __init__(self, paths: Iterable[str | Path], *, timeout: float = CHECK_TIMEOUT,
                 workers: int | None = None) -> None:
        self.todo = deque(Path(p) for p in paths)
        self.timeout = timeout
        self.pool: list[_Worker] = []
        _resolved_folder.cache_clear()  # a folder's symlinks may have changed since the last call
        if self.todo and os.name == "posix":
            count = workers or min(2, os.cpu_count() or 1)
            count = max(1, min(count, 1 + len(self.todo) // 32))  # a few files: one helper is quicker to start
            self.pool = [_Worker() for _ in range(count)]  # all forked before this runs any thread
            for w in self.pool:
                w.fill(self.todo)

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the helpers (safe to call twice)."""
        for w in self.pool:
            w.stop()
        self.pool = []

    def __iter__(self) -> Iterator[tuple[Path, dict[str, Any] | str]]:
        todo, timeout, pool = self.todo, self.timeout, self.pool
        if os.name != "posix":  # no select() on pipes: one file at a time through the shared helper
            while todo:
                path = todo.popleft()
                try:
                    message = _ask(path, {"record": True}, timeout)
                    yield path, message.get("record") or " ".join(message["error"].split())
                except RunFileError as exc:
                    yield path, " ".join(str(exc).split())
            return
        try:
            while todo or any(w.sent for w in pool):
                for w in pool:
                    w.fill(todo)
                busy = [w for w in pool if w.sent]
                if all(len(w.sent) > GATHER_QUEUED for w in busy):
                    # every helper has files queued: let answers gather, so that one wake-up of
                    # this process takes many (a wake-up per file cost it ~0.2 ms a file)
                    time.sleep(GATHER)
                wait = max(0.0, min(w.deadline(timeout) for w in busy) - time.monotonic())
                readable = set(select.select([w.rfd for w in busy], [], [], wait)[0])
                for w in busy:
                    reason = ""
                    if w.rfd in readable:
                        try:
                            for message in w.messages():
                                path = w.sent.popleft()
                                error = message["error"]
                                yield path, message["record"] if not error else " ".join(error.split())
                        except (EOFError, OSError, ValueError, KeyError, IndexError):
                            reason = "reading it crashed the HDF5 library"
                    elif time.monotonic() >= w.deadline(timeout):
                        reason = f"the HDF5 library made no progress reading it for {timeout:g} s"
                    if reason:  # the oldest unanswered file is the culprit: answers come in order
                        if w.sent:
                            path = w.sent.popleft()
                            yield path, f"{path}: damaged run file ({reason})"
                        todo.extendleft(reversed(w.sent))
                        w.stop()
                        pool[pool.index(w)] = _Worker()
        finally:
            self.close()


#: s, how long :func:`read_records` lets answers gather while every helper has files queued.
GATHER = 0.005
#: ... more than this many: then each wake-up of the caller takes many answers, down to the
#: last few files of a folder (with half a depth, the last 256 files cost a wake-up each).
GATHER_QUEUED = 16


class _Worker:
    """One helper of :func:`read_records`: requests out on one pipe, JSON lines back on another."""

    #: Requests in flight per helper: it never waits for the next path, even while the caller
    #: stores a batch of records (~15-20 ms for 200 on the 2-core machine, when a helper reads
    #: a file in 0.15-0.3 ms: 64 ran dry). 256 lines of ~60 B never fill the request pipe.
    DEPTH = 256

    def __init__(self) -> None:
        self.sent: deque[Path] = deque()
        self.ready = False
        self.last = time.monotonic()
        self._buffer = b""
        self.proc: subprocess.Popen | None = None
        self.pid = 0
        if threading.active_count() == 1 and hasattr(os, "fork"):
            self._fork()
        else:  # forking a threaded process can copy a lock held by another thread: start a program
            self.proc = _spawn()
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.wfd, self.rfd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
            _widen(self.rfd)

    def _fork(self) -> None:
        parent = os.getpid()
        requests, answers = os.pipe(), os.pipe()
        _widen(answers[0])
        pid = os.fork()
        if pid == 0:  # the helper: its own session, SIGINT ignored, HDF5's complaints discarded
            try:
                os.setsid()
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                os.close(requests[1])
                os.close(answers[0])
                os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
                _die_with_parent(parent, True)
                _serve(os.fdopen(requests[0], "rb"), os.fdopen(answers[1], "wb"))
            finally:
                os._exit(0)  # never the parent's atexit handlers, nor its open files' flushes
        os.close(requests[0])
        os.close(answers[1])
        self.pid, self.wfd, self.rfd = pid, requests[1], answers[0]

    def deadline(self, timeout: float) -> float:
        return self.last + (timeout if self.ready else START_TIMEOUT)

    def fill(self, todo: deque[Path]) -> None:
        """Send paths until DEPTH are in flight."""
        if not self.sent:
            self.last = time.monotonic()  # an idle helper's silence is not a hang
        lines = []
        while todo and len(self.sent) < self.DEPTH:
            path = todo.popleft()
            self.sent.append(path)
            lines.append(b'{"record": true, "path": %s}\n' % json.dumps(_resolved(path)).encode())
        if lines:
            os.write(self.wfd, b"".join(lines))  # at most DEPTH lines of ~60 B: never blocks on the pipe

    def messages(self) -> list[dict[str, Any]]:
        """The answers that arrived (EOFError when the helper died)."""
        chunk = os.read(self.rfd, 1 << 20)
        if not chunk:
            raise EOFError("the helper exited")
        self.last = time.monotonic()
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        out = []
        for line in lines:
            message = json.loads(line)
            if message.get("ready"):
                self.ready = True
            elif "error" in message:
                out.append(message)
        return out

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self.proc = None
        elif self.pid:
            for fd in (self.wfd, self.rfd):
                os.close(fd)
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.pid = 0


def _widen(fd: int) -> None:
    """Give the answer pipe at ``fd`` room for a whole depth of answers (Linux; elsewhere the
    default stays): a helper whose answers fill the pipe (64 KiB, ~60 records) while the
    caller stores a batch waits, idle, until it reads again. Measured on 1,000 files on the
    2-core machine with :attr:`_Worker.DEPTH` 256: reindex 249-275 ms -> 234-258 ms (medians 266, 240)."""
    size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if size is None:
        return
    try:
        fcntl.fcntl(fd, size, 1 << 20)  # /proc/sys/fs/pipe-max-size, 1 MiB unless an admin lowered it
    except OSError:
        pass  # a lowered limit: the default pipe, slower, still correct


def _resolved(path: Path) -> str:
    """``path.resolve()``, its folder's part resolved once per folder (a thousand files of one
    folder cost one resolution, not a thousand: this runs in the parent while helpers read)."""
    if path.is_symlink():
        return str(path.resolve())
    return os.path.join(_resolved_folder(path.parent), path.name)


@functools.lru_cache(maxsize=64)
def _resolved_folder(folder: Path) -> str:
    return str(folder.resolve())


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
        request = json.loads(line)
        path = request["path"]  # text: a reindex sends a thousand, and reports read it as text
        try:
            if request.get("record"):  # the catalogue's few values, no data read (read_records)
                from analysis.run_record import read_record

                send({"error": "", "record": read_record(path)})
                continue
            _read_all(Path(path), lambda: send({"progress": True}))
            send({"error": ""})
        except RunFileError as exc:
            send({"error": str(exc)})
        except Exception as exc:  # anything else the damage provokes is still damage
            send({"error": f"{path}: damaged run file ({type(exc).__name__}: {exc})"})


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(int(sys.argv[1]), sys.argv[2] == "1")
    _serve(sys.stdin.buffer, sys.stdout.buffer)
