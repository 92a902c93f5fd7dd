"""Speed/energy model: matches a hand calculation, states its assumptions, times the software baseline."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.speed_energy import Assumptions, LayerLoad, SoftwareBaseline, analog_estimate, measure_software, summary

ROUND = Assumptions(t_reset=10e-6, t_convert=1e-6, amp_power=10e-3, dac_power=1e-3, adc_energy=1e-9,
                    cpu_power=20.0)


def one_layer() -> LayerLoad:
    return LayerLoad(g_pos=np.array([[10e-6, 2e-6], [4e-6, 2e-6]]), g_neg=np.array([[2e-6, 2e-6], [2e-6, 6e-6]]),
                     row_v2=np.array([0.01, 0.04]))


def test_estimate_matches_a_hand_calculation():
    est = analog_estimate([one_layer()], duration=1e-3, dim=2, dac_channels=5, assumptions=ROUND)
    # array: 0.01 V^2 x (12 + 4) uS + 0.04 V^2 x (6 + 8) uS = 0.16 uW + 0.56 uW = 0.72 uW
    assert est.array_power == pytest.approx(0.72e-6)
    # time: 10 us reset + 1 ms run + 2 conversions x 1 us
    assert est.time_per_sample == pytest.approx(1.012e-3)
    # amplifiers: 2 TIA + 2 activation + 2 integrators = 6 x 10 mW over 1.012 ms = 60.72 uJ
    # DACs: 5 x 1 mW x 1.012 ms = 5.06 uJ; array 0.72 uW x 1 ms = 0.72 nJ; ADC 2 x 1 nJ
    assert est.energy_terms == pytest.approx({"rram_array": 0.72e-9, "amplifiers": 60.72e-6, "dacs": 5.06e-6,
                                              "adc": 2e-9})
    assert est.energy_per_sample == pytest.approx(60.72e-6 + 5.06e-6 + 0.72e-9 + 2e-9)
    assert est.counts == {"tia": 2, "activation": 2, "integrator": 2, "dac": 5, "adc_conversions": 2}


def test_summary_prints_both_sides_the_ratios_and_every_assumption_with_its_source():
    est = analog_estimate([one_layer()], duration=1e-3, dim=2, dac_channels=5, assumptions=ROUND)
    soft = SoftwareBaseline(time_per_sample=2.024e-3, samples=100, steps=10_000, repeats=3)
    text = summary(est, soft, ROUND)
    assert "1.012 ms" in text and "2.024 ms" in text and "2x" in text, "time side by side, speed-up 2x"
    e_soft = 20.0 * 2.024e-3
    assert f"{e_soft / est.energy_per_sample:.3g}x" in text, "energy ratio uses cpu_power x measured time"
    for name, source in ROUND.sources.items():
        assert name in text and source in text
    for part in ("OPA2320", "AD5542A", "ADS8688"):
        assert part in text, "documented component figures are named"


def test_software_baseline_is_timed_per_sample_after_a_warm_up():
    calls = []
    base = measure_software(lambda n: calls.append(n), samples=50, steps=10, repeats=3)
    assert calls == [16, 50, 50, 50]
    assert base.time_per_sample > 0 and base.samples == 50 and base.steps == 10


def test_bad_inputs_are_refused_naming_them():
    with pytest.raises(ValueError, match="duration"):
        analog_estimate([one_layer()], duration=-1.0, dim=2, dac_channels=0)
    with pytest.raises(ValueError, match="row_v2"):
        LayerLoad(np.ones((2, 2)), np.ones((2, 2)), np.ones(3)).power()
    with pytest.raises(ValueError, match="amp_power"):
        Assumptions(amp_power=float("nan"))
