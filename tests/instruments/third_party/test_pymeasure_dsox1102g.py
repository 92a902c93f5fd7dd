"""PyMeasure's KeysightDSOX1102G driver, unchanged, against the simulated InfiniiVision.

The DSOX1102G shares the InfiniiVision command set of the 3000X programmer's guide.
The signals at the inputs are the node voltages the world last produced; the tests
put them there with ``world.fire_trigger`` (what the controller board's run does).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

keysight = pytest.importorskip("pymeasure.instruments.keysight")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # PyMeasure: "SCPI support unknown"

DT, P = 1e-6, 1000  # s, trace points: a 1 ms run


def signals() -> np.ndarray:
    """Channel 1: 2 kHz sine of 0.8 V; 2: a 0 -> 2 V ramp; 3: a step to 3.3 V at 200 us."""
    t = np.arange(P) * DT
    tr = np.zeros((1, 3, P))
    tr[0, 0] = 0.8 * np.sin(2 * np.pi * 2e3 * t)
    tr[0, 1] = np.linspace(0.0, 2.0, P)
    tr[0, 2] = np.where(t >= 200e-6, 3.3, 0.0)
    return tr


@pytest.fixture
def scope(sim):
    instrument = keysight.KeysightDSOX1102G(sim.resources["scope"], read_termination="\n",
                                            write_termination="\n")
    # download_image reads until a timeout: shorter than PyMeasure's 6 s, longer than the
    # first rendering of the screen (matplotlib's start-up, about 2 s)
    instrument.adapter.connection.timeout = 3000  # ms
    try:
        yield instrument
    finally:
        instrument.adapter.close()


def test_autoscale_fits_the_signals_and_default_setup_restores(scope, sim):
    sim.world.fire_trigger(signals(), DT, 0.0)
    scope.autoscale()
    config = scope.ch1.current_configuration
    assert config["CHAN"] == 1 and config["DISP"] and config["RANG"] == pytest.approx(4.0)  # 0.5 V/div
    assert scope.ch2.scale == pytest.approx(0.5) and scope.ch2.offset == pytest.approx(1.0)
    assert scope.timebase == {"MODE": "MAIN", "REF": "CENT", "MAIN:RANG": pytest.approx(1e-3),
                              "POS": pytest.approx(300e-6, abs=1e-5)}  # the 3.3 V step triggers
    assert scope.timebase_mode == "main"
    scope.default_setup()
    assert scope.ch1.scale == 1.0 and scope.timebase_range == pytest.approx(1e-3) and not scope.ch2.display
    assert scope.check_errors() == []


def test_channel_and_timebase_setup_and_system_setup_round_trip(scope):
    scope.ch1.setup(bwlimit=True, coupling="dc", display=True, invert=False, label="vx", offset=0.1,
                    probe_attenuation=1, scale=0.5)
    assert scope.ch1.bwlimit and scope.ch1.label == '"VX"' and scope.ch1.probe_attenuation == 1.0
    scope.timebase_setup(mode="main", offset=1e-4, horizontal_range=2e-3)
    saved = scope.system_setup
    scope.ch1.scale = 2.0
    scope.timebase_range = 1e-2
    scope.system_setup = saved
    assert scope.ch1.scale == 0.5 and scope.timebase_range == pytest.approx(2e-3)
    assert scope.timebase_offset == pytest.approx(1e-4)
    assert scope.check_errors() == []


def test_digitize_and_waveform_download_in_every_format(scope):
    scope.ch1.scale = 0.05
    scope.acquisition_type = "normal"
    scope.acquisition_mode = "realtime"
    scope.digitize("channel1")
    scope.adapter.connection.timeout = 500  # binary_values reads until a timeout too; nothing to render
    volts, preamble = scope.download_data(source="channel1", points=1000)  # ASCii
    assert volts.size == preamble["points"] == 1000 and preamble["type"] == "NORMAL"
    assert abs(volts.mean()) < 0.005 and 0 < volts.std() < 0.01  # input noise around 0 V
    for fmt, dtype in (("byte", np.uint8), ("word", ">u2")):
        scope.waveform_format = fmt
        pre = scope.waveform_preamble
        codes = scope.binary_values(":WAVeform:DATA?", header_bytes=10, termination_bytes=-1, dtype=dtype)
        assert pre["format"] == fmt.upper() and codes.size == pre["points"] == 1000
        converted = (codes.astype(float) - pre["yreference"]) * pre["yincrement"] + pre["yorigin"]
        np.testing.assert_allclose(converted, volts, atol=pre["yincrement"] + 1e-5)
    assert scope.check_errors() == []


@pytest.mark.slow
def test_screen_image_shows_the_acquisition(scope, sim):
    scope.timebase_scale = 100e-6
    scope.timebase_offset = 500e-6
    scope.write(":TRIGger:EDGE:SOURce EXTernal")
    scope.single()
    assert scope.complete == "1"  # armed before the run fires the trigger
    sim.world.fire_trigger(signals(), DT, 0.0)
    image = scope.download_image(format_="png", color_palette="color")
    picture = Image.open(io.BytesIO(bytes(image)))
    assert picture.format == "PNG" and picture.size == (800, 480)
    scope.adapter.connection.timeout = 1000  # matplotlib has started: renders take a fraction of this
    gray = Image.open(io.BytesIO(bytes(scope.download_image(format_="png", color_palette="grayscale"))))
    assert gray.format == "PNG" and gray.mode == "L"  # BMP works too, but PyMeasure reads it byte by byte
    rgb = np.asarray(picture.convert("RGB")).reshape(-1, 3).astype(int)
    yellow = (rgb[:, 0] > 200) & (rgb[:, 1] > 180) & (rgb[:, 2] < 80)
    assert yellow.sum() > 500  # channel 1's trace
    scope.shutdown()
    assert scope.check_errors() == []
