"""Read noise of the circuit-level loop: every column current's noise drawn from the cells' spectrum.

Each layer's TIA sees, on top of the crossbar's current, the read noise of its column
(``docs/circuit-noise.md``): the sum over the column's independent cells (both cells of
each pair, the bias rows included) of the spectrum of
:class:`~instruments.sim.noise_spectrum.ReadNoiseSpectrum`, the world's own
(:meth:`~instruments.sim.noise_spectrum.ReadNoiseSpectrum.from_device` of its device
parameters), at the row voltages the layer is driven with:

- **1/f**: K_f(G) I^2 / f summed over the cells, ``sum_i V_i^2 K_f(G_ij) G_ij^2`` times one
  normalised 1/f process per column and trajectory: the Ornstein-Uhlenbeck sum of
  :meth:`~instruments.sim.noise_spectrum.ReadNoiseSpectrum.flicker_components` over
  [1/t_run, f_high], whose state persists over the whole run of each trajectory (it
  starts stationary: a run starts mid-stream of the cells' noise). Its means over the
  board intervals are drawn exactly, ``FLICKER_BLOCK`` intervals at a time: given the
  state at a block's start, the block's interval means and its end state are one
  Gaussian vector (:func:`flicker_block`), so a block costs L + M normals instead of
  L (M + 1) for M components. Each interval mean is held over the interval's sub-steps
  and scaled by the amplitude at that interval's row voltages: it does not depend on
  the sub-step at all.
- **white** (thermal and shot): ``4 k T G [(1 - F) + F u coth u]`` summed over the cells,
  drawn afresh every sub-step h with variance ``S / (2 h)``: the charge an integrator
  collects over any time T has variance ``S T / 2`` whatever h is. The draws are uniform
  variates of that variance (:class:`UnitUniforms`), not normals: white noise is ~0.1 % of
  an interval's read-noise variance, its PSD is exact, and a uniform costs a tenth.

The 1/f amplitude follows the row voltages at the start of every board interval, the
white PSD at the start of every block (the voltages move on the loop's time scale,
RC over its gains >= 100 us; white noise is ~0.1 % of an interval's read-noise
variance). Both are referred to the TIA output (x R_f) and multiplied by
``read_noise_scale`` (std). Not kept: each cell's own 1/f history (a column is one
normalised 1/f process scaled by its amplitude), the wire IR drop in the voltages the
noise sees, and the band below 1/t_run (a constant offset over a run: a conductance
error of the run, not read noise)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from instruments.sim.analog_network import COMPUTE_DTYPE
from instruments.sim.device_params import DeviceParams
from instruments.sim.device_physics import BOLTZMANN
from instruments.sim.integrator import NormalSource
from instruments.sim.noise_spectrum import ELEMENTARY_CHARGE, OUStep, ReadNoiseSpectrum

#: OU components per decade of the loop's 1/f band: window variances within 0.5 % of the
#: exact 1/f band for windows up to t_run / 100 (as with 2 per decade); a 1 ms run has 4.
LOOP_PER_DECADE = 1.0
#: Board intervals whose 1/f means are drawn jointly (L): L + M normals per block and output.
FLICKER_BLOCK = 8
#: Smallest u = q|V| / 2kT the shot term evaluates (float32: u coth u - 1 = u^2 / 3 there,
#: 3e-7 of the thermal part, i.e. nothing).
_U_FLOOR = 1e-3


def flicker_block(spec: ReadNoiseSpectrum, interval: float, t_run: float,
                  block: int = FLICKER_BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The unit 1/f process of ``spec`` over runs of ``t_run`` s, ``block`` board intervals at a time.

    Returns ``(b, c, std)``: with the M component states x0 at a block's start, the vector
    y = (means over the L intervals, end states) is ``b @ x0 + c @ z``, z ~ N(0, I_{L+M}),
    exactly the law of L steps of :class:`~instruments.sim.noise_spectrum.ReadNoiseGenerator`
    (each step x1 = phi x0 + s1 e, mean alpha x0 + c e + sqrt(bridge) eta; ``c`` is a square
    root of the covariance those 2 L M normals give y). std: stationary std of each component.
    """
    corners, var = spec.flicker_components(t_run)
    ou = OUStep.of(corners, var, interval)
    m, n = corners.size, int(block)
    b = np.zeros((n + m, m))
    d = np.zeros((n + m, 2 * n * m))
    for j in range(m):
        phi, s1, alpha, c, rho = ou.phi[j], ou.s1[j], ou.alpha[j], ou.c[j], math.sqrt(ou.bridge[j])
        e0, eta0 = 2 * n * j, 2 * n * j + n                   # columns of e_1..e_L and eta_1..eta_L
        for step in range(n):                                  # mean of interval step + 1
            b[step, j] = alpha * phi**step
            d[step, e0:e0 + step] = alpha * s1 * phi ** np.arange(step - 1, -1, -1)
            d[step, e0 + step] = c
            d[step, eta0 + step] = rho
        b[n + j, j] = phi**n
        d[n + j, e0:e0 + n] = s1 * phi ** np.arange(n - 1, -1, -1)
    w, v = np.linalg.eigh(d @ d.T)
    return b, v * np.sqrt(np.maximum(w, 0.0)), np.full(m, math.sqrt(var))


