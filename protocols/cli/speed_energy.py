"""``rrambench speed-energy [--json] [-o DIR] [--model ring|digits] [--time-scale FILE]``: analog vs digital per sample.

Per task, the analog sampler at the fastest integrator RC a time-scale study found (a run
file given with ``--time-scale``, or a quick study run here), with the host-board transfers
measured on the board's wire protocol, against the digital baseline measured on this
machine (numpy and torch on CPU, the seed's step counts). ``docs/speed-energy.md``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

TASKS = ("ring", "digits")
#: Keys every task's object carries (``--json`` prints one object per line).
KEYS = ("analog_time_per_sample_s", "digital_time_per_sample_s", "speedup", "analog_energy_per_sample_J",
        "digital_energy_per_sample_J", "energy_ratio", "assumptions")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _rc_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated time constants in s, got {text!r}") from None
    return values


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "speed-energy", help="analog vs digital time and energy per sample, measured",
        description="Per task: the analog sampler at the fastest RC a time-scale study finds (with measured "
        "host-board transfers; programming excluded) against the strongest digital baseline measured on this "
        "machine (numpy and torch on CPU, 10,000 ring / 5,000 conditional Euler steps); every assumption "
        "with its source; the paper's figures beside them.")
    parser.add_argument("--json", action="store_true", help="one JSON object per task, one line each")
    parser.add_argument("-o", "--out", type=Path, metavar="DIR",
                        help="write speed-energy.json and the figures (PNG, like Fig. 3f/g and 4g/h) here")
    parser.add_argument("--model", choices=TASKS, action="append",
                        help="task (repeat for both; default ring and digits)")
    parser.add_argument("--time-scale", type=Path, metavar="FILE", dest="time_scale",
                        help="a time-scale run file to take the fastest RC from (default: run a quick study)")
    parser.add_argument("--samples", type=_positive_int, default=300,
                        help="quick study: samples per RC (default 300)")
    parser.add_argument("--rc", type=_rc_list, metavar="LIST",
                        help="quick study: time constants in s, comma-separated (default the protocol's)")
    parser.add_argument("--scheduler", default="serial", help="quick study: serial, local or tcp://HOST:PORT")
    parser.add_argument("--batch", type=_positive_int, default=1000,
                        help="digital batch size, and the analog batch sharing the per-batch link bytes (default 1000)")
    parser.add_argument("--repeats", type=_positive_int, default=3, help="timed digital batches, best kept (default 3)")
    parser.add_argument("--steps", type=_positive_int,
                        help="digital Euler steps (default the model's: 10,000 ring, 5,000 digits; tests only)")
    parser.add_argument("--no-torch", action="store_true", help="skip the torch baseline")
    parser.set_defaults(func=run_speed_energy)


def run_speed_energy(args: argparse.Namespace) -> int:
    from protocols.cli.main import UsageError
    from protocols.diffusion import speed_energy as se

    tasks = list(dict.fromkeys(args.model or TASKS))
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"-o {args.out}: exists and is not a folder")
    if args.time_scale is not None:
        if not args.time_scale.is_file():
            raise UsageError(f"--time-scale {args.time_scale}: no such file")
        from protocols.cli.run_files import check

        try:
            check(args.time_scale)  # read first in a watched helper: a damaged file is one line, exit 2
        except UsageError as exc:
            raise UsageError(f"--time-scale {exc}") from None
        try:
            scale = se.read_time_scale(args.time_scale)
        except (ValueError, OSError, KeyError) as exc:
            raise UsageError(f"--time-scale {args.time_scale}: {exc}") from None
    else:
        scale = _quick_study(args, tasks)
    results = se.compare_tasks(scale, tasks, batch=args.batch, repeats=args.repeats, steps=args.steps,
                               torch_enabled=not args.no_torch)
    for result in results:
        print(json.dumps(result, default=se.jsonable) if args.json else _table(result))
    if args.out is not None:
        written = se.write_results(args.out, results)
        print(f"{args.out}  (speed-energy.json, {len(written)} figures)")
    return 0


def _quick_study(args: argparse.Namespace, tasks: list[str]) -> Any:
    from protocols.cli.main import UsageError
    from protocols.diffusion import speed_energy as se
    from protocols.engine.protocol import ParameterError

    model = "digits" if "digits" in tasks else "ring"
    folder = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="rrambench-speed-energy-"))
    try:
        path = se.quick_time_scale(folder, samples=args.samples, rc=args.rc, scheduler=args.scheduler, model=model)
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    rc = ",".join(f"{v:g}" for v in (args.rc or [])) or "the protocol's default list"
    kept = f"kept in {path}" if args.out is not None else "in a temporary folder"
    return se.read_time_scale(path, source=f"quick time-scale study run here ({args.samples} samples per RC, "
                                           f"model={model}, rc={rc}, scheduler={args.scheduler}; {kept})")


def _table(r: dict[str, Any]) -> str:
    """A readable block per task."""
    from analysis.speed_energy import _si

    lines = [
        f"== {r['task']}: analog at RC {r['rc_s']:g} s ({'meets' if r['rc_meets_bar'] else 'no RC met'} the bar; "
        f"{r['rc_source']})",
        f"quality at that RC: {r.get('rc_quality', '-')}",
        f"{'per sample':<14}{'analog':>14}{'digital':>14}{'ratio':>10}   paper",
        f"{'time':<14}{_si(r['analog_time_per_sample_s'], 's'):>14}{_si(r['digital_time_per_sample_s'], 's'):>14}"
        f"{r['speedup']:>9.3g}x   {r['paper']['speedup']}x (later {r['paper']['later_version_speedup']}x)",
        f"{'energy':<14}{_si(r['analog_energy_per_sample_J'], 'J'):>14}"
        f"{_si(r['digital_energy_per_sample_J'], 'J'):>14}{r['energy_ratio']:>9.3g}x   {r['paper']['energy_ratio']}x",
        f"digital baseline: {r['digital_baseline']}",
        "digital measured: " + "; ".join(f"{k} {_si(v['time_per_sample_s'], 's')}" for k, v in r["digital"].items()),
        f"without transfers: analog {_si(r['analog_time_per_sample_without_transfers_s'], 's')}, "
        f"speed-up {r['speedup_without_transfers']:.3g}x; vs single-sample latency "
        f"({r['digital_latency_baseline']}) {r['speedup_vs_single_sample_latency']:.3g}x",
        "analog time: " + ", ".join(f"{k} {_si(v, 's')}" for k, v in r["analog_time_terms_s"].items()),
        "analog energy: " + ", ".join(f"{k} {_si(v, 'J')}" for k, v in r["analog_energy_terms_J"].items()),
        f"transfers: {r['transfers']['bytes_per_sample']:.3g} B per sample + {r['transfers']['bytes_per_batch']:.3g} "
        f"B per batch of {r['transfers']['batch']} ({r['transfers']['how']})",
        f"excluded: {r['excluded']}",
        "assumptions:",
    ]
    for row in r["assumptions"]:
        value = row["value"]
        lines.append(f"  {row['name']} = {value if isinstance(value, str) else format(value, '.4g')}  "
                     f"({row['source']})")
    return "\n".join(lines)
