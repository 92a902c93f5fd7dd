"""Typed views of the diffusion run files: ``sample``, ``noise-sweep`` and ``network-nodes``.

Same conventions as :mod:`analysis.characterization_data`: arrays in data units or SI, row-aligned
streams cut to their common length (killed runs), None when a run holds no such data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.characterization_data import common_length, has, optional, units
from analysis.metrics import KL_COLUMNS, KL_FLOOR_DRAWS, grouped_quartiles, nearest_default, with_floor
from analysis.run_reader import Run
from analysis.schema import DATA, SCOPE

#: Images decoded by: the decoder on the bench's macros; (files before it) a simulated RRAM
#: array; the software decoder from the analog latents and from the baseline's.
IMAGE_STREAMS = ("images_rram_decoder", "images_simulated_rram", "images_software", "images_baseline")
#: Earlier names of image streams, read under today's name (files written before the rename).
FORMER_NAMES = {"images_simulated_rram": ("images_rram",)}
RING_SCALARS = ("mean_radius", "radial_std", "max_sector_ratio", "hist2d_distance", "mmd")
#: The KL scores of a sample run besides ``kl``: pooled (analog, software), the sampling floor and
#: its spread (x, y, mean, pooled), the 2-D histogram distance (analog, software) and its floor
#: (median, spread); files written before floors were recorded lack them.
KL_EXTRAS = ("kl_pooled", "kl_floor", "kl_floor_spread", "hist2d_distance", "hist2d_floor")


@dataclass(frozen=True)
class SampleData:
    """Closed-loop samples: ``final`` (N, 2) analog, ``software`` (N, 2) baseline from the same
    ``initial`` noise (N, 2), data units; ``condition`` (N,) class index (conditional models);
    ``images`` name -> (N, h, w) decoded images in [0, 1]; ``accuracy`` (3, K) fraction per
    class (rows: analog + RRAM decoder on the bench (a simulated array in older files), analog +
    software decoder, software baseline);
    ``scores`` name -> (analog, software) ring metrics (``kl`` (2, 2) per coordinate, ``kl_pooled``),
    and the KL's sampling floor ``kl_floor``, ``kl_floor_spread`` (x, y, mean, pooled) where recorded
    (the digits run's scores are its latents' KL)."""

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
    scores = {name: a[-1] for name in ("kl", *KL_EXTRAS, *RING_SCALARS)
              if (a := optional(run, name)) is not None and len(a)}
    return SampleData(final.astype(float), software, initial, condition, images,
                      acc[-1] if acc is not None and len(acc) else None, scores)


def kl_texts(scores: dict[str, np.ndarray]) -> dict[str, str]:
    """Each KL of a sample run and its 2-D histogram distance with their sampling floors, for figures
    and reports: ``{"KL x": "analog 0.041 (floor 0.012 ± 0.003), software 0.035", ...}`` for x, y,
    pooled and "2-D histogram distance"; "floor unknown" (and the pooled KL "-") in files written
    before they were recorded. {} without KL."""
    if "kl" not in scores:
        return {}
    kl = np.asarray(scores["kl"], float)
    pooled = np.asarray(scores.get("kl_pooled", (np.nan, np.nan)), float)
    floor = np.asarray(scores.get("kl_floor", np.full(len(KL_COLUMNS), np.nan)), float)
    spread = np.asarray(scores.get("kl_floor_spread", np.full(len(KL_COLUMNS), np.nan)), float)
    rows = {"x": (kl[0, 0], kl[1, 0]), "y": (kl[0, 1], kl[1, 1]), "pooled": tuple(pooled)}
    out = {}
    for name, (analog, software) in rows.items():
        k = KL_COLUMNS.index(name)
        shown = f"{software:.3g}" if np.isfinite(software) else "-"
        out[f"KL {name}"] = f"analog {with_floor(analog, floor[k], spread[k])}, software {shown}"
    if "hist2d_distance" in scores:
        analog, software = np.asarray(scores["hist2d_distance"], float)
        h_floor, h_spread = np.asarray(scores.get("hist2d_floor", (np.nan, np.nan)), float)
        shown = f"{software:.3g}" if np.isfinite(software) else "-"
        out["2-D histogram distance"] = f"analog {with_floor(analog, h_floor, h_spread)}, software {shown}"
    return out


def kl_note(scores: dict[str, np.ndarray]) -> str:
    """:func:`kl_texts` as the lines under a samples figure, with what the KL and its floor are; ""
    without KL."""
    texts = kl_texts(scores)
    if not texts:
        return ""
    rows = "; ".join(f"{name}: {text}" for name, text in texts.items())
    return (f"{rows}\nHistogram KL (nats, 50 bins over [-4, 4]) against the task's reference; pooled: x and y "
            f"in one histogram (the authors' form); 2-D histogram distance: L2 between 100 x 100-bin histograms "
            f"(the seed's calDistance). Floor: the same score of as many fresh reference samples, "
            f"median ± std over {KL_FLOOR_DRAWS} draws.")


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
    have one world per point (``point_world`` all 0). ``kl_floor``, ``kl_floor_spread`` (4,: x, y,
    mean, pooled): the KL's sampling floor at the sweep's sample count, ``hist2d_floor`` (2,: median,
    spread) the 2-D histogram distance's; None in files written before they were recorded."""

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
    kl_floor: np.ndarray | None = None
    kl_floor_spread: np.ndarray | None = None
    hist2d_floor: np.ndarray | None = None

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
    floor, spread, h_floor = (optional(run, k) for k in ("kl_floor", "kl_floor_spread", "hist2d_floor"))
    return NoiseSweepData(rn, wn, models, trained, grids, unit, q25, q75, worlds, points, cell, world[ok],
                          floor[-1] if floor is not None and len(floor) else None,
                          spread[-1] if spread is not None and len(spread) else None,
                          h_floor[-1] if h_floor is not None and len(h_floor) else None)


