"""``rrambench paper``: the plan covers every panel, the page and panels.json, reuse after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis import characterization_data as ld
from analysis import open_run
from analysis.figures.field import potential
from analysis.paper_panels import PANEL_IDS, PANELS
from protocols.cli.main import main
from protocols.paper.build import build_paper, completed_run, same_parameters
from protocols.paper.plan import PLAN, PaperRun

#: The paper's panel ids the issue lists (Figs. 2-5).
PAPER_IDS = ("2c 2d 2e 2f 2g 3a 3b 3c 3d 3e 3f 3g 4c 4d 4e 4f 4g 4h 5b 5c 5e 5f").split()
#: Two small runs: enough to draw 2c and 5b, and to see reuse.
TINY_PLAN = (
    PaperRun("iv", "iv-sweep", {"cells": ["0:0:0"], "cycles": 1, "step": 0.1}, panels=("2c",)),
    PaperRun("write-noise", "write-noise", {"cells": ["0:0-1:0-1"], "repeats": 2}, panels=("5b",)),
)


def test_every_panel_of_the_paper_has_a_row_and_a_run_in_the_plan():
    assert list(PANEL_IDS) == PAPER_IDS
    assert not [p.id for p in PANELS if p.missing]
    planned = {r.name for r in PLAN} | {"speed-energy"}
    for panel in PANELS:
        assert panel.caption
        assert panel.missing or panel.run in planned, panel.id
        assert panel.missing or panel.figures, panel.id
        assert set(panel.also) <= planned, panel.id
    fed = {pid for r in PLAN for pid in r.panels}
    assert fed == {p.id for p in PANELS if not p.missing and p.run != "speed-energy"} | {"3f", "3g", "4g", "4h"}


def test_quick_asks_for_less_of_the_same_procedure():
    for run in PLAN:
        assert set(run.quick) <= set(run.params) | {"batch", "rc", "scheduler", "times", "read_noise", "write_noise"}
        assert same_parameters(run.values(False), run.protocol, run.values(False))


@pytest.mark.slow
def test_a_tiny_plan_writes_the_page_and_panels_json_and_a_rerun_reuses_every_run(tmp_path):
    stages: list[str] = []
    first = build_paper(tmp_path, plan=TINY_PLAN, progress=False, on_stage=stages.append)
    doc = json.loads(first.panels.read_text())
    assert list(doc) == PAPER_IDS
    for pid in ("2c", "5b"):
        assert doc[pid]["status"] == "ok", doc[pid]
        assert doc[pid]["files"] and all((tmp_path / f).is_file() for f in doc[pid]["files"])
        assert doc[pid]["numbers"] and doc[pid]["paper"] and doc[pid]["caption"]
    assert doc["2c"]["numbers"]["cycles"] == 1
    for pid in ("3a", "3c", "4g"):
        assert doc[pid]["status"] == "missing" and doc[pid]["why"]
    page = first.index.read_text()
    assert page.count("data:image/png;base64,") == len(doc["2c"]["files"]) + len(doc["5b"]["files"])
    assert all(f"id='fig{pid}'" in page for pid in PAPER_IDS)
    assert "Not drawn:" in page and "simulated" in page
    files = sorted(tmp_path.rglob("*.h5"))
    second = build_paper(tmp_path, plan=TINY_PLAN, progress=False, on_stage=stages.append)
    assert second.reused == ["iv", "write-noise"]
    assert sorted(tmp_path.rglob("*.h5")) == files
    assert any("reusing" in s for s in stages)


@pytest.mark.slow
def test_fig5f_shows_one_figure_per_task_from_the_ring_and_the_digits_sweeps(tmp_path):
    tiny = {"worlds": 1, "samples": 8, "n_steps": 50, "settle": 1.0, "read_noise": [1, 8], "write_noise": [1],
            "scheduler": "serial"}
    plan = (PaperRun("noise-sweep", "noise-sweep", tiny, panels=("5f",)),
            PaperRun("digits-noise-sweep", "noise-sweep", {**tiny, "models": ["digits", "digits-plain"]},
                     panels=("5f",)))
    doc = json.loads(build_paper(tmp_path, plan=plan, progress=False).panels.read_text())
    assert doc["5f"]["status"] == "ok"
    assert [Path(f).name for f in doc["5f"]["files"]] == ["noise_robustness_ring.png", "noise_robustness_digits.png"]
    assert "noise-sweep" in doc["5f"]["run"] and "digits-noise-sweep" in doc["5f"]["also_runs"][0]


@pytest.mark.slow
def test_a_run_with_other_parameters_is_not_reused(tmp_path):
    build_paper(tmp_path, plan=TINY_PLAN[:1], progress=False)
    assert completed_run(tmp_path / "runs" / "iv", "iv-sweep", TINY_PLAN[0].params) is not None
    assert completed_run(tmp_path / "runs" / "iv", "iv-sweep", {**TINY_PLAN[0].params, "cycles": 2}) is None
    assert completed_run(tmp_path / "runs" / "iv", "retention", {}) is None


def _stopped_after_first_step(item: PaperRun, folder: Path) -> Path:
    """Run ``item`` into ``folder`` and abort it after its first step (outputs safe, file resumable)."""
    from protocols.engine.launch import RunRequest, execute, prepare, run_here

    prepared = prepare(RunRequest(protocol=item.protocol, values=dict(item.params), out=folder, seed=item.seed,
                                  world_seed=item.seed))
    engines = []

    def drive(engine):
        engines.append(engine)
        return run_here(engine)

    def abort_after_first(event) -> None:
        if event.index >= 1:
            engines[0].token.abort()

    result = execute(prepared, progress=[abort_after_first], drive=drive)
    assert result.status == "aborted"
    return result.path


@pytest.mark.slow
def test_an_interrupted_run_is_finished_and_the_complete_ones_reused(tmp_path):
    build_paper(tmp_path, plan=TINY_PLAN[:1], progress=False)
    stopped = _stopped_after_first_step(TINY_PLAN[1], tmp_path / "runs" / "write-noise")
    result = build_paper(tmp_path, plan=TINY_PLAN, progress=False)
    assert result.reused == ["iv"]
    assert result.runs["write-noise"] == stopped                 # finished, not started again
    assert open_run(stopped).status == "completed"
    assert [p.name for p in (tmp_path / "runs" / "write-noise").glob("*.h5")] == [stopped.name]


def test_the_command_refuses_a_file_as_its_folder_in_one_line(tmp_path, capsys):
    target = tmp_path / "page"
    target.write_text("not a folder")
    assert main(["paper", "-o", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a folder" in err


def test_the_potential_of_a_gradient_field_is_recovered():
    axis = np.linspace(-1.0, 1.0, 41)
    x1, x2 = np.meshgrid(axis, axis)
    phi = -(x1**2 + 2 * x2**2) + 0.3 * x1 * x2
    fx, fy = -2 * x1 + 0.3 * x2, -4 * x2 + 0.3 * x1
    got = potential(axis, fx, fy)
    np.testing.assert_allclose(got - got.mean(), phi - phi.mean(), atol=2e-3)


@pytest.fixture(scope="module")
def field_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("field")
    assert main(["run", "network-field", "--out", str(out), "--seed", "1", "--set", "grid=5",
                 "--set", "times=1,0.2"]) == 0
    (path,) = out.glob("*.h5")
    return path


def test_the_field_measured_through_the_loop_follows_the_software_score(field_run):
    from analysis import open_run

    run = open_run(field_run)
    analog, software = run.read("field_analog"), run.read("field_software")
    assert analog.shape == software.shape == (2, 25, 2)
    assert ld.units(run, "field_output") == "V"
    rel = np.sqrt(np.mean((analog - software) ** 2)) / np.sqrt(np.mean(software**2))
    assert rel < 0.25, rel
    assert np.all(np.sum(analog * software, axis=-1)[np.hypot(*software.T).T > 1] > 0)  # same direction


@pytest.mark.slow
def test_the_field_report_draws_arrows_isopotentials_and_the_difference(field_run, tmp_path):
    from analysis.report import report_run

    result = report_run(field_run, tmp_path)
    assert "vector_field" in [p.stem for p in result.figures]
    assert len(result.summary["metrics"]["field"]["relative_rms_error"]) == 2


def test_a_grid_beyond_the_dacs_is_refused_before_anything_runs(tmp_path, capsys):
    assert main(["run", "network-field", "--out", str(tmp_path), "--set", "extent=5", "--set", "x_scale=0.5"]) == 2
    assert "extent=5" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.h5"))
