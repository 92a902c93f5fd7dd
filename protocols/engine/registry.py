"""Where protocols are found: the shipped packages, installed packages, files and modules.

Four sources, one kind of thing (a named :class:`~protocols.engine.protocol.Protocol`
subclass):

* the shipped packages (:mod:`protocols.characterization`, :mod:`protocols.diffusion`),
  imported module by module: a module is a protocol module because it defines a protocol
  class, and a helper module simply defines none;
* installed packages, through the entry-point group ``rrambench.protocols``
  (``name = "package.module:Class"``);
* the bench config's ``[protocols] paths``: files (``PATH.py``, ``PATH.py:Class``) and
  modules (``package.module``, ``package.module:Class``);
* a reference on the command line, ``rrambench run PATH.py:Class``.

A user file or module that cannot be loaded (syntax error, exception, missing class,
class not a Protocol) is a :class:`ProtocolLoadError`: one line naming the file and the
error (exit 2 in the CLI). Every class loaded here keeps the reference it was loaded
from, so a run records where its protocol came from (:func:`protocol_source`) and
``--resume`` loads it again from there.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import keyword
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

from protocols.engine.errors import UsageError
from protocols.engine.params import ParameterError
from protocols.engine.protocol import Protocol

__all__ = [
    "ENTRY_POINT_GROUP", "PROTOCOL_PACKAGES", "ProtocolLoadError", "get_protocol", "is_reference",
    "load_reference", "protocol_source", "registry", "source_changed",
]

#: Packages whose modules define the shipped protocols.
PROTOCOL_PACKAGES = ("protocols.characterization", "protocols.diffusion")
#: The entry-point group installed packages register their protocols under.
ENTRY_POINT_GROUP = "rrambench.protocols"
#: Prefix of the module names user files are imported under (never on sys.path).
USER_MODULES = "rrambench_user_protocols"

# The reference each non-shipped class was loaded from ("PATH.py:Class", "module:Class"),
# so the run file records it and --resume loads the class the same way.
_REFERENCES: dict[type, str] = {}
# Imported user files by (resolved path, sha256 of the source): a file is executed once
# per content, and again when it changed (a --resume --force in the same process).
_FILES: dict[tuple[str, str], object] = {}


class ProtocolLoadError(UsageError):
    """A user protocol (file, module, entry point) could not be loaded: one line, exit 2."""


def _import_package(name: str) -> None:
    package = importlib.import_module(name)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg:
            importlib.import_module(f"{name}.{info.name}")


def _subclasses(base: type[Protocol]) -> list[type[Protocol]]:
    found, stack = [], list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        found.append(cls)
    return found


def registry(paths: Sequence[str] = ()) -> dict[str, type[Protocol]]:
    """Every protocol by name, sorted: the shipped ones, those installed packages register
    under ``rrambench.protocols``, and those of ``paths`` (the config's ``[protocols] paths``:
    files or modules, each optionally ``:Class``).

    ProtocolLoadError when a user protocol cannot be loaded or two share a name.
    """
    for package in PROTOCOL_PACKAGES:
        _import_package(package)
    found: dict[str, type[Protocol]] = {}
    for cls in _subclasses(Protocol):
        if cls.name and cls.__module__.startswith(PROTOCOL_PACKAGES):
            if cls.name in found and found[cls.name] is not cls:
                raise RuntimeError(f"protocol name {cls.name!r} defined twice: {found[cls.name]} and {cls}")
            found[cls.name] = cls
    for where, classes in [*_entry_point_classes(), *((ref, load_reference(ref)) for ref in paths)]:
        for cls in classes:
            other = found.setdefault(cls.name, cls)
            if other is not cls:
                raise ProtocolLoadError(f"{where}: protocol name {cls.name!r} is taken by "
                                        f"{_REFERENCES.get(other, other.__module__)}")
    return dict(sorted(found.items()))


def get_protocol(name: str, paths: Sequence[str] = ()) -> type[Protocol]:
    """The protocol called ``name`` (among :func:`registry` of ``paths``), or the class a
    reference names (``PATH.py:Class``, ``module:Class``); ParameterError naming the known
    protocols otherwise."""
    if is_reference(name):
        classes = load_reference(name)
        if len(classes) > 1:
            raise ProtocolLoadError(f"{name}: defines {len(classes)} protocols "
                                    f"({', '.join(c.__name__ for c in classes)}); name one as {name}:Class")
        return classes[0]
    known = registry(paths)
    if name not in known:
        raise ParameterError(f"unknown protocol {name!r}; known: {', '.join(known) or 'none'}")
    return known[name]


def is_reference(text: str) -> bool:
    """Does ``text`` name a file or module (``PATH.py[:Class]``, ``module:Class``) rather
    than a protocol name? Protocol names hold neither ``:`` nor ``.py`` nor a path separator."""
    return ":" in text or text.endswith(".py") or "/" in text or "\\" in text


def load_reference(ref: str) -> list[type[Protocol]]:
    """The protocol classes ``ref`` names: ``PATH.py:Class`` or ``module:Class`` one class;
    ``PATH.py`` or ``module`` every named protocol class it defines.

    ProtocolLoadError (one line naming the file or module and the error) when the file
    is missing, does not import (syntax error, exception), lacks the class, or the class
    is not a named Protocol.
    """
    target, _, class_name = ref.rpartition(":") if _has_class(ref) else (ref, "", "")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module, where = _import_file(Path(target)), target
    else:
        module, where = _import_module(target), target
    if class_name:
        cls = getattr(module, class_name, None)
        if cls is None:
            defined = ", ".join(c.__name__ for c in _defined_in(module)) or "none"
            raise ProtocolLoadError(f"{where}: no class {class_name!r} (protocols defined there: {defined})")
        classes = [cls]
    else:
        classes = [c for c in _defined_in(module) if c.name]
        if not classes:
            raise ProtocolLoadError(f"{where}: defines no Protocol subclass with a name")
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, Protocol)):
            raise ProtocolLoadError(f"{where}: {class_name} is not a Protocol subclass "
                                    "(from protocols import Protocol)")
        if not cls.name:
            raise ProtocolLoadError(f"{where}: {cls.__name__} sets no name (name = \"...\", as `run` calls it)")
        if is_reference(cls.name) or not cls.name.strip():
            raise ProtocolLoadError(f"{where}: {cls.__name__}.name {cls.name!r} must not hold ':', '/' or '.py'")
        _REFERENCES.setdefault(cls, _reference(cls, where))
    return classes


def protocol_source(cls: type[Protocol]) -> dict[str, str]:
    """Where ``cls`` came from, as a run file records it (run attribute ``protocol_source``):
    ``origin`` ("shipped", "file", "module"), ``reference`` (what loads it again: the protocol
    name, ``PATH.py:Class`` or ``module:Class``), ``module``, ``class``, ``file`` (its source
    file, "" when it has none, e.g. a notebook cell) and ``sha256`` of that file's bytes."""
    module = cls.__module__
    try:
        file = inspect.getsourcefile(cls) or ""
    except (TypeError, OSError):  # defined in a notebook cell or built at run time
        file = ""
    if module.startswith(PROTOCOL_PACKAGES):
        origin, reference = "shipped", cls.name
    elif module.startswith(USER_MODULES):
        origin, reference = "file", _REFERENCES.get(cls, f"{file}:{cls.__name__}")
    else:
        origin, reference = "module", _REFERENCES.get(cls, f"{module}:{cls.__qualname__}")
    return {"origin": origin, "reference": reference, "module": module, "class": cls.__qualname__,
            "file": str(Path(file).resolve()) if file else "", "sha256": _sha256(Path(file)) if file else ""}


