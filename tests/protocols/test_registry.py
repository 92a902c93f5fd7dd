"""The protocol registry imports exactly the modules that define protocols."""

from __future__ import annotations

import importlib
import pkgutil

import protocols
from protocols.base import _INFRASTRUCTURE, registry


def _modules() -> set[str]:
    return {m.name for m in pkgutil.iter_modules(protocols.__path__) if not m.ispkg}


def test_every_module_the_registry_imports_defines_a_protocol():
    """Helpers (cells, patterns, programming, sweep_tasks, ...) are listed as infrastructure,
    so listing protocols never imports what it does not need."""
    defining = {cls.__module__.removeprefix("protocols.") for cls in registry().values()}
    assert _modules() - _INFRASTRUCTURE == defining


def test_no_infrastructure_module_hides_a_protocol():
    """A protocol put in a module listed as infrastructure would vanish from the registry."""
    for name in _INFRASTRUCTURE & _modules():
        importlib.import_module(f"protocols.{name}")
    defining = {cls.__module__.removeprefix("protocols.") for cls in registry().values()}
    assert not defining & _INFRASTRUCTURE
    assert _INFRASTRUCTURE <= _modules(), "the list names no module that is gone"