@dataclass(frozen=True)
class LayerNoise:
    """Read-noise constants of one layer at the TIA outputs (float32, V^2).

    flicker_rows (n_out, n_in): 1/f amplitude K I^2 R_f^2 s^2 per squared input-row voltage;
    flicker_bias (n_out, 1): that of the bias rows. shot_rows (n_out, n_in): white variance
    per sub-step (S / 2h) per unit (u coth u - 1) of an input row, u = u_per_volt |V|;
    white_fixed (n_out, 1): that of the thermal noise of every cell and of the bias rows'
    shot excess. block_b, block_c, component_std: the unit 1/f process drawn a block of
    board intervals (``interval`` s) at a time (:func:`flicker_block`). h: sub-step (s).
    """

    flicker_rows: np.ndarray
    flicker_bias: np.ndarray
    shot_rows: np.ndarray
    white_fixed: np.ndarray
    u_per_volt: float
    block_b: np.ndarray
    block_c: np.ndarray
    component_std: np.ndarray
    interval: float
    h: float

    @property
    def n_components(self) -> int:
        return int(self.block_b.shape[1])

    @property
    def block(self) -> int:
        return int(self.block_b.shape[0] - self.block_b.shape[1])

    def amplitudes(self, v_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """White noise (variance per sub-step, V^2) and 1/f amplitude (V^2) of every output at
        input-row voltages ``v_rows`` (n_in, n) V, float64 (for tests; the loop runs float32)."""
        v = np.asarray(v_rows, dtype=float)
        u = np.maximum(self.u_per_volt * np.abs(v), _U_FLOOR)
        white = self.shot_rows.astype(float) @ (u / np.tanh(u) - 1.0) + self.white_fixed
        return white, self.flicker_rows.astype(float) @ (v * v) + self.flicker_bias


def layer_noise(g_pos: np.ndarray, g_neg: np.ndarray, *, n_bias: int, v_bias: float, r_feedback: float,
                device: DeviceParams, scale: float, h: float, interval: float, t_run: float) -> LayerNoise:
    """The read-noise constants of a layer whose cells are ``g_pos``, ``g_neg`` (n_rows, n_out) S.

    The last ``n_bias`` rows are bias rows at ``v_bias`` V; ``r_feedback`` (ohm) refers the
    column current to the TIA output; ``scale`` multiplies the std; ``h``, ``interval``: the
    sub-step and the board interval (s); ``t_run``: the run's duration (s).
    """
    spec = ReadNoiseSpectrum.from_device(device, per_decade=LOOP_PER_DECADE)
    gain = (scale * r_feedback) ** 2
    n_in = g_pos.shape[0] - n_bias
    g_sum = np.abs(g_pos) + np.abs(g_neg)
    kg2 = gain * (spec.flicker_coefficient(g_pos) * g_pos**2 + spec.flicker_coefficient(g_neg) * g_neg**2)
    kt4 = gain * 4.0 * BOLTZMANN * spec.temperature / (2.0 * h)    # white: variance S / 2h per sub-step
    white_fixed = kt4 * g_sum.sum(axis=0)
    if n_bias:
        excess = float(spec.white_psd(1.0, v_bias) / spec.thermal_psd(1.0)) - 1.0     # F (u coth u - 1)
        white_fixed += kt4 * excess * g_sum[n_in:].sum(axis=0)
    b, c, std = flicker_block(spec, interval, max(t_run, interval))

    def f32(a: np.ndarray, column: bool = False) -> np.ndarray:
        a = np.asarray(a, dtype=COMPUTE_DTYPE)
        return np.ascontiguousarray(a.reshape(-1, 1) if column else a)

    return LayerNoise(
        flicker_rows=f32(kg2[:n_in].T), flicker_bias=f32(v_bias**2 * kg2[n_in:].sum(axis=0), column=True),
        shot_rows=f32(kt4 * spec.fano * g_sum[:n_in].T), white_fixed=f32(white_fixed, column=True),
        u_per_volt=ELEMENTARY_CHARGE / (2.0 * BOLTZMANN * spec.temperature), block_b=f32(b), block_c=f32(c),
        component_std=f32(std, column=True), interval=interval, h=h)


class BlockNoise:
    """Read-noise state of a block of ``n`` trajectories through ``layers`` (LayerNoise or None).

    Call :meth:`interval` for a layer at the first sub-step of every board interval (with its
    row voltages), then :meth:`substep` at every sub-step. The 1/f normals, L + M per output
    and block, come from :class:`NormalSource` on ``rng``, the white variates (one per
    output and sub-step) from :class:`UnitUniforms` on the same generator.
    """

    def __init__(self, layers: Sequence[LayerNoise | None], n: int, rng: np.random.Generator) -> None:
        self.layers = list(layers)
        noisy = [ln for ln in self.layers if ln is not None]
        self.n = n
        widths = [ln.flicker_rows.shape[0] if ln is not None else 0 for ln in self.layers]
        self.offsets = np.concatenate([[0], np.cumsum(widths)]).astype(int)
        self._uniforms = UnitUniforms(rng, n, int(self.offsets[-1])) if noisy else None
        self._white: np.ndarray | None = None
        shape = (noisy[0].block, noisy[0].n_components) if noisy else (0, 0)
        if any((ln.block, ln.n_components) != shape for ln in noisy):
            raise ValueError("every noisy layer of a run needs the same 1/f blocks and components (same t_run)")
        self.block, self.m = shape
        self._normals = NormalSource(rng, n, (self.block + self.m) * int(self.offsets[-1])) if noisy else None
        self._z: np.ndarray | None = None
        self._first = next((i for i, ln in enumerate(self.layers) if ln is not None), -1)
        self._count = [0] * len(self.layers)
        self._state: list[tuple[np.ndarray, ...] | None] = []
        for ln, w in zip(self.layers, widths, strict=True):
            if ln is None:
                self._state.append(None)
                continue
            x = ln.component_std * rng.standard_normal((self.m, w * n), dtype=COMPUTE_DTYPE)
            buffers = (np.empty((self.block + self.m, w * n), dtype=COMPUTE_DTYPE),   # block draw
                       np.empty((self.block + self.m, w * n), dtype=COMPUTE_DTYPE),   # scratch
                       np.empty((ln.flicker_rows.shape[1], n), dtype=COMPUTE_DTYPE),  # row terms
                       np.empty((ln.flicker_rows.shape[1], n), dtype=COMPUTE_DTYPE),
                       np.empty((w, n), dtype=COMPUTE_DTYPE),                          # held 1/f
                       np.empty((w, n), dtype=COMPUTE_DTYPE),                          # white std
                       np.empty((w, n), dtype=COMPUTE_DTYPE))                          # noise out
            self._state.append((x, *buffers))

    def interval(self, k: int, u: np.ndarray) -> None:
        """Start a board interval for layer ``k`` with input-row voltages ``u`` (n_in, n) V: at a
        block's start the block's unit 1/f means and the white PSD there; then the interval's
        1/f noise, its unit mean times the amplitude at ``u``, held over the interval."""
        ln = self.layers[k]
        x, y, scratch, rows, ratio, held, white_std, _ = self._state[k]
        step = self._count[k] % self.block
        self._count[k] += 1
        if step == 0:
            if k == self._first:
                self._z = self._normals.draw()
            w = held.shape[0]
            lo = self.offsets[k] * (self.block + self.m)
            z = self._z[lo:lo + (self.block + self.m) * w].reshape(self.block + self.m, w * self.n)
            np.matmul(ln.block_b, x, out=y)
            np.matmul(ln.block_c, z, out=scratch)
            y += scratch
            x[...] = y[self.block:]
            # white variance per sub-step (V^2) at the row voltages
            np.abs(u, out=rows)
            rows *= ln.u_per_volt
            np.maximum(rows, _U_FLOOR, out=rows)
            np.tanh(rows, out=ratio)
            np.divide(rows, ratio, out=rows)
            rows -= 1.0
            np.matmul(ln.shot_rows, rows, out=white_std)
            white_std += ln.white_fixed
            np.sqrt(white_std, out=white_std)
        np.multiply(u, u, out=rows)
        np.matmul(ln.flicker_rows, rows, out=held)
        held += ln.flicker_bias
        np.sqrt(held, out=held)
        held *= y[step].reshape(held.shape)

    def substep(self, k: int, z: np.ndarray | None = None) -> np.ndarray:
        """Read noise (n_out, n) V at layer ``k``'s TIA outputs for this sub-step: the interval's
        1/f mean plus white noise, ``z`` (n_out, n) unit-variance variates, or by default this
        sub-step's from :class:`UnitUniforms` (drawn at the first noisy layer)."""
        state = self._state[k]
        held, white_std, out = state[5], state[6], state[7]
        if z is None:
            if k == self._first:
                self._white = self._uniforms.draw()
            z = self._white[self.offsets[k]:self.offsets[k + 1]]
        np.multiply(white_std, z, out=out)
        out += held
        return out


class UnitUniforms:
    """Zero-mean unit-variance variates (k, n) float32: uniform on 2^16 levels, from the bit
    generator's raw 64-bit words (four per word).

    The white read noise's draws: independent per sub-step with the exact variance, so
    their PSD is exactly the white PSD. They are not Gaussian one by one, but white noise is
    ~0.1 % of an interval's read-noise variance and what any stage sees of it is a sum over
    many sub-steps; a uniform costs half a :class:`NormalSource` normal here (a tenth of a Box-Muller one).
    """

    def __init__(self, rng: np.random.Generator, n: int, k: int) -> None:
        self._bits = rng.bit_generator
        self._size, self._shape = n * k, (k, n)
        self._out = np.empty(self._size, dtype=COMPUTE_DTYPE)

    def draw(self) -> np.ndarray:
        """Fresh variates of shape (k, n); the buffer is overwritten by the next call."""
        levels = self._bits.random_raw(-(-self._size // 4)).view(np.uint16)[:self._size]
        scale = math.sqrt(12.0) / 65536.0                  # (level + 1/2) / 2^16 - 1/2, times sqrt(12)
        np.multiply(levels, COMPUTE_DTYPE(scale), out=self._out)
        self._out += COMPUTE_DTYPE(scale * 0.5 - math.sqrt(3.0))
        return self._out.reshape(self._shape)
