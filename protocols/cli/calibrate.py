"""``rrambench calibrate RUN.h5 ... -o device.toml``: fit the device model to measured runs.

The device file holds every ``DeviceParams`` field (fitted ones marked) in a
``[device]`` table; a bench config loads it with ``[sim] device = "device.toml"``
(``docs/calibration.md``). Nothing is written when a run cannot be used.
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
        "write a device file the simulated bench loads with `[sim] device = FILE`.",
    )
    parser.add_argument("paths", type=Path, nargs="+", metavar="RUN.h5", help="run files to fit")
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
    try:
        cal = calibrate(args.paths, prior)
    except (RunFileError, ValueError) as exc:  # CalibrationDataError is a ValueError
        raise UsageError(str(exc)) from None
    text = device_toml(cal, sources=[str(p) for p in args.paths])
    _write_atomic(args.out, text)
    defaults = cal.prior
    print(f"{'parameter':<18} {'prior':>12} {'fitted':>12}")
    for name, value in sorted(cal.fitted.items()):
        print(f"{name:<18} {getattr(defaults, name):>12.5g} {value:>12.5g}")
    print(args.out)
    return 0


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
