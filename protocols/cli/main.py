"""The ``rrambench`` command.

Each subcommand lives in its own module under :mod:`protocols.cli` and exposes
``register(subparsers)``; the parser sets ``func`` to the function that runs it.
Errors in user input surface as one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from instruments import __version__
from instruments.errors import ConfigError, LimitError
from protocols.engine.errors import UsageError

# Order is the order of `rrambench --help`.
COMMANDS = ("demo", "paper", "sim", "list", "run", "runs", "info", "report", "calibrate", "speed-energy", "train",
            "gui")


__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rrambench",
        description="Bench software for analog in-memory computing with RRAM.",
    )
    parser.add_argument("--version", action="version", version=f"rrambench {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: I/O trace)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module_name = f"protocols.cli.{name.replace('-', '_')}"  # speed-energy lives in speed_energy.py
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # command not built yet in this checkout
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UsageError, LimitError, ConfigError) as exc:
        print(f"rrambench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rrambench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our stdout went away (`rrambench info ... | head`): not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
