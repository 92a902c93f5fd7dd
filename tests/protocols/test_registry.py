"""The protocol registry finds protocols by class, in the packages that hold them."""

from __future__ import annotations

import subprocess
import sys

from protocols.engine.protocol import Protocol
from protocols.engine.registry import PROTOCOL_PACKAGES, registry

SHIPPED = {
    "form", "iv-sweep", "read-array", "write-verify", "multilevel", "pattern", "retention",
    "read-noise", "write-noise", "program-model", "sample", "noise-sweep", "time-scale",
    "network-field", "network-nodes",
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
    assert diffusion == {"program-model", "sample", "noise-sweep", "time-scale", "network-field", "network-nodes"}


def test_listing_protocols_needs_neither_torch_nor_the_simulator():
    """The registry imports every module of the protocol packages, not their subpackages:
    training (torch) lives in protocols.diffusion.training, so a bench without the
    train extra lists and runs protocols."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch': raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from protocols.engine.registry import registry\n"
        f"assert len(registry()) == {len(SHIPPED)}\n"
        "sim = [m for m in sys.modules if m.startswith('instruments.sim.') and m != 'instruments.sim.device_params']\n"
        "assert not sim, sim\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
