"""Map a trained score network onto RRAM differential pairs and DAC streams.

What the board needs to run the network of :mod:`protocols.diffusion.model` in the
closed loop ``RC dx/dtau = a x + b y + c xi`` (``docs/circuit-model.md``), and how
it is chosen (``docs/diffusion-on-rram.md``):

* **Voltage scales** (V per data unit): integrators and initial conditions
  ``x_scale``, hidden pre-activations and embeddings ``h_scale``, network output
  ``y_scale``. A layer with input scale ``s_in`` and output scale ``s_out`` computes
  in volts ``W_v = w s_out / s_in`` (V/V) and ``b_v = b s_out`` (V).
* **Differential pairs, one-sided**: ``G+ = g_min + max(W_v, 0) / R_f`` and
  ``G- = g_min + max(-W_v, 0) / R_f``. One cell of every pair sits at the bottom
  of the programmable window, where programming spread, relaxation and read noise
  (all growing with G) are smallest; most weights are small, so most cells sit
  near ``g_min``. The symmetric choice ``g_ref +- W_v / (2 R_f)`` would put both
  cells of every pair mid-window and roughly double the noise of small weights.
* **Scale from the weight distribution**: per layer the TIA feedback ``R_f`` is
  chosen so that the largest |weight| (bias rows included) spans ``fill`` of the
  window ``g_max - g_min``.
* **Bias rows**: the bias ``b_v`` is split over ``n_bias`` rows driven at
  ``v_bias``, as many as needed for a bias row's weight not to exceed the largest
  input weight.
* **Streams**: the VP-SDE coefficients become the integrator gains; diffusion time
  runs backwards with physical time, ``t = 1 - tau / T``
  (:func:`protocols.diffusion.loop_streams.loop_streams`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from instruments.macro_controller_wire import LOOP_V_RAIL, LayerRegion
from protocols.diffusion.model import ScoreNet
from protocols.diffusion.weights import TrainedModel

G_MIN = 2e-6          # S, bottom of the programmable window (64 levels, 2..65 uS)
G_MAX = 65e-6         # S, top of the programmable window
V_DAC = 0.5           # V, DAC/read-voltage envelope of the default bench ([limits] read_voltage)
RAIL_MARGIN = 0.95    # fraction of a rail or range a designed signal may use


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class MappingConfig:
    """How weights become conductances and data become volts.

    g_min, g_max: programmable window (S, 0 < g_min < g_max). fill: fraction of the
    window the largest |weight| of a layer spans (0 < fill <= 1). v_bias: bias-row
    voltage (V, > 0). x_scale: V per data unit of the integrators (> 0; |x| up to
    v_dac / x_scale data units fits the DACs). h_scale: V per data unit of the hidden
    pre-activations, or None to choose it from the rails and the embeddings.
    v_dac: largest DAC voltage (V). v_rail: activation rail (V). macros: first macro
    of the score network (layers on consecutive macros, rows and columns from 0).
    """

    g_min: float = G_MIN
    g_max: float = G_MAX
    fill: float = 0.95
    v_bias: float = 0.1
    x_scale: float = 0.1
    h_scale: float | None = None
    v_dac: float = V_DAC
    v_rail: float = LOOP_V_RAIL
    first_macro: int = 0

    def __post_init__(self) -> None:
        for name in ("g_min", "g_max", "v_bias", "x_scale", "v_dac", "v_rail"):
            _positive(f"MappingConfig.{name}", getattr(self, name))
        if self.g_min >= self.g_max:
            raise ValueError(f"MappingConfig.g_min ({self.g_min}) must be below g_max ({self.g_max})")
        if not 0 < self.fill <= 1:
            raise ValueError(f"MappingConfig.fill must be in (0, 1], got {self.fill}")
        if self.h_scale is not None:
            _positive("MappingConfig.h_scale", self.h_scale)
        if self.v_bias > self.v_dac:
            raise ValueError(f"MappingConfig.v_bias {self.v_bias} V exceeds v_dac {self.v_dac} V")
        if not (isinstance(self.first_macro, int) and self.first_macro >= 0):
            raise ValueError(f"MappingConfig.first_macro must be an integer >= 0, got {self.first_macro!r}")


@dataclass(frozen=True)
class PairLayer:
    """Target conductances of one layer and how to read them back as weights.

    g_pos, g_neg: (n_in + n_bias, n_out) S; r_feedback: TIA feedback (ohm); n_bias:
    bias rows; s_in, s_out: V per data unit at the layer's input and output.
    """

    g_pos: np.ndarray
    g_neg: np.ndarray
    r_feedback: float
    n_bias: int
    s_in: float
    s_out: float

    @property
    def n_in(self) -> int:
        return self.g_pos.shape[0] - self.n_bias

    @property
    def n_out(self) -> int:
        return self.g_pos.shape[1]

    def weights(self, g_pos: np.ndarray, g_neg: np.ndarray, v_bias: float) -> tuple[np.ndarray, np.ndarray]:
        """Data-unit weights (n_in, n_out) and bias (n_out,) that conductances g_pos, g_neg (S) implement."""
        w_v = self.r_feedback * (np.asarray(g_pos, float) - np.asarray(g_neg, float))
        w = w_v[: self.n_in] * self.s_in / self.s_out
        b = v_bias * w_v[self.n_in:].sum(axis=0) / self.s_out
        return w, b


def _region_cells(layer: LayerRegion) -> set[tuple[int, int, int]]:
    """Every (macro, row, col) a layer's G+ and G- blocks occupy."""
    height, width = layer.n_in + layer.bias_rows, 2 * layer.n_out
    return {(layer.macro, layer.row0 + r, layer.col0 + c) for r in range(height) for c in range(width)}


