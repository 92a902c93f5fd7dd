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
#: into a new version, never by renaming. 1.1: the run state (``status``, ``end_time``,
#: ``error``) moved from run attributes to datasets of ``/entry`` (``RUN_FIELDS``); the
#: instruments' settings (``/entry/instrument/<name>``), the run's ``outcome`` and the
#: default plot (``/entry/plot``) were added. 1.2: where the protocol came from (run attribute
#: ``protocol_source``) and the sample (``/entry/sample``) were added. 1.3: the run attribute
#: ``catalogue`` (the catalogue's fixed fields in one JSON object) was added.
SCHEMA_VERSION = "1.3"
#: Every version the reader opens.
SCHEMA_VERSIONS = ("1.0", "1.1", "1.2", "1.3")

# -- object paths -------------------------------------------------------------------------
ENTRY = "/entry"
DATA = f"{ENTRY}/data"  # streams and constants, /entry/data/<name>
INSTRUMENT = f"{ENTRY}/instrument"
SCOPE = f"{INSTRUMENT}/scope"  # raw scope traces, /entry/instrument/scope/<name>
PULSES = f"{ENTRY}/pulses"  # the per-pulse table, one dataset per column
JOURNAL = f"{ENTRY}/journal"  # the step journal, one dataset per column plus ROWS
PLOT = f"{ENTRY}/plot"  # the protocol's default plot (NXdata of links), /entry's default when declared
OUTCOME = f"{ENTRY}/outcome"  # the run's key metrics: JSON object text, fixed-size string dataset
SAMPLE = f"{ENTRY}/sample"  # NXsample: the sample measured (chip, wafer, die, operator, notes), one string each
#: Subgroup of ``/entry/instrument/<name>`` holding the settings read when the n-th ``--resume`` started.
RESUME_SNAPSHOT = "resume_{}"


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
    SEED = "seed"  # JSON int
    WORLD_SEED = "world_seed"  # JSON int or null
    SIMULATED = "simulated"
    SIMULATED_PARTS = "simulated_parts"  # JSON list of str
    STEPS_TOTAL = "steps_total"
    WRITER_PID = "writer_pid"
    WRITER_HOST = "writer_host"
    RESUMES = "resumes"  # JSON list
    PROTOCOL_SOURCE = "protocol_source"  # JSON object: origin, reference, module, class, file, sha256
    CATALOGUE = "catalogue"  # JSON object: the run catalogue's fixed fields in one read (1.3)


#: Keys of the ``catalogue`` run attribute: what the run catalogue indexes that never changes
#: after the file is created, copied from the attributes and ``/entry/sample`` so that indexing
#: a folder reads one attribute per file instead of a dozen objects.
CATALOGUE_KEYS = ("schema_version", "protocol", "parameters", "started", "seed", "world_seed", "simulated",
                  "steps_total", "instruments", "sample")

#: Every run attribute, in the order the writer creates them.
RUN_ATTRIBUTES = tuple(v for k, v in vars(RunAttr).items() if k.isupper())


class RunField:
    """Datasets of ``/entry`` holding the run state (docs/hdf5-schema.md, "Run state").

    Fixed-size, created with the file and overwritten in place when the run ends: an
    SWMR writer may write datasets but not attributes, so the end of a run is written
    while viewers hold the file open. Schema 1.0 kept them as run attributes of the same
    names (``status``, ``end_time``, ``error``), written after reopening the file.
    """

    STATUS = "status"
    END_TIME = "end_time"  # ISO 8601 UTC; "" while running or after a kill
    ERROR = "error"  # UTF-8, cut to ERROR_BYTES


# -- run status (dataset ``/entry/status``; journal column ``status``) ---------------------------
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
INTERPRETATION = "interpretation"  # of /entry/plot: "spectrum" (rows are curves) or "image"
COORDINATES = "coordinates"  # of /entry/plot (a scatter): (y, x) names, for nexusformat
SETTINGS = "settings"  # of /entry/instrument/<name>: names of the settings, each an attribute with <name>_units
SNAPSHOT_TIME = "snapshot_time"  # of /entry/instrument/<name>: ISO 8601 UTC when the settings were read

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

#: Bytes of the fixed-length journal and run-state strings (step names and errors are UTF-8).
NAME_BYTES = 128
STATUS_BYTES = 16
TIME_BYTES = 32
ERROR_BYTES = 4096

#: The run-state datasets ``/entry/<name>`` (scalar fixed-length strings, ``units=""``).
RUN_FIELDS = (
    (RunField.STATUS, f"S{STATUS_BYTES}", "running | completed | aborted | failed | interrupted"),
    (RunField.END_TIME, f"S{TIME_BYTES}", "ISO 8601 UTC end of the run; empty while running or after a kill"),
    (RunField.ERROR, f"S{ERROR_BYTES}", "<ExceptionType>: <text> of a failed run, UTF-8; empty otherwise"),
)

#: Bytes of the ``/entry/outcome`` string (UTF-8 JSON): ``{name: {"value": v, "units": u}}``.
OUTCOME_BYTES = 8192

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


#: The instruments a run records the settings of, in the order they are shown (the bench's names).
INSTRUMENT_NAMES = ("smu", "scope", "macro_controller", "seed_board")


def instrument_path(name: str) -> str:
    """The group of instrument ``name`` (``smu``, ``scope``, ``macro_controller``, ``seed_board``)."""
    return f"{INSTRUMENT}/{name}"
