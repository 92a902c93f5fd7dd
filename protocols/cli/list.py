"""``rrambench list``: the protocols and their parameters."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("list", help="protocols and their parameters",
                            description="List every protocol with its parameters "
                            "(default, unit, limits, help); set them with `run --set k=v`.")
    parser.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from protocols.engine.registry import registry

    for name, cls in registry().items():
        print(f"{name}: {cls.summary()}")
        for spec in cls.param_specs():
            print(f"    {spec.describe()}")
    return 0
