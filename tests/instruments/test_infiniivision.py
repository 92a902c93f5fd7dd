"""InfiniiVision3000X driver: exact command strings (in-process) and preamble conversion."""

import numpy as np
import pytest

from instruments.errors import InstrumentError, InstrumentTimeout
from instruments.infiniivision import InfiniiVision3000X, Preamble, Waveform
from instruments.limits import Limits
from instruments.sim.infiniivision import InfiniiVisionEmulator
from instruments.sim.inprocess import InProcessResource
from instruments.sim.world import SimWorld
from instruments.transport import VisaTransport

ERR = ":SYST:ERR?"


@pytest.fixture
def rig():
    world = SimWorld(seed=0)
    emulator = InfiniiVisionEmulator(world, seed=1)
    resource = InProcessResource(emulator.handle)
    return InfiniiVision3000X(VisaTransport(resource, name="scope"), Limits()), resource, emulator


def sent_by(rig, call):
    scope, resource, _ = rig
    resource.sent.clear()
    result = call(scope)
    return resource.sent, result


@pytest.mark.parametrize("call, expected", [
    (lambda s: s.identify(), ["*IDN?"]),
    (lambda s: s.reset(), ["*RST;*CLS"]),
    (lambda s: s.set_channel_scale(2, 0.05), [":CHAN2:SCAL 0.05"]),
    (lambda s: s.set_channel_offset(3, -0.2), [":CHAN3:OFFS -0.2"]),
    (lambda s: s.set_channel_display(4, False), [":CHAN4:DISP 0"]),
    (lambda s: s.configure_channel(1, scale=0.5, offset=0.1),
     [":CHAN1:SCAL 0.5;:CHAN1:OFFS 0.1;:CHAN1:DISP 1", ERR]),
    (lambda s: s.set_timebase(1e-4, 2e-4), [":TIM:SCAL 0.0001;:TIM:POS 0.0002", ERR]),
    (lambda s: s.set_edge_trigger(4, 1.5), [":TRIG:MODE EDGE;:TRIG:EDGE:SOUR CHAN4;:TRIG:EDGE:LEV 1.5;"
                                            ":TRIG:EDGE:SLOP POS", ERR]),
    (lambda s: s.set_edge_trigger("ext", 0.5, "negative"),
     [":TRIG:MODE EDGE;:TRIG:EDGE:SOUR EXT;:TRIG:EDGE:LEV 0.5;:TRIG:EDGE:SLOP NEG", ERR]),
    (lambda s: s.set_acquire_type("hres"), [":ACQ:TYPE HRES"]),
    (lambda s: s.set_segmented(100), [":ACQ:MODE SEGM;:ACQ:SEGM:COUN 100", ERR]),
    (lambda s: s.set_realtime(), [":ACQ:MODE RTIM"]),
    (lambda s: s.single(), [":SING", ":OPER:COND?"]),
    (lambda s: s.run(), [":RUN"]),
    (lambda s: s.stop(), [":STOP"]),
    (lambda s: s.digitize([1, 3]), [":DIG CHAN1,CHAN3;*OPC?"]),
    (lambda s: s.triggered(), [":TER?"]),
    (lambda s: s.segments_acquired(), [":WAV:SEGM:COUN?"]),
    (lambda s: s.safe_state(), [":STOP"]),
])
def test_one_line_per_instrument_function(rig, call, expected):
    assert sent_by(rig, call)[0] == expected


@pytest.mark.parametrize("fmt, datatype_max", [("BYTE", 255), ("WORD", 65535)])
def test_fetch_transcript_and_conversion(rig, fmt, datatype_max):
    scope, _, _ = rig
    scope.digitize([2])
    sent, wave = sent_by(rig, lambda s: s.fetch(2, fmt=fmt, points=500))
    assert sent == [f":WAV:SOUR CHAN2;:WAV:FORM {fmt};:WAV:BYT MSBF;:WAV:UNS 1;:WAV:POIN:MODE RAW;"
                    ":WAV:POIN 500", ":WAV:PRE?", ":WAV:DATA?"]
    assert wave.codes.size == wave.preamble.points == 500 and wave.codes.max() <= datatype_max
    assert wave.time.size == 500 and np.all(np.diff(wave.time) > 0)
    assert abs(np.mean(wave.volts)) < 0.05  # noise around 0 V on a 1 V/div screen