def source_changed(recorded: dict[str, str], cls: type[Protocol]) -> str:
    """"" when ``cls``'s source file is the one a run recorded (``protocol_source``), else
    one line saying what changed. Shipped protocols are versioned with the software
    (``software_version``) and never refused; a recorded source without a hash neither."""
    if not recorded.get("sha256") or recorded.get("origin") == "shipped":
        return ""
    now = protocol_source(cls)
    if now["sha256"] == recorded["sha256"]:
        return ""
    where = recorded.get("file") or recorded.get("reference", "")
    return (f"protocol source {where} changed since the run started "
            f"(sha256 {recorded['sha256'][:12]} then, {now['sha256'][:12] or 'none'} now)")


# -- loading ----------------------------------------------------------------------------------
def _has_class(ref: str) -> bool:
    """Does ``ref`` end in ``:Class``? (A Windows drive letter, ``C:\\...``, is no class.)"""
    head, sep, tail = ref.rpartition(":")
    return bool(sep and head) and tail.isidentifier() and not keyword.iskeyword(tail)


def _import_file(path: Path) -> object:
    """Execute a user file as a module of its own (once per content); its folder is on
    sys.path while it runs, so it may import modules beside it."""
    try:
        source = path.read_bytes()
    except FileNotFoundError:
        raise ProtocolLoadError(f"{path}: no such file") from None
    except OSError as exc:
        raise ProtocolLoadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    resolved = str(path.resolve())
    key = (resolved, hashlib.sha256(source).hexdigest())
    if key in _FILES:
        return _FILES[key]
    # A module name of its own per file and content: two files named alike never collide,
    # and dataclasses, pickling and tracebacks find the module in sys.modules.
    name = f"{USER_MODULES}_{_identifier(path.stem)}_{key[1][:12]}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise ProtocolLoadError(f"{path}: line {exc.lineno}: SyntaxError: {exc.msg}") from None
    except BaseException as exc:  # whatever the file raises while it imports: one line, never a traceback
        del sys.modules[name]
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ProtocolLoadError(f"{path}: import failed: {type(exc).__name__}: {_one_line(exc)}") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    _FILES[key] = module
    return module