@dataclass(frozen=True)
class NodeData:
    """Every node of the analog network during sampling (``network-nodes``).

    ``time`` (P,) s of every trace; ``integrators`` (N, 2, P) V of the first node's run (every
    run repeats the same sampling); ``monitor`` (R, P) V, one row per run and sample, with
    ``layer`` (R,) the mapped layer (0-based: the hidden ReLU layers, then the output layer),
    ``node`` (R,) and ``sample`` (R,) of each row; ``layer_outputs`` (L,) nodes per layer."""

    time: np.ndarray
    integrators: np.ndarray
    monitor: np.ndarray
    layer: np.ndarray
    node: np.ndarray
    sample: np.ndarray
    layer_outputs: np.ndarray

    def nodes(self, layer: int, sample: int) -> tuple[np.ndarray, np.ndarray]:
        """Node indices and their traces (n, P) V of ``layer`` for ``sample``, in node order."""
        rows = np.flatnonzero((self.layer == layer) & (self.sample == sample))
        rows = rows[np.argsort(self.node[rows], kind="stable")]
        return self.node[rows], self.monitor[rows]

    def layer_inputs(self) -> list[np.ndarray]:
        """Every input voltage (V) each layer saw, over all samples and times: layer 1 the
        integrators, layer k > 1 the outputs of hidden layer k - 1 (as recorded)."""
        inputs = [self.integrators.ravel()]
        for k in range(len(self.layer_outputs) - 1):
            inputs.append(self.monitor[self.layer == k].ravel())
        return inputs


def load_nodes(run: Run) -> NodeData | None:
    """The network-nodes view (monitor traces with their layer and node), or None."""
    needed = (f"{SCOPE}/monitor", f"{SCOPE}/integrator_0", f"{SCOPE}/integrator_1")
    if not all(p in run.datasets for p in needed) or not has(run, "monitor_layer"):
        return None
    monitor = run.trace_volts("monitor")
    layer, node, sample = common_length(run.read("monitor_layer"), run.read("monitor_node"),
                                        run.read("monitor_sample"))
    n = min(len(monitor), len(layer))
    if n == 0:
        return None
    first = np.flatnonzero((layer[:n] == layer[0]) & (node[:n] == node[0]))
    integ = np.stack([run.trace_volts(name)[first] for name in ("integrator_0", "integrator_1")], axis=1)
    sizes = optional(run, "layer_outputs")
    sizes = sizes.astype(int) if sizes is not None else np.bincount(layer[:n]).astype(int)
    return NodeData(run.trace_time("monitor"), integ, monitor[:n], layer[:n].astype(int), node[:n].astype(int),
                    sample[:n].astype(int), sizes)
