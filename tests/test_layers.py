"""The layers point one way, and the hardware path never loads the simulator.

gui -> protocols -> instruments; protocols may use analysis (metrics, the run reader);
analysis uses no protocol, gui or instrument driver; instruments use none of the others.
The simulator (``instruments.sim``) is imported outside ``instruments/sim/`` only inside
functions, and only by a module whose name says "simulated" or by one of ``SIM_USERS``.
Every import counts, those inside functions included; ``if TYPE_CHECKING:`` imports
count as lazy (they never run).
"""

from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("instruments", "protocols", "analysis", "gui")
SIM = "instruments.sim"
#: The one simulator module a module may load at import time, and a hardware run may
#: load at all: the device-parameter table a bench config may carry (no simulator in it).
DEVICE_TABLE = "instruments.sim.device_params"

#: What each layer may import among the layers (itself included); prefixes of module names.
MAY_IMPORT = {
    "instruments": ("instruments",),
    "analysis": ("analysis", SIM),  # the device model it fits, never a driver
    "protocols": ("protocols", "instruments", "analysis"),
    "gui": ("gui", "protocols", "instruments", "analysis"),
}
#: Imports against the direction: (importing module, imported prefix) -> reason.
UPWARD = {
    ("protocols.cli.gui", "gui"): "`rrambench gui` opens the window: the command line sits above every layer",
}
#: Modules outside instruments/sim/ whose name does not say "simulated" but that use the
#: simulator on purpose -> reason.
SIM_USERS = {
    "instruments.bench": 'backend = "sim": the embedded simulated bench',
    "instruments.config": "a bench config may carry a [device] table (DeviceParams)",
    "protocols.cli.sim": "`rrambench sim serve` serves a simulated bench",
    "protocols.engine.launch": "resuming a simulated run reloads its world checkpoint",
    "analysis.calibration": "fits the simulator's device model (DeviceParams and its read-noise law)",
    "analysis.calibration_runs": "the same fit, from run files",
    "protocols.diffusion.time_scale": "simulated-only (like noise-sweep): each point builds a board of its RC in a "
                                      "simulated world of its own",
    "protocols.diffusion.speed_energy": "the host-board transfer time is measured on the emulated board's link",
}


@dataclass(frozen=True)
class Import:
    module: str  # importing module
    target: str  # imported module
    lazy: bool  # inside a function or under `if TYPE_CHECKING:`
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}{' (lazily)' if self.lazy else ''}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> list[Import]:
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(module, alias.name, lazy, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(Import(module, sub if _is_module(sub) else base, lazy, node.lineno))
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.If) and _type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, lazy)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return [imp for layer in LAYERS for path in sorted((ROOT / layer).rglob("*.py")) for imp in _imports(path)]


def test_the_scan_sees_every_kind_of_import(imports):
    """Module-level, lazy, TYPE_CHECKING and relative imports are all found and resolved."""
    seen = {(imp.module, imp.target, imp.lazy) for imp in imports}
    assert ("instruments.bench", "instruments.sim.world", True) in seen  # inside a function
    assert ("instruments.macro_controller", "instruments.macro_controller_wire", False) in seen
    assert ("protocols.engine.launch", "instruments.config", True) in seen  # TYPE_CHECKING
    assert len({imp.module for imp in imports}) > 100


def test_layers_point_one_way(imports):
    wrong = []
    for imp in imports:
        source, target = imp.module.split(".")[0], imp.target.split(".")[0]
        if target not in LAYERS or any(_within(imp.target, p) for p in MAY_IMPORT[source]):
            continue
        if not any(imp.module == module and _within(imp.target, p) for module, p in UPWARD):
            wrong.append(str(imp))
    assert not wrong, "imports against the layer direction:\n" + "\n".join(dict.fromkeys(wrong))


def test_the_simulator_is_imported_lazily_and_only_by_simulated_code(imports):
    wrong = []
    for imp in imports:
        if not _within(imp.target, SIM) or _within(imp.module, SIM):
            continue
        if "simulated" not in imp.module.rpartition(".")[2] and imp.module not in SIM_USERS:
            wrong.append(f"{imp}: not a simulated module nor in SIM_USERS")
        elif not imp.lazy and not _within(imp.target, DEVICE_TABLE):
            wrong.append(f"{imp}: at import time (import it inside the function that needs it)")
    assert not wrong, "\n".join(dict.fromkeys(wrong))


def test_the_allow_lists_name_only_modules_that_need_them(imports):
    """A stale entry would silently widen the rules: each one must still be used."""
    sim_users = {imp.module for imp in imports if _within(imp.target, SIM)}
    assert set(SIM_USERS) <= sim_users, set(SIM_USERS) - sim_users
    for module, prefix in UPWARD:
        assert any(imp.module == module and _within(imp.target, prefix) for imp in imports), (module, prefix)


def test_the_simulator_package_stays_light():
    """``import instruments.sim.device_params`` must not load the simulator."""
    tree = ast.parse((ROOT / "instruments" / "sim" / "__init__.py").read_text(encoding="utf-8"))
    assert not [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    table = _imports(ROOT / "instruments" / "sim" / "device_params.py")
    assert not [imp for imp in table if imp.target.split(".")[0] in LAYERS]


# -- what a process really loads ----------------------------------------------------------
_LOADED = textwrap.dedent("""
    import contextlib, io, json, sys
    from protocols.cli.main import main
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(sys.argv[1:])
    print(json.dumps([code, sorted(m for m in sys.modules if m.split(".")[:2] == ["instruments", "sim"])]))
""")


def _sim_modules_loaded(*argv: str) -> list[str]:
    """Run the ``rrambench`` command ``argv`` in a fresh interpreter; the simulator modules it loaded."""
    done = subprocess.run([sys.executable, "-c", _LOADED, *argv], capture_output=True, text=True, timeout=240,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    code, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 0, done.stderr
    return [m for m in loaded if m not in ("instruments.sim", DEVICE_TABLE)]


def test_listing_the_protocols_loads_no_simulator():
    assert _sim_modules_loaded("list") == []


def test_a_run_on_a_hardware_config_loads_no_simulator(tmp_path):
    """read-array on a hardware config, its instruments served by `rrambench sim serve` in another process."""
    proc = subprocess.Popen([sys.executable, "-m", "protocols.cli", "sim", "serve", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.poll() is not None else "sim serve printed nothing"
        resources = json.loads(line)
        config = tmp_path / "bench.toml"
        config.write_text('backend = "hardware"\n[resources]\n'
                          + "".join(f'{role} = "{resources[role]}"\n' for role in ("smu", "scope", "macro_controller")))
        loaded = _sim_modules_loaded("run", "read-array", "--config", str(config), "--out", str(tmp_path / "runs"),
                                     "--seed", "1")
        assert loaded == []
        assert len(list((tmp_path / "runs").glob("*-read-array.h5"))) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
