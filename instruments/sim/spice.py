"""ngspice cross-check of the op-amp stages: one mapped layer, its TIAs, activations, an integrator.

``LayerBench`` describes a small circuit the way the board builds it
(``docs/circuit-opamps.md``): a crossbar of ``n_rows = n_in + n_bias`` rows and ``2 n_out``
columns (G+ of output j in column j, G- in column n_out + j), optional wire resistance
per cell segment, a current mirror that subtracts each G- column from its G+ column, a
TIA per output, an inverting summing amplifier per output (its DAC input sums in; the
activation clamps it), and one Miller integrator fed by output 0 and by a DAC.

Two simulations of the same circuit and stimulus:

* ``spice_netlist`` + ``run_ngspice``: an ngspice netlist (every op-amp one instance of
  the same behavioural sub-circuit: single pole, slew-limited current into the pole
  capacitor, offset source, bias current sources, clamps), run in batch mode;
* ``simulate_stages``: our :mod:`instruments.sim.opamp` state equations, integrated
  with RK4.

It lives in the package, not in the tests, so that the other circuit-level models (the
crossbar IR-drop model, the closed loop) can be checked against ngspice the same way.
ngspice is an optional tool (Debian package ``ngspice``), needed only to run it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from instruments.sim import opamp
from instruments.sim.analog_network import AnalogLayer

#: Stiffness of the clamp in the netlist, 1/s: beyond a clamp the pole node is pulled
#: back at this rate per volt of overshoot, so it overshoots by SR / K = 0.1 mV at most.
#: (The Python model holds the clamp exactly; a hard switch would stall ngspice.)
CLAMP_RATE = 1e11
#: Pole capacitor of the behavioural op-amp, F (any value: the B-source scales with it).
POLE_CAPACITOR = 1e-9
SUBCKT_NAME = "opamp_macro"


@dataclass(frozen=True)
class LayerBench:
    """One mapped layer with its stages, as wired on the board.

    layer: the crossbar layer (``analog_network.AnalogLayer``): G+ and G- (every cell
        > 0 S here: each is a resistor), its bias rows, the TIA feedback R_f
        (``r_feedback``) and the activation every output uses unless ``activations`` says.
    v_bias: voltage on the bias rows, V.
    r_wire: resistance of one wire segment between neighbouring cells, ohm (>= 0), on
        rows and columns alike; the Python stages ignore it (the crossbar model does not).
    c_tia: TIA feedback capacitor, F. r_sum, c_sum: summing amplifier input, DAC and
        feedback resistors (unity gain), ohm, and feedback capacitor, F.
    activations: per output, ``"relu"`` or ``"linear"``, or None for the layer's own.
    v_rail: clamp level, V. r_int, r_int_dac, c_int: integrator input resistors (from
        output 0, from its DAC), ohm, and capacitor, F.
    """

    layer: AnalogLayer
    v_bias: float = 0.1
    r_wire: float = 1.0
    c_tia: float = opamp.TIA_C_FEEDBACK
    r_sum: float = 10e3
    c_sum: float = opamp.SUMMING_C_FEEDBACK
    activations: tuple[str, ...] | None = None
    v_rail: float = 0.5
    r_int: float = 10e3
    r_int_dac: float = 10e3
    c_int: float = 100e-12
    op: opamp.OpAmpParams = opamp.OPA2320
    stages: dict[str, opamp.InvertingStage] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        layer = self.layer
        if min(layer.g_pos.min(), layer.g_neg.min()) <= 0:
            raise ValueError("every cell conductance must be > 0 S: the netlist writes each as a resistor")
        activations = (layer.activation,) * layer.n_out if self.activations is None else tuple(self.activations)
        if len(activations) != layer.n_out:
            raise ValueError(f"activations must name one activation per output ({layer.n_out})")
        if not (np.isfinite(self.r_wire) and self.r_wire >= 0):
            raise ValueError(f"r_wire must be a finite resistance >= 0 ohm, got {self.r_wire}")
        object.__setattr__(self, "activations", activations)
        stages = {"tia": opamp.transimpedance_amplifier(layer.r_feedback, self.c_tia,
                                                        layer.g_pos.sum(axis=0)[:, None], self.op),
                  "int": opamp.miller_integrator((self.r_int, self.r_int_dac), self.c_int, self.op)}
        for j, activation in enumerate(activations):
            stages[f"sum{j}"] = opamp.summing_amplifier((self.r_sum, self.r_sum), self.r_sum, self.c_sum,
                                                        activation, self.v_rail, self.op)
        object.__setattr__(self, "stages", stages)

    def probes(self) -> dict[str, str]:
        """Compared nodes: our name -> ngspice vector."""
        n_out = self.layer.n_out
        names = {f"tia{j}": f"v(to{j})" for j in range(n_out)}
        names.update({f"sum{j}": f"v(so{j})" for j in range(n_out)})
        names["int"] = "v(io)"
        return names


@dataclass(frozen=True)
class Stimulus:
    """Piecewise-linear sources shared by both simulations (held after the last sample).

    t: (P,) s, from 0, increasing. rows: (n_in, N, P) V on the input rows. dac_sum:
    (n_out, N, P) V into the summing amplifiers. dac_int: (N, P) V into the integrator.
    N stimuli run side by side in Python (ngspice: one run each); without the N axis
    (rows (n_in, P), ...) it is one stimulus.
    """

    t: np.ndarray
    rows: np.ndarray
    dac_sum: np.ndarray
    dac_int: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.t, dtype=float)
        if t.ndim != 1 or t[0] != 0 or np.any(np.diff(t) <= 0):
            raise ValueError("t must be a 1-D increasing time axis starting at 0 s")
        dac_int = np.asarray(self.dac_int, dtype=float)
        batched = dac_int.ndim == 2
        for name, ndim in (("rows", 3), ("dac_sum", 3), ("dac_int", 2)):
            value = np.asarray(getattr(self, name), dtype=float)
            if not batched:
                value = value[..., None, :]
            if value.ndim != ndim or value.shape[-2:] != (dac_int.shape[0] if batched else 1, t.size):
                raise ValueError(f"{name} must have {ndim - 2} channel axes, then N stimuli and {t.size} samples")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name} holds NaN or infinite voltages")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "t", t)

    @property
    def n(self) -> int:
        """Number of stimuli N."""
        return self.dac_int.shape[0]

    def at(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """rows (T, n_in, N), dac_sum (T, n_out, N), dac_int (T, N) V at ``times`` (T,) s."""
        def interp(values: np.ndarray) -> np.ndarray:
            flat = values.reshape(-1, self.t.size)
            out = np.stack([np.interp(times, self.t, v) for v in flat], axis=1)
            return out.reshape((times.size, *values.shape[:-1]))
        return interp(self.rows), interp(self.dac_sum), interp(self.dac_int)

    def one(self, k: int) -> Stimulus:
        """Stimulus number k alone (N = 1)."""
        return Stimulus(self.t, self.rows[:, k:k + 1], self.dac_sum[:, k:k + 1], self.dac_int[k:k + 1])


# ----------------------------------------------------------------------------------------
# Python: our stage equations


def simulate_stages(bench: LayerBench, stimulus: Stimulus, t_stop: float,
                    dt: float | None = None) -> tuple[np.ndarray, dict]:
    """Integrate the layer's stages (RK4, step dt s) to t_stop; traces at every step.

    dt: None takes ``STEP_FRACTION`` of the fastest stage time constant (then rounded
    down so that a whole number of steps ends at t_stop).

    Returns the time axis (T,) s and ``{probe: (T, N) V}``. The crossbar is ideal
    (r_wire ignored): column j drives i = sum_rows V (G+ - G-) into its TIA, whose node
    also sees the G+ cells (sum G+) to AC ground. All stages start settled on the
    inputs at t = 0 and the integrator at 0 V (``initial_states``).
    """
    if dt is None:
        dt = opamp.STEP_FRACTION / max(stage.fastest_rate() for stage in bench.stages.values())
    if not (0 < dt <= t_stop):
        raise ValueError(f"dt must be in (0, t_stop], got {dt} s")
    n_steps = int(np.ceil(t_stop / dt - 1e-9))
    dt = t_stop / n_steps
    half = np.arange(2 * n_steps + 1) * (0.5 * dt)
    rows, dac_sum, dac_int = stimulus.at(half)
    currents = _column_currents(bench, rows)
    stages, n_out = bench.stages, bench.layer.n_out
    sum_stages = [stages[f"sum{j}"] for j in range(n_out)]

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        k = round(2 * t / dt)
        dy = np.empty_like(y)
        dy[:, :n_out] = stages["tia"].derivative(y[:, :n_out], i_in=currents[k])
        for j, stage in enumerate(sum_stages):
            dy[:, n_out + j] = stage.derivative(y[:, n_out + j], (y[0, j], dac_sum[k, j]))
        dy[:, 2 * n_out] = stages["int"].derivative(y[:, 2 * n_out], (y[0, n_out], dac_int[k]))
        return dy

    y = initial_states(bench, currents[0], dac_sum[0])
    out = np.empty((n_steps + 1, *y.shape[1:]))
    out[0] = y[0]
    for step in range(n_steps):
        y = opamp.rk4_step(rhs, step * dt, y, dt)
        stages["tia"].confine(y[:, :n_out])
        for j, stage in enumerate(sum_stages):
            y[:, n_out + j] = stage.confine(y[:, n_out + j])
        y[:, 2 * n_out] = stages["int"].confine(y[:, 2 * n_out])
        out[step + 1] = y[0]
    traces = {f"tia{j}": out[:, j] for j in range(n_out)}
    traces.update({f"sum{j}": out[:, n_out + j] for j in range(n_out)})
    traces["int"] = out[:, 2 * n_out]
    return np.arange(n_steps + 1) * dt, traces


def _column_currents(bench: LayerBench, rows: np.ndarray) -> np.ndarray:
    """Net column currents (T, n_out, N) A for row voltages (T, n_in, N) V."""
    g = bench.layer.g_pos - bench.layer.g_neg
    bias = bench.v_bias * g[bench.layer.n_in:].sum(axis=0)
    return np.einsum("trn,ro->ton", rows, g[:bench.layer.n_in]) + bias[:, None]


def initial_states(bench: LayerBench, currents0: np.ndarray, dac_sum0: np.ndarray) -> np.ndarray:
    """State (2, 2 n_out + 1, N) V at t = 0 for currents0 (n_out, N) A and dac_sum0 (n_out, N) V.

    TIAs and summing stages settled on their inputs, the integrator released at 0 V.
    """
    stages, n_out = bench.stages, bench.layer.n_out
    n = currents0.shape[1]
    y = np.zeros((2, 2 * n_out + 1, n))
    y[:, :n_out] = stages["tia"].dc_state(i_in=currents0, shape=currents0.shape)
    for j in range(n_out):
        y[:, n_out + j] = stages[f"sum{j}"].dc_state(np.stack([y[0, j], dac_sum0[j]]), shape=(n,))
    y[:, 2 * n_out] = stages["int"].held_state(0.0, shape=(n,))
    return y


# ----------------------------------------------------------------------------------------
# ngspice


def opamp_subckt(op: opamp.OpAmpParams, name: str = SUBCKT_NAME) -> str:
    """The op-amp macro-model as an ngspice sub-circuit ``name inp inn out``.

    Parameters per instance: vlo, vhi (clamp window, V), vo0, vn0 (initial output and
    inverting-input voltages, V, used with UIC). The B-source drives C_p with
    C_p * clip(omega_t (v+ + v_os - v-) - omega_p v_p, +-SR), pulled back beyond the clamp.
    """
    rate = f"{op.omega_t:.12g}*(v(inpo)-v(inn)) - {op.omega_p:.12g}*v(p)"
    slewed = f"max(min({rate}, {op.slew_rate:.12g}), {-op.slew_rate:.12g})"
    clamped = f"max(min({slewed}, {CLAMP_RATE:g}*(vhi-v(p))), {CLAMP_RATE:g}*(vlo-v(p)))"
    lines = [
        f".subckt {name} inp inn out params: vlo={op.v_out_low:.12g} vhi={op.v_out_high:.12g} vo0=0 vn0=0",
        "* offset in series with the + input; bias currents into both pins",
        f"Vos inpo inp DC {op.v_offset:.12g}",
        f"Ibp inp 0 DC {op.i_bias:.12g}",
        f"Ibn inn 0 DC {op.i_bias:.12g}",
    ]
    if op.c_in > 0:
        lines.append(f"Cin inn 0 {op.c_in:.12g} IC={{vn0}}")
    lines += [
        "* single pole: slew-limited current into the pole capacitor, clamp by fast pull-back",
        f"Bp 0 p I = {POLE_CAPACITOR:g}*{clamped}",
        f"Cp p 0 {POLE_CAPACITOR:g} IC={{vo0}}",
        "Eout out 0 p 0 1",
        f".ends {name}",
    ]
    return "\n".join(lines)


def _pwl(t: np.ndarray, v: np.ndarray) -> str:
    return "PWL(" + " ".join(f"{a:.12g} {b:.12g}" for a, b in zip(t, v, strict=True)) + ")"


def _opamp_instance(label: str, inn: str, out: str, stage: opamp.InvertingStage, v_out0: float,
                    v_node0: float) -> str:
    return (f"X{label} 0 {inn} {out} {SUBCKT_NAME} params: vlo={stage.v_low:.12g} vhi={stage.v_high:.12g} "
            f"vo0={v_out0:.12g} vn0={v_node0:.12g}")


def spice_netlist(bench: LayerBench, stimulus: Stimulus) -> str:
    """ngspice netlist (no analysis) of ``bench`` driven by a single stimulus (N = 1).

    Initial conditions (for ``tran ... uic``) on every capacitor: the Python initial state.
    """
    if stimulus.n != 1:
        raise ValueError("spice_netlist takes one stimulus (N = 1): use stimulus.one(k)")
    layer = bench.layer
    n_rows, n_cols, n_out = layer.g_pos.shape[0], 2 * layer.n_out, layer.n_out
    g_cells = np.hstack([layer.g_pos, layer.g_neg])
    t = stimulus.t
    wire = bench.r_wire > 0

    def row_node(i: int, c: int) -> str:             # row i at column c (c = -1: the driver)
        return f"r{i}_{c}" if wire and c >= 0 else f"rd{i}"

    def col_node(i: int, c: int) -> str:             # column c at row i (i = n_rows: its end)
        if wire and i < n_rows:
            return f"k{i}_{c}"
        return f"tn{c}" if c < n_out else f"cn{c - n_out}"

    lines = [f"* rrambench layer check: {layer.n_in} inputs + {layer.n_bias} bias rows x {n_out} outputs",
             opamp_subckt(bench.op)]
    for i in range(n_rows):
        drive = _pwl(t, stimulus.rows[i, 0]) if i < layer.n_in else f"DC {bench.v_bias:.12g}"
        lines.append(f"Vrow{i} rd{i} 0 {drive}")
        for c in range(n_cols):
            if wire:
                lines.append(f"Rrw{i}_{c} {row_node(i, c - 1)} {row_node(i, c)} {bench.r_wire:.12g}")
                lines.append(f"Rcw{i}_{c} {col_node(i, c)} {col_node(i + 1, c)} {bench.r_wire:.12g}")
            lines.append(f"Rcell{i}_{c} {row_node(i, c)} {col_node(i, c)} {1.0 / g_cells[i, c]:.12g}")
    stages = bench.stages
    rows0, dac_sum0, _ = stimulus.at(np.zeros(1))
    y0 = initial_states(bench, _column_currents(bench, rows0)[0], dac_sum0[0])[..., 0]
    for j in range(n_out):
        vo, vn = y0[0, j], y0[1, j]
        lines += [
            "* G- column into the mirror (input at 0 V), mirrored out of the TIA node",
            f"Vm{j} cn{j} 0 DC 0", f"Fm{j} tn{j} 0 Vm{j} 1",
            f"Rft{j} tn{j} to{j} {layer.r_feedback:.12g}",
            f"Cft{j} tn{j} to{j} {bench.c_tia:.12g} IC={vn - vo:.12g}",
            _opamp_instance(f"tia{j}", f"tn{j}", f"to{j}", stages["tia"], vo, vn),
            f"Vds{j} ds{j} 0 {_pwl(t, stimulus.dac_sum[j, 0])}",
            f"Rsi{j} to{j} sn{j} {bench.r_sum:.12g}", f"Rsd{j} ds{j} sn{j} {bench.r_sum:.12g}",
            f"Rsf{j} sn{j} so{j} {bench.r_sum:.12g}",
            f"Csf{j} sn{j} so{j} {bench.c_sum:.12g} IC={y0[1, n_out + j] - y0[0, n_out + j]:.12g}",
            _opamp_instance(f"sum{j}", f"sn{j}", f"so{j}", stages[f"sum{j}"], y0[0, n_out + j], y0[1, n_out + j]),
        ]
    vo, vn = y0[0, 2 * n_out], y0[1, 2 * n_out]
    lines += [
        "* integrator fed by output 0 and by its DAC",
        f"Vdi di 0 {_pwl(t, stimulus.dac_int[0])}",
        f"Rii so0 in {bench.r_int:.12g}", f"Rid di in {bench.r_int_dac:.12g}",
        f"Cint in io {bench.c_int:.12g} IC={vn - vo:.12g}",
        _opamp_instance("int", "in", "io", stages["int"], vo, vn),
    ]
    return "\n".join(lines) + "\n"


def ngspice_available(binary: str = "ngspice") -> bool:
    """Whether the ngspice executable is on PATH."""
    return shutil.which(binary) is not None


def run_ngspice(netlist: str, vectors: Sequence[str], t_stop: float, t_max: float, *,
                binary: str = "ngspice", timeout: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Transient run of ``netlist`` (UIC) in ``ngspice -b``; returns time (T,) s and (T, len(vectors)).

    t_stop: end time, s; t_max: largest internal step, s. The accuracy options are
    tightened (reltol 1e-5) so that ngspice's own error stays far below the 1 % check.
    Raises FileNotFoundError without ngspice, RuntimeError when ngspice fails.
    """
    if shutil.which(binary) is None:
        raise FileNotFoundError(f"{binary} not found on PATH (Debian: apt-get install ngspice)")
    if not (0 < t_max <= t_stop):
        raise ValueError(f"need 0 < t_max <= t_stop, got {t_max} and {t_stop} s")
    control = "\n".join([
        ".options reltol=1e-5 abstol=1e-13 vntol=1e-8",
        ".control",
        f"tran {t_max:.12g} {t_stop:.12g} 0 {t_max:.12g} uic",
        "set wr_singlescale", "set wr_vecnames",
        "wrdata out.txt " + " ".join(vectors),
        "quit", ".endc", ".end",
    ])
    with tempfile.TemporaryDirectory(prefix="rrambench-spice-") as tmp:
        path = Path(tmp) / "circuit.cir"
        path.write_text(netlist + control + "\n")
        done = subprocess.run([binary, "-b", path.name], cwd=tmp, capture_output=True, text=True,
                              timeout=timeout, check=False)
        out = Path(tmp) / "out.txt"
        log = done.stdout + done.stderr
        if done.returncode != 0 or not out.exists() or "error" in log.lower():
            raise RuntimeError(f"ngspice failed (exit {done.returncode}):\n{log[-2000:]}")
        data = np.loadtxt(out, skiprows=1, ndmin=2)
    return data[:, 0], data[:, 1:]


def simulate_spice(bench: LayerBench, stimulus: Stimulus, t_stop: float, t_max: float) -> tuple[np.ndarray, dict]:
    """ngspice run of ``bench`` with one stimulus (N = 1): time (T,) s, ``{probe: (T,) V}``."""
    probes = bench.probes()
    t, data = run_ngspice(spice_netlist(bench, stimulus), list(probes.values()), t_stop, t_max)
    return t, {name: data[:, k] for k, name in enumerate(probes)}
