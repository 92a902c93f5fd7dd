"""``rrambench calibrate RUN.h5|FOLDER ... -o device.toml``: fit the device model to measured runs.

The device file holds every ``DeviceParams`` field (fitted ones marked) in a
``[device]`` table; a bench config loads it with ``[sim] device = "device.toml"``
(``docs/calibration.md``). Runs that feed no fit are skipped and listed with the reason
(a damaged file found in a FOLDER too; one named on the command line is an error, exit
2). Nothing is written when no run feeds any fit.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "calibrate", help="fit the simulated device model to run files; write a device TOML",
        description="Fit switching windows (iv-sweep), read noise (read-noise, read-array with "
        "repeats), relaxation (retention) and programming noise (write-verify, write-noise) of the "
        "simulated device model to run files, and "
        "write a device file the simulated bench loads with `[sim] device = FILE`. A FOLDER stands for "
        "its run files (*.h5). Runs that feed no fit are skipped and listed with the reason; the "
        "command refuses (exit 2) only when none feeds any fit.",
    )
    parser.add_argument("paths", type=Path, nargs="+", metavar="RUN.h5|FOLDER",
                        help="run files to fit, or folders of run files")
    parser.add_argument("-o", "--out", type=Path, default=Path("device.toml"), metavar="FILE",
                        help="device file to write (default: device.toml)")
    parser.add_argument("--prior", type=Path, metavar="FILE",
                        help="device file supplying the parameters the runs do not fit (default: the model's)")
    parser.set_defaults(func=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> int:
    from analysis.calibration import device_toml
    from analysis.calibration_runs import calibrate
    from analysis.run_reader import RunFileError
    from instruments.config import load_device_file
    from protocols.cli.main import UsageError

    prior = load_device_file(args.prior) if args.prior is not None else None
    paths, damaged = _run_files(args.paths)
    try:
        cal = calibrate(paths, prior)
    except (RunFileError, ValueError) as exc:  # CalibrationDataError is a ValueError
        raise UsageError("; ".join([str(exc), *(f"{p}: {why}" for p, why in damaged)])) from None
    cal.skipped[:0] = damaged
    skipped = {p for p, _ in cal.skipped}
    text = device_toml(cal, sources=[str(p) for p in paths if str(p) not in skipped])
    _write_atomic(args.out, text)
    for path, why in cal.skipped:
        print(f"skipped {path}: {why}")
    defaults = cal.prior
    print(f"{'parameter':<18} {'prior':>12} {'fitted':>12}")
    for name, value in sorted(cal.fitted.items()):
        print(f"{name:<18} {getattr(defaults, name):>12.5g} {value:>12.5g}")
    print(args.out)
    return 0


def _run_files(args: list[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The run files to fit, each read first in a watched helper, and the damaged ones of folders.

    A file named on the command line that does not read is an error (exit 2); one found
    in a FOLDER is skipped with the reason.
    """
    from protocols.cli.main import UsageError
    from protocols.cli.run_files import check, runs_in

    paths: list[Path] = []
    damaged: list[tuple[str, str]] = []
    for arg in args:
        if not arg.is_dir():
            check(arg)
            paths.append(arg)
            continue
        found = runs_in(arg)
        if not found:
            raise UsageError(f"{arg}: no run files (*.h5) in this folder")
        for path in found:
            try:
                check(path)
                paths.append(path)
            except UsageError as exc:
                damaged.append((str(path), str(exc).removeprefix(f"{path}: ")))
    return paths, damaged


def _write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
