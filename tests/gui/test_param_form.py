"""The runner's form comes from the protocol's parameter dataclass and refuses bad values visibly."""

from __future__ import annotations

from gui_helpers import queue_run

from gui.param_form import ParamForm, tooltip
from instruments.limits import Limits
from protocols.characterization.read_array import ReadArray


def test_form_has_a_field_per_parameter_with_unit_limits_and_help_in_the_tooltip(qtbot):
    form = ParamForm(ReadArray)
    qtbot.addWidget(form)
    assert list(form.fields) == [s.name for s in ReadArray.param_specs()]
    tip = form.fields["bias"].toolTip()
    assert "read voltage" in tip and "0.01 .. 0.5 V" in tip and "read_bias" in tip
    assert tooltip(form.specs["macros"]).count("comma") == 1
    proto = form.protocol(Limits())
    assert proto is not None and proto.p.bias == 0.1 and proto.p.macros == [0]


def test_out_of_limit_value_is_refused_with_a_visible_message_and_nothing_runs(window, qtbot):
    queue_run(window, "read-array", bias=0.9)
    form = window.runner.form
    assert form.message.isVisible()
    assert "bias=0.9 V is outside its limits [0.01, 0.5] V" in form.message.text()
    assert "#d00" in form.fields["bias"].styleSheet(), "the offending field is outlined"
    assert window.worker.engine is None and not window.runner.queue
    assert not list(window.worker.data_dir.glob("*.h5"))


def test_value_beyond_the_bench_safety_envelope_is_refused_before_any_io(window):
    # set_stop 2.5 V is inside the parameter's own limits (0.5..3 V) but beyond [limits].set_voltage = 2 V
    queue_run(window, "write-verify", set_stop=2.5)
    text = window.runner.form.message.text()
    assert window.runner.form.message.isVisible() and "exceeds the safety limit 2" in text
    assert window.worker.engine is None


def test_text_that_does_not_parse_is_refused_and_dry_run_estimates_valid_input(window):
    form = window.runner.select_protocol("read-array")
    form.fields["repeats"].setText("many")
    assert window.runner.dry_run() is None
    assert "expected an integer" in form.message.text()
    form.set_value("repeats", 10)
    form.set_value("macros", [0, 1])
    assert window.runner.dry_run() is not None
    assert not form.message.isVisible()
    assert window.runner.estimate.text().startswith("valid: 2 steps")


def test_the_forms_dry_run_refuses_what_the_run_would_refuse(window):
    """Cross-parameter rules and the board's geometry (Protocol.validate), as `run --dry-run`."""
    form = window.runner.select_protocol("multilevel")
    form.set_value("g_low", 6e-5)
    form.set_value("g_high", 2e-6)
    assert window.runner.dry_run() is None
    assert "g_low" in form.message.text() and "below g_high" in form.message.text()
    form = window.runner.select_protocol("read-array")
    form.set_value("macros", [9])
    assert window.runner.dry_run() is None and form.message.isVisible()
    assert window.worker.engine is None