def _import_module(name: str) -> object:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise ProtocolLoadError(f"{name}: no such module") from None
        raise ProtocolLoadError(f"{name}: import failed: {type(exc).__name__}: {_one_line(exc)}") from None
    except Exception as exc:
        raise ProtocolLoadError(f"{name}: import failed: {type(exc).__name__}: {_one_line(exc)}") from None


def _entry_point_classes() -> list[tuple[str, list[type[Protocol]]]]:
    """The classes installed packages register under ``rrambench.protocols``."""
    from importlib.metadata import entry_points

    found = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {point.name} = {point.value} ({ENTRY_POINT_GROUP})"
        try:
            loaded = point.load()
        except Exception as exc:
            raise ProtocolLoadError(f"{where}: import failed: {type(exc).__name__}: {_one_line(exc)}") from None
        if isinstance(loaded, type) and issubclass(loaded, Protocol) and loaded.name:
            _REFERENCES.setdefault(loaded, point.value)
            found.append((where, [loaded]))
        elif inspect.ismodule(loaded):
            found.append((where, load_reference(point.value)))
        else:
            raise ProtocolLoadError(f"{where}: not a named Protocol subclass")
    return found


def _defined_in(module: object) -> list[type[Protocol]]:
    """The Protocol subclasses ``module`` defines (not those it imports), in source order."""
    return [c for c in vars(module).values()
            if isinstance(c, type) and issubclass(c, Protocol) and c is not Protocol
            and c.__module__ == getattr(module, "__name__", None)]


def _reference(cls: type[Protocol], where: str) -> str:
    if cls.__module__.startswith(USER_MODULES):
        return f"{Path(where).resolve()}:{cls.__name__}"
    return f"{cls.__module__}:{cls.__qualname__}"


def _identifier(text: str) -> str:
    name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in text)
    return name if name.isidentifier() else f"_{name}"


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or "(no message)"
