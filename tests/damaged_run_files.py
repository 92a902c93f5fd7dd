"""Files a user hands to rrambench by mistake: damaged, truncated, foreign, a folder, one that hangs HDF5.

Importable from every test folder (``tests/`` is on ``sys.path`` through ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: Kinds of bad input, each made by :func:`make_damaged` from a good run file.
KINDS = ("truncated-2k", "truncated-8k", "random-bytes", "empty", "text", "directory")

#: Writes two journalled steps in SWMR mode and dies without closing the file: the
#: superblock keeps its "open for writing" mark, as after a SIGKILL.
_ABANDONED_WRITER = """
import os, sys
import numpy as np
from protocols.engine.datasets import Stream
from protocols.engine.run_writer import RunHeader, RunWriter
writer = RunWriter.create(sys.argv[1], RunHeader(protocol="abandoned", parameters={}, seed=1, started="t",
                                                 steps_total=3), [Stream("v", units="V", shape=(64,))])
for step in range(2):
    writer.append("v", np.full((4, 64), float(step)))
    writer.end_step(step, f"step {step}", "completed", start=step, end=step + 1, clock_start=0, clock_end=0)
os._exit(0)
"""


def make_damaged(kind: str, good: Path, folder: Path) -> Path:
    """``folder/<kind>.h5``: a damaged version of the run file ``good``, or foreign content."""
    path = folder / f"{kind}.h5"
    data = good.read_bytes()
    if kind.startswith("truncated-"):
        path.write_bytes(data[: int(kind.removeprefix("truncated-").removesuffix("k")) * 1024])
    elif kind == "random-bytes":
        path.write_bytes(os.urandom(len(data)))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("run,status\n1,completed\n")
    elif kind == "directory":
        path.mkdir()
    else:
        raise ValueError(kind)
    return path


def make_abandoned(folder: Path, name: str = "abandoned.h5") -> Path:
    """A run file whose writer died after 2 of 3 steps: still marked open for SWMR writing."""
    path = folder / name
    subprocess.run([sys.executable, "-c", _ABANDONED_WRITER, str(path)], check=True, timeout=60)
    return path


def make_hanging(folder: Path) -> Path:
    """A file left open by a dead SWMR writer, with a metadata block zeroed: the HDF5
    library's SWMR reader retries its checksummed reads of it for minutes."""
    path = make_abandoned(folder, "hanging.h5")
    with open(path, "r+b") as fh:
        fh.seek(1024)
        fh.write(bytes(64))
    return path
