"""InfiniiVision3000X driver end to end: pyvisa-py over loopback to the emulated scope,
with closed-loop traces fired through the world's trigger."""

import threading

import numpy as np
import pytest
from pyvisa import constants

from instruments.errors import InstrumentTimeout
from instruments.infiniivision import InfiniiVision3000X
from instruments.limits import Limits
from instruments.sim.infiniivision import InfiniiVisionEmulator
from instruments.sim.servers import LoopbackServer
from instruments.sim.world import SimWorld
from instruments.transport import VisaTransport

DT = 1e-5  # s: the loop's default trace rate, 100 kHz
P = 201  # 2 ms of closed loop


def closed_loop_traces(samples):
    """Traces shaped like a closed-loop run: 2 integrators decaying from per-sample x0,
    a time-embedding probe, and the trigger channel held at 1 V (ODE run)."""
    t = np.arange(P) * DT
    x0 = np.linspace(-0.8, 0.8, samples)
    tr = np.empty((samples, 4, P), dtype=np.float32)
    tr[:, 0] = x0[:, None] * np.exp(-t / 1e-3)
    tr[:, 1] = -x0[:, None] * np.exp(-t / 2e-3)
    tr[:, 2] = 0.2 * np.sin(2 * np.pi * 500 * t)
    tr[:, 3] = 1.0
    return tr


def truth(x0, t):
    return x0 * np.exp(-t / 1e-3)


@pytest.fixture
def bench():
    world = SimWorld(seed=0)
    emulator = InfiniiVisionEmulator(world, seed=5)
    with LoopbackServer(emulator.handle, name="scope") as server:
        io = VisaTransport.open(server.resource, name="scope", timeout=5.0)
        scope = InfiniiVision3000X(io, Limits())
        scope.reset()
        for ch in (1, 2, 3):
            scope.configure_channel(ch, scale=0.2)
        scope.set_timebase(200e-6, 1e-3)  # 2 ms on screen starting at the trigger
        yield scope, emulator, world
        io.close()


@pytest.mark.parametrize("fmt", ["BYTE", "WORD"])
@pytest.mark.parametrize("source", ["EXT", 4])
def test_closed_loop_trace_is_seen_with_correct_volts_and_seconds(bench, fmt, source):
    scope, _, world = bench
    scope.set_edge_trigger(source, 0.5)
    scope.single()
    assert not scope.triggered()
    world.fire_trigger(closed_loop_traces(1), DT, world.clock.now())
    scope.wait_triggered(timeout=2.0)
    waves = scope.fetch_channels([1, 2, 3], fmt=fmt)
    w1 = waves[1]
    assert w1.time[0] == pytest.approx(0.0, abs=1e-9) and w1.time[-1] == pytest.approx(2e-3, rel=1e-2)
    lsb = 0.8 / (127 if fmt == "BYTE" else 32767)
    err = np.abs(w1.volts - truth(-0.8, w1.time))
    assert np.percentile(err, 95) < 2 * lsb + 3 * (100e-6 + 2e-3 * 0.2)
    assert np.median(waves[2].volts[:20]) == pytest.approx(0.8, abs=0.02)
    assert np.max(np.abs(waves[3].volts)) < 0.25  # the probe's 0.2 V sine


def test_segmented_memory_captures_one_segment_per_sample(bench):
    scope, _, world = bench
    scope.set_edge_trigger("EXT", 0.5)
    scope.set_segmented(5)
    scope.single()
    world.fire_trigger(closed_loop_traces(5), DT, world.clock.now())
    scope.wait_triggered(timeout=2.0)
    assert scope.segments_acquired() == 5
    segments = scope.fetch_segments(1, 5, fmt="WORD", points=500)
    starts = [np.median(w.volts[:3]) for w in segments]
    np.testing.assert_allclose(starts, np.linspace(-0.8, 0.8, 5), atol=0.01)
    assert all(w.codes.size == 500 for w in segments)


def test_trigger_fired_from_another_thread_is_picked_up_by_polling(bench):
    scope, _, world = bench
    scope.set_edge_trigger("EXT", 0.5)
    scope.single()
    timer = threading.Timer(0.05, world.fire_trigger, (closed_loop_traces(1), DT, 0.0))
    timer.start()
    scope.wait_triggered(timeout=5.0, poll=0.01)
    timer.join()


def test_digitize_identify_run_stop_and_safe_state(bench):
    scope, emulator, _ = bench
    assert scope.identify() == emulator.idn
    scope.set_acquire_type("NORM")
    scope.set_channel_display(2, True)
    scope.set_channel_offset(2, 0.1)
    scope.set_channel_scale(2, 0.05)
    scope.digitize([2])
    wave = scope.fetch(2, fmt="BYTE")
    assert abs(np.median(wave.volts) - 0.0) < 0.01 and wave.preamble.yorigin == pytest.approx(0.1)
    scope.run()
    scope.stop()
    scope.safe_state()
    scope.safe_state()
    scope.check_errors()
    assert not (emulator.running or emulator.armed)
    scope.set_realtime()
    scope.single()
    with pytest.raises(InstrumentTimeout):
        scope.wait_triggered(timeout=0.05)


def test_socket_transport_disables_nagle_so_a_query_after_a_write_is_not_held():
    """Each fetch writes its settings and then queries the preamble. With Nagle on the
    client, that query waited for the scope's delayed ACK (~40 ms per fetch, ~14 s of
    the demo); the transport must open raw sockets with TCP_NODELAY."""
    emulator = InfiniiVisionEmulator(SimWorld(seed=0, n_macros=1, rows=4, cols=4))
    with LoopbackServer(emulator.handle, name="scope") as server, \
            VisaTransport.open(server.resource, name="scope") as io:
        assert io.resource.get_visa_attribute(constants.VI_ATTR_TCPIP_NODELAY) == constants.VI_TRUE
        io.write(":WAV:SOUR CHAN1")
        assert io.query(":WAV:SOUR?") == "CHAN1"
