"""The runs the paper's figure set needs, as a lab would schedule them.

One entry per run: the protocol, its parameters for the full set and the smaller ones
of ``--quick`` (fewer cells, samples and worlds; the same procedure), and the panels of
the seed paper it feeds (``analysis/paper_panels.py`` says which figure of the run is
which panel). Seeds are fixed, so a rerun of the same plan asks for the same runs and
reuses the files already complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PaperRun:
    """One run of the figure set: ``name`` (its folder under ``runs/``), the protocol's
    registry name, its parameters (SI units) in the full set and the overrides of
    ``--quick``, and the seed paper's panels it feeds."""

    name: str
    protocol: str
    params: Mapping[str, Any]
    quick: Mapping[str, Any] = field(default_factory=dict)
    panels: tuple[str, ...] = ()
    seed: int = 1

    def values(self, quick: bool) -> dict[str, Any]:
        """The parameter values of this run in the full set or in ``--quick``."""
        return {**self.params, **(self.quick if quick else {})}


#: In the order a bench operator would run them: characterisation first, then the
#: networks, then the studies that build on them.
PLAN: tuple[PaperRun, ...] = (
    PaperRun("iv", "iv-sweep", {"cells": ["0:0:0"], "cycles": 10}, {"cycles": 3}, ("2c",)),
    PaperRun("levels", "multilevel", {"levels": 64, "per_level": 16}, {"per_level": 4}, ("2d",)),
    PaperRun("retention", "retention", {"levels": 8, "per_level": 128, "points": 13},
             {"per_level": 16, "points": 7}, ("2e", "2g")),
    PaperRun("pattern", "pattern", {"image": "moon-star"}, {}, ("2f",)),
    PaperRun("ring-program", "program-model", {"model": "ring"}, {}, ("3b",)),
    PaperRun("ring-sample", "sample", {"model": "ring", "samples": 1000, "waveforms": 100},
             {"samples": 300, "batch": 300, "waveforms": 50}, ("3e",)),
    PaperRun("ring-nodes", "network-nodes", {"model": "ring", "samples": 20}, {"samples": 10}, ("3a", "3c")),
    PaperRun("ring-field", "network-field", {"model": "ring", "grid": 15}, {"grid": 11, "times": [1.0, 0.2, 0.05]},
             ("3d",)),
    PaperRun("digits-sample", "sample", {"model": "digits", "samples": 500, "waveforms": 30, "shared_noise": True},
             {"samples": 100, "batch": 300, "waveforms": 10}, ("4c", "4d", "4e", "4f")),
    PaperRun("time-scale", "time-scale", {"model": "digits", "samples": 500, "scheduler": "local"},
             {"samples": 100, "rc": [1e-3, 1e-4, 1e-5], "scheduler": "serial"}, ("3f", "3g", "4g", "4h")),
    PaperRun("write-noise", "write-noise", {"repeats": 8}, {"repeats": 4}, ("5b",)),
    PaperRun("read-noise", "read-noise", {"repeats": 50}, {"repeats": 10}, ("5c",)),
    PaperRun("noise-map", "noise-sweep", {"grid": "full", "models": ["ring"], "worlds": 4, "samples": 200,
                                          "read_noise": [1, 4, 16, 64], "write_noise": [1, 2, 4, 8]},
             {"worlds": 1, "samples": 100, "read_noise": [1, 16, 64], "write_noise": [1, 4, 16], "scheduler": "serial"},
             ("5e",)),
    PaperRun("noise-sweep", "noise-sweep", {"worlds": 8, "samples": 200},
             {"worlds": 2, "samples": 100, "read_noise": [1, 8, 64], "write_noise": [1, 4, 16], "scheduler": "serial"},
             ("5f",)),
    PaperRun("digits-noise-sweep", "noise-sweep", {"models": ["digits", "digits-plain"], "worlds": 8, "samples": 200},
             {"worlds": 2, "samples": 60, "read_noise": [1, 64], "write_noise": [1, 4, 16], "scheduler": "serial"},
             ("5f",)),
)


def plan_run(name: str) -> PaperRun:
    """The plan's run called ``name``."""
    for run in PLAN:
        if run.name == name:
            return run
    raise KeyError(f"no paper run {name!r}; the plan has {', '.join(r.name for r in PLAN)}")
