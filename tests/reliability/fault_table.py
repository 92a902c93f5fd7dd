"""Print the fault matrix of ``fault_cases.py`` as the Markdown table of docs/reliability.md.

    python tests/reliability/fault_table.py
"""

from __future__ import annotations

import sys

from fault_cases import CASES, FILE_CASES, FILE_WHERE, KILL_CASES, PROTOCOLS, expected, expected_file


def yes_no(value: bool | None) -> str:
    return "n/a" if value is None else "yes" if value else "no"


def table() -> str:
    lines = ["| link (protocol) | fault | phase | status | outputs safe | file readable | resumable | note |",
             "|---|---|---|---|---|---|---|---|"]
    for link, fault, phase in [*CASES, *KILL_CASES]:
        want = expected(link, fault, phase)
        where = f"{link} ({PROTOCOLS[link][0]})" if link in PROTOCOLS else f"{link} (iv-sweep)"
        lines.append(_row(where, fault, phase, want))
    for link, fault, phase in FILE_CASES:
        lines.append(_row(FILE_WHERE[link], fault, phase, expected_file(link, fault)))
    return "\n".join(lines)


def _row(where: str, fault: str, phase: str, want) -> str:
    return (f"| {where} | {fault} | {phase} | {want.status} | {yes_no(want.safe)} | "
            f"{yes_no(want.readable)} | {yes_no(want.resumable)} | {want.note} |")


if __name__ == "__main__":
    sys.stdout.write(table() + "\n")
