"""``rrambench report RUN.h5|FOLDER ... [filters] [-o DIR]``: PNG figures and summary.json.

A FOLDER (or ``--catalogue URL`` alone) stands for the runs of its catalogue the filters
select (the filters of ``rrambench runs``: :func:`protocols.cli.runs.run_filter`), so
"every completed write-verify on chip C7 since Monday" is one comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report", help="figures (PNG) and summary.json of run files",
        description="Write the figures (PNG) and a summary.json of each run file. Several run files: one "
        "folder each under DIR plus DIR/comparison with overlay figures. Works on files left by "
        "killed runs. Prints the folder(s) written.")
    from protocols.cli.runs import add_filter_arguments

    parser.add_argument("paths", type=Path, nargs="*", metavar="RUN.h5|FOLDER",
                        help="run file(s), or folders: their catalogued runs the filters select")
    parser.add_argument("-o", "--out", type=Path, metavar="DIR",
                        help="output folder (default: <RUN>-report next to the first run file)")
    add_filter_arguments(parser)
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from analysis.report import report
    from analysis.run_reader import RunFileError
    from protocols.cli.main import UsageError
    from protocols.cli.run_files import check

    paths = _selected(args)
    out = args.out or paths[0].with_name(paths[0].stem + "-report")
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: exists and is not a folder")
    for path in paths:
        check(path)  # read first in a watched helper: a damaged file is exit 2
    try:
        results = report(paths, out)
    except RunFileError as exc:
        raise UsageError(str(exc)) from None
    for result in results:
        print(f"{result.out_dir}  ({len(result.figures)} figures, summary.json)")
    return 0


def _selected(args: argparse.Namespace) -> list[Path]:
    """The run files named, then the catalogued runs each FOLDER (or the catalogue alone) holds
    that the filters select, oldest first; a catalogued file that is gone is skipped, said once."""
    from protocols.cli.main import UsageError
    from protocols.cli.runs import catalogue_url, run_filter, select_runs

    flt = run_filter(args)
    url = catalogue_url(args)
    files = [p for p in args.paths if not p.is_dir()]
    folders = [p.resolve() for p in args.paths if p.is_dir()]
    if not folders and (flt.active or args.catalogue):
        if url is None:
            raise UsageError("filters select runs from a catalogue: give a FOLDER or --catalogue URL")
        folders = [None]
    if not files and not folders:
        raise UsageError("report needs RUN.h5 files, a FOLDER or --catalogue URL (see --help)")
    chosen: list[Path] = []
    for folder in folders:
        runs = select_runs(url, folder, flt)
        gone = [r["path"] for r in runs if r["missing"]]
        if gone:
            print(f"rrambench: warning: {len(gone)} catalogued run file(s) are gone, skipped: {gone[0]} ...",
                  file=sys.stderr)
        found = [Path(r["path"]) for r in reversed(runs) if r["missing"] is False]
        if not found:
            raise UsageError(f"{folder or catalogue_url(args)}: no catalogued runs"
                             + (" match the filters" if flt.active else ""))
        chosen += found
    return files + chosen

