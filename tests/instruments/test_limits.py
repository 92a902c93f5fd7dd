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