def test_fetch_of_a_segment_selects_it_first(rig):
    scope, _, _ = rig
    scope.set_segmented(2)
    scope.digitize([1])
    sent, wave = sent_by(rig, lambda s: s.fetch(1, fmt="BYTE", segment=2))
    assert sent[0].startswith(":ACQ:SEGM:IND 2;:WAV:SOUR CHAN1;") and wave.segment == 2


def test_fetching_a_channel_without_data_raises_the_instruments_error(rig):
    scope, _, _ = rig
    scope.digitize([1])
    with pytest.raises(InstrumentError, match="no data for CHANnel3"):
        scope.fetch(3)


def test_wait_triggered_times_out_without_a_trigger(rig):
    scope, _, _ = rig
    scope.single()
    with pytest.raises(InstrumentTimeout, match="no trigger"):
        scope.wait_triggered(timeout=0.05, poll=0.01)


def test_preamble_conversion_formulas():
    pre = Preamble.from_values([1, 0, 4, 1, 1e-6, -2e-6, 0, 0.01, 0.5, 32768])
    wave = Waveform(1, np.array([32768, 32868, 32668, 0]), pre)
    np.testing.assert_allclose(wave.time, [-2e-6, -1e-6, 0, 1e-6])
    np.testing.assert_allclose(wave.volts[:3], [0.5, 1.5, -0.5])
    assert np.isnan(wave.volts[3])  # code 0 is a hole
    with pytest.raises(ValueError, match="10 fields"):
        Preamble.from_values([1, 2, 3])


@pytest.mark.parametrize("call, word", [
    (lambda s: s.set_channel_scale(5, 1.0), "channel"),
    (lambda s: s.set_channel_scale(1, 0.0), "volts_per_div"),
    (lambda s: s.set_channel_offset(1, float("inf")), "volts"),
    (lambda s: s.set_timebase(-1e-3), "scale"),
    (lambda s: s.set_edge_trigger(1, 0.5, "sideways"), "slope"),
    (lambda s: s.set_acquire_type("fancy"), "kind"),
    (lambda s: s.set_segmented(1), "count"),
    (lambda s: s.digitize([]), "channels"),
    (lambda s: s.fetch(1, fmt="ASCii"), "fmt"),
    (lambda s: s.fetch(1, points=0), "points"),
    (lambda s: s.fetch(1, segment=0), "segment"),
])
def test_invalid_arguments_are_refused_by_name_before_sending(rig, call, word):
    scope, resource, _ = rig
    resource.sent.clear()
    with pytest.raises(ValueError, match=word):
        call(scope)
    assert resource.sent == []


def test_fetch_segments_checks_the_acquired_count_first(rig):
    scope, _, emulator = rig
    scope.set_edge_trigger("EXT", 0.5)
    scope.set_segmented(4)
    scope.single()
    traces = np.zeros((2, 4, 200))  # two samples of a run: two of the four segments
    emulator.world.fire_trigger(traces, 1e-6, 0.0)
    assert scope.triggered() and scope.segments_acquired() == 2  # :TER? latched at the first trigger
    with pytest.raises(InstrumentTimeout, match="2 of 4 segments"):
        scope.wait_segments(4, timeout=0.05, poll=0.01)
    with pytest.raises(InstrumentError, match="2 segments acquired, 4 requested"):
        scope.fetch_segments(1, 4)
    emulator.world.fire_trigger(traces, 1e-6, 1.0)
    scope.wait_segments(4, timeout=1.0)
    sent, waves = sent_by(rig, lambda s: s.fetch_segments(1, 4, fmt="BYTE", points=100))
    assert sent[0] == ":WAV:SEGM:COUN?" and [w.segment for w in waves] == [1, 2, 3, 4]
