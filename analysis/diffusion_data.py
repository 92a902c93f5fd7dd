"""Typed views of the diffusion run files: ``sample`` and ``noise-sweep``.

Same conventions as :mod:`analysis.characterization_data`: arrays in data units or SI, row-aligned
streams cut to their common length (killed runs), None when a run holds no such data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.characterization_data import common_length, has, optional, units
from analysis.run_reader import Run
from analysis.schema import DATA

IMAGE_STREAMS = ("images_simulated_rram", "images_software", "images_baseline")
#: Earlier names of image streams, read under today's name (files written before the rename).
FORMER_NAMES = {"images_simulated_rram": ("images_rram",)}
RING_SCALARS = ("mean_radius", "radial_std", "max_sector_ratio", "hist2d_distance", "mmd")


@dataclass(frozen=True)
class SampleData:
    """Closed-loop samples: ``final`` (N, 2) analog, ``software`` (N, 2) baseline from the same
    ``initial`` noise (N, 2), data units; ``condition`` (N,) class index (conditional models);
    ``images`` name -> (N, h, w) decoded images in [0, 1]; ``accuracy`` (3, K) fraction per
    class (rows: analog + simulated RRAM decoder, analog + software decoder, software baseline);
    ``scores`` name -> (analog, software) ring metrics."""

    final: np.ndarray
    software: np.ndarray | None
    initial: np.ndarray | None
    condition: np.ndarray | None
    images: dict[str, np.ndarray]
    accuracy: np.ndarray | None
    scores: dict[str, np.ndarray]


def load_samples(run: Run) -> SampleData | None:
    """The sample view (stream ``final`` of (N, 2) states), or None."""
    final = optional(run, "final")
    if final is None or final.ndim != 2 or final.shape[1] != 2:
        return None
    final, software, initial, condition = common_length(final, optional(run, "software"), optional(run, "initial"),
                                                        optional(run, "condition"))
    images = {}
    for name in IMAGE_STREAMS:
        img = optional(run, name, *FORMER_NAMES.get(name, ()))
        if img is not None and len(img):
            side = int(round(np.sqrt(img.shape[1])))
            images[name] = img.reshape(len(img), side, side) if side * side == img.shape[1] else img
    acc = optional(run, "accuracy")
    scores = {name: a[-1] for name in ("kl", *RING_SCALARS) if (a := optional(run, name)) is not None and len(a)}
    return SampleData(final.astype(float), software, initial, condition, images,
                      acc[-1] if acc is not None and len(acc) else None, scores)


@dataclass(frozen=True)
class NoiseSweepData:
    """A read-noise x write-noise sweep: multipliers ``read_noise`` (R,), ``write_noise`` (W,);
    ``models`` (M,) names and ``noise_trained`` (M,) flags; ``grids`` metric -> (M, R, W) (NaN
    where a point is missing, rebuilt from the finished points for a killed run);
    ``units`` metric -> unit; ``points`` metric -> per-point values with ``point_*`` coordinates."""

    read_noise: np.ndarray
    write_noise: np.ndarray
    models: list[str]
    noise_trained: np.ndarray | None
    grids: dict[str, np.ndarray]
    units: dict[str, str]


def load_noise_sweep(run: Run) -> NoiseSweepData | None:
    """The noise-sweep view (constants ``read_noise`` and ``write_noise``), or None."""
    if not (has(run, "read_noise") and has(run, "write_noise") and has(run, "point_model")):
        return None
    rn, wn = run.read("read_noise").astype(float), run.read("write_noise").astype(float)
    models = [str(m) for m in run.parameters.get("models", [])]
    trained = optional(run, "model_noise_trained")
    m = len(models) or (len(trained) if trained is not None else 1)
    models = models or [f"model {i}" for i in range(m)]
    pm, pr, pw = common_length(run.read("point_model"), run.read("point_read_noise"), run.read("point_write_noise"))
    metric_names = [p.rsplit("/", 1)[1] for p, info in run.datasets.items()
                    if p.startswith(f"{DATA}/") and len(info.shape) == 1 and not p.endswith(("read_noise",
                    "write_noise", "model_index", "model_noise_trained", "point_model"))]
    grids, unit = {}, {}
    for name in metric_names:
        values = run.read(name)[: len(pm)].astype(float)
        grid = np.full((m, rn.size, wn.size), np.nan)
        n = len(values)
        i = np.argmin(np.abs(rn[None, :] - pr[:n, None]), axis=1)  # grid axes need not be sorted
        j = np.argmin(np.abs(wn[None, :] - pw[:n, None]), axis=1)
        ok = (pm[:n] >= 0) & (pm[:n] < m)
        grid[pm[:n][ok], i[ok], j[ok]] = values[ok]
        grids[name], unit[name] = grid, units(run, name)
    return NoiseSweepData(rn, wn, models, trained, grids, unit)
