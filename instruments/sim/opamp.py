"""Op-amp macro-model and the inverting stages of the analog loop, as state equations.

The board's amplifiers (``docs/circuit-opamps.md``) are all one circuit: an op-amp whose
non-inverting input is grounded and whose inverting input (the *node*) collects
currents from its inputs and from its feedback network::

    transimpedance amplifier (TIA)   column current in, R_f || C_f feedback
    summing amplifier                 voltages in through resistors, R_f || C_f feedback,
                                      a clamp (diodes in the feedback) bounds the output
                                      to [0, v_rail] ("relu") or [-v_rail, v_rail] ("linear")
    Miller integrator                 voltages in through resistors, C feedback only

so one class, :class:`InvertingStage`, carries all three. Its state is the op-amp output
``v_out`` and the node voltage ``v_node`` (V), and it obeys::

    rate           = omega_t (v_os - v_node) - omega_p v_out        single dominant pole
    dv_out/dt      = clip(rate, -SR, +SR), 0 where v_out sits on its clamp and pushes out
    C_t dv_node/dt = sum_k g_k (v_k - v_node) + i_in - g_node v_node
                     + g_f (v_out - v_node) + C_f dv_out/dt - i_bias

with ``omega_t = 2 pi GBW``, ``omega_p = omega_t / A0`` and ``C_t = C_in + C_node + C_f``.
With ``C_t = 0`` the node is algebraic (the KCL solved for ``v_node``). Finite gain makes
the integrator lossy by itself: its pole sits at ``1 / (A0 R C)`` (for ``omega_t R C >> 1``).

Everything is vectorised over trajectories: a state has shape ``(2, *shape)``. A caller
integrates ``derivative`` with a fixed step that resolves ``1 / fastest_rate()``
(:func:`rk4_step` with ``dt <= STEP_FRACTION / fastest_rate()`` keeps results within
0.1 % of full scale of the step-halved ones) and applies ``confine`` after each step.
SI units everywhere: V, A, S, F, s, Hz.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from instruments.sim.analog_network import ACTIVATIONS


def _check_range(name: str, value: float, low: float, high: float, unit: str) -> None:
    """Refuse a parameter outside [low, high] (or not a finite number)."""
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)
            and low <= value <= high):
        raise ValueError(f"{name} must be a finite value in [{low:g}, {high:g}] {unit}, got {value!r}")


@dataclass(frozen=True)
class OpAmpParams:
    """Single-pole op-amp macro-model; defaults: TI OPA2320 on a +-2.5 V supply.

    Typical values of the OPA2320 datasheet (TI SBOS513, "Precision, 20-MHz, 0.9-pA,
    Low-Noise, RRIO, CMOS Operational Amplifier", Electrical Characteristics table,
    T_A = 25 C, V_S = 1.8 V to 5.5 V):

    a0: DC open-loop gain, V/V, [1, 1e9]. 132 dB typ (R_L = 10 kohm) = 3.98e6.
    gbw: gain-bandwidth product of the single dominant pole, Hz, (0, 1e10]. 20 MHz typ.
    slew_rate: V/s, (0, 1e11]. 10 V/us typ (G = +1).
    v_offset: input offset voltage, V, [-0.1, 0.1], in series with the + input.
        40 uV typ (150 uV max).
    i_bias: input bias current into each input pin, A, [-1e-6, 1e-6]. 0.2 pA typ.
    v_out_high, v_out_low: output rails, V, |v| <= 50, low < high. The output
        "typically swings within 10 mV of the rails" (datasheet description), so
        +-2.49 V on the board's +-2.5 V analog supply.
    c_in: capacitance from the inverting input to ground with the + input grounded, F,
        [0, 1e-9]: differential 5 pF + common-mode 4 pF = 9 pF typ.

    Not modelled: the second pole (47 deg phase margin at C_L = 50 pF), output
    resistance and current limit, noise, CMRR/PSRR, input common-mode limits.
    """

    a0: float = 10.0 ** (132.0 / 20.0)
    gbw: float = 20e6
    slew_rate: float = 10e6
    v_offset: float = 40e-6
    i_bias: float = 0.2e-12
    v_out_high: float = 2.49
    v_out_low: float = -2.49
    c_in: float = 9e-12

    def __post_init__(self) -> None:
        _check_range("a0", self.a0, 1.0, 1e9, "V/V")
        _check_range("gbw", self.gbw, 1e-300, 1e10, "Hz")
        _check_range("slew_rate", self.slew_rate, 1e-300, 1e11, "V/s")
        _check_range("v_offset", self.v_offset, -0.1, 0.1, "V")
        _check_range("i_bias", self.i_bias, -1e-6, 1e-6, "A")
        _check_range("v_out_high", self.v_out_high, -50.0, 50.0, "V")
        _check_range("v_out_low", self.v_out_low, -50.0, 50.0, "V")
        _check_range("c_in", self.c_in, 0.0, 1e-9, "F")
        if not self.v_out_low < self.v_out_high:
            raise ValueError(f"v_out_low ({self.v_out_low} V) must be below v_out_high ({self.v_out_high} V)")

    @property
    def omega_t(self) -> float:
        """Unity-gain angular frequency 2 pi GBW, rad/s."""
        return 2.0 * math.pi * self.gbw

    @property
    def omega_p(self) -> float:
        """Dominant-pole angular frequency omega_t / A0, rad/s."""
        return self.omega_t / self.a0


#: The board's op-amp (``docs/circuit-opamps.md``).
OPA2320 = OpAmpParams()

#: Fixed step of :func:`rk4_step` as a fraction of the fastest time constant
#: (``STEP_FRACTION / fastest_rate()``): halving it changes outputs by < 0.1 % of full scale.
STEP_FRACTION = 0.25

#: TIA feedback capacitor, F: damps the pole that R_f and the 9 pF input capacitance add
#: (damping ratio 0.83 for R_f = 10 kohm with no cell on the column, more with cells).
TIA_C_FEEDBACK = 4.7e-12
#: Summing-amplifier feedback capacitor, F (damping 0.77 with two 10 kohm inputs).
SUMMING_C_FEEDBACK = 2.2e-12


@dataclass(frozen=True)
class InvertingStage:
    """An op-amp with grounded + input; inputs and feedback meet at its - input (the node).

    opamp: the op-amp model.
    g_in: conductances (S, each in [0, 1]) from the voltage inputs to the node, one per
        input (may be empty).
    g_node: conductance from the node to ground, S, >= 0; scalar or an array that
        broadcasts against the trajectory shape (e.g. per column: the crossbar cells seen
        by a TIA, whose row drivers are AC ground; their current comes in as ``i_in``).
    g_feedback: feedback conductance 1 / R_f, S, [0, 1]; 0 for an integrator.
    c_feedback: feedback capacitance, F, [0, 1e-3].
    c_node: extra node capacitance to ground (wiring), F, [0, 1e-3]; adds to c_in.
    v_low, v_high: clamp window of the output, V, inside the op-amp rails; None means
        the rail. Modelled as an ideal output limiter: the output stops at the edge
        without wind-up and leaves it as soon as the drive turns; meanwhile the node
        leaves virtual ground and needs about C_t / G to come back on release.
    """

    opamp: OpAmpParams
    g_in: tuple[float, ...] = ()
    g_node: float | np.ndarray = 0.0
    g_feedback: float = 0.0
    c_feedback: float = 0.0
    c_node: float = 0.0
    v_low: float | None = None
    v_high: float | None = None
    _g_sum: float = field(init=False, repr=False, compare=False)
    _g_ground: float | np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        g_in = tuple(float(g) for g in self.g_in)
        for k, g in enumerate(g_in):
            _check_range(f"g_in[{k}]", g, 0.0, 1.0, "S")
        object.__setattr__(self, "g_in", g_in)
        g_node = np.asarray(self.g_node, dtype=float)
        if not (np.all(np.isfinite(g_node)) and np.all(g_node >= 0) and np.all(g_node <= 1.0)):
            raise ValueError("g_node must hold finite conductances in [0, 1] S")
        object.__setattr__(self, "g_node", float(g_node) if g_node.ndim == 0 else g_node)
        _check_range("g_feedback", self.g_feedback, 0.0, 1.0, "S")
        _check_range("c_feedback", self.c_feedback, 0.0, 1e-3, "F")
        _check_range("c_node", self.c_node, 0.0, 1e-3, "F")
        rail_low, rail_high = self.opamp.v_out_low, self.opamp.v_out_high
        low = rail_low if self.v_low is None else self.v_low
        high = rail_high if self.v_high is None else self.v_high
        _check_range("v_low", low, rail_low, rail_high, "V (inside the op-amp rails)")
        _check_range("v_high", high, rail_low, rail_high, "V (inside the op-amp rails)")
        if not low < high:
            raise ValueError(f"v_low ({low} V) must be below v_high ({high} V)")
        object.__setattr__(self, "v_low", float(low))
        object.__setattr__(self, "v_high", float(high))
        object.__setattr__(self, "_g_sum", sum(g_in))
        # sum of the conductances from the node to the (AC-grounded) sources: the KCL's self term
        object.__setattr__(self, "_g_ground", self._g_sum + self.g_node)
        if np.any(self._g_sum + g_node + self.g_feedback <= 0):
            raise ValueError("the node needs a DC path: some input, node or feedback conductance > 0")

    @property
    def c_total(self) -> float:
        """Capacitance the node voltage charges, F: c_in + c_node + c_feedback."""
        return self.opamp.c_in + self.c_node + self.c_feedback

    @property
    def n_inputs(self) -> int:
        return len(self.g_in)

    def source_current(self, v_in: np.ndarray | None, i_in: np.ndarray | float | None) -> np.ndarray | float:
        """Current the inputs drive into a node held at 0 V, A: sum_k g_k v_k + i_in.

        v_in: the n_inputs input voltages (V): an (n_inputs, *shape) array or a sequence
        of arrays, None when the stage has no voltage inputs; i_in: current into the
        node (A, broadcastable) or None.
        """
        total: np.ndarray | float = 0.0 if i_in is None else i_in
        if self.g_in:
            if v_in is None or len(v_in) != len(self.g_in):
                raise ValueError(f"v_in must hold {len(self.g_in)} input voltages")
            for g, v in zip(self.g_in, v_in, strict=True):
                total = total + g * v
        return total

    def node_voltage(self, state: np.ndarray, v_in: np.ndarray | None = None,
                     i_in: np.ndarray | float | None = None) -> np.ndarray:
        """Voltage of the inverting input, V: ``state[1]``, or the KCL solution if C_t = 0."""
        if self.c_total > 0:
            return state[1]
        g_total = self._g_ground + self.g_feedback
        return (self.source_current(v_in, i_in) + self.g_feedback * state[0] - self.opamp.i_bias) / g_total

    def derivative(self, state: np.ndarray, v_in: np.ndarray | None = None,
                   i_in: np.ndarray | float | None = None) -> np.ndarray:
        """d(state)/dt, V/s, shape (2, *shape), for the state (2, *shape) V and the inputs.

        Row 0 is the op-amp output, row 1 the node (0 when the node is algebraic).
        """
        op = self.opamp
        v_out = state[0]
        v_node = self.node_voltage(state, v_in, i_in)
        rate = op.omega_t * (op.v_offset - v_node) - op.omega_p * v_out
        # np.minimum/maximum rather than np.clip: a third of the cost on small arrays
        rate = np.minimum(np.maximum(rate, -op.slew_rate), op.slew_rate)
        # On the clamp the output holds (the diodes or the rail take the feedback current):
        # no wind-up, so it leaves the clamp as soon as the drive turns.
        rate = np.where(v_out >= self.v_high, np.minimum(rate, 0.0), rate)
        rate = np.where(v_out <= self.v_low, np.maximum(rate, 0.0), rate)
        out = np.empty((2, *rate.shape))
        out[0] = rate
        if self.c_total > 0:
            kcl = (self.source_current(v_in, i_in) - self._g_ground * v_node
                   + self.g_feedback * (v_out - v_node) - op.i_bias)
            out[1] = (kcl + self.c_feedback * rate) / self.c_total
        else:
            out[1] = 0.0
        return out

    def confine(self, state: np.ndarray) -> np.ndarray:
        """Put the output back on its clamp after a finite step overshot it (in place)."""
        state[0] = np.clip(state[0], self.v_low, self.v_high)
        return state

    def dc_state(self, v_in: np.ndarray | None = None, i_in: np.ndarray | float | None = None,
                 shape: tuple[int, ...] = ()) -> np.ndarray:
        """Settled state (2, *shape) V for constant inputs: the op-amp in balance, clamped.

        An integrator (g_feedback = 0) settles on a rail: it has no DC feedback.
        """
        op = self.opamp
        src = self.source_current(v_in, i_in) - op.i_bias
        g_node = self._g_sum + self.g_node
        # balance: v_out = A0 (v_os - v_node); KCL with the capacitors open
        v_node = (src + self.g_feedback * op.a0 * op.v_offset) / (g_node + self.g_feedback * (1.0 + op.a0))
        v_out = np.clip(op.a0 * (op.v_offset - v_node), self.v_low, self.v_high)
        v_node = (src + self.g_feedback * v_out) / (g_node + self.g_feedback)
        state = np.zeros((2, *np.broadcast_shapes(shape, np.shape(v_out))))
        state[0], state[1] = v_out, v_node
        return state

    def held_state(self, v_out: np.ndarray | float, shape: tuple[int, ...] = ()) -> np.ndarray:
        """State (2, *shape) with the output at ``v_out`` V and the op-amp in balance.

        What an integrator holds when its initial-condition switch opens: the node at
        v_os - v_out / A0.
        """
        v_out = np.asarray(v_out, dtype=float)
        if np.any(v_out < self.v_low) or np.any(v_out > self.v_high):
            raise ValueError(f"v_out must lie in the output window [{self.v_low}, {self.v_high}] V")
        state = np.zeros((2, *np.broadcast_shapes(shape, v_out.shape)))
        state[0] = v_out
        state[1] = self.opamp.v_offset - v_out / self.opamp.a0
        return state

    def fastest_rate(self) -> float:
        """Largest |eigenvalue| of the linear (unclamped, not slewing) stage, 1/s.

        ``1 / fastest_rate()`` is the fastest time constant a fixed step must resolve.
        """
        op = self.opamp
        g_node = np.atleast_1d(self._g_sum + np.asarray(self.g_node, dtype=float)).ravel()
        if self.c_total == 0:
            beta = self.g_feedback / (g_node + self.g_feedback)
            return float(np.max(op.omega_p + op.omega_t * beta))
        rates = []
        for g in g_node:
            c_t = self.c_total
            matrix = np.array([
                [-op.omega_p, -op.omega_t],
                [(self.g_feedback - self.c_feedback * op.omega_p) / c_t,
                 -(g + self.g_feedback + self.c_feedback * op.omega_t) / c_t],
            ])
            rates.append(np.max(np.abs(np.linalg.eigvals(matrix))))
        return float(max(rates))


def transimpedance_amplifier(r_feedback: float = 10e3, c_feedback: float = TIA_C_FEEDBACK,
                             g_source: float | np.ndarray = 0.0, opamp: OpAmpParams = OPA2320) -> InvertingStage:
    """TIA: column current ``i_in`` (A) in, ``v_out = -R_f i_in`` (V) out when settled.

    r_feedback: R_f, ohm, >= 1. c_feedback: across R_f, F. g_source: the conductance the
    column presents to the node (sum of the cells on it, their rows at AC ground), S;
    it raises the noise gain 1 + R_f g_source and so slows the stage.
    """
    _check_range("r_feedback", r_feedback, 1.0, 1e12, "ohm")
    return InvertingStage(opamp=opamp, g_node=g_source, g_feedback=1.0 / r_feedback, c_feedback=c_feedback)


def summing_amplifier(r_inputs: Sequence[float] = (10e3, 10e3), r_feedback: float = 10e3,
                      c_feedback: float = SUMMING_C_FEEDBACK, activation: str = "relu", v_rail: float = 0.5,
                      opamp: OpAmpParams = OPA2320) -> InvertingStage:
    """Inverting summing amplifier: ``v_out = act(-sum_k (R_f / R_k) v_k)`` when settled.

    r_inputs: input resistors, ohm, each >= 1 (one per input voltage). activation:
    ``"relu"`` clamps the output to [0, v_rail], ``"linear"`` to [-v_rail, v_rail]
    (diodes in the feedback, ideal: no forward drop). v_rail: V, > 0, inside the rails.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    _check_range("v_rail", v_rail, 1e-3, min(opamp.v_out_high, -opamp.v_out_low), "V")
    _check_range("r_feedback", r_feedback, 1.0, 1e12, "ohm")
    for k, r in enumerate(r_inputs):
        _check_range(f"r_inputs[{k}]", r, 1.0, 1e12, "ohm")
    return InvertingStage(opamp=opamp, g_in=tuple(1.0 / r for r in r_inputs), g_feedback=1.0 / r_feedback,
                          c_feedback=c_feedback, v_low=0.0 if activation == "relu" else -v_rail, v_high=v_rail)


