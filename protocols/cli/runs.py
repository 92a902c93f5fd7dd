"""``rrambench runs [FOLDER] [filters] [--json]``: the runs of the catalogue, newest first.

The catalogue (:mod:`analysis.catalogue`) is ``FOLDER/runs.sqlite`` unless ``--catalogue
URL`` or the config's ``[catalogue] url`` names another (a PostgreSQL database several
benches share: then FOLDER, if given, keeps the runs indexed in that folder).
``--reindex FOLDER`` rebuilds a folder's rows from its run files. The filters are parsed
once, here, for ``runs`` and ``report`` (:func:`add_filter_arguments`, :func:`run_filter`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protocols.engine.errors import UsageError

if TYPE_CHECKING:
    from analysis.catalogue import Catalogue, RunFilter


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "runs", help="list and search the runs of the catalogue (newest first)",
        description="List the runs indexed in the catalogue, newest first: FOLDER/runs.sqlite (default: the "
        "current folder), or the database of --catalogue / the config's [catalogue] url. Runs whose file is "
        "gone read 'missing'. --reindex FOLDER rebuilds the folder's rows from its run files (damaged files "
        "are skipped with a warning). Bad filters: one line, exit 2.")
    parser.add_argument("folder", type=Path, nargs="?", metavar="FOLDER", help="folder of run files")
    parser.add_argument("--reindex", type=Path, metavar="FOLDER", help="rebuild the index of FOLDER from its files")
    add_filter_arguments(parser)
    parser.add_argument("--limit", type=int, metavar="N", help="at most N runs (the newest)")
    parser.add_argument("--json", action="store_true",
                        help="a JSON list of runs (path, protocol, status, started, ended, sample, parameters, ...)")
    parser.set_defaults(func=run_runs)


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """The catalogue and filter options ``runs`` and ``report`` share."""
    group = parser.add_argument_group("catalogue and filters")
    group.add_argument("--catalogue", metavar="URL",
                       help="catalogue database: a file, sqlite:///FILE or postgresql://USER@HOST/DB")
    group.add_argument("--config", type=Path, metavar="F", help="bench config whose [catalogue] url to use")
    group.add_argument("--protocol", metavar="P", help="runs of protocol P")
    group.add_argument("--status", metavar="S",
                       help="completed, running, aborted, failed, interrupted, or missing (file gone)")
    group.add_argument("--chip", metavar="C", help="runs on chip C ([sample] chip, --sample chip=C)")
    group.add_argument("--since", metavar="DATE", help="started at or after DATE (ISO 8601, UTC: 2026-11-29[T14:00])")
    group.add_argument("--until", metavar="DATE", help="started before DATE (a date alone: up to its end)")
    group.add_argument("--where", action="append", default=[], metavar="PARAM<op>VALUE",
                       help="a parameter condition, op one of = != < <= > >= (repeatable; all must hold)")


def run_filter(args: argparse.Namespace) -> RunFilter:
    """The filters of the command line (UsageError, one line, for a malformed one)."""
    from analysis.catalogue import FilterError, parse_filters

    try:
        return parse_filters(protocol=args.protocol, status=args.status, chip=args.chip, since=args.since,
                             until=args.until, where=args.where)
    except FilterError as exc:
        raise UsageError(str(exc)) from None


def catalogue_url(args: argparse.Namespace) -> str | None:
    """``--catalogue``, else the ``[catalogue] url`` of ``--config``, else None (FOLDER/runs.sqlite)."""
    if args.catalogue:
        return args.catalogue
    if args.config is not None:
        from instruments.config import load_config

        return load_config(args.config).catalogue_url
    return None


def open_catalogue(url: str | None, folder: Path) -> Catalogue:
    """The catalogue at ``url`` (None: ``folder/runs.sqlite``); UsageError if it cannot be used."""
    from analysis.catalogue import Catalogue, CatalogueError, check_url

    try:
        check_url(url, folder)
        return Catalogue(url, folder)
    except CatalogueError as exc:
        raise UsageError(str(exc)) from None


def select_runs(url: str | None, folder: Path | None, flt: RunFilter, *,
                limit: int | None = None) -> list[dict[str, Any]]:
    """The runs ``flt`` selects, newest first: from ``folder/runs.sqlite`` (an unindexed folder is
    indexed first, a note says so), or from the catalogue at ``url``, kept to ``folder`` if given."""
    from analysis.catalogue import CATALOGUE_FILE, CatalogueError

    unindexed = url is None and folder is not None and not (folder / CATALOGUE_FILE).exists()
    if unindexed and not any(folder.glob("*.h5")):
        return []  # nothing to list: no catalogue file made for it
    with open_catalogue(url, folder or Path(".")) as catalogue:
        try:
            if unindexed:
                print(f"rrambench: note: {folder} has no catalogue yet; indexing its run files", file=sys.stderr)
                catalogue.reindex(folder)
            return catalogue.query(flt, folder=folder if url is not None else None, limit=limit)
        except CatalogueError as exc:
            raise UsageError(str(exc)) from None


def run_runs(args: argparse.Namespace) -> int:
    from analysis.catalogue import CatalogueError

    flt = run_filter(args)
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    url = catalogue_url(args)
    if args.reindex is not None:
        if args.folder is not None or flt.active or args.json:
            raise UsageError("--reindex FOLDER rebuilds an index; list it with a second `rrambench runs`")
        folder = _folder(args.reindex, "--reindex")
        with open_catalogue(url, folder) as catalogue:
            try:
                count, skipped = catalogue.reindex(folder)
            except CatalogueError as exc:
                raise UsageError(str(exc)) from None
            print(f"indexed {count} run(s) of {folder} in {catalogue.describe()}"
                  + (f"; {len(skipped)} damaged file(s) skipped" if skipped else ""))
        return 0
    folder = _folder(args.folder, "FOLDER") if args.folder is not None else None
    found = select_runs(url, folder if folder is not None or url is not None else Path(".").resolve(), flt,
                        limit=args.limit)
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
        return 0
    for run in found:
        status = "missing" if run["missing"] else run["status"]
        steps = f"{run['steps_completed']}/{run['steps_total']}"
        started = (run["started"] or "-")[:19].replace("T", " ")
        chip = run["sample"].get("chip", "-")
        where = Path(run["path"]).name if folder is not None and Path(run["path"]).parent == folder else run["path"]
        print(f"{started:<19}  {run['protocol']:<14} {status:<11} {steps:>7}  {chip:<8}  {where}")
    if not found:
        print("rrambench: no runs match" if flt.active else "rrambench: no runs indexed", file=sys.stderr)
    return 0


def _folder(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise UsageError(f"{what} {path}: not a folder")
    return path.resolve()
