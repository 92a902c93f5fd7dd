"""Sample metadata: the config's [sample] table, `run --sample` over it, stored as NeXus
/entry/sample, read back as Run.sample and shown by `rrambench info`."""

from __future__ import annotations

import pytest

from analysis import open_run
from instruments.config import SAMPLE_KEYS, parse_config
from instruments.errors import ConfigError
from protocols.cli.main import main


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_sample_table_is_checked_like_the_other_tables():
    config = parse_config({"sample": {"chip": "C7", "wafer": "W12", "die": 3, "operator": "ada", "notes": "x"}})
    assert config.sample == {"chip": "C7", "wafer": "W12", "die": "3", "operator": "ada", "notes": "x"}
    assert tuple(config.sample) == SAMPLE_KEYS
    assert parse_config({}).sample == {}
    with pytest.raises(ConfigError, match=r"unknown key \[sample\].colour; known: chip, wafer, die, operator"):
        parse_config({"sample": {"colour": "red"}})
    with pytest.raises(ConfigError, match=r"\[sample\].die must be text"):
        parse_config({"sample": {"die": 3.5}})
    with pytest.raises(ConfigError, match=r"\[sample\] must be a table"):
        parse_config({"sample": "C7"})


def test_run_records_the_config_sample_with_the_command_line_over_it(capsys, tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text('[sample]\nchip = "C1"\nwafer = "W12"\noperator = "ada"\n')
    code, out, err = run_cli(capsys, "run", "read-array", "--config", config, "--out", tmp_path,
                             "--sample", "chip=C7", "--sample", "die=3")
    assert code == 0, err
    path = out.strip().splitlines()[-1]
    run = open_run(path)
    assert run.sample == {"chip": "C7", "wafer": "W12", "die": "3", "operator": "ada"}
    assert list(run.sample) == ["chip", "wafer", "die", "operator"]  # the order of the [sample] keys
    assert run.to_json()["sample"] == run.sample
    code, out, _ = run_cli(capsys, "info", path)
    assert "  sample     chip=C7  wafer=W12  die=3  operator=ada" in out


def test_a_run_without_a_sample_has_none(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "run", "read-array", "--out", tmp_path)
    run = open_run(out.strip().splitlines()[-1])
    assert run.sample == {} and run.protocol_source["origin"] == "shipped"
    assert run.protocol_source["reference"] == "read-array"
    assert "  sample " not in run_cli(capsys, "info", run.path)[1]


@pytest.mark.parametrize("given, message", [
    ("chip", "--sample 'chip': expected key=value (keys: chip, wafer, die, operator, notes)"),
    ("colour=red", "--sample colour: unknown key; known: chip, wafer, die, operator, notes"),
    ("chip=", "--sample chip: needs a value (text), got ''"),
])
def test_a_bad_sample_is_one_line_exit_2_and_nothing_written(capsys, tmp_path, given, message):
    for extra in ([], ["--dry-run"]):
        code, out, err = run_cli(capsys, "run", "read-array", "--out", tmp_path / "runs", "--sample", given, *extra)
        assert (code, out, err) == (2, "", f"rrambench: error: {message}\n")
    assert not (tmp_path / "runs").exists()


def test_resume_keeps_the_runs_sample(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", "--resume", tmp_path / "x.h5", "--sample", "chip=C7")
    assert code == 2 and err == "rrambench: error: --resume keeps the run's sample; drop --sample\n"
