"""Where protocols are found: every ``Protocol`` subclass with a ``name``.

The registry imports the packages that hold protocols (:mod:`protocols.characterization`,
:mod:`protocols.diffusion`) module by module and collects the subclasses of
:class:`~protocols.engine.protocol.Protocol` that set ``name``. Nothing keeps a list
by hand: a module is a protocol module because it defines a protocol class, and a
helper module simply defines none.
"""

from __future__ import annotations

import importlib
import pkgutil

from protocols.engine.params import ParameterError
from protocols.engine.protocol import Protocol

__all__ = ["PROTOCOL_PACKAGES", "registry", "get_protocol"]

#: Packages whose modules define the shipped protocols.
PROTOCOL_PACKAGES = ("protocols.characterization", "protocols.diffusion")


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


def registry() -> dict[str, type[Protocol]]:
    """Every protocol by name, sorted: the named ``Protocol`` subclasses of the protocol packages."""
    for package in PROTOCOL_PACKAGES:
        _import_package(package)
    found: dict[str, type[Protocol]] = {}
    for cls in _subclasses(Protocol):
        if cls.name and cls.__module__.startswith(PROTOCOL_PACKAGES):
            if cls.name in found and found[cls.name] is not cls:
                raise RuntimeError(f"protocol name {cls.name!r} defined twice: {found[cls.name]} and {cls}")
            found[cls.name] = cls
    return dict(sorted(found.items()))


def get_protocol(name: str) -> type[Protocol]:
    """The protocol class called ``name``; ParameterError naming the known ones otherwise."""
    known = registry()
    if name not in known:
        raise ParameterError(f"unknown protocol {name!r}; known: {', '.join(known) or 'none'}")
    return known[name]
