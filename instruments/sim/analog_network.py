"""Analog feed-forward network in volts: differential-pair VMM, TIA, inverting-amp activation.

Pure circuit maths, independent of the simulated world (``docs/circuit-model.md``).

One layer, for input voltages ``V_i`` on its rows (inputs first, then ``n_bias`` bias
rows held at the constant ``v_bias``)::

    I_j   = sum_i V_i (G+_ij - G-_ij)                      column current (A)
    V_tia = -R_f I_j                                       transimpedance amplifier (V)
    V_pre = -V_tia + e_j = R_f I_j + e_j                   inverting amplifier, sums DAC inputs e_j
    V_out = min(max(V_pre, 0), V_rail)                     "relu":   ReLU, saturates at +V_rail
    V_out = min(max(V_pre, -V_rail), V_rail)               "linear": output layer, rail-limited

Read noise: every conductance fluctuates by an independent Gaussian of standard
deviation sigma (S) while it computes, so the column current carries Gaussian noise
of variance ``sum_i V_i^2 (sigma+_ij^2 + sigma-_ij^2)``; it is drawn as one number per
output (never one per conductance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("relu", "linear")
#: Numerical type of the compiled network: float32 carries ~1e-7 relative error,
#: four orders of magnitude below the read noise it simulates.
COMPUTE_DTYPE = np.float32


def _finite_array(name: str, value: object, ndim: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


@dataclass(frozen=True)
class AnalogLayer:
    """One crossbar layer, conductances as programmed (rows: inputs then bias rows).

    g_pos, g_neg: (n_in + n_bias, n_out) S, non-negative; G+ and G- of each pair.
    n_bias: number of bias rows (>= 0), driven by ``v_bias`` at compute time.
    r_feedback: TIA feedback resistance R_f in ohm (> 0).
    activation: ``"relu"`` (hidden layers) or ``"linear"`` (output layer).
    sigma_pos, sigma_neg: read-noise standard deviation of each conductance in S
        (same shape as g_pos, >= 0), or None for a noiseless layer.
    """

    g_pos: np.ndarray
    g_neg: np.ndarray
    n_bias: int = 0
    r_feedback: float = 10e3
    activation: str = "relu"
    sigma_pos: np.ndarray | None = None
    sigma_neg: np.ndarray | None = None

    def __post_init__(self) -> None:
        g_pos = _finite_array("g_pos", self.g_pos, 2)
        g_neg = _finite_array("g_neg", self.g_neg, 2)
        if g_pos.shape != g_neg.shape:
            raise ValueError(f"g_neg shape {g_neg.shape} differs from g_pos shape {g_pos.shape}")
        if np.any(g_pos < 0) or np.any(g_neg < 0):
            raise ValueError("g_pos and g_neg must be non-negative conductances (S)")
        if not 0 <= self.n_bias < g_pos.shape[0]:
            raise ValueError(f"n_bias must be in [0, {g_pos.shape[0] - 1}], got {self.n_bias}")
        if not (np.isfinite(self.r_feedback) and self.r_feedback > 0):
            raise ValueError(f"r_feedback must be a positive resistance (ohm), got {self.r_feedback}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        for name in ("sigma_pos", "sigma_neg"):
            sigma = getattr(self, name)
            if sigma is None:
                continue
            sigma = _finite_array(name, sigma)
            if sigma.shape != g_pos.shape or np.any(sigma < 0):
                raise ValueError(f"{name} must be non-negative with shape {g_pos.shape}")
            object.__setattr__(self, name, sigma)
        object.__setattr__(self, "g_pos", g_pos)
        object.__setattr__(self, "g_neg", g_neg)

    @property
    def n_in(self) -> int:
        """Number of signal inputs (rows without the bias rows)."""
        return self.g_pos.shape[0] - self.n_bias

    @property
    def n_out(self) -> int:
        return self.g_pos.shape[1]

    @property
    def noisy(self) -> bool:
        return self.sigma_pos is not None or self.sigma_neg is not None

    def weights(self) -> np.ndarray:
        """Voltage gain R_f (G+ - G-) of every row onto every output, (n_rows, n_out) V/V."""
        return self.r_feedback * (self.g_pos - self.g_neg)

    def noise_gain2(self) -> np.ndarray:
        """R_f^2 (sigma+^2 + sigma-^2): output variance per squared row voltage, (n_rows, n_out)."""
        total = np.zeros_like(self.g_pos)
        for sigma in (self.sigma_pos, self.sigma_neg):
            if sigma is not None:
                total += sigma**2
        return self.r_feedback**2 * total


@dataclass(frozen=True)
class CompiledLayer:
    """A layer reduced to what one time step needs (float32, bias rows folded in).

    w: (n_in, n_out) V/V; b: (n_out,) V from the bias rows; s2: (n_in, n_out) V^2/V^2
    or None; var_b: (n_out,) V^2 noise of the bias rows; relu: activation kind.
    """

    w: np.ndarray
    b: np.ndarray
    s2: np.ndarray | None
    var_b: np.ndarray | None
    relu: bool

    @property
    def n_in(self) -> int:
        return self.w.shape[0]

    @property
    def n_out(self) -> int:
        return self.w.shape[1]


def compile_layers(layers: Sequence[AnalogLayer], v_bias: float, noise: bool = True) -> list[CompiledLayer]:
    """Fold bias rows (driven at ``v_bias`` V) into offsets; keep noise terms if ``noise``."""
    if not np.isfinite(v_bias):
        raise ValueError(f"v_bias must be a finite voltage, got {v_bias}")
    if not layers:
        raise ValueError("layers must hold at least one layer")
    for k in range(1, len(layers)):
        if layers[k].n_in != layers[k - 1].n_out:
            raise ValueError(
                f"layers[{k}] takes {layers[k].n_in} inputs but layers[{k - 1}] gives {layers[k - 1].n_out}"
            )
    compiled = []
    for layer in layers:
        w_all = layer.weights()
        n_in = layer.n_in
        b = v_bias * w_all[n_in:].sum(axis=0)
        s2 = var_b = None
        if noise and layer.noisy:
            s2_all = layer.noise_gain2()
            s2 = s2_all[:n_in].astype(COMPUTE_DTYPE)
            var_b = (v_bias**2 * s2_all[n_in:].sum(axis=0)).astype(COMPUTE_DTYPE)
        compiled.append(CompiledLayer(
            w=np.ascontiguousarray(w_all[:n_in], dtype=COMPUTE_DTYPE),
            b=b.astype(COMPUTE_DTYPE), s2=s2, var_b=var_b, relu=layer.activation == "relu",
        ))
    return compiled


class BlockNetwork:
    """The compiled network on a fixed block of ``n`` trajectories, buffers reused.

    Layout is feature-major, (features, n), so every slice below is contiguous. A noisy
    layer's input buffer holds the rows ``[v^2; 1; v; 1]``: one product with
    ``[s2^T | var_b]`` on the first half gives the read-noise variance, one with
    ``[w^T | offset]`` on the second half the pre-activation. The constant rows carry
    the bias rows and the DAC inputs.
    """

    def __init__(self, net: Sequence[CompiledLayer], n: int, noise: bool, v_rail: float) -> None:
        self.net = list(net)
        self.v_rail = v_rail
        self.noisy = [noise and layer.s2 is not None for layer in self.net]
        self.noise_widths = [layer.n_out if on else 0 for layer, on in zip(self.net, self.noisy, strict=True)]
        self._inputs, self._gain, self._var_gain, self._results = [], [], [], []
        for layer, on in zip(self.net, self.noisy, strict=True):
            n_in, n_out = layer.w.shape
            u = np.ones(((2 if on else 1) * (n_in + 1), n), dtype=COMPUTE_DTYPE)
            self._inputs.append(u)
            self._gain.append(np.ascontiguousarray(np.vstack([layer.w, layer.b]).T))
            self._var_gain.append(np.ascontiguousarray(np.vstack([layer.s2, layer.var_b]).T) if on else None)
            self._results.append(np.empty(((2 if on else 1) * n_out, n), dtype=COMPUTE_DTYPE))

    def set_offset(self, index: int, volts: np.ndarray) -> None:
        """Pre-activation offset of layer ``index``: its bias rows plus ``volts`` (n_out,) V."""
        np.add(self.net[index].b, volts, out=self._gain[index][:, -1])

    def forward(self, x: np.ndarray, z: np.ndarray | None) -> np.ndarray:
        """Output voltages (n_out, n) for input voltages ``x`` (n_in, n), feature-major.

        z: (sum of noisy layers' widths, n) standard normals, layer after layer, or None
        when no layer is noisy. The returned buffer is overwritten by the next call.
        """
        self._signal_rows(0)[...] = x
        row = 0
        last = len(self.net) - 1
        for k, layer in enumerate(self.net):
            n_in, n_out = layer.w.shape
            u, r = self._inputs[k], self._results[k]
            pre = r[:n_out]
            if self.noisy[k]:
                std = r[n_out:]
                np.multiply(u[n_in + 1:2 * n_in + 1], u[n_in + 1:2 * n_in + 1], out=u[:n_in])
                np.matmul(self._var_gain[k], u[:n_in + 1], out=std)
                np.matmul(self._gain[k], u[n_in + 1:], out=pre)
                np.sqrt(std, out=std)                  # sums of non-negative terms: never < 0
                std *= z[row:row + n_out]
                pre += std
                row += n_out
            else:
                np.matmul(self._gain[k], u, out=pre)
            dest = pre if k == last else self._signal_rows(k + 1)
            np.maximum(pre, 0.0 if layer.relu else -self.v_rail, out=dest)
            np.minimum(dest, self.v_rail, out=dest)
        return self._results[last][: self.net[last].n_out]

    def output(self, k: int) -> np.ndarray:
        """Layer ``k``'s outputs (n_out, n) V of the last :meth:`forward`: a view of the buffer
        every call overwrites (the next layer's input rows, or the result of the last layer)."""
        if k == len(self.net) - 1:
            return self._results[k][: self.net[k].n_out]
        return self._signal_rows(k + 1)

    def _signal_rows(self, k: int) -> np.ndarray:
        """Rows of layer ``k``'s input buffer that hold its input voltages v."""
        n_in = self.net[k].n_in
        return self._inputs[k][n_in + 1:2 * n_in + 1] if self.noisy[k] else self._inputs[k][:n_in]


def network_forward(layers: Sequence[AnalogLayer], x: np.ndarray, *, v_bias: float = 0.1,
                    extra: Sequence[np.ndarray | None] | None = None, v_rail: float = 0.5,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """Output voltages (N, n_out_last) of the analog network for input voltages ``x`` (N, n_in).

    v_bias: voltage on the bias rows (V, finite). extra: per layer, DAC voltages
    summed into the pre-activation, broadcastable to (N, n_out) V, or None. v_rail:
    amplifier rail (V, > 0). rng: draw read noise (layers with sigma) if given; None
    computes noise-free.
    """
    x = _finite_array("x", x, 2)
    if x.shape[1] != layers[0].n_in:
        raise ValueError(f"x has {x.shape[1]} inputs, the first layer takes {layers[0].n_in}")
    if not (np.isfinite(v_rail) and v_rail > 0):
        raise ValueError(f"v_rail must be a positive voltage, got {v_rail}")
    extra = [None] * len(layers) if extra is None else list(extra)
    if len(extra) != len(layers):
        raise ValueError(f"extra must hold one entry per layer ({len(layers)}), got {len(extra)}")
    compiled = compile_layers(layers, v_bias, noise=rng is not None)
    block = BlockNetwork(compiled, x.shape[0], noise=rng is not None, v_rail=v_rail)
    for k, e in enumerate(extra):
        if e is not None:
            e = _finite_array(f"extra[{k}]", e)
            if e.shape != (compiled[k].n_out,):
                raise ValueError(f"extra[{k}] must have shape ({compiled[k].n_out},), got {e.shape}")
            block.set_offset(k, e)
    n_noise = sum(block.noise_widths)
    z = rng.standard_normal((x.shape[0], n_noise), dtype=COMPUTE_DTYPE) if n_noise else None
    return block.forward(x.T, None if z is None else z.T).T.astype(float)
