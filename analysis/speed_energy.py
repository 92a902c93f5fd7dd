"""Speed and energy per sample: the analog sampler (estimated) next to the software baseline (measured).

The analog estimate is a sum of named terms, each a count times a documented
figure, so a reader can redo it by hand (``docs/speed-energy.md``):

* time per sample ``T = t_reset + duration + dim t_convert``: integrator reset, the
  closed-loop run (``duration`` = fine steps x step, from the circuit's RC and the
  sampler's time mapping) and the ADC conversion of the ``dim`` end values;
* energy per sample ``E = P_array duration + (n_amp P_amp + n_dac P_dac) T + dim E_conv``:
  RRAM array ``P_array = sum_rows <V_row^2> sum_cols (G+ + G-)`` while the loop runs,
  amplifiers (TIA, activation, integrators) and DAC channels for the whole sample,
  one ADC conversion per output.

The software baseline is timed on this machine (batched numpy Euler sampler) and
its energy is ``P_cpu x time``, with ``P_cpu`` an assumption printed with the table.
Needs numpy only; :mod:`protocols.diffusion.speed_energy` applies it to a shipped model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np

#: Numeric fields of :class:`Assumptions` (the rest name parts).
_NUMERIC = ("t_reset", "t_convert", "amp_power", "dac_power", "adc_energy", "cpu_power", "link_rate",
            "bits_per_byte", "reset_over_rc")


@dataclass(frozen=True)
class Assumptions:
    """Figures the estimate rests on; SI units; each with its source in ``sources``.

    Parts (``amp_part``, ``dac_part``, ``adc_part``): those of the circuit-level loop
    (``instruments/sim/opamp.py``, ``instruments/sim/loop_circuit.py``; ``docs/circuit-model.md``).
    t_reset: integrator reset before each sample (s; :func:`for_rc` scales it with RC).
    t_convert: one ADC conversion (s). amp_power: one amplifier's supply power (W).
    dac_power: one DAC channel (W). adc_energy: one ADC conversion (J). cpu_power: power of
    one busy CPU core running the digital baseline (W). link_rate: host-board link (bit/s);
    bits_per_byte: line bits per byte (8N1 UART: 10). reset_over_rc: reset time over RC.
    """

    amp_part: str = "TI OPA2320"
    dac_part: str = "ADI AD5542A"
    adc_part: str = "TI ADS8688"
    t_reset: float = 10e-6
    t_convert: float = 2e-6
    amp_power: float = 1.45e-3 * 5.0
    dac_power: float = 125e-6 * 5.0
    adc_energy: float = 65e-3 / 500e3
    cpu_power: float = 15.0
    link_rate: float = 921_600.0
    bits_per_byte: float = 10.0
    reset_over_rc: float = 0.1
    sources: dict[str, str] = field(default_factory=lambda: {
        "amp_part": "op-amp of the circuit model (docs/circuit-opamps.md): dual, 20 MHz GBW, 10 V/µs, RRIO",
        "dac_part": "stream DACs of the circuit model (instruments/sim/loop_circuit.py): 16 bit, 1 µs settling",
        "adc_part": "readout ADC of the circuit model (instruments/sim/loop_circuit.py): 16 bit SAR, 500 kSPS",
        "t_reset": "assumption: reset switch R_on C = RC / 100 (switch ~1 % of the integrator's input "
                   "resistance), 10 R_on C to discharge: reset_over_rc x RC",
        "t_convert": "TI ADS8688: 500 kSPS, 2 µs per conversion (datasheet SBAS582, throughput)",
        "amp_power": "TI OPA2320: 1.45 mA typical quiescent current per amplifier (SBOS513) on the "
                     "board's 5 V (±2.5 V) analog supply",
        "dac_power": "ADI AD5542A: about 125 µA supply current at 5 V per single-channel DAC (datasheet "
                     "feature list, typical; reference buffer excluded; to verify line by line)",
        "adc_energy": "TI ADS8688: about 65 mW at 500 kSPS (datasheet feature list, typical; to verify "
                      "line by line) -> 130 nJ per conversion",
        "cpu_power": "assumption: one busy core of a desktop/laptop CPU package, ~15 W",
        "link_rate": "the board's UART link, SerialLink.open default 921600 bit/s (instruments/serial_link.py)",
        "bits_per_byte": "UART 8N1: start + 8 data + stop bits",
        "reset_over_rc": "see t_reset",
    })

    def __post_init__(self) -> None:
        for name in _NUMERIC:
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"Assumptions.{name} must be a finite number >= 0, got {value!r}")
        if not (self.link_rate > 0 and self.bits_per_byte > 0):
            raise ValueError("Assumptions.link_rate and bits_per_byte must be > 0")

    def for_rc(self, rc: float) -> Assumptions:
        """The same assumptions with the integrator reset scaled to a board built with ``rc`` (s)."""
        return replace(self, t_reset=self.reset_over_rc * float(rc))

    def link_time(self, n_bytes: float) -> float:
        """Time (s) ``n_bytes`` take on the host-board link."""
        return float(n_bytes) * self.bits_per_byte / self.link_rate

    def table(self) -> list[dict[str, object]]:
        """Every assumption: ``{"name", "value", "source"}`` (value in SI units, or the part's name)."""
        values = asdict(self)
        return [{"name": name, "value": values[name], "source": source} for name, source in self.sources.items()]


@dataclass(frozen=True)
class LayerLoad:
    """One analog layer's electrical load: conductances (rows, outputs) S of both cells of
    every pair, and the mean squared voltage (V^2) on each row while the loop runs."""

    g_pos: np.ndarray
    g_neg: np.ndarray
    row_v2: np.ndarray

    def power(self) -> float:
        """Mean power (W) dissipated in the layer's cells: sum_rows <V^2> sum_cols (G+ + G-)."""
        g = np.asarray(self.g_pos, float) + np.asarray(self.g_neg, float)
        v2 = np.asarray(self.row_v2, float)
        if g.ndim != 2 or v2.shape != (g.shape[0],):
            raise ValueError(f"row_v2 must have one value per row ({g.shape[0]}), got shape {v2.shape}")
        if np.any(g < 0) or np.any(v2 < 0):
            raise ValueError("conductances and mean squared voltages must be >= 0")
        return float(v2 @ g.sum(axis=1))


@dataclass(frozen=True)
class AnalogEstimate:
    """Time (s) and energy (J) per sample of the analog sampler, term by term."""

    time_per_sample: float
    energy_per_sample: float
    time_terms: dict[str, float]
    energy_terms: dict[str, float]
    counts: dict[str, int]
    duration: float
    array_power: float


def analog_estimate(layers: Sequence[LayerLoad], *, duration: float, dim: int, dac_channels: int,
                    assumptions: Assumptions | None = None, transfer: float = 0.0) -> AnalogEstimate:
    """Time and energy per sample of the closed-loop analog sampler.

    layers: the mapped layers' loads; duration: closed-loop run per sample (s, > 0);
    dim: integrators = ADC conversions per sample (>= 1); dac_channels: DAC channels
    driving the loop (time and condition embedding, gains, bias, initial conditions; >= 0).
    Amplifiers: a TIA and an activation amplifier per layer output, one per integrator.
    transfer: host-board transfer time per sample (s, >= 0; initial values in, end values
    out); the board stays powered while it lasts. Programming the conductances is excluded:
    it happens once per network, not per sample.
    """
    a = assumptions or Assumptions()
    if not (np.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive time in s, got {duration!r}")
    if dim < 1 or dac_channels < 0:
        raise ValueError(f"dim must be >= 1 and dac_channels >= 0, got {dim}, {dac_channels}")
    outputs = sum(int(np.shape(layer.g_pos)[1]) for layer in layers)
    counts = {"tia": outputs, "activation": outputs, "integrator": int(dim), "dac": int(dac_channels),
              "adc_conversions": int(dim)}
    n_amp = counts["tia"] + counts["activation"] + counts["integrator"]
    if not (np.isfinite(transfer) and transfer >= 0):
        raise ValueError(f"transfer must be a time >= 0 s, got {transfer!r}")
    time_terms = {"reset": a.t_reset, "run": float(duration), "readout": dim * a.t_convert}
    if transfer:
        time_terms["transfer"] = float(transfer)
    t = sum(time_terms.values())
    p_array = sum(layer.power() for layer in layers)
    energy_terms = {
        "rram_array": p_array * duration,
        "amplifiers": n_amp * a.amp_power * t,
        "dacs": dac_channels * a.dac_power * t,
        "adc": dim * a.adc_energy,
    }
    return AnalogEstimate(t, sum(energy_terms.values()), time_terms, energy_terms, counts, float(duration), p_array)


@dataclass(frozen=True)
class SoftwareBaseline:
    """Measured wall time per sample (s) of the software sampler on this machine."""

    time_per_sample: float
    samples: int
    steps: int
    repeats: int


def measure_software(run_batch: Callable[[int], object], samples: int, steps: int,
                     repeats: int = 3) -> SoftwareBaseline:
    """Time ``run_batch(samples)`` (best of ``repeats`` runs, after one warm-up) per sample.

    run_batch: draws ``samples`` samples with ``steps`` solver steps each; samples,
    repeats >= 1. The best run is the machine's capability, not its background load.
    """
    if samples < 1 or repeats < 1:
        raise ValueError(f"samples and repeats must be >= 1, got {samples}, {repeats}")
    run_batch(min(samples, 16))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run_batch(samples)
        best = min(best, time.perf_counter() - start)
    return SoftwareBaseline(best / samples, samples, steps, repeats)


def summary(analog: AnalogEstimate, software: SoftwareBaseline, assumptions: Assumptions | None = None) -> str:
    """Side-by-side table of time and energy per sample, with every assumption and its source."""
    a = assumptions or Assumptions()
    e_soft = a.cpu_power * software.time_per_sample
    lines = [
        f"{'per sample':<28}{'analog (estimated)':>20}{'software (measured)':>22}{'ratio':>10}",
        f"{'time':<28}{_si(analog.time_per_sample, 's'):>20}{_si(software.time_per_sample, 's'):>22}"
        f"{software.time_per_sample / analog.time_per_sample:>9.3g}x",
        f"{'energy':<28}{_si(analog.energy_per_sample, 'J'):>20}{_si(e_soft, 'J'):>22}"
        f"{e_soft / analog.energy_per_sample:>9.3g}x",
        "",
        "analog time terms: " + ", ".join(f"{k} {_si(v, 's')}" for k, v in analog.time_terms.items()),
        "analog energy terms: " + ", ".join(f"{k} {_si(v, 'J')}" for k, v in analog.energy_terms.items()),
        f"analog counts: {', '.join(f'{k} {v}' for k, v in analog.counts.items())}; "
        f"RRAM array power {_si(analog.array_power, 'W')}",
        f"software: best of {software.repeats} batches of {software.samples} samples, {software.steps} Euler "
        f"steps each, numpy on this machine; energy = cpu_power x time",
        "assumptions:",
    ]
    for row in a.table():
        value = row["value"]
        lines.append(f"  {row['name']} = {value if isinstance(value, str) else format(value, '.4g')}  "
                     f"({row['source']})")
    return "\n".join(lines)


def _si(value: float, unit: str) -> str:
    for factor, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= factor or factor == 1e-12:
            return f"{value / factor:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}"
