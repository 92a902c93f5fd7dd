"""The run-file schema, once: object paths, attribute names, table columns, version.

The writer (:mod:`protocols.engine.run_writer`, :mod:`protocols.engine.journal`) and
the readers (:mod:`analysis.run_reader`, the loaders, the GUI) name what a run file
holds through this module; ``docs/hdf5-schema.md`` describes the layout. It lives in
``analysis`` because analysis never imports ``protocols``; it imports nothing at all,
so the writer, a viewer or a script can use it without h5py or numpy.

Paths are absolute HDF5 paths. Column tables are ``(name, dtype, unit, meaning)`` with
numpy dtype strings; ``""`` as a unit means dimensionless. The NeXus vocabulary the
writer adds for generic viewers (``NX_class``, ``default``, the NXroot file attributes)
is NeXus's, not ours, and stays with the writer.
"""

from __future__ import annotations

#: Version written into ``/entry`` (attribute ``schema_version``); new information goes
#: into a new version, never by renaming.
SCHEMA_VERSION = "1.0"

# -- object paths -------------------------------------------------------------------------
ENTRY = "/entry"
DATA = f"{ENTRY}/data"  # streams and constants, /entry/data/<name>
INSTRUMENT = f"{ENTRY}/instrument"
SCOPE = f"{INSTRUMENT}/scope"  # raw scope traces, /entry/instrument/scope/<name>
PULSES = f"{ENTRY}/pulses"  # the per-pulse table, one dataset per column
JOURNAL = f"{ENTRY}/journal"  # the step journal, one dataset per column plus ROWS


class RunAttr:
    """Attribute names of ``/entry``: the run attributes (docs/hdf5-schema.md, "Run attributes")."""

    SCHEMA_VERSION = "schema_version"
    SOFTWARE_VERSION = "software_version"
    PROTOCOL = "protocol"
    TITLE = "title"
    PARAMETERS = "parameters"  # JSON object
    BENCH_CONFIG = "bench_config"  # JSON object
    INSTRUMENTS = "instruments"  # JSON object
    INSTRUMENT_SETTINGS = "instrument_settings"  # JSON object
    CONFIG_PATH = "config_path"
    START_TIME = "start_time"  # ISO 8601 UTC
    END_TIME = "end_time"  # ISO 8601 UTC; "" while running or after a kill
    STATUS = "status"
    ERROR = "error"
    SEED = "seed"  # JSON int
    WORLD_SEED = "world_seed"  # JSON int or null
    SIMULATED = "simulated"
    STEPS_TOTAL = "steps_total"
    WRITER_PID = "writer_pid"
    WRITER_HOST = "writer_host"
    RESUMES = "resumes"  # JSON list


#: Every run attribute, in the order the writer creates them.
RUN_ATTRIBUTES = tuple(v for k, v in vars(RunAttr).items() if k.isupper())

# -- run status (attribute ``status``; journal column ``status``) ---------------------------
RUNNING = "running"  # at creation; a file still saying so after its writer died reads "interrupted"
COMPLETED = "completed"
INTERRUPTED = "interrupted"

# -- attributes of datasets and groups --------------------------------------------------------
UNITS = "units"  # every dataset; "" dimensionless
LONG_NAME = "long_name"
SIGNAL = "signal"  # of /entry/data: the stream NeXus plots by default
AXES = "axes"  # of /entry/data: one dataset name (or ".") per dimension of the signal
CHANNEL = "channel"  # of a trace stream: the scope channel
PREAMBLE_SET = "preamble_set"  # of a trace stream: 1 once the preamble attributes hold values
VOLTS = "volts"  # of a trace stream: the conversion formula, as text
COLUMNS = "columns"  # of /entry/pulses: the column names
STREAMS = "streams"  # of /entry/journal: paths of the growing datasets, the columns of ROWS
ROWS = "rows"  # dataset of /entry/journal: (steps, len(streams)) row counts after each step

#: Scope preamble fields kept as attributes of a trace stream, with their units (each also
#: as a ``<field>_units`` attribute). volts = (code - y_reference) * y_increment + y_origin.
PREAMBLE_FIELDS = (
    ("x_increment", "s"),
    ("x_origin", "s"),
    ("x_reference", ""),
    ("y_increment", "V"),
    ("y_origin", "V"),
    ("y_reference", ""),
)

#: The per-pulse table ``/entry/pulses``.
PULSE_COLUMNS = (
    ("step", "i4", "", "index of the step that applied the pulse"),
    ("macro", "i2", "", "macro index"),
    ("row", "i2", "", "row (word line)"),
    ("col", "i2", "", "column (bit line)"),
    ("polarity", "i1", "", "+1 SET, -1 RESET"),
    ("amplitude", "f4", "V", "pulse amplitude"),
    ("width", "f4", "s", "pulse width"),
    ("gate", "f4", "V", "word-line (gate) voltage"),
    ("read", "f4", "S", "verify read after the pulse"),
    ("time", "f8", "s", "bench clock at the pulse"),
)

#: Bytes of the fixed-length journal strings (step names are UTF-8).
NAME_BYTES = 128
STATUS_BYTES = 16

#: The step journal ``/entry/journal``: one row per step that ended.
JOURNAL_COLUMNS = (
    ("index", "i4", "", "step index in the plan"),
    ("name", f"S{NAME_BYTES}", "", "step name (UTF-8)"),
    ("status", f"S{STATUS_BYTES}", "", "completed | failed | aborted | interrupted"),
    ("start", "f8", "s", "wall-clock start, POSIX time (UTC)"),
    ("end", "f8", "s", "wall-clock end, POSIX time (UTC)"),
    ("clock_start", "f8", "s", "bench clock at the start"),
    ("clock_end", "f8", "s", "bench clock at the end"),
)


def data_path(name: str) -> str:
    """The path of stream or constant ``name`` (absolute paths are returned as they are)."""
    return name if name.startswith("/") else f"{DATA}/{name}"
