"""The emulated InfiniiVision's screen as an image, for ``:DISPlay:DATA?``.

An 800 x 480 picture (the 3000X display's size) of the graticule (10 x 8 divisions),
the displayed channels' traces of the last acquisition in the channel colours, the
trigger level marker and the scale annotations, rendered with matplotlib's Agg
canvas (no pyplot state, safe from the server threads). Formats as the programmer's
guide names them: PNG, BMP (24-bit) and BMP8bit (256-colour palette), in COLor or
GRAYscale; ``ink_saver`` (``:HARDcopy:INKSaver``, on by default) inverts the
background to white as the instrument does for printed images.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

WIDTH, HEIGHT, DPI = 800, 480, 100
DIVS_X, DIVS_Y = 10, 8
COLOURS = {1: "#f5d800", 2: "#00c800", 3: "#3c8cff", 4: "#ff3c3c"}  # yellow, green, blue, red
_PREFIX = [(1e-9, "n"), (1e-6, "u"), (1e-3, "m"), (1.0, "")]


@dataclass(frozen=True)
class Trace:
    """One displayed channel: sample times (s from the trigger) and volts, its scale."""

    channel: int
    time: np.ndarray
    volts: np.ndarray
    scale: float  # V/div
    offset: float  # V at the screen centre
    label: str


def _si(value: float, unit: str) -> str:
    prefix, factor = "", 1.0
    for step, name in _PREFIX:
        if abs(value) >= step * 0.999:
            prefix, factor = name, step
    return f"{value / factor:.3g}{prefix}{unit}"


def render(traces: list[Trace], *, tb_scale: float, tb_position: float, reference_div: float,
           trigger: tuple[int | None, float], fmt: str = "PNG", palette: str = "COLor",
           ink_saver: bool = True) -> bytes:
    """The screen image in ``fmt`` (PNG, BMP, BMP8bit) and ``palette`` (COLor, GRAYscale).

    ``reference_div``: divisions from the left edge to the timebase reference (5: centre);
    ``trigger``: (source channel or None, level V) for the level marker.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    back, grid, text = ("white", "#909090", "black") if ink_saver else ("black", "#505050", "white")
    fig = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI, facecolor=back)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.035, 0.08, 0.945, 0.84), facecolor=back)
    ax.set_xlim(0, DIVS_X)
    ax.set_ylim(-DIVS_Y / 2, DIVS_Y / 2)
    ax.set_xticks(np.arange(DIVS_X + 1))
    ax.set_yticks(np.arange(-DIVS_Y // 2, DIVS_Y // 2 + 1))
    ax.tick_params(length=0, labelbottom=False, labelleft=False)
    ax.grid(True, color=grid, linestyle=":", linewidth=0.8)
    for spine in ax.spines.values():
        spine.set_color(grid)
    ax.axhline(0, color=grid, linewidth=0.6)
    ax.axvline(DIVS_X / 2, color=grid, linewidth=0.6)
    left = tb_position - reference_div * tb_scale  # s at the left edge
    notes = []
    for tr in traces:
        x = (tr.time - left) / tb_scale
        y = np.clip((tr.volts - tr.offset) / tr.scale, -DIVS_Y / 2, DIVS_Y / 2)
        ax.plot(x, y, color=COLOURS[tr.channel], linewidth=1.0)
        ax.text(-0.08, float(np.clip(-tr.offset / tr.scale, -3.9, 3.9)), tr.label, color=COLOURS[tr.channel],
                ha="right", va="center", fontsize=8, clip_on=False)
        notes.append((tr.channel, f"{tr.channel}  {_si(tr.scale, 'V')}/"))
    source, level = trigger
    shown = {tr.channel: tr for tr in traces}
    if source in shown:
        tr = shown[source]
        y = float(np.clip((level - tr.offset) / tr.scale, -DIVS_Y / 2, DIVS_Y / 2))
        ax.plot([DIVS_X], [y], marker="<", color=COLOURS[source], markersize=7, clip_on=False)
    trig_x = -left / tb_scale
    if 0 <= trig_x <= DIVS_X:
        ax.plot([trig_x], [DIVS_Y / 2], marker="v", color="#ff8c00", markersize=7, clip_on=False)
    for k, (channel, note) in enumerate(notes):
        fig.text(0.02 + 0.12 * k, 0.955, note, color=COLOURS[channel], fontsize=9, family="monospace")
    fig.text(0.98, 0.955, f"{_si(tb_scale, 's')}/  {_si(tb_position, 's')}", color=text, fontsize=9,
             ha="right", family="monospace")
    fig.text(0.5, 0.02, "KEYSIGHT InfiniiVision (emulated)", color=text, fontsize=8, ha="center")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor=back)
    return _convert(buf.getvalue(), fmt, palette)


def _convert(png: bytes, fmt: str, palette: str) -> bytes:
    """Re-encode matplotlib's RGBA PNG: RGB (a screen has no alpha), the format and palette (Pillow)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    if palette == "GRAYscale":
        image = image.convert("L")
    if fmt == "BMP8bit":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=256) if image.mode == "RGB" else image
    out = io.BytesIO()
    image.save(out, format="PNG" if fmt == "PNG" else "BMP")
    return out.getvalue()
