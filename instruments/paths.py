"""Where the shipped data (default bench config, model weights) lives."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def data_dir() -> Path:
    """Folder holding `bench.toml` and `models/` (installed as package `rrambench_data`)."""
    return Path(str(resources.files("rrambench_data")))


def default_bench_config() -> Path:
    """The default bench configuration: embedded simulated bench."""
    return data_dir() / "bench.toml"
