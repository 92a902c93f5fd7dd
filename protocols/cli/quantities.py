"""Values with units for the terminal: a run's outcome (``rrambench run``, ``rrambench info``)
and the instruments' settings a run file records (``rrambench info``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Units shown with an SI prefix (1.05e-4 A -> 105 µA; the micro sign, as in the figures).
PREFIXED = ("V", "A", "S", "s", "Hz", "ohm", "B")
PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"))
TEXT_MAX = 72  # characters of a text value shown (a mapping's JSON is longer)


def quantity(value: Any, unit: str = "") -> str:
    """``value`` with its unit, numbers to 4 significant digits; "-" for none (NaN, null, "")."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value if len(value) <= TEXT_MAX else value[: TEXT_MAX - 3] + "..."
    if isinstance(value, float) and unit in PREFIXED and value != 0 and math.isfinite(value):
        scale, prefix = next(((f, p) for f, p in PREFIXES if abs(value) >= f * 0.9995), PREFIXES[-1])
        return f"{value / scale:.4g} {prefix}{unit}"
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}" if unit else text


def outcome_lines(outcome: Mapping[str, Mapping[str, Any]], indent: str = "  ") -> list[str]:
    """One line per metric of an outcome ({name: {"value", "units"}}), names aligned.

    A sampling floor (``<base>_floor`` with ``<base>_floor_spread``) is shown beside every metric
    named ``<base>_...`` (``kl_analog  0.041 (floor 0.012 ± 0.003)``) instead of on its own lines.
    """
    from analysis.metrics import with_floor

    floors = {name.removesuffix("_floor"): name for name in outcome if name.endswith("_floor")}
    beside: dict[str, str] = {}
    for name in outcome:
        bases = [b for b in floors if name.startswith(b + "_")]
        if bases and not name.endswith(("_floor", "_floor_spread")):
            beside[name] = max(bases, key=len)
    shown_floors = {k for b in beside.values() for k in (floors[b], floors[b] + "_spread")}
    rows = []
    for name, m in outcome.items():
        if name in shown_floors:
            continue
        text = quantity(m.get("value"), m.get("units", ""))
        if name in beside and isinstance(m.get("value"), (int, float)):
            floor = outcome[floors[beside[name]]].get("value")
            spread = outcome.get(floors[beside[name]] + "_spread", {}).get("value")
            text = with_floor(m["value"], floor, spread)
        rows.append((name, text))
    width = max((len(name) for name, _ in rows), default=0)
    return [f"{indent}{name:<{width}}  {text}" for name, text in rows]


def settings_tokens(settings: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``name=value unit`` of each setting."""
    return [f"{name}={quantity(s.get('value'), s.get('units', ''))}" for name, s in settings.items()]


def wrapped(tokens: list[str], indent: str, width: int) -> list[str]:
    """``tokens`` joined by "; " into lines of at most ``width`` characters (a token is never split)."""
    lines: list[str] = []
    line = ""
    for token in tokens:
        if line and len(indent) + len(line) + 2 + len(token) > width:
            lines.append(indent + line + ";")
            line = token
        else:
            line = f"{line}; {token}" if line else token
    return lines + ([indent + line] if line else [])


def snapshot_lines(snapshot: Mapping[str, Mapping[str, Mapping[str, Any]]], indent: str = "    ",
                   width: int = 110) -> list[str]:
    """Each instrument's settings at the start of the run, then what each resume found changed."""
    lines: list[str] = []
    for name, snapshots in snapshot.items():
        start = snapshots.get("start", {})
        before = start.get("settings", {})
        lines.append(f"{indent}{name}  (read {start.get('time') or '-'})")
        lines += wrapped(settings_tokens(before), indent + "  ", width)
        for key, later in snapshots.items():
            if key == "start":
                continue
            changed = settings_tokens({k: v for k, v in later.get("settings", {}).items() if before.get(k) != v})
            head = f"{key} (read {later.get('time') or '-'}):"
            tokens = [f"{head} changed {changed[0]}", *changed[1:]] if changed else [f"{head} unchanged"]
            lines += wrapped(tokens, indent + "  ", width)
    return lines