def miller_integrator(r_inputs: Sequence[float] = (10e3,), c: float = 100e-9,
                      opamp: OpAmpParams = OPA2320) -> InvertingStage:
    """Inverting Miller integrator: ``dv_out/dt = -sum_k v_k / (R_k C)`` while ideal.

    r_inputs: input resistors, ohm, each >= 1; c: feedback capacitor, F, (0, 1e-3].
    The defaults give RC = 1 ms, the board's loop time constant. Finite A0 turns it
    into a lossy integrator (pole 1 / (A0 R C)); offset and bias current make it drift
    at v_os / (R_parallel C) + i_bias / C; slew rate and rails bound its output.
    """
    _check_range("c", c, 1e-18, 1e-3, "F")
    for k, r in enumerate(r_inputs):
        _check_range(f"r_inputs[{k}]", r, 1.0, 1e12, "ohm")
    if not r_inputs:
        raise ValueError("an integrator needs at least one input resistor")
    return InvertingStage(opamp=opamp, g_in=tuple(1.0 / r for r in r_inputs), c_feedback=c)


def rk4_step(rhs: Callable[[float, np.ndarray], np.ndarray], t: float, y: np.ndarray, dt: float) -> np.ndarray:
    """One classical Runge-Kutta step of dy/dt = rhs(t, y) from time t (s) over dt (s).

    Why RK4: fourth order on the smooth parts, stable for |lambda dt| < 2.78, so a step of
    a quarter of the fastest time constant is both stable and far inside 0.1 % of full
    scale; at the kinks (slew onset, clamps) it stays first order, which the step
    halving test bounds.
    """
    k1 = rhs(t, y)
    k2 = rhs(t + 0.5 * dt, y + (0.5 * dt) * k1)
    k3 = rhs(t + 0.5 * dt, y + (0.5 * dt) * k2)
    k4 = rhs(t + dt, y + dt * k3)
    return y + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
