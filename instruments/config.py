"""Reading and checking a bench configuration file (TOML).

The file says which backend to use (the embedded simulated bench or hardware),
where the instruments are, their timeouts and the safety envelope. Every problem
is reported as one :class:`ConfigError` line naming the file and the key.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instruments.errors import ConfigError
from instruments.limits import Limits
from instruments.paths import default_bench_config

if TYPE_CHECKING:
    from instruments.sim.device_params import DeviceParams

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

BACKENDS = ("sim", "hardware")
ROLES = ("smu", "scope", "macro_controller")
OPTIONAL_ROLES = ("seed_board",)  # instruments a hardware bench may have, never needs
SAMPLER_BOARDS = ("macro_controller", "seed_board")  # which board runs `sample`: ours or the seed's
SECTIONS = {"backend", "sim", "resources", "timeouts", "limits", "sampler", "clock", "sample", "protocols", "catalogue"}
#: The ``[sample]`` keys (and ``rrambench run --sample key=value``): the sample a run measures.
SAMPLE_KEYS = ("chip", "wafer", "die", "operator", "notes")
RESOURCE_SETTINGS = ("visa_library",)  # [resources] keys that are not instruments
DEFAULT_VISA_LIBRARY = "@py"  # pyvisa-py; "@ivi" (NI-VISA, Keysight IO Libraries) or a library path
SIM_KEYS = {"seed": int, "state": str, "formed": bool, "device": str}
DEFAULT_TIMEOUTS = {"smu": 5.0, "scope": 10.0, "macro_controller": 2.0}  # s
SEED_BOARD_TIMEOUT = 2.0  # s, write timeout of the seed board's link unless [timeouts].seed_board


@dataclass
class BenchConfig:
    """A checked bench configuration."""

    backend: str = "sim"
    seed: int = 0  # RNG seed of the simulated world
    state: Path | None = None  # simulated world's persistent state file
    formed: bool = True  # simulated cells start formed
    device: Path | None = None  # calibrated device file ([device] table of DeviceParams), docs/calibration.md
    resources: dict[str, str] = field(default_factory=dict)
    visa_library: str = DEFAULT_VISA_LIBRARY  # pyvisa backend for the SCPI instruments
    time_scale: float = 1.0  # bench s per wall s on hardware ([clock]); N to drive `sim serve --time-scale N`
    sampler_board: str = "macro_controller"  # board that runs `sample`: "macro_controller" (ours) or "seed_board"
    timeouts: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))  # s
    limits: Limits = field(default_factory=Limits)
    source: str = "<defaults>"  # where it was read from
    raw: dict[str, Any] = field(default_factory=dict)  # the parsed TOML, JSON-serialisable
    sample: dict[str, str] = field(default_factory=dict)  # [sample]: chip, wafer, die, operator, notes
    #: [protocols] paths: user protocol files (PATH.py, PATH.py:Class; relative to the config) and modules
    protocol_paths: list[str] = field(default_factory=list)
    #: [catalogue] url: the run catalogue (a file, sqlite:///FILE, postgresql://...); None: runs.sqlite
    #: in each run's folder (docs/catalogue.md)
    catalogue_url: str | None = None

    @property
    def simulated(self) -> bool:
        return self.backend == "sim"

    def device_params(self) -> DeviceParams | None:
        """The device parameters of ``[sim] device`` (None: the device model's defaults): the
        simulated bench's world, and simulated parts of a run on any bench, use them."""
        return load_device_file(self.device) if self.device is not None else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, as stored in run files."""
        return {
            "backend": self.backend,
            "sim": {"seed": self.seed, "state": str(self.state or ""), "formed": self.formed,
                    "device": str(self.device or "")},
            "resources": {**self.resources, "visa_library": self.visa_library},
            "clock": {"time_scale": self.time_scale},
            "sampler": {"board": self.sampler_board},
            "timeouts": dict(self.timeouts),
            "limits": self.limits.as_dict(),
            "source": self.source,
        }


def load_config(path: str | Path | None = None) -> BenchConfig:
    """Read and check a bench file; ``None`` means the shipped default (simulated bench)."""
    path = Path(path) if path is not None else default_bench_config()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read bench config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"bench config {path} is not UTF-8 text") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"bench config {path}: {exc}") from None
    return parse_config(table, source=str(path))


def parse_config(table: dict[str, Any], *, source: str = "<table>") -> BenchConfig:
    """Check a parsed TOML table and turn it into a :class:`BenchConfig`."""
    where = f"bench config {source}"
    unknown = sorted(set(table) - SECTIONS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(SECTIONS))}")
    backend = table.get("backend", "sim")
    if backend not in BACKENDS:
        raise ConfigError(f"{where}: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    sim = _section(table, "sim", where)
    for key, value in sim.items():
        kind = SIM_KEYS.get(key)
        if kind is None:
            raise ConfigError(f"{where}: unknown key [sim].{key}; known: {', '.join(sorted(SIM_KEYS))}")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: [sim].{key} must be {kind.__name__}, got {value!r}")
    resources = dict(_section(table, "resources", where))
    visa_library = resources.pop("visa_library", DEFAULT_VISA_LIBRARY)
    if not isinstance(visa_library, str) or not visa_library:
        raise ConfigError(f"{where}: [resources].visa_library must be a pyvisa backend such as '@py' or '@ivi', "
                          "or the path of a VISA library")
    for key, value in resources.items():
        if key not in ROLES + OPTIONAL_ROLES:
            raise ConfigError(f"{where}: unknown instrument [resources].{key}; "
                              f"known: {', '.join(ROLES + OPTIONAL_ROLES + RESOURCE_SETTINGS)}")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: [resources].{key} must be a resource string")
    if backend == "hardware":
        missing = [role for role in ROLES if role not in resources]
        if missing:
            raise ConfigError(f"{where}: backend 'hardware' needs [resources].{', '.join(missing)}")
    sampler_board = _sampler_board(_section(table, "sampler", where), where)
    if sampler_board == "seed_board" and backend == "hardware" and "seed_board" not in resources:
        raise ConfigError(f"{where}: [sampler].board 'seed_board' on hardware needs [resources].seed_board")
    timeouts = dict(DEFAULT_TIMEOUTS)
    for key, value in _section(table, "timeouts", where).items():
        if key not in ROLES + OPTIONAL_ROLES:
            raise ConfigError(f"{where}: unknown instrument [timeouts].{key}; "
                              f"known: {', '.join(ROLES + OPTIONAL_ROLES)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{where}: [timeouts].{key} must be a positive number of seconds")
        timeouts[key] = float(value)
    time_scale = _time_scale(_section(table, "clock", where), where)
    try:
        limits = Limits.from_mapping(_section(table, "limits", where))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    state = sim.get("state") or None
    device = sim.get("device") or None
    if device is not None and not Path(device).is_absolute() and source not in ("<table>", "<defaults>"):
        device = str(Path(source).parent / device)  # relative to the config file
    if device is not None:
        load_device_file(device)  # refuse a bad device file now, naming it
    return BenchConfig(
        backend=backend,
        seed=int(sim.get("seed", 0)),
        state=Path(state) if state else None,
        formed=bool(sim.get("formed", True)),
        device=Path(device) if device else None,
        resources=dict(resources),
        visa_library=visa_library,
        time_scale=time_scale,
        sampler_board=sampler_board,
        timeouts=timeouts,
        limits=limits,
        source=source,
        raw=copy.deepcopy(table),
        sample=check_sample(_section(table, "sample", where), where),
        protocol_paths=_protocol_paths(_section(table, "protocols", where), where, source),
        catalogue_url=_catalogue_url(_section(table, "catalogue", where), where, source),
    )


def load_device_file(path: str | Path) -> DeviceParams:
    """``DeviceParams`` from a device file's ``[device]`` table (``rrambench calibrate`` writes one).

    Fields not in the table keep their defaults; unknown fields and bad values raise
    :class:`ConfigError` naming the file.
    """
    from instruments.sim.device_params import DeviceParams

    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read device file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"device file {path}: {exc}") from None
    device = table.get("device")
    if not isinstance(device, dict):
        raise ConfigError(f"device file {path}: needs a [device] table of DeviceParams fields")
    try:
        return DeviceParams.from_json(json.dumps(device))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"device file {path}: {exc}") from None


def _sampler_board(sampler: dict[str, Any], where: str) -> str:
    """The ``[sampler].board`` choice, checked; "macro_controller" when absent."""
    unknown = sorted(set(sampler) - {"board"})
    if unknown:
        raise ConfigError(f"{where}: unknown key [sampler].{unknown[0]}; known: board")
    board = sampler.get("board", "macro_controller")
    if board not in SAMPLER_BOARDS:
        raise ConfigError(f"{where}: [sampler].board must be one of {', '.join(SAMPLER_BOARDS)}, got {board!r}")
    return board


def check_sample(sample: dict[str, Any], where: str) -> dict[str, str]:
    """The sample's keys checked (:data:`SAMPLE_KEYS`), values as text (``die = 3`` is "3")."""
    unknown = sorted(set(sample) - set(SAMPLE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key [sample].{unknown[0]}; known: {', '.join(SAMPLE_KEYS)}")
    for key, value in sample.items():
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ConfigError(f"{where}: [sample].{key} must be text (or a whole number), got {value!r}")
    return {key: str(value) for key, value in sample.items()}


def _protocol_paths(protocols: dict[str, Any], where: str, source: str) -> list[str]:
    """``[protocols].paths``: files (relative to the config file) and module names, as given."""
    unknown = sorted(set(protocols) - {"paths"})
    if unknown:
        raise ConfigError(f"{where}: unknown key [protocols].{unknown[0]}; known: paths")
    paths = protocols.get("paths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) and p.strip() for p in paths):
        raise ConfigError(f"{where}: [protocols].paths must be a list of files (PATH.py, PATH.py:Class) "
                          "or module names")
    base = Path(source).parent if source not in ("<table>", "<defaults>") else None
    out = []
    for entry in paths:
        file, sep, cls = entry.rpartition(":")
        if not (sep and file and cls.isidentifier()):
            file, sep, cls = entry, "", ""
        if file.endswith(".py") and base is not None and not Path(file).is_absolute():
            entry = f"{base / file}{sep}{cls}"  # relative to the config file, as [sim] device
        out.append(entry)
    return out


def _catalogue_url(catalogue: dict[str, Any], where: str, source: str) -> str | None:
    """``[catalogue].url``: a database URL, or an SQLite file (relative to the config file)."""
    unknown = sorted(set(catalogue) - {"url"})
    if unknown:
        raise ConfigError(f"{where}: unknown key [catalogue].{unknown[0]}; known: url")
    url = catalogue.get("url")
    if url is None:
        return None
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where}: [catalogue].url must be a database URL (postgresql://USER@HOST/DB, "
                          "sqlite:///FILE) or a file path")
    if "://" not in url and not Path(url).is_absolute() and source not in ("<table>", "<defaults>"):
        url = str(Path(source).parent / url)  # relative to the config file, as [sim] device
    return url


def _time_scale(clock: dict[str, Any], where: str) -> float:
    """``[clock].time_scale``: bench seconds per wall second (1 for real hardware)."""
    unknown = sorted(set(clock) - {"time_scale"})
    if unknown:
        raise ConfigError(f"{where}: unknown key [clock].{unknown[0]}; known: time_scale")
    value = clock.get("time_scale", 1.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: [clock].time_scale must be a positive number, got {value!r}")
    return float(value)


def _section(table: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = table.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    return value
