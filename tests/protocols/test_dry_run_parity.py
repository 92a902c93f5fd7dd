"""`run --dry-run` refuses exactly what the run refuses before its first step.

Both paths call the one ``Protocol.validate`` (the dry run with the bench shape known
from the config, the engine with the open bench's): for each bad input below, across
protocols, the dry run and the run exit 2 with the same one line on stderr, no
traceback, and the run leaves no file and not even its ``--out`` folder. Good input,
files included, passes the dry run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from instruments.bench import Bench
from instruments.config import load_config
from protocols.cli.main import main
from protocols.engine.bench_shape import BenchShape
from protocols.engine.registry import registry

#: One bad input a line: the command line after ``rrambench run``, then ``=>`` and part of
#: the message. ``{f}`` is the folder of the files made by :func:`folder`.
BAD_TEXT = """
multilevel --set g_low=6e-5 --set g_high=2e-6 => must be positive and below g_high
multilevel --set levels=256 --set per_level=1024 => the region holds only 1024
multilevel --set region=8 => must lie within 0..7
multilevel --set set_stop=0.5 => write-verify settings
retention --set t_first=100 --set t_max=10 => must not exceed t_max
write-verify --set regions=0:0-3:0-3,0:2-5:2-5 => more than once
write-verify --set g_low=6e-5 --set g_high=2e-6 => must be below g_high
write-verify --set targets=file => needs target_file
write-verify --set targets=file --set target_file={f}/missing.npy => no such file
write-verify --set targets=file --set target_file={f}/text.npy => not a readable .npy array
write-verify --set regions=0:0-3:0-3 --set targets=file --set target_file={f}/row.npy => holds 32 values for 16
pattern --set image={f}/missing.png => no such file
pattern --set image={f}/text.png => not a readable PNG image
pattern --set image={f}/row.npy => is a 1-D array
pattern --set image={f}/small.png => is 16x16 pixels
pattern --set image={f}/half.npy => is 16x32 pixels
pattern --set image={f}/image.bmp => a .png or .npy file
pattern --set macro=9 => the board has 8 macros
pattern --set g_off=60e-6 => must be below g_on
read-array --set macros=0,8 => the board has 8 macros
read-array --seed -1 => --seed must be >= 0
form --set v_start=2 --set v_stop=1.5 => must not exceed v_stop
form --set cells=0:0:0,0:0-1:0 => more than once
iv-sweep --set step=0.001 => the SMU holds 2500
iv-sweep --set cells=0:32:0 => must lie within 0..31
read-noise --set cells=0:0-40:0 => must lie within 0..31
write-noise --set cells=0:0:0,0:0:0 => more than once
program-model --set first_macro=6 => needs macros up to 8
program-model --set model={f}/text.npz => not a readable score-network file
sample --set placement_run=x.h5 => applies only with program=false
sample --set program=false --set placement_run={f}/missing.h5 => cannot read a layer placement
sample --set board=seed_board --set sde=true => probability-flow ODE only
sample --set x_scale=0.5 => truncate the initial noise
"""
BAD = dict(line.split(" => ") for line in BAD_TEXT.strip().splitlines())


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The files the table names: text under image and array names, a 1-D array, images
    of other sizes, and good ones."""
    f = tmp_path_factory.mktemp("files")
    for name in ("text.png", "text.npy", "text.npz", "image.bmp"):
        (f / name).write_text("not what the name says\n")
    np.save(f / "row.npy", np.ones(32))
    np.save(f / "half.npy", np.ones((16, 32)))
    mpimg.imsave(f / "small.png", np.zeros((16, 16)), cmap="gray")
    image = np.zeros((32, 32))
    image[4:10, 4:20] = 1.0
    mpimg.imsave(f / "good.png", image, cmap="gray", vmin=0, vmax=1)
    np.save(f / "good.npy", image)
    np.save(f / "targets.npy", np.full((4, 4), 20e-6))
    return f