def free_spot(blocked: np.ndarray, macros: list[int], height: int, width: int) -> tuple[int, int, int] | None:
    """First (macro, row0, col0) of a ``height`` x ``width`` region with no blocked cell, scanning
    ``macros`` in order, then rows, then columns; None when there is none.

    blocked: (n_macros, rows, cols) bool, True where a region may not go.
    """
    _, rows, cols = blocked.shape
    if height > rows or width > cols:
        return None
    for m in macros:
        # cells blocked in each window, from a summed-area table
        s = np.pad(np.cumsum(np.cumsum(blocked[m].astype(np.int32), axis=0), axis=1), ((1, 0), (1, 0)))
        count = s[height:, width:] - s[:-height, width:] - s[height:, :-width] + s[:-height, :-width]
        free = np.argwhere(count == 0)
        if len(free):
            return m, int(free[0][0]), int(free[0][1])
    return None


def map_dense(w: np.ndarray, b: np.ndarray, s_in: float, s_out: float, cfg: MappingConfig) -> PairLayer:
    """Target conductance pairs of one dense layer ``y = x @ w + b`` (data units).

    w: (n_in, n_out); b: (n_out,); s_in, s_out: V per data unit at input and output (> 0).
    """
    w = np.asarray(w, dtype=float)
    b = np.asarray(b, dtype=float)
    if w.ndim != 2 or b.shape != (w.shape[1],):
        raise ValueError(f"w must be (n_in, n_out) and b (n_out,), got {w.shape} and {b.shape}")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
        raise ValueError("w and b must be finite")
    s_in, s_out = _positive("s_in", s_in), _positive("s_out", s_out)
    w_v = w * (s_out / s_in)
    bias_rows_total = b * s_out / cfg.v_bias          # total V/V gain of the bias rows
    w_top = float(np.max(np.abs(w_v)))
    if w_top == 0:
        raise ValueError("w is all zeros: nothing sets the conductance scale")
    n_bias = max(1, math.ceil(float(np.max(np.abs(bias_rows_total))) / w_top - 1e-9))
    rows = np.vstack([w_v, np.tile(bias_rows_total / n_bias, (n_bias, 1))])
    r_f = float(np.max(np.abs(rows))) / (cfg.fill * (cfg.g_max - cfg.g_min))
    dg = rows / r_f
    return PairLayer(g_pos=cfg.g_min + np.maximum(dg, 0.0), g_neg=cfg.g_min + np.maximum(-dg, 0.0),
                     r_feedback=r_f, n_bias=n_bias, s_in=s_in, s_out=s_out)


