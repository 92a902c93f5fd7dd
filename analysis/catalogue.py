"""The run catalogue: an SQL index of run files, searched instead of opening every file.

One schema, two back ends through SQLAlchemy: an SQLite file beside the runs (the
default, ``<folder>/runs.sqlite``) or one PostgreSQL database that several benches
share (``postgresql://user@host/db``). The run files stay the truth: the engine
indexes a run when it starts and updates it when it ends or resumes, and
:meth:`Catalogue.reindex` rebuilds the rows of a folder from its files (damaged files
skipped with a warning). ``docs/catalogue.md`` describes the tables, URL forms and
faults.

Tables: ``runs`` (one row per run file: where it is, what ran, how it ended, the
sample, seeds, the outcome) and ``run_parameters`` (one row per parameter, numeric
and text value, so ``--where 'v_max>1.2'`` is an indexed lookup on every back end,
not a JSON expression each database spells differently).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import shlex
import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from analysis.run_reader import _writer_alive
from analysis.run_record import RECORD_KEYS, SAMPLE_KEYS
from analysis.schema import INTERRUPTED, RUNNING, RunAttr

log = logging.getLogger("rrambench.catalogue")

#: The embedded catalogue's file name, in the folder of the runs it indexes.
CATALOGUE_FILE = "runs.sqlite"
#: Version of the tables below (table ``catalogue``, key ``version``).
CATALOGUE_VERSION = "1"
#: Statuses a run can have; "missing" (a filter only): the file is gone from where it was indexed.
STATUSES = ("running", "completed", "aborted", "failed", "interrupted")
#: Filters of the CLI and the GUI's search field, besides ``PARAM<op>VALUE`` conditions.
FILTER_KEYS = ("protocol", "status", "chip", "since", "until")
#: s an SQLite writer waits for another's lock before giving up (runs are indexed in ms).
SQLITE_BUSY_TIMEOUT = 30.0
TEXT_BYTES = 255  # parameter text values kept for filtering (the runs row keeps them whole)

metadata = sa.MetaData()
runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("host", sa.String(255), nullable=False),  # where the file is: paths are per host
    sa.Column("path", sa.Text, nullable=False),  # absolute
    sa.Column("folder", sa.Text, nullable=False),  # the path's parent: reindexing replaces a folder's rows
    sa.Column("protocol", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("steps_completed", sa.Integer, nullable=False),
    sa.Column("steps_total", sa.Integer, nullable=False),
    sa.Column("started", sa.DateTime),  # UTC, naive
    sa.Column("ended", sa.DateTime),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("simulated", sa.Boolean, nullable=False),
    *(sa.Column(key, sa.String(255)) for key in SAMPLE_KEYS),
    sa.Column("sample", sa.JSON, nullable=False),  # every sample key, also those without a column
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("outcome", sa.JSON, nullable=False),  # name -> {"value", "units"}: what `run` prints
    sa.Column("instruments", sa.JSON, nullable=False),  # instrument -> identity (*IDN?)
    sa.Column("seed", sa.String(24)),  # text: seeds are 63-bit, world seeds any size
    sa.Column("world_seed", sa.String(40)),
    sa.Column("writer_pid", sa.Integer, nullable=False),  # a "running" row whose writer died is interrupted
    sa.Column("schema_version", sa.String(16), nullable=False),
    sa.Column("indexed", sa.DateTime, nullable=False),  # UTC, when this row was last written
    sa.UniqueConstraint("host", "path", name="uq_runs_host_path"),
    # The filters of `rrambench runs`, most selective first; each ends in started (newest first).
    sa.Index("ix_runs_started", "started"),
    sa.Index("ix_runs_status_started", "status", "started"),
    sa.Index("ix_runs_protocol_status_started", "protocol", "status", "started"),
    sa.Index("ix_runs_chip_protocol_status_started", "chip", "protocol", "status", "started"),
    sa.Index("ix_runs_host_folder", "host", "folder"),
)
run_parameters = sa.Table(
    "run_parameters", metadata,
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("number", sa.Float),  # numbers and booleans (1/0); NULL otherwise
    sa.Column("text", sa.String(TEXT_BYTES)),  # strings as they are, other values as JSON
    sa.PrimaryKeyConstraint("run_id", "name"),
    sa.Index("ix_run_parameters_number", "name", "number"),
    sa.Index("ix_run_parameters_text", "name", "text"),
)
catalogue_info = sa.Table(
    "catalogue", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


class CatalogueError(Exception):
    """The catalogue cannot be used (bad URL, missing driver, database unreachable): one line."""


class FilterError(ValueError):
    """A filter the user typed is malformed: one line."""


# -- filters ------------------------------------------------------------------------------------
_OPS = ("<=", ">=", "!=", "==", "=", "<", ">")
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(<=|>=|!=|==|=|<|>)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Condition:
    """``PARAM<op>VALUE`` on a run parameter: numbers compare as numbers, other values as text."""

    name: str
    op: str  # one of =, !=, <, <=, >, >=
    value: float | str

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}" if isinstance(self.value, float) else \
            f"{self.name}{self.op}{self.value}"


@dataclass(frozen=True)
class RunFilter:
    """Which runs to list: every field set must hold (``since`` inclusive, ``until`` exclusive)."""

    protocol: str | None = None
    status: str | None = None
    chip: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    where: tuple[Condition, ...] = ()

    @property
    def active(self) -> bool:
        return any((self.protocol, self.status, self.chip, self.since, self.until, self.where))

    @classmethod
    def from_text(cls, text: str) -> RunFilter:
        """The GUI's search field: ``protocol=P status=S chip=C since=DATE until=DATE`` and
        ``PARAM<op>VALUE`` words, in any order (quote a value with spaces)."""
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise FilterError(f"search {text!r}: {exc}") from None
        named: dict[str, str] = {}
        where = []
        for word in words:
            key, sep, value = word.partition("=")
            if sep and key in FILTER_KEYS and not value.startswith("="):
                named[key] = value
            else:
                where.append(word)
        return parse_filters(**named, where=where)


def parse_filters(*, protocol: str | None = None, status: str | None = None, chip: str | None = None,
                  since: str | None = None, until: str | None = None, where: Sequence[str] = ()) -> RunFilter:
    """The one parser of run filters (``rrambench runs``, ``rrambench report``, the GUI's search).

    ``since``/``until``: ISO 8601 dates or times (UTC unless they carry an offset); a date
    alone as ``until`` means the end of that day. ``where``: ``PARAM<op>VALUE`` texts,
    op one of ``= != < <= > >=``. Raises :class:`FilterError` naming the bad filter.
    """
    if status is not None and status not in (*STATUSES, "missing"):
        raise FilterError(f"--status {status!r}: one of {', '.join((*STATUSES, 'missing'))}")
    for name, value in (("protocol", protocol), ("chip", chip)):
        if value is not None and not value.strip():
            raise FilterError(f"--{name}: needs a value")
    start = parse_time(since, "--since") if since is not None else None
    end = parse_time(until, "--until", end_of_day=True) if until is not None else None
    if start is not None and end is not None and end <= start:
        raise FilterError(f"--until {until} is not after --since {since}")
    return RunFilter(protocol=protocol, status=status, chip=chip, since=start, until=end,
                     where=tuple(parse_condition(text) for text in where))


def parse_condition(text: str) -> Condition:
    """``PARAM<op>VALUE`` (e.g. ``v_max>=1.2``, ``mode=pulses``) as a :class:`Condition`."""
    match = _CONDITION.match(text)
    if match is None or not match.group(3):
        raise FilterError(f"--where {text!r}: expected PARAM<op>VALUE with op one of {' '.join(_OPS)}")
    name, op, raw = match.groups()
    op = "=" if op == "==" else op
    value: float | str
    try:
        value = float(raw)
    except ValueError:
        value = raw
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"--where {text!r}: {raw} is not a finite number")
    if isinstance(value, str) and op not in ("=", "!="):
        raise FilterError(f"--where {text!r}: {op} compares numbers and {raw!r} is not one")
    return Condition(name, op, value)


def parse_time(text: str, what: str = "time", *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date or time as naive UTC; a date alone with ``end_of_day`` is the next midnight."""
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise FilterError(f"{what} {text!r}: expected an ISO 8601 date or time, e.g. 2026-11-29 or "
                          "2026-11-29T14:00") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    if end_of_day and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        moment += timedelta(days=1)
    return moment


# -- the catalogue ------------------------------------------------------------------------------
def resolve_url(url: str | None, folder: str | Path = ".") -> str:
    """The SQLAlchemy URL of a catalogue: ``None`` is ``<folder>/runs.sqlite``; a path is an
    SQLite file; ``postgresql://`` (or ``postgres://``) uses the psycopg driver. CatalogueError
    for anything else."""
    if not url:
        return f"sqlite:///{Path(os.path.abspath(Path(folder) / CATALOGUE_FILE))}"
    if "://" not in url:
        return f"sqlite:///{Path(os.path.abspath(url))}"
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    if scheme in ("sqlite", "sqlite+pysqlite") or scheme.startswith("postgresql+"):
        return url
    raise CatalogueError(f"catalogue {_hidden(url)}: use a file path, sqlite:///FILE or "
                         "postgresql://USER@HOST[:PORT]/DATABASE")


def check_url(url: str | None, folder: str | Path = ".") -> str:
    """:func:`resolve_url`, and the driver it needs importable: CatalogueError (one line) if not."""
    resolved = resolve_url(url, folder)
    if resolved.startswith("postgresql+psycopg:") and importlib.util.find_spec("psycopg") is None:
        raise CatalogueError(f"catalogue {_hidden(url or resolved)}: the PostgreSQL driver is not installed; "
                             "pip install 'rrambench[postgresql]' (psycopg)")
    return resolved


def _hidden(url: str) -> str:
    """``url`` without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def print_warning(text: str) -> None:
    """One warning line on stderr, as the CLI prints them."""
    print(f"rrambench: warning: {text}", file=sys.stderr, flush=True)


class Catalogue:
    """One catalogue database. Thread-compatible (one per thread); several processes may write.

    ``url``: as :func:`resolve_url` takes it, with ``folder`` the runs' folder (the
    default SQLite file's place). ``warn``: where one-line warnings go (stderr).
    """

    def __init__(self, url: str | None = None, folder: str | Path = ".", *,
                 warn: Callable[[str], None] = print_warning) -> None:
        self.url = resolve_url(url, folder)
        self.warn = warn
        self.host = socket.gethostname()
        parsed = sa.engine.make_url(self.url)
        self.file = Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None
        self.engine = self._engine()
        self._ready = False

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    def describe(self) -> str:
        """The catalogue for messages: its file, or its URL without password."""
        return str(self.file) if self.file is not None else _hidden(self.url)

    # -- opening ---------------------------------------------------------------------------
    def _engine(self) -> sa.Engine:
        if self.file is None:
            try:
                # A lab database that does not answer must not hold a run's start for minutes.
                return sa.create_engine(self.url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
            except (ModuleNotFoundError, sa.exc.NoSuchModuleError) as exc:
                raise CatalogueError(f"catalogue {_hidden(self.url)}: the database driver is not installed "
                                     f"({exc}); for PostgreSQL: pip install 'rrambench[postgresql]'") from None
            except sa.exc.ArgumentError as exc:
                raise CatalogueError(f"catalogue {_hidden(self.url)}: {exc}") from None
        engine = sa.create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})

        # pysqlite opens transactions lazily and deferred: two processes that both read, then
        # write, deadlock and one fails at once instead of waiting. Every transaction takes the
        # write lock when it begins (they last milliseconds), so writers queue up.
        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: sa.Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def _prepare(self) -> None:
        """Create the tables once (concurrent creators: the loser finds them made)."""
        if self._ready:
            return
        if self.file is not None:
            try:
                self.file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CatalogueError(f"catalogue {self.file}: cannot create its folder "
                                     f"({exc.strerror or exc})") from None
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":  # one creator at a time across benches
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7210418)"))
                    metadata.create_all(conn)
                    version = conn.execute(sa.select(catalogue_info.c.value).where(
                        catalogue_info.c.key == "version")).scalar()
                    if version is None:
                        conn.execute(catalogue_info.insert().values(key="version", value=CATALOGUE_VERSION))
                    elif version != CATALOGUE_VERSION:
                        raise CatalogueError(f"catalogue {self.describe()} is version {version}; this "
                                             f"rrambench reads version {CATALOGUE_VERSION}")
                break
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError):  # created meanwhile by another
                if attempt == 2:
                    raise
        self._ready = True

    def _run(self, work: Callable[[sa.Connection], Any]) -> Any:
        """``work(conn)`` in one transaction; a damaged SQLite file is rebuilt from the run files
        (with a warning) and the work done again; any other database error is a CatalogueError."""
        try:
            self._prepare()
            with self.engine.begin() as conn:
                return work(conn)
        except sa.exc.DatabaseError as exc:
            if self.file is None or not _damaged(exc):
                raise CatalogueError(f"catalogue {self.describe()}: {_reason(exc)}") from None
            self._rebuild(_reason(exc))
            with self.engine.begin() as conn:
                return work(conn)
        except sa.exc.InterfaceError as exc:
            raise CatalogueError(f"catalogue {self.describe()}: {_reason(exc)}") from None

    def _rebuild(self, reason: str) -> None:
        """Move the damaged SQLite file aside (kept for a post-mortem) and index its folder again."""
        assert self.file is not None
        self.engine.dispose()
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = self.file.with_name(f"{self.file.name}.damaged-{stamp}")
        for suffix in ("", "-journal", "-wal", "-shm"):  # a stale journal must not roll into the new file
            part = Path(f"{self.file}{suffix}")
            if part.exists():
                os.replace(part, Path(f"{aside}{suffix}"))
        self.warn(f"catalogue {self.file} is damaged ({reason}); moved to {aside.name}, rebuilt from the "
                  f"run files in {self.file.parent}")
        self.engine = self._engine()
        self._ready = False
        self._prepare()
        self.reindex(self.file.parent)

    # -- writing ---------------------------------------------------------------------------
    def put(self, records: Iterable[dict[str, Any]]) -> int:
        """Insert or replace the rows of ``records`` (:mod:`analysis.run_record` dicts); their count."""
        rows = [_row(r) for r in records]
        if not rows:
            return 0

        def work(conn: sa.Connection) -> int:
            for row in rows:
                key = (runs.c.host == row["host"]) & (runs.c.path == row["path"])
                old = conn.execute(sa.select(runs.c.id).where(key)).scalar()
                if old is None:
                    old = conn.execute(runs.insert().values(row).returning(runs.c.id)).scalar_one()
                else:
                    conn.execute(runs.update().where(runs.c.id == old).values(row))
                    conn.execute(run_parameters.delete().where(run_parameters.c.run_id == old))
                params = _parameter_rows(old, row["parameters"])
                if params:
                    conn.execute(run_parameters.insert(), params)
            return len(rows)

        return self._run(work)

    def settle(self) -> int:
        """Mark "running" rows of this host whose writer process is gone as "interrupted"."""
        def work(conn: sa.Connection) -> int:
            live = conn.execute(sa.select(runs.c.id, runs.c.writer_pid).where(
                (runs.c.status == RUNNING) & (runs.c.host == self.host))).all()
            dead = [i for i, pid in live
                    if not _writer_alive({RunAttr.WRITER_HOST: self.host, RunAttr.WRITER_PID: pid})]
            if dead:
                conn.execute(runs.update().where(runs.c.id.in_(dead) & (runs.c.status == RUNNING))
                             .values(status=INTERRUPTED))
            return len(dead)

        return self._run(work)

    def reindex(self, folder: str | Path, *, workers: int | None = None) -> tuple[int, list[str]]:
        """Rebuild the rows of ``folder`` from its run files (``*.h5``, not recursive).

        Each file is read in a watched helper (:class:`analysis.isolation.RecordReader`):
        a damaged one is skipped with a warning, never indexed, never a hang. Rows of files
        no longer in the folder are dropped. Returns (runs indexed, warnings).
        """
        from analysis.isolation import RecordReader

        folder = Path(os.path.abspath(folder))
        # names, sorted, then paths: a third of what globbing and sorting Path objects cost
        names = (entry.name for entry in os.scandir(folder))
        paths = [folder / name for name in sorted(n for n in names if n.endswith(".h5") and not n.startswith("."))]
        skipped: list[str] = []

        def insert(conn: sa.Connection, records: list[dict[str, Any]]) -> None:
            # one executemany, then the ids by (host, path): RETURNING in parameter order costs
            # SQLite one statement per row
            _insert_many(conn, runs, records)
            found = sa.select(runs.c.id, runs.c.host, runs.c.path).where(
                runs.c.host.in_({r["host"] for r in records}) & runs.c.path.in_([r["path"] for r in records]))
            ids = {(h, p): i for i, h, p in conn.execute(found)}
            params = [p for r in records for p in _parameter_rows(ids[r["host"], r["path"]], r["parameters"])]
            if params:
                _insert_many(conn, run_parameters, params)

        def clear(conn: sa.Connection) -> None:
            mine = (runs.c.host == self.host) & (runs.c.folder == str(folder))
            conn.execute(run_parameters.delete().where(
                run_parameters.c.run_id.in_(sa.select(runs.c.id).where(mine))))
            conn.execute(runs.delete().where(mine))

        # The helpers start now, reading while the tables are made and the transaction begins;
        # work runs again after rebuilding a damaged catalogue, with readers of its own.
        readers = [RecordReader(paths, workers=workers)]

        def work(conn: sa.Connection) -> int:
            skipped.clear()
            batch: list[dict[str, Any]] = []
            indexed = 0
            with readers.pop() if readers else RecordReader(paths, workers=workers) as reader:
                clear(conn)
                # rows go in by batches while the helpers read on: the database's work overlaps theirs
                for path, result in reader:
                    if isinstance(result, str):
                        skipped.append(f"skipped {path.name}: {result.removeprefix(f'{path}: ')}")
                        self.warn(skipped[-1])
                        continue
                    batch.append(_row(result))
                    if len(batch) == REINDEX_BATCH:
                        insert(conn, batch)
                        indexed, batch = indexed + len(batch), []
            if batch:
                insert(conn, batch)
                indexed += len(batch)
            conn.exec_driver_sql("ANALYZE")  # the planner's statistics: which index is the selective one
            return indexed

        try:
            return self._run(work), skipped
        finally:
            for reader in readers:  # not used: the work failed before reading
                reader.close()

    # -- reading ---------------------------------------------------------------------------
    def query(self, flt: RunFilter = RunFilter(), *, folder: str | Path | None = None,
              limit: int | None = None) -> list[dict[str, Any]]:
        """The runs ``flt`` selects, newest first, as JSON-ready dicts (:func:`run_json`).

        ``folder``: only runs indexed in that folder on this host (a shared catalogue).
        Running rows whose writer died read "interrupted" (:meth:`settle` first).
        """
        self.settle()
        statement = select_runs(flt, host=self.host,
                                folder=None if folder is None else os.path.abspath(folder))
        if limit is not None and flt.status != "missing":
            statement = statement.limit(limit)
        found = [run_json(row, self.host) for row in self._run(lambda conn: conn.execute(statement).all())]
        if flt.status == "missing":
            found = [r for r in found if r["missing"]][:limit]
        return found


#: Rows :meth:`Catalogue.reindex` inserts at a time while the files are still being read.
REINDEX_BATCH = 200


def select_runs(flt: RunFilter, *, host: str, folder: str | None = None) -> sa.Select:
    """The SELECT of the runs ``flt`` selects, newest first (every filter uses an index)."""
    statement = sa.select(runs).order_by(runs.c.started.desc(), runs.c.id.desc())
    if folder is not None:
        statement = statement.where((runs.c.host == host) & (runs.c.folder == folder))
    if flt.protocol:
        statement = statement.where(runs.c.protocol == flt.protocol)
    if flt.status and flt.status != "missing":
        statement = statement.where(runs.c.status == flt.status)
    if flt.chip:
        statement = statement.where(runs.c.chip == flt.chip)
    if flt.since is not None:
        statement = statement.where(runs.c.started >= flt.since)
    if flt.until is not None:
        statement = statement.where(runs.c.started < flt.until)
    for cond in flt.where:
        column = run_parameters.c.number if isinstance(cond.value, float) else run_parameters.c.text
        compare = {"=": column.__eq__, "!=": column.__ne__, "<": column.__lt__, "<=": column.__le__,
                   ">": column.__gt__, ">=": column.__ge__}[cond.op]
        statement = statement.where(sa.exists().where(
            (run_parameters.c.run_id == runs.c.id) & (run_parameters.c.name == cond.name) & compare(cond.value)))
    return statement


def run_json(row: Any, host: str) -> dict[str, Any]:
    """One row as ``rrambench runs --json`` prints it; ``missing``: the file is gone (None: another host's)."""
    m = row._mapping
    here = m["host"] == host
    return {
        "path": m["path"], "host": m["host"], "missing": (not Path(m["path"]).exists()) if here else None,
        "protocol": m["protocol"], "status": m["status"],
        "steps_completed": m["steps_completed"], "steps_total": m["steps_total"],
        "started": _iso(m["started"]), "ended": _iso(m["ended"]), "error": m["error"],
        "simulated": m["simulated"], "instruments": m["instruments"], "sample": m["sample"],
        "parameters": m["parameters"], "outcome": m["outcome"],
        "seed": None if m["seed"] is None else int(m["seed"]),
        "world_seed": None if m["world_seed"] is None else int(m["world_seed"]),
    }


def _insert_many(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """``INSERT`` of ``rows`` (dicts with the same keys) as one DB-API ``executemany``.

    The statement is SQLAlchemy's, compiled for this database (its placeholders, its casts),
    and each value goes through its column type's own bind processor, as ``conn.execute``
    does; what is skipped is the per-row parameter machinery around them, which cost a
    reindex of 1,000 files about 0.17 s, half of what its process spent on the database.
    """
    keys = list(rows[0])
    compiled = table.insert().compile(dialect=conn.dialect, column_keys=keys)
    dialect = conn.dialect
    process = [(key, table.c[key].type.dialect_impl(dialect).bind_processor(dialect)) for key in keys]
    if compiled.positional:
        order = [process[keys.index(name)] for name in compiled.positiontup]
        params: list[Any] = [tuple(row[k] if f is None else f(row[k]) for k, f in order) for row in rows]
    else:
        params = [{k: row[k] if f is None else f(row[k]) for k, f in process} for row in rows]
    conn.exec_driver_sql(str(compiled), params)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    """A record (:mod:`analysis.run_record`) as a ``runs`` row."""
    row = {key: record[key] for key in RECORD_KEYS}
    row["started"] = _utc(record["started"])
    row["ended"] = _utc(record["ended"])
    sample = {str(k): str(v) for k, v in (record["sample"] or {}).items()}
    row["sample"] = sample
    for key in SAMPLE_KEYS:
        row[key] = sample.get(key, "")[:255] or None
    row["seed"] = None if record["seed"] is None else str(record["seed"])
    row["world_seed"] = None if record["world_seed"] is None else str(record["world_seed"])
    row["error"] = record["error"] or ""
    row["indexed"] = datetime.now(timezone.utc).replace(tzinfo=None)
    return row


def _parameter_rows(run_id: int, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, value in parameters.items():
        number = None
        if isinstance(value, bool):
            number = float(value)
        elif isinstance(value, (int, float)) and math.isfinite(float(value)):
            number = float(value)
        text = _parameter_text(value, number)
        out.append({"run_id": run_id, "name": str(name)[:128], "number": number, "text": text[:TEXT_BYTES]})
    return out


def _parameter_text(value: Any, number: float | None) -> str:
    """A parameter as text: strings as they are, anything else as JSON; finite numbers and
    booleans spelled as JSON spells them without its encoder's cost (a reindex writes thousands)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if number is not None and type(value) in (int, float):
        return str(value)
    return json.dumps(value)


def _utc(text: str | None) -> datetime | None:
    """An ISO 8601 UTC time from a run file as naive UTC (None for "" or None, or garbage)."""
    if not text:
        return None
    try:
        return parse_time(text)
    except FilterError:
        return None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _damaged(exc: sa.exc.DatabaseError) -> bool:
    text = str(exc.orig if exc.orig is not None else exc).lower()
    return any(s in text for s in ("file is not a database", "malformed", "disk image", "unsupported file format"))


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return " ".join(str(orig if orig is not None else exc).split())

