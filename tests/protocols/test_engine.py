"""The run engine's state machine, journal, seeds and failure handling (no instruments)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import numpy as np
import pytest
from engine_helpers import Everything, Gated, finish, new_engine, settle, start, wait

from analysis import open_run
from protocols.engine.runner import TRANSITIONS, InvalidTransition, RunState, new_run_path, step_rng

S = RunState


def _script_complete(engine, proto):
    proto.open_all()


def _script_pause_at_boundary(engine, proto):
    wait(proto.entered[0])
    engine.pause()
    proto.gates[0].set()
    assert engine.wait_for({S.PAUSED}, 10)
    settle()
    assert not proto.entered[1].is_set(), "no step starts while paused"
    engine.resume()
    proto.open_all()


def _script_pause_inside_step(engine, proto):
    wait(proto.entered[0])
    engine.pause()
    assert engine.wait_for({S.PAUSED}, 10), "check() inside a step pauses the run"
    engine.resume()
    assert engine.wait_for({S.RUNNING, S.COMPLETED}, 10)
    proto.open_all()


def _script_abort_running(engine, proto):
    proto.gates[0].set()
    wait(proto.entered[1])
    engine.abort()


def _script_abort_paused(engine, proto):
    wait(proto.entered[0])
    proto.gates[0].set()
    engine.pause()
    assert engine.wait_for({S.PAUSED}, 10)
    assert engine.abort() is True


def _script_resume_before_pause_is_reached(engine, proto):
    wait(proto.entered[0])
    engine.pause()
    engine.resume()
    proto.open_all()


# (script, protocol params, final state, journal statuses, states after 'running'; None: racy)
SCENARIOS = {
    "runs to completion": (_script_complete, {}, S.COMPLETED,
                           ["completed"] * 3, [S.COMPLETED]),
    "pause at a step boundary, then resume": (_script_pause_at_boundary, {}, S.COMPLETED,
                                              ["completed"] * 3, [S.PAUSED, S.RUNNING, S.COMPLETED]),
    "pause inside a long step, then resume": (_script_pause_inside_step, {}, S.COMPLETED,
                                              ["completed"] * 3, [S.PAUSED, S.RUNNING, S.COMPLETED]),
    "abort while running": (_script_abort_running, {}, S.ABORTED,
                            ["completed", "aborted"], [S.ABORTED]),
    "abort while paused": (_script_abort_paused, {}, S.ABORTED,
                           ["completed"], [S.PAUSED, S.ABORTED]),
    "resume cancels a pause not yet reached": (_script_resume_before_pause_is_reached, {},
                                               S.COMPLETED, ["completed"] * 3, None),
    "exception in a step fails the run": (_script_complete, {"fail_at": 1}, S.FAILED,
                                          ["completed", "failed"], [S.FAILED]),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_state_transitions(tmp_path, scenario):
    script, values, final, journal, seen = SCENARIOS[scenario]
    proto = Gated.from_values(values)
    engine = new_engine(tmp_path, proto)
    states = []
    engine.subscribe(lambda ev: states.append(S(ev.state)) if not states or states[-1].value != ev.state
                     else None)
    thread = start(engine)
    script(engine, proto)
    finish(thread)
    assert engine.state == final
    run = open_run(tmp_path / "run.h5")
    assert run.status == final.value
    assert [e.status for e in run.journal] == journal
    assert [e.index for e in run.journal] == list(range(len(journal)))
    if seen is not None:
        assert states == [S.RUNNING, *seen]
    for a, b in zip(states, states[1:], strict=False):
        assert b in TRANSITIONS[a], f"illegal transition {a} -> {b}"


def test_a_failed_run_keeps_the_error_text_and_completed_data(tmp_path):
    proto = Gated.from_values({"fail_at": 2})
    proto.open_all()
    engine = new_engine(tmp_path, proto)
    assert engine.run() == S.FAILED
    run = open_run(tmp_path / "run.h5")
    assert run.error == "RuntimeError: boom at step 2"
    assert run.steps_completed == 2
    assert run.read("value").shape == (2,)


def test_keyboard_interrupt_in_a_step_leaves_an_interrupted_file_and_propagates(tmp_path):
    proto = Gated.from_values({"interrupt_at": 1})
    proto.open_all()
    engine = new_engine(tmp_path, proto)
    with pytest.raises(KeyboardInterrupt):
        engine.run()
    assert engine.state == S.INTERRUPTED
    run = open_run(tmp_path / "run.h5")
    assert (run.status, run.steps_completed) == ("interrupted", 1)


# (state the engine is in, command) -> refused; every other combination is allowed.
REFUSED = [
    (S.IDLE, "pause"), (S.IDLE, "resume"), (S.IDLE, "abort"),
    (S.COMPLETED, "pause"), (S.COMPLETED, "resume"),
]


@pytest.mark.parametrize(("state", "command"), REFUSED)
def test_commands_that_make_no_sense_in_a_state_are_refused(tmp_path, state, command):
    proto = Gated()
    proto.open_all()
    engine = new_engine(tmp_path, proto)
    if state == S.COMPLETED:
        assert engine.run() == S.COMPLETED
    with pytest.raises(InvalidTransition):
        getattr(engine, command)()


def test_abort_after_the_end_is_a_harmless_no_op(tmp_path):
    proto = Gated()
    proto.open_all()
    engine = new_engine(tmp_path, proto)
    engine.run()
    assert engine.abort() is False
    assert engine.state == S.COMPLETED


def test_transition_table_only_leaves_idle_by_running_and_never_leaves_an_end_state():
    assert TRANSITIONS[S.IDLE] == {S.RUNNING}
    for end in (S.COMPLETED, S.ABORTED, S.FAILED, S.INTERRUPTED):
        assert end not in TRANSITIONS
        assert end in TRANSITIONS[S.RUNNING] and end in TRANSITIONS[S.PAUSED]


def test_each_step_draws_from_its_own_seeded_stream(tmp_path):
    proto = Gated.from_values({"steps": 4})
    proto.open_all()
    new_engine(tmp_path, proto, seed=123).run()
    values = open_run(tmp_path / "run.h5").read("value")
    expected = [step_rng(123, i).normal() for i in range(4)]
    np.testing.assert_array_equal(values, expected)


def test_progress_events_count_steps_and_end_at_one(tmp_path):
    proto = Gated.from_values({"steps": 4})
    proto.open_all()
    engine = new_engine(tmp_path, proto)
    events = []
    engine.subscribe(events.append)
    engine.run()
    assert {e.total for e in events} == {4}
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions), "progress never goes backwards"
    assert events[-1].fraction == 1.0 and events[-1].state == "completed"
    assert [e.name for e in events if e.fraction == 0.0][0] == "step 0"


def test_data_subscribers_see_each_record_with_what_was_written_on_the_run_thread(tmp_path):
    """subscribe_data: every record, in order, with what the step passed and the file holds,
    on the run's thread; a subscriber that raises is dropped without failing the run."""
    engine = new_engine(tmp_path, Everything.from_values({"steps": 2}))
    seen, threads = [], set()

    def tap(kind, name, *args):
        threads.add(threading.current_thread())
        seen.append((kind, name, args))

    engine.subscribe_data(lambda *a: 1 / 0)
    engine.subscribe_data(tap)
    thread = start(engine)
    thread.join(10)
    assert engine.state == RunState.COMPLETED, engine.error
    assert [(k, n) for k, n, _ in seen] == 2 * [("row", "g"), ("row", "t"), ("trace", "ch1"),
                                                ("trace", "ch2"), ("pulses", None)]
    assert threads == {thread}
    run = open_run(tmp_path / "run.h5")
    np.testing.assert_array_equal(run.read("g"), [a[0] for k, n, a in seen if n == "g"])
    assert [a[0] for k, n, a in seen if n == "t"] == run.read("t").tolist() == [0.0, 1.0]
    assert seen[2][2][1]["y_increment"] == 0.02


def test_new_run_path_is_timestamped_and_never_reuses_a_name(tmp_path):
    """One public run-path function (CLI and GUI): <UTC stamp>-<protocol>.h5, -2, -3 when taken."""
    first = new_run_path(tmp_path, "read-array")
    assert first.parent == tmp_path and first.name.endswith("-read-array.h5")
    stamp = datetime.strptime(first.name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 3600
    first.touch()
    second = new_run_path(tmp_path, "read-array")
    assert second != first and not second.exists()
