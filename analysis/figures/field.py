"""The network's 2-D output field over the plane (Fig. 3d): arrows and isopotential curves.

The score is the gradient of the log density, so a potential exists whose gradient the
field is; it is found by integrating the field over the grid (trapezoids along x1 then
x2 and along x2 then x1, averaged: a field that is not quite a gradient, as a measured
one never is, gives the mean of the two paths). Its contours are the isopotential curves
the paper draws in red.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from scipy.integrate import cumulative_trapezoid

from analysis.figures.style import footnote, label, new_figure, title


def potential(axis: np.ndarray, fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Potential (G, G) whose gradient is (fx, fy) on the square grid ``axis`` x ``axis``.

    fx, fy: (G, G) field components, rows along x2, columns along x1 (``np.meshgrid``).
    """
    along_x = cumulative_trapezoid(fx, axis, axis=1, initial=0) + \
        cumulative_trapezoid(fy[:, :1], axis, axis=0, initial=0)
    along_y = cumulative_trapezoid(fy, axis, axis=0, initial=0) + \
        cumulative_trapezoid(fx[:1, :], axis, axis=1, initial=0)
    phi = 0.5 * (along_x + along_y)
    return phi - phi.max()


def vector_field(points: np.ndarray, times: np.ndarray, analog: np.ndarray, software: np.ndarray,
                 run_label: str = "", note: str = "", magnify: float = 5.0) -> Figure:
    """Rows: analog field, software field, their difference; one column per diffusion time.

    points: (G*G, 2) grid, data units (row-major over x2 then x1); times: (K,); analog,
    software: (K, G*G, 2) score, 1 / data unit. The difference is drawn ``magnify`` times
    longer than the fields (its RMS is printed unmagnified).
    """
    g = int(round(np.sqrt(len(points))))
    axis = points[:g, 0]
    x1, x2 = points[:, 0].reshape(g, g), points[:, 1].reshape(g, g)
    k = len(times)
    fig, axes = new_figure((2.6 * k + 0.8, 8.0), ncols=k, nrows=3, sharex=True, sharey=True)
    axes = np.asarray(axes).reshape(3, k)
    for j in range(k):
        fields = (("analog (RRAM loop)", analog[j]), ("software", software[j]),
                  (f"(analog - software) x {magnify:g}", magnify * (analog[j] - software[j])))
        # one scale per column (the difference drawn as the fields are): the 95th-percentile
        # arrow spans one grid spacing
        spacing = float(axis[1] - axis[0])
        scale = float(np.percentile(np.hypot(*software[j].T), 95)) / spacing or 1.0
        for i, (name, f) in enumerate(fields):
            ax = axes[i, j]
            fx, fy = f[:, 0].reshape(g, g), f[:, 1].reshape(g, g)
            ax.quiver(x1, x2, fx, fy, angles="xy", scale_units="xy", scale=scale, width=0.006,
                      color="tab:blue" if i < 2 else "0.3")
            if i < 2:
                ax.contour(x1, x2, potential(axis, fx, fy), levels=8, colors="tab:red", linewidths=0.8,
                           linestyles="solid")
            else:
                rms = float(np.sqrt(np.mean(f**2))) / magnify
                ax.text(0.02, 0.02, f"RMS {rms:.3g}", transform=ax.transAxes, fontsize="small")
            ax.set(aspect="equal")
            if i == 0:
                ax.set_title(f"t = {times[j]:.3g}\n{name}", fontsize="medium")
            else:
                ax.set_title(name, fontsize="medium")
            if i == 2:
                ax.set_xlabel(label("x1", ""))
        axes[0, 0].set_ylabel(label("x2", ""))
        axes[1, 0].set_ylabel(label("x2", ""))
        axes[2, 0].set_ylabel(label("x2", ""))
    title(fig, "Output field of the network (arrows: score; red: isopotential curves)", run_label)
    if note:
        footnote(fig, note)
    return fig
