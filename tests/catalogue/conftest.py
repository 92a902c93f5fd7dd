"""A throwaway PostgreSQL server for the catalogue tests, and the two back ends as one fixture.

The server runs from the Debian ``postgresql`` binaries (``initdb``, ``pg_ctl``: on PATH,
in /usr/local/bin or /usr/lib/postgresql/<version>/bin) as an unprivileged user (initdb
refuses root), with its data and socket in a temporary folder and TCP on a free loopback
port. Without the binaries the PostgreSQL cases skip, except in CI (``CI=true``), where
they fail: CI installs them (``.ci/run``).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

BACKENDS = ("sqlite", "postgresql")
_databases = itertools.count()


def pg_binary(name: str) -> str | None:
    """Where the PostgreSQL program ``name`` is, or None."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ["/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        if os.access(os.path.join(folder, name), os.X_OK):
            return os.path.join(folder, name)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """URL of the superuser's database on a fresh PostgreSQL server (trust authentication)."""
    initdb, pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are missing: CI must install Debian postgresql")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not installed")
    base = Path(tempfile.mkdtemp(prefix="rrambench-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the server runs as nobody, in a folder nobody owns
        as_user = ["runuser", "-u", "nobody", "--"]
        os.chmod(base, 0o755)
        shutil.chown(base, "nobody")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    data, port = base / "data", _free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True, env=env, timeout=120)
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60",
                    "-o", options, "start"], check=True, capture_output=True, env=env, timeout=120)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       env=env, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def catalogue_url(request, tmp_path) -> str | None:
    """None (the default: runs.sqlite beside the runs) or a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return None
    import psycopg

    server = request.getfixturevalue("postgres")
    name = f"catalogue_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"
