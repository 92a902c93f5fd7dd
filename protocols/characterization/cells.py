"""Cell and region selections: text like ``"0:0-31:0-31"`` to index arrays.

A selection names cells of the board's macros:

* ``"M"``: every cell of macro M;
* ``"M:R:C"``: one cell;
* ``"M:R0-R1:C0-C1"``: the rectangle of rows R0..R1 and columns C0..C1 (inclusive).

Each part of ``M:R:C`` may be a single index or an inclusive range ``a-b``. Parts
are separated by colons (not commas) so a list of selections can be given on the
command line as ``--set cells=0:0:0,0:5:7``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["parse_selection", "select_cells"]


def _span(text: str, size: int, what: str, selection: str) -> np.ndarray:
    """Indices of one part (``"5"`` or ``"0-31"``), each checked against ``size``."""
    lo_text, dash, hi_text = text.partition("-")
    try:
        lo = int(lo_text)
        hi = int(hi_text) if dash else lo
    except ValueError:
        raise ValueError(f"cell selection {selection!r}: {what} {text!r} is not an index or a range a-b") from None
    if not 0 <= lo <= hi < size:
        raise ValueError(f"cell selection {selection!r}: {what} {text!r} must lie within 0..{size - 1} "
                         "with start <= end")
    return np.arange(lo, hi + 1)


def parse_selection(text: str, n_macros: int, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(macro, row, col) index arrays of one selection, row-major within each macro.

    ``n_macros``, ``rows``, ``cols``: the board's geometry (indices are checked
    against it). Raises ``ValueError`` naming the selection when malformed.
    """
    parts = text.strip().split(":")
    if len(parts) not in (1, 3) or not all(p.strip() for p in parts):
        raise ValueError(f"cell selection {text!r} must be 'M' or 'M:R:C' (R and C an index or a range a-b)")
    macros = _span(parts[0].strip(), n_macros, "macro", text)
    r = _span(parts[1].strip(), rows, "row", text) if len(parts) == 3 else np.arange(rows)
    c = _span(parts[2].strip(), cols, "column", text) if len(parts) == 3 else np.arange(cols)
    m, rr, cc = np.meshgrid(macros, r, c, indexing="ij")
    return m.ravel(), rr.ravel(), cc.ravel()


def select_cells(selections: Sequence[str], n_macros: int, rows: int,
                 cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenated (macro, row, col) of several selections; a cell named twice is refused."""
    parts = [parse_selection(s, n_macros, rows, cols) for s in selections]
    m, r, c = (np.concatenate([p[k] for p in parts]) for k in range(3))
    flat = (m * rows + r) * cols + c
    if np.unique(flat).size != flat.size:
        raise ValueError(f"cell selections {list(selections)!r} name some cells more than once")
    return m, r, c
