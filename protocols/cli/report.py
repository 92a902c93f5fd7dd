"""``rrambench report RUN.h5 [RUN2.h5 ...] [-o DIR]``: PNG figures and summary.json."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report", help="figures (PNG) and summary.json of run files",
        description="Write the figures (PNG) and a summary.json of each run file. Several run files: one "
        "folder each under DIR plus DIR/comparison with overlay figures. Works on files left by "
        "killed runs. Prints the folder(s) written.")
    parser.add_argument("paths", type=Path, nargs="+", metavar="RUN.h5", help="run file(s)")
    parser.add_argument("-o", "--out", type=Path, metavar="DIR",
                        help="output folder (default: <RUN>-report next to the first run file)")
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from analysis.report import report
    from analysis.run_reader import RunFileError
    from protocols.cli.main import UsageError
    from protocols.cli.run_files import check

    out = args.out or args.paths[0].with_name(args.paths[0].stem + "-report")
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: exists and is not a folder")
    for path in args.paths:
        check(path)  # read first in a watched helper: a damaged file is exit 2
    try:
        results = report(args.paths, out)
    except RunFileError as exc:
        raise UsageError(str(exc)) from None
    for result in results:
        print(f"{result.out_dir}  ({len(result.figures)} figures, summary.json)")
    return 0
