"""``rrambench sim serve``: the simulated instruments on loopback sockets."""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import threading
from pathlib import Path

log = logging.getLogger("rrambench.sim")


def register(sub: argparse._SubParsersAction) -> None:
    sim = sub.add_parser("sim", help="the simulated bench")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)
    serve = sim_sub.add_parser(
        "serve",
        help="serve the simulated SMU, scope and controller board on loopback",
        description="Start the simulated instruments over one simulated world and "
        "print their resource strings; runs until SIGINT/SIGTERM. The world's time passes "
        "with the wall clock (lock-outs, relaxation and retention happen as on hardware), "
        "--time-scale N times faster.",
    )
    serve.add_argument("--json", action="store_true", help="print one JSON line of resource strings when ready")
    serve.add_argument("--seed", type=int, default=0, help="seed of the simulated world (default 0)")
    serve.add_argument("--state", type=Path, help="world state file: loaded if present, saved at exit")
    serve.add_argument("--route", metavar="MACRO,ROW,COL", help="connect this (formed) cell to the SMU")
    serve.add_argument("--time-scale", type=float, default=1.0, metavar="N",
                       help="run the world N times faster than wall time (default 1: real time, as hardware)")
    serve.add_argument("--virtual-time", action="store_true",
                       help="virtual clock advanced only by the instruments' own operations (as the embedded bench)")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--allow-remote", action="store_true", help="allow a non-loopback bind address")
    serve.set_defaults(func=run_serve)


def parse_route(text: str, world) -> tuple[int, int, int]:
    from protocols.cli.main import UsageError

    try:
        macro, row, col = (int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--route must be MACRO,ROW,COL (three integers), got {text!r}") from None
    if not (0 <= macro < world.n_macros and 0 <= row < world.rows and 0 <= col < world.cols):
        raise UsageError(
            f"--route {text}: outside the bench ({world.n_macros} macros of {world.rows}x{world.cols})"
        )
    return macro, row, col


def run_serve(args: argparse.Namespace) -> int:
    from instruments.sim.clock import WallTimeClock
    from instruments.sim.serve import SimInstruments
    from instruments.sim.servers import is_loopback
    from instruments.sim.world import SimWorld
    from protocols.cli.main import UsageError

    if not args.allow_remote and not is_loopback(args.host):
        raise UsageError(f"--host {args.host} is not a loopback address; add --allow-remote to expose it")
    if not (math.isfinite(args.time_scale) and args.time_scale > 0):
        raise UsageError(f"--time-scale must be a positive number, got {args.time_scale:g}")
    if args.virtual_time and args.time_scale != 1.0:
        raise UsageError("--time-scale and --virtual-time exclude each other")
    if args.state is not None and args.state.exists():
        try:
            world = SimWorld.load(args.state)
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"--state {args.state}: cannot load world state: {exc}") from None
    else:
        world = SimWorld(seed=args.seed)
    if not args.virtual_time:
        world.clock = WallTimeClock(world.clock.now(), time_scale=args.time_scale)
    if args.route:
        macro, row, col = parse_route(args.route, world)
        world.ensure_formed(macro, row, col)
        world.route(macro, row, col)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with SimInstruments(world, host=args.host, allow_remote=args.allow_remote) as sim:
        resources = sim.resources
        if args.json:
            print(json.dumps(resources), flush=True)
        else:
            for role, resource in resources.items():
                print(f"{role:<11} {resource}", flush=True)
            print("serving; Ctrl-C to stop", flush=True)
        while not stop.wait(0.2):
            pass
    world.safe_state()
    if args.state is not None:
        world.save(args.state)
        log.info("world state saved to %s", args.state)
    return 0
