"""Typed views of the diffusion run files: ``sample`` and ``noise-sweep``.

Same conventions as :mod:`analysis.characterization_data`: arrays in data units or SI, row-aligned
streams cut to their common length (killed runs), None when a run holds no such data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.characterization_data import common_length, has, optional, units
from analysis.metrics import grouped_quartiles, nearest_default
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


#: Datasets of a noise sweep that are axes or point coordinates, not per-point metrics.
SWEEP_COORDINATES = ("read_noise", "write_noise", "model_index", "model_noise_trained", "point_model",
                     "point_read_noise", "point_write_noise", "point_world", "world_seeds")


@dataclass(frozen=True)
class NoiseSweepData:
    """A read-noise x write-noise sweep over simulated worlds: multipliers ``read_noise`` (R,),
    ``write_noise`` (W,); ``models`` (M,) names and ``noise_trained`` (M,) flags; ``grids``
    metric -> (M, R, W) median over worlds, ``q25``/``q75`` the quartiles, ``worlds`` (M, R, W)
    how many worlds finished each setting (NaN / 0 where none: a killed run, or off the two lines
    of an ``axes`` sweep), all recomputed from the per-point rows; ``units`` metric -> unit;
    ``points`` metric -> per-point values, one row per world, with ``point_cell`` (n, 3) their
    (model, read index, write index) and ``point_world`` (n,). Files from before worlds existed
    have one world per point (``point_world`` all 0)."""

    read_noise: np.ndarray
    write_noise: np.ndarray
    models: list[str]
    noise_trained: np.ndarray | None
    grids: dict[str, np.ndarray]
    units: dict[str, str]
    q25: dict[str, np.ndarray] = field(default_factory=dict)
    q75: dict[str, np.ndarray] = field(default_factory=dict)
    worlds: np.ndarray | None = None
    points: dict[str, np.ndarray] = field(default_factory=dict)
    point_cell: np.ndarray | None = None
    point_world: np.ndarray | None = None

    @property
    def full(self) -> bool:
        """True when some setting off the two lines through the default level was run (a map)."""
        if self.worlds is None:
            return False
        i0, j0 = nearest_default(self.read_noise), nearest_default(self.write_noise)
        off = np.ones(self.worlds.shape[1:], bool)
        off[i0, :] = off[:, j0] = False
        return bool(np.any(self.worlds[:, off] > 0))


def load_noise_sweep(run: Run) -> NoiseSweepData | None:
    """The noise-sweep view (constants ``read_noise`` and ``write_noise``), or None."""
    if not (has(run, "read_noise") and has(run, "write_noise") and has(run, "point_model")):
        return None
    rn, wn = run.read("read_noise").astype(float), run.read("write_noise").astype(float)
    models = [str(m) for m in run.parameters.get("models", [])]
    trained = optional(run, "model_noise_trained")
    m = len(models) or (len(trained) if trained is not None else 1)
    models = models or [f"model {i}" for i in range(m)]
    world = optional(run, "point_world")
    pm, pr, pw, world = common_length(run.read("point_model"), run.read("point_read_noise"),
                                      run.read("point_write_noise"), world)
    n = len(pm)
    world = np.zeros(n, int) if world is None else world.astype(int)
    i = np.argmin(np.abs(rn[None, :] - pr[:, None]), axis=1) if n else np.zeros(0, int)  # axes need not be sorted
    j = np.argmin(np.abs(wn[None, :] - pw[:, None]), axis=1) if n else np.zeros(0, int)
    ok = (pm >= 0) & (pm < m)
    cell = np.stack([pm, i, j], axis=1)[ok].astype(int)
    shape = (m, rn.size, wn.size)
    worlds = np.zeros(shape, int)
    np.add.at(worlds, tuple(cell.T), 1)
    metric_names = [p.rsplit("/", 1)[1] for p, info in run.datasets.items()
                    if p.startswith(f"{DATA}/") and len(info.shape) == 1
                    and p.rsplit("/", 1)[1] not in SWEEP_COORDINATES]
    grids, q25, q75, unit, points = {}, {}, {}, {}, {}
    for name in metric_names:
        values = run.read(name)[:n].astype(float)
        if len(values) < n:  # a metric stream shorter than the coordinates: pad the missing rows
            values = np.concatenate([values, np.full(n - len(values), np.nan)])
        points[name] = values[ok]
        stats = grouped_quartiles(points[name], cell, shape)
        grids[name], q25[name], q75[name] = stats["median"], stats["q25"], stats["q75"]
        unit[name] = units(run, name)
    return NoiseSweepData(rn, wn, models, trained, grids, unit, q25, q75, worlds, points, cell, world[ok])
