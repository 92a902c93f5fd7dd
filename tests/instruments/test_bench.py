"""The bench: instruments opened through the real stacks, safe state on every exit path."""

import time

import pytest

from instruments.bench import Bench
from instruments.config import parse_config
from instruments.errors import LimitError, LinkError
from instruments.sim.world import SimWorld


def test_the_default_bench_is_simulated_and_reached_over_loopback_sockets():
    with Bench.from_config() as bench:
        assert bench.simulated
        resources = bench.resources
        assert resources["smu"].startswith("TCPIP0::127.0.0.1::") and resources["smu"].endswith("::SOCKET")
        assert resources["macro_controller"].startswith("socket://127.0.0.1:")
        ids = bench.identities()
        assert "2450" in ids["smu"] and "DSOX3" in ids["scope"] and "MACRO-CONTROLLER" in ids["macro_controller"]
        snapshot = bench.snapshot()
        assert snapshot["simulated"] is True and snapshot["config"]["backend"] == "sim"


def test_leaving_the_context_on_an_exception_puts_every_output_in_its_safe_state():
    with pytest.raises(RuntimeError, match="mid-run"), Bench.from_config() as bench:
        bench.smu.source_voltage(0.2) if hasattr(bench.smu, "source_voltage") else None
        bench.world.outputs.smu_on = True  # as if the SMU output were left on
        bench.world.outputs.smu_level = 0.2
        raise RuntimeError("mid-run failure")
    assert bench.world.outputs_safe()


def test_safe_state_attempts_every_instrument_even_when_one_link_is_broken():
    bench = Bench.from_config()
    try:
        bench.world.outputs.smu_on = True
        bench.world.outputs.dac_max = 0.3
        bench._sim.servers["macro_controller"].stop()  # the board's link goes down
        failures = bench.safe_state()
        assert len(failures) == 1 and failures[0].startswith("macro_controller")
        assert not bench.world.outputs.smu_on  # the SMU was still made safe
    finally:
        bench.close()


def test_the_envelope_of_the_config_reaches_the_drivers_before_any_byte_is_sent():
    config = parse_config({"limits": {"set_voltage": 1.0}})
    with Bench.from_config(config) as bench:
        before = bench._sim.macro_controller.count
        with pytest.raises(LimitError):
            bench.macro_controller.pulse_batch([0], [0], [0], [1], [1.2], 100e-9, [1.5])
        assert bench._sim.macro_controller.count == before


def test_a_given_world_and_a_state_file_are_used(tmp_path):
    world = SimWorld(seed=5)
    with Bench.from_config(world=world) as bench:
        assert bench.world is world
    state = tmp_path / "world.npz"
    with Bench.from_config(state=state, seed=3) as bench:
        bench.macro_controller.pulse_batch([0], [0], [0], [1], [1.4], 100e-9, [1.8])
        g = bench.world.conductance(0)[0, 0]
    assert state.exists()  # saved on close
    reopened = SimWorld.load(state)
    assert reopened.conductance(0)[0, 0] == pytest.approx(g, rel=0.05)


def test_an_unreachable_hardware_resource_is_a_link_error():
    config = parse_config({
        "backend": "hardware",
        "resources": {"smu": "TCPIP0::127.0.0.1::1::SOCKET", "scope": "TCPIP0::127.0.0.1::1::SOCKET",
                      "macro_controller": "socket://127.0.0.1:1"},
        "timeouts": {"smu": 0.5, "scope": 0.5, "macro_controller": 0.5},
    })
    with pytest.raises(LinkError):
        Bench.from_config(config)


def test_the_simulated_bench_opens_the_seed_board_and_puts_it_in_its_safe_state():
    """bench.seed_board is opened on the simulated bench, recorded in the snapshot (it
    cannot identify itself), and safe_state sends its noise-off and zero-offset commands."""
    with Bench.from_config(seed=1) as bench:
        assert bench.seed_board is not None
        snap = bench.snapshot()
        assert snap["sampler_board"] == "macro_controller"
        assert snap["seed_board"] == bench.resources["seed_board"].strip()
        assert "seed_board" not in snap["identities"]
        emulator = bench._sim.seed_board
        assert bench.safe_state() == []
        # The seed board never answers, so its lines are delivered asynchronously: wait for them.
        deadline = time.monotonic() + 10.0
        while list(emulator.received)[-2:] != [b"O5050", b"In00"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert list(emulator.received)[-2:] == [b"O5050", b"In00"]
        assert emulator.noise is False and emulator.offsets == (0.0, 0.0)
