"""The protocol registry finds protocols by class, in the packages that hold them."""

from __future__ import annotations

from protocols.engine.protocol import Protocol
from protocols.engine.registry import PROTOCOL_PACKAGES, registry

SHIPPED = {
    "form", "iv-sweep", "read-array", "write-verify", "multilevel", "pattern", "retention",
    "read-noise", "write-noise", "program-model", "sample", "noise-sweep",
}


def test_every_shipped_protocol_is_found_in_its_package():
    found = registry()
    assert set(found) == SHIPPED
    for name, cls in found.items():
        assert issubclass(cls, Protocol) and cls.name == name
        assert cls.__module__.startswith(PROTOCOL_PACKAGES)


def test_characterization_and_diffusion_protocols_live_apart():
    found = registry()
    diffusion = {n for n, c in found.items() if c.__module__.startswith("protocols.diffusion.")}
    assert diffusion == {"program-model", "sample", "noise-sweep"}
