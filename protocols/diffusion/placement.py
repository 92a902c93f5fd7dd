"""Where a programmed network sits, read back from what a run recorded.

Programming may move a layer off stuck cells (``MappedNetwork.relocated``); the run
file records the regions it ended with in ``layer_region`` (one row per programming:
per layer macro, row0, col0, n_in, n_out, bias_rows). ``sample`` reads them back to run
its batches on the cells actually programmed: its own programming's after a resume,
or those of a ``program-model`` run (``placement_run``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from protocols.diffusion.mapping import MappedNetwork


def recorded_placement(mapped: MappedNetwork, regions: np.ndarray, source: str) -> MappedNetwork:
    """``mapped`` moved to the last recorded ``layer_region`` rows.

    regions: the recorded stream (programmings, layers, 6); source: what it came from,
    named in the ValueError that refuses an empty record or other layer sizes.
    """
    if len(regions) == 0:
        raise ValueError(f"{source}: no layer placement recorded")
    layers = []
    for lay, reg in zip(mapped.layers, regions[-1], strict=True):
        if (lay.n_in, lay.n_out, lay.bias_rows) != tuple(int(v) for v in reg[3:]):
            raise ValueError(f"{source}: layer sizes {reg[3:].tolist()} differ from this mapping's")
        layers.append(replace(lay, macro=int(reg[0]), row0=int(reg[1]), col0=int(reg[2])))
    return replace(mapped, layers=tuple(layers))


def placement_from_run(path: str, model: str, mapped: MappedNetwork) -> MappedNetwork:
    """``mapped`` with the layer regions the run file ``path`` (a program-model run of
    ``model``) recorded; ValueError naming ``placement_run`` if it has none or
    programmed another model."""
    from analysis.run_reader import RunFileError, open_run

    try:
        run = open_run(path, isolate=True)  # a file the user named: read first in a watched helper
        regions = run.read("layer_region")
    except (RunFileError, KeyError, OSError) as exc:
        raise ValueError(f"placement_run: cannot read a layer placement from {path!r} ({exc})") from None
    if run.parameters.get("model") != model or len(regions) == 0:
        raise ValueError(f"placement_run: {path!r} did not program model {model!r}")
    return recorded_placement(mapped, regions, "placement_run")
