"""``rrambench list``: the protocols and their parameters."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("list", help="protocols and their parameters",
                            description="List every protocol with its parameters "
                            "(default, unit, limits, help); set them with `run --set k=v`. Besides the "
                            "shipped protocols: those installed packages register (entry points "
                            "rrambench.protocols) and those the config's [protocols] paths name.")
    parser.add_argument("--config", type=Path, metavar="F",
                        help="bench config TOML whose [protocols] paths add protocols (default: simulated bench)")
    parser.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from instruments.config import load_config
    from protocols.engine.registry import protocol_source, registry

    for name, cls in registry(load_config(args.config).protocol_paths).items():
        source = protocol_source(cls)
        origin = "" if source["origin"] == "shipped" else f"  [{source['reference']}]"
        print(f"{name}: {cls.summary()}{origin}")
        for spec in cls.param_specs():
            print(f"    {spec.describe()}")
    return 0