@dataclass(frozen=True)
class MappedNetwork:
    """A score network mapped onto three cascaded macros (one layer each).

    layers: where each layer sits (the board's layer regions); pairs: target
    conductances; net: the score network mapped (None for other networks, e.g. the
    decoder: then only the cell and volt helpers apply); x_scale, h_scale, y_scale: V per data
    unit; v_bias: bias-row voltage (V); v_rail: activation rail (V). shared_macros: regions
    may share a macro (the decoder's tiles; the score network keeps one macro per layer);
    reserved_macros: macros this network must never move into (another network's).
    """

    layers: tuple[LayerRegion, ...]
    pairs: tuple[PairLayer, ...]
    net: ScoreNet | None
    x_scale: float
    h_scale: float
    y_scale: float
    v_bias: float
    v_rail: float
    config: MappingConfig = field(default_factory=MappingConfig)
    shared_macros: bool = False
    reserved_macros: frozenset[int] = frozenset()

    # -- cells -----------------------------------------------------------------------
    def cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(macro, row, col, target S) of every cell, layer by layer, G+ block then G- block."""
        parts = []
        for lay, pair in zip(self.layers, self.pairs, strict=True):
            for block, col0 in ((pair.g_pos, lay.col0), (pair.g_neg, lay.col0 + lay.n_out)):
                r, c = np.indices(block.shape)
                parts.append((np.full(block.size, lay.macro), (lay.row0 + r).ravel(), (col0 + c).ravel(),
                              block.ravel()))
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(4))

    def partners(self) -> tuple[np.ndarray, np.ndarray]:
        """(partner index, active flag) of every cell in :meth:`cells` order.

        The partner is the other cell of the same pair. The active cell is the one above
        ``g_min`` (G+ for a positive weight, G- for a negative one); a zero weight has
        no active cell.
        """
        partner, active, k = [], [], 0
        for pair in self.pairs:
            n = pair.g_pos.size
            idx = np.arange(k, k + n)
            partner += [idx + n, idx]
            dg = (pair.g_pos - pair.g_neg).ravel()
            active += [dg > 0, dg < 0]
            k += 2 * n
        return np.concatenate(partner), np.concatenate(active)

    def split(self, values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per layer (G+, G-) blocks from a flat array in :meth:`cells` order."""
        values = np.asarray(values, dtype=float)
        out, k = [], 0
        for pair in self.pairs:
            n = pair.g_pos.size
            out.append((values[k:k + n].reshape(pair.g_pos.shape), values[k + n:k + 2 * n].reshape(pair.g_pos.shape)))
            k += 2 * n
        if k != values.size:
            raise ValueError(f"values has {values.size} entries, the mapping has {k} cells")
        return out

    def gather(self, g_by_macro: dict[int, np.ndarray]) -> np.ndarray:
        """Flat conductances in :meth:`cells` order from whole-macro maps (S), keyed by macro."""
        macro, row, col, _ = self.cells()
        out = np.empty(macro.size)
        for m in np.unique(macro):
            sel = macro == m
            out[sel] = np.asarray(g_by_macro[int(m)])[row[sel], col[sel]]
        return out

    # -- networks ----------------------------------------------------------------------
    def pair_weights(self, conductances: np.ndarray | None = None) -> np.ndarray:
        """Data-unit weight of every pair (layer by layer, rows then outputs; a bias row
        carries its share b / n_bias) for ``conductances`` (flat, S) or the targets."""
        blocks = [(p.g_pos, p.g_neg) for p in self.pairs] if conductances is None else self.split(conductances)
        parts = []
        for (gp, gn), p in zip(blocks, self.pairs, strict=True):
            w_v = p.r_feedback * (gp - gn)
            parts.append(np.vstack([w_v[:p.n_in] * p.s_in / p.s_out, w_v[p.n_in:] * self.v_bias / p.s_out]).ravel())
        return np.concatenate(parts)

    def programmed_net(self, conductances: np.ndarray) -> ScoreNet:
        """The score network that conductances (flat, :meth:`cells` order, S) implement, ideal circuit."""
        weights = [p.weights(gp, gn, self.v_bias) for (gp, gn), p in zip(self.split(conductances), self.pairs,
                                                                          strict=True)]
        (w1, b1), (w2, b2), (w3, b3) = weights
        return replace(self.net, w1=w1, b1=b1, w2=w2, b2=b2, w3=w3, b3=b3)

    def relocated(self, stuck: set[tuple[int, int, int]], shape: tuple[int, int, int],
                  layers: set[int] | None = None, strict: bool = True) -> MappedNetwork:
        """The same network with layers moved to regions free of the ``stuck`` (macro, row, col) cells.

        shape: (n_macros, rows, cols) of the board. layers: indices of the layers to move
        (default: those whose region holds a stuck cell). A moved layer takes the first free
        region, scanning its own macro, then the others: with ``shared_macros`` every macro
        not reserved, around the other layers' regions; else each layer keeps a macro of its
        own and only macros no layer uses are taken. When no stuck-free region is left: ValueError
        (``strict``), or the layer stays where it is.
        """
        n_macros, rows, cols = shape
        move = {k for k, lay in enumerate(self.layers) if _region_cells(lay) & stuck} if layers is None else layers
        placed = list(self.layers)
        for k in sorted(move):
            lay = placed[k]
            others = [p for i, p in enumerate(placed) if i != k]
            blocked = np.zeros(shape, dtype=bool)
            for m, r, c in stuck:
                if m < n_macros and r < rows and c < cols:
                    blocked[m, r, c] = True
            if self.shared_macros:
                for p in others:
                    for rows_, cols_ in p.regions():
                        blocked[p.macro, rows_, cols_] = True
                taken = set()
            else:
                taken = {p.macro for p in others}
            candidates = [lay.macro] + [m for m in range(n_macros) if m != lay.macro and m not in taken
                                        and m not in self.reserved_macros]
            height, width = lay.n_in + lay.bias_rows, 2 * lay.n_out
            spot = free_spot(blocked, candidates, height, width)
            if spot is None:
                if not strict:
                    continue
                raise ValueError(f"no region of {height} x {width} cells free of stuck cells is left for layer {k}")
            placed[k] = replace(lay, macro=spot[0], row0=spot[1], col0=spot[2])
        return replace(self, layers=tuple(placed))

    # -- volts -------------------------------------------------------------------------
    def to_volts(self, x: np.ndarray) -> np.ndarray:
        """Integrator voltages (V) of states ``x`` (data units); refuses what the DACs cannot hold."""
        v = np.asarray(x, dtype=float) * self.x_scale
        worst = float(np.max(np.abs(v))) if v.size else 0.0
        if worst > self.config.v_dac:
            raise ValueError(f"x reaches {worst / self.x_scale:.3g} data units = {worst:.3g} V, beyond the "
                             f"DAC range ±{self.config.v_dac} V")
        return v

    def from_volts(self, v: np.ndarray) -> np.ndarray:
        """States (data units) from integrator voltages (V)."""
        return np.asarray(v, dtype=float) / self.x_scale

    def hidden_volts(self, t: float, cond: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(time embedding, condition embedding) DAC voltages (H,) at diffusion time ``t``."""
        emb = self.net.time_embedding(float(t)) * self.h_scale
        c = np.zeros(self.net.hidden) if cond is None else self.net.condition_embedding(int(cond), 1)[0]
        return emb, c * self.h_scale

    def score_from_output(self, y: np.ndarray) -> np.ndarray:
        """Score (1 / data unit) from the output layer's voltages (V)."""
        return self.net.amplitude * np.asarray(y, dtype=float) / self.y_scale


@dataclass(frozen=True)
class ActivationSurvey:
    """Largest hidden activation and largest |output| (before the amplitude), data units,
    met along software probability-flow trajectories from N(0, I) noise."""

    hidden_max: float
    output_max: float


def survey_activations(model: TrainedModel, n: int = 2000, n_steps: int = 200, seed: int = 0) -> ActivationSurvey:
    """Run the software sampler (n samples per class, n_steps Euler steps, seeded) and record
    the activation ranges the circuit must carry without reaching a rail."""
    from protocols.diffusion.samplers import sample_probability_flow

    net = model.net
    classes = list(range(net.n_classes)) if net.conditional else [None]
    rng = np.random.default_rng(seed)
    h_top = u_top = 0.0
    for cond in classes:
        x0 = rng.standard_normal((n, net.dim))
        labels = None if cond is None else np.full(n, cond)
        res = sample_probability_flow(net, model.sampling_sde, x0, n_steps, model.sampling.t_end, cond=labels,
                                      snapshot_times=np.linspace(1.0, model.sampling.t_end, 41))
        for x, t in zip(res.snapshots, res.times, strict=True):
            h1, h2 = net.hidden_activations(x, t, labels)
            h_top = max(h_top, float(h1.max()), float(h2.max()))
            u_top = max(u_top, float(np.max(np.abs(h2 @ net.w3 + net.b3))))
    return ActivationSurvey(h_top, u_top)


#: Head-room over the surveyed ranges: analog trajectories wander a little further.
SURVEY_MARGIN = 1.25


def map_score_net(model: TrainedModel, cfg: MappingConfig | None = None,
                  survey: ActivationSurvey | None = None) -> MappedNetwork:
    """Map ``model.net`` (2 -> H -> H -> 2) onto macros first_macro .. first_macro + 2.

    Hidden and output voltage scales: the surveyed largest activation times
    ``SURVEY_MARGIN`` maps to ``RAIL_MARGIN`` of the rail (the seed's activation penalty
    at 1.5 is soft: trained networks do exceed it), unless ``cfg.h_scale`` is given;
    the embeddings must also fit the DAC range.
    """
    cfg = cfg or MappingConfig()
    net = model.net
    survey = survey or survey_activations(model)
    s_x = cfg.x_scale
    if cfg.h_scale is not None:
        s_h = cfg.h_scale
    else:
        s_h = RAIL_MARGIN * cfg.v_rail / (SURVEY_MARGIN * max(survey.hidden_max, 1.5))
        emb_top = 1.0 + (0.0 if net.class_embedding is None else float(np.max(np.abs(net.class_embedding))))
        s_h = min(s_h, RAIL_MARGIN * cfg.v_dac / emb_top)
    s_y = RAIL_MARGIN * cfg.v_rail / (SURVEY_MARGIN * survey.output_max)
    pairs = (map_dense(net.w1, net.b1, s_x, s_h, cfg), map_dense(net.w2, net.b2, s_h, s_h, cfg),
             map_dense(net.w3, net.b3, s_h, s_y, cfg))
    layers = tuple(
        LayerRegion(cfg.first_macro + k, 0, 0, p.n_in, p.n_out, p.n_bias, "linear" if k == 2 else "relu",
                    p.r_feedback)
        for k, p in enumerate(pairs)
    )
    return MappedNetwork(layers, pairs, net, s_x, s_h, s_y, cfg.v_bias, cfg.v_rail, cfg)