def _cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _argv(case: str, folder: Path) -> list[str]:
    return ["run", *case.replace("{f}", str(folder)).split()]


@pytest.mark.parametrize("case", BAD)
def test_dry_run_and_run_refuse_the_same_input_in_the_same_line(capsys, tmp_path, folder, case):
    argv, message = _argv(case, folder), BAD[case]
    dry_code, dry_out, dry_err = _cli(capsys, [*argv, "--dry-run"])
    out_dir = tmp_path / "out" / "runs"
    code, out, err = _cli(capsys, [*argv, "--out", str(out_dir)])
    assert (dry_code, code) == (2, 2), (dry_err, err)
    assert len(dry_err.strip().splitlines()) == 1 and message in dry_err, dry_err
    assert err == dry_err
    assert "Traceback" not in err and dry_out == "" and out == ""
    assert not (tmp_path / "out").exists(), "nothing is left behind, not even the --out folder"


@pytest.mark.parametrize("case", ["pattern --set image={f}/row.npy", "retention --set t_first=100 --set t_max=10"])
def test_the_command_itself_refuses_in_one_line(tmp_path, folder, case):
    """The installed command (a new process): no traceback from either path."""
    argv = [sys.executable, "-m", "protocols.cli", *_argv(case, folder)]
    dry = subprocess.run([*argv, "--dry-run"], capture_output=True, text=True, timeout=120)
    real = subprocess.run([*argv, "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert (dry.returncode, real.returncode) == (2, 2)
    assert dry.stderr == real.stderr and len(dry.stderr.strip().splitlines()) == 1
    assert BAD[case] in dry.stderr and "Traceback" not in dry.stderr
    assert not (tmp_path / "out").exists()


#: Good input, one a line (``{f}`` as above); every protocol with its defaults too.
GOOD_TEXT = """
pattern --set image={f}/good.png
pattern --set image={f}/good.npy
write-verify --set regions=0:0-3:0-3 --set targets=file --set target_file={f}/targets.npy
write-verify --set regions=0:0-3:0-3,0:4-7:0-3,7
multilevel --set levels=64 --set per_level=16 --set region=7
retention --set t_first=10 --set t_max=10 --set points=1
sample --set program=false --set samples=10
program-model --set first_macro=5
"""
GOOD = sorted(registry()) + GOOD_TEXT.strip().splitlines()


@pytest.mark.parametrize("case", GOOD)
def test_good_input_passes_the_dry_run(capsys, tmp_path, folder, case):
    code, out, err = _cli(capsys, [*_argv(case, folder), "--dry-run", "--out", str(tmp_path / "out")])
    assert code == 0, err
    assert "parameters valid" in out and "checked against    8 macros of 32x32" in out
    assert not (tmp_path / "out").exists()


def test_the_dry_run_checks_the_shape_the_simulated_bench_reports():
    """The premise of the parity: the shape known from the config is the open bench's."""
    config = load_config()
    with Bench.from_config(config) as bench:
        assert BenchShape.of_bench(bench) == BenchShape.of_config(config) == BenchShape()


def test_a_hardware_dry_run_knows_the_bench_from_its_config(capsys, tmp_path):
    """No seed board in [resources]: the seed board's sampling is refused without opening anything;
    the geometry is the board as built, and the dry run says the run checks the board's own."""
    config = tmp_path / "bench.toml"
    config.write_text('backend = "hardware"\n[resources]\nsmu = "TCPIP::192.0.2.1::INSTR"\n'
                      'scope = "TCPIP::192.0.2.2::INSTR"\nmacro_controller = "socket://192.0.2.3:9"\n')
    code, _, err = _cli(capsys, ["run", "sample", "--set", "board=seed_board", "--config", str(config), "--dry-run"])
    assert code == 2 and "this bench has no seed board" in err
    code, out, _ = _cli(capsys, ["run", "read-array", "--config", str(config), "--dry-run"])
    assert code == 0 and "the run checks the size the board reports" in out
