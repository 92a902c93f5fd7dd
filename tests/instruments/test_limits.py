"""The safety envelope refuses, never clips."""

import math

import numpy as np
import pytest

from instruments.errors import LimitError
from instruments.limits import Limits


@pytest.mark.parametrize(
    ("check", "value"),
    [
        ("set_pulse", 2.01), ("reset_pulse", -2.6), ("read_bias", 0.6), ("gate", 3.4),
        ("smu_level", -3.1), ("smu_compliance", 2e-3), ("pulse_width", 5e-9), ("pulse_width", 1.0),
        ("sweep", 2e3), ("set_pulse", math.nan), ("gate", math.inf),
    ],
)
def test_values_beyond_the_envelope_raise_limit_error(check, value):
    with pytest.raises(LimitError):
        getattr(Limits(), check)(value)


def test_values_inside_the_envelope_pass_including_arrays():
    limits = Limits()
    limits.set_pulse(np.array([0.5, 1.9, 2.0]))
    limits.pulse_width([10e-9, 1e-3])
    limits.read_bias(-0.5)


def test_one_bad_element_of_an_array_refuses_the_whole_batch():
    with pytest.raises(LimitError, match="2.5"):
        Limits().set_pulse(np.array([1.0, 2.5, 1.0]))


@pytest.mark.parametrize(("polarity", "amplitude", "refused"), [
    (np.array([1, -1, -1]), np.array([2.0, 2.3, 2.5]), None),      # each within its own polarity's limit
    (1, np.array([2.0 * (1 + 1e-13), 1.0]), None),                  # within the rounding allowance
    (np.array([-1, 1]), 2.4, "SET pulse amplitude"),              # one amplitude, broadcast: the SET exceeds
    (np.array([-1] * 5 + [1]), np.array([2.4] * 5 + [2.1]), "SET pulse amplitude"),
    (np.array([1, -1]), np.array([1.0, 2.6]), "RESET pulse amplitude"),
    (-1, np.array([1.0, np.nan]), "non-finite"),
    (np.array([1, -1]), np.array([np.inf, 1.0]), "non-finite"),
    (1, np.array([]), None),
])
def test_pulse_amplitudes_are_checked_against_their_own_polaritys_limit(polarity, amplitude, refused):
    """The batch check gives the verdict of ``set_pulse`` and ``reset_pulse`` on the two halves
    (defaults: SET 2.0 V, RESET 2.5 V), with their messages."""
    if refused is None:
        Limits().pulse_amplitudes(polarity, amplitude)
    else:
        with pytest.raises(LimitError, match=refused):
            Limits().pulse_amplitudes(polarity, amplitude)


@pytest.mark.parametrize("check", ["read_bias", "gate", "pulse_width"])
def test_a_single_value_gets_the_verdict_of_a_one_element_array(check):
    for value in (0.3, 2.9, 5e-9, 1e-4, 20e-3, -0.49, math.nan, -math.inf):
        verdicts = []
        for given in (value, np.float32(value), np.array([value])):
            try:
                getattr(Limits(), check)(given)
                verdicts.append("pass")
            except LimitError as exc:
                verdicts.append(str(exc).split(" exceeds")[0].split(" outside")[0])
        assert len(set(verdicts)) == 1, (check, value, verdicts)
