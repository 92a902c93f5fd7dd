"""The board's time constants are the board's (issue 14, item 2).

The macro controller reports its loop's RC and fine step (LOOP_INFO); ``sample`` computes
its DAC streams with what the board reports, its ``rc`` and ``dt_step`` parameters default
to "as the board reports it" (0), and a host value that is not the board's is refused
before anything runs, in the dry run too: exit 2, one line, nothing written.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from analysis import open_run
from instruments.bench import Bench
from instruments.limits import Limits
from instruments.macro_controller import MacroController
from instruments.macro_controller_wire import LOOP_DT_STEP, LOOP_RC, LOOP_V_RAIL, LoopInfo, Op, decode
from instruments.serial_link import SerialLink
from instruments.sim.macro_controller import MacroControllerEmulator
from instruments.sim.servers import LoopbackServer
from instruments.sim.world import SimWorld
from protocols.cli.main import main
from protocols.diffusion.sample import Sample
from protocols.engine.runner import RunEngine, RunState

#: A tiny sample run: no programming, two samples of ten steps, no waveforms.
TINY = {"program": False, "samples": 2, "batch": 2, "steps": 10, "waveforms": 0}
REFUSED = {
    "rc": ("2e-3", "rrambench: error: rc=0.002 s is not the board's: the macro controller's integrator time "
                   "constant RC is 0.001 s (leave rc at 0 to take the board's)\n"),
    "dt_step": ("2e-6", "rrambench: error: dt_step=2e-06 s is not the board's: the macro controller's fine step "
                        "(DAC update interval) is 1e-06 s (leave dt_step at 0 to take the board's)\n"),
}


def world_with_rc(rc: float) -> SimWorld:
    """A simulated world whose board was built with integrator time constant ``rc`` (s)."""
    world = SimWorld(seed=4)
    world.loop.params = replace(world.loop.params, rc=rc)
    return world


def test_the_board_reports_its_own_loop_constants_and_the_driver_asks_once():
    """LOOP_INFO carries what the board's circuit integrates with (the wire's LOOP_* as built);
    the driver's loop_rc / loop_dt_step and its snapshot are the board's, asked once."""
    for world, expected in ((SimWorld(seed=0), LoopInfo(LOOP_RC, LOOP_DT_STEP, LOOP_V_RAIL)),
                            (world_with_rc(2e-3), LoopInfo(2e-3, LOOP_DT_STEP, LOOP_V_RAIL))):
        board = MacroControllerEmulator(world)
        server = LoopbackServer(board.handle, delimiter=b"\x00", name="macro_controller").start()
        link = SerialLink.open(server.url, timeout=2.0)
        try:
            ctl = MacroController(link, Limits())
            assert (ctl.loop_rc, ctl.loop_dt_step, ctl.loop_v_rail) == (expected.rc, expected.dt_step, expected.v_rail)
            asked = board.count
            settings = ctl.snapshot()
            assert (settings["loop_rc"], settings["loop_dt_step"]) == ((expected.rc, "s"), (expected.dt_step, "s"))
            assert board.count == asked + 2, "the snapshot asks IDENTIFY and STATUS, not LOOP_INFO again"
            assert ctl.loop_info() == expected
        finally:
            link.close()
            server.stop()


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])
@pytest.mark.parametrize("name", list(REFUSED))
def test_a_host_time_constant_that_is_not_the_boards_is_refused_in_one_line(capsys, tmp_path, name, dry):
    value, message = REFUSED[name]
    out = tmp_path / "runs"
    code = main(["run", "sample", "--set", f"{name}={value}", "--out", str(out), *(["--dry-run"] if dry else [])])
    assert (code, *capsys.readouterr()) == (2, "", message)
    assert not out.exists(), "nothing written, not even the --out folder"


def test_the_boards_own_values_pass_and_the_seed_board_takes_none(capsys):
    """Explicit values equal to the board's (to float rounding) pass the check; with the
    seed's board, whose firmware keeps its own time base, any value is refused."""
    for values in (["rc=1e-3", "dt_step=1e-6"], ["rc=1.0000000001e-3"]):
        argv = ["run", "sample", *(a for v in values for a in ("--set", v)), "--dry-run"]
        assert main(argv) == 0, capsys.readouterr().err
        assert "loop RC 0.001 s, fine step 1e-06 s" in capsys.readouterr().out
    assert main(["run", "sample", "--set", "board=seed_board", "--set", "rc=1e-3", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rc=0.001 s: board=seed_board runs on its firmware's own fixed time base" in err


def test_a_default_run_takes_the_boards_constants_and_records_them(tmp_path):
    """On a board built with RC = 2 ms: the streams it receives are computed with 2 ms, the
    run file's parameters and snapshot say so; the host constant LOOP_RC (1 ms) is refused
    on that board before a byte of the run is sent and before the run file exists."""
    with Bench.from_config(world=world_with_rc(2e-3)) as bench:
        proto = Sample.from_values(TINY)
        engine = RunEngine(proto, bench, tmp_path / "default.h5", seed=3)
        assert engine.run() == RunState.COMPLETED, engine.error
        run = open_run(tmp_path / "default.h5")
        assert (run.parameters["rc"], run.parameters["dt_step"]) == (2e-3, LOOP_DT_STEP)
        settings = run.snapshot["macro_controller"]["start"]["settings"]
        assert (settings["loop_rc"]["value"], settings["loop_dt_step"]["value"]) == (2e-3, LOOP_DT_STEP)
        streams = proto.sampler.streams(None)
        assert proto.sampler.loop.rc == 2e-3
        np.testing.assert_allclose(bench.world.loop.state_dict()["stream.a"], streams.a, rtol=1e-6)

        board = bench._sim.macro_controller
        before = board.count
        host = RunEngine(Sample.from_values({**TINY, "rc": LOOP_RC}), bench, tmp_path / "host.h5", seed=3)
        with pytest.raises(ValueError, match=r"^rc=0.001 s is not the board's: .* RC is 0.002 s"):
            host.run()
        sent = [decode(m).op for m in list(board.received)[before - board.count:]]
        assert sent == [Op.IDENTIFY, Op.SAFE_STATE], "the check, then the engine's safe state"
        assert not (tmp_path / "host.h5").exists()
