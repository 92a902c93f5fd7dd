"""Crossbar at circuit level: wire resistance, access transistor and device I-V nonlinearity.

One M x N region of a 1T1R macro (``docs/circuit-crossbar.md``). Row ``i`` is a bit
line driven at ``V_i`` from its column-0 end; column ``j`` is a source line whose
last-row end sits on a transimpedance amplifier at virtual ground. Cell ``(i, j)``
is the RRAM device (bit-line side) in series with its access transistor (source-line
side, gate fully on, deep triode: a resistor ``r_on``)::

    row node R[i,j] --device G_ij h(v)--> internal node D[i,j] --r_on--> column node C[i,j]
    h(v) = v S(v) / S(V_ref)               device_physics.nonlinearity (sinh of the gap model)
    R[i,j-1] --r_row-- R[i,j]              bit-line segment (driver --(r_row + lead_row)-- R[i,0])
    C[i,j] --r_col-- C[i+1,j]              source-line segment (C[M-1,j] --(r_col + lead_col + r_tia_in)-- TIA)

Two solutions:

- :func:`solve_nodal`: the exact network, Newton iterations on a sparse nodal
  system (every wire node, every cell's internal node). Reference, one vector at a time.
- :class:`FastCrossbar`: precomputed maps for many row-voltage vectors at once,
  ``I = V @ T + sum_k (V/v_max)^(2k+1) @ C_k``: ``T`` is the exact linear transfer of
  the network (wires and transistors, devices at their small-signal conductance),
  the ``C_k`` carry each cell's nonlinear excess current (fitted per cell as an odd
  polynomial of its row voltage, at the cell voltage the row wire leaves it) through
  the same linear network. One matrix product per call.

Conductances in S, voltages in V, currents in A, resistances in ohm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from instruments.sim.device_params import DeviceParams
from instruments.sim.device_physics import nonlinearity

# -- where the default parameters come from (docs/circuit-crossbar.md) -------------------
#: Ohm per square of metal 1-5 in a 180 nm process: MOSIS parametric test results of
#: TSMC 0.18 um runs (SCN018: T18H, T3AZ, T4BK all report 0.08 ohm/sq for M1-M5).
SHEET_RESISTANCE = 0.08
#: Cell pitch (m) along both lines: a W = 1.75 um thick-oxide access transistor plus
#: active spacing, the RRAM via stack over its drain (design-rule estimate).
CELL_PITCH = 2.5e-6
#: Drawn width (m) of a bit or source line (about twice the 0.23 um M1 minimum, as the
#: lines carry the summed current of a row or column).
LINE_WIDTH = 0.5e-6
#: Ohm per cell segment: sheet resistance times squares per cell (pitch / width).
SEGMENT_RESISTANCE = SHEET_RESISTANCE * CELL_PITCH / LINE_WIDTH
#: Ohm, access-transistor channel at the read gate voltage: 3.3 V I/O nMOS, W/L = 5,
#: mu Cox = 198 uA/V^2 (MOSIS K' = 169 uA/V^2 at 4.1 nm oxide scaled to 7 nm), overdrive
#: 3.3 V - 0.6 V: square-law 374 ohm, raised for mobility degradation and source/drain
#: plus contact resistance.
ACCESS_ON_RESISTANCE = 500.0

#: Largest number of odd polynomial terms the fast solution fits per cell.
MAX_ORDER = 8
#: Fit target: largest excess-current residual relative to the largest cell current. An
#: order of magnitude below the fast solution's wire error at the default parasitics
#: (3-4e-4), it takes K = 1 up to 0.5 V (fit error 2e-5), K = 2 at 1 V, K = 3 at 2.5 V.
FIT_TOLERANCE = 3e-5
#: Newton iterations on the nonlinear networks stop when no node moves by more than this (V).
NEWTON_VTOL = 1e-13
NEWTON_MAX_ITER = 60


@dataclass(frozen=True)
class CrossbarParams:
    """Parasitics of a 180 nm 1T1R macro read with every gate on (``docs/circuit-crossbar.md``).

    r_row: bit-line (row) wire resistance per cell segment, ohm. 0.08 ohm/sq (MOSIS
        TSMC 0.18 um M1/M2) x 2.5 um pitch / 0.5 um width = 0.4 ohm.
    r_col: source-line (column) wire resistance per cell segment, ohm; same derivation.
    r_on: access-transistor on-resistance at the read gate voltage (3.3 V), ohm; deep
        triode of a W/L = 5 thick-oxide nMOS, about 0.4-0.7 kOhm; 500 ohm taken.
    r_tia_in: input resistance of the TIA's virtual ground, ohm: 0 is ideal; an op-amp
        TIA presents R_f / (1 + A(f)) (10 kOhm over an open-loop gain of 1e5 at DC is 0.1 ohm).
    """

    r_row: float = SEGMENT_RESISTANCE
    r_col: float = SEGMENT_RESISTANCE
    r_on: float = ACCESS_ON_RESISTANCE
    r_tia_in: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"CrossbarParams.{f.name} must be a finite resistance >= 0 (ohm), got {value!r}")


def region_leads(row0: int, col0: int, n_rows: int, macro_rows: int, p: CrossbarParams) -> tuple[float, float]:
    """Lead resistances (ohm) of a region placed at (row0, col0) in a macro of ``macro_rows`` rows.

    The row drivers sit at the column-0 end, so a region starting at ``col0`` reaches its
    first cell through ``col0`` further bit-line segments; the TIAs sit at the last-row
    end, so its columns run ``macro_rows - row0 - n_rows`` segments past its last row.
    Cells outside the region are taken to carry no current (their rows at 0 V).
    """
    if not (row0 >= 0 and col0 >= 0 and n_rows >= 1 and row0 + n_rows <= macro_rows):
        raise ValueError(f"region rows {row0}..{row0 + n_rows - 1} do not fit a macro of {macro_rows} rows")
    return col0 * p.r_row, (macro_rows - row0 - n_rows) * p.r_col


def cell_conductance(g: np.ndarray, p: CrossbarParams, device: DeviceParams) -> np.ndarray:
    """Small-signal conductance (S) of each cell, device ``g`` (S) in series with ``r_on``.

    The device's own slope at 0 V is g S(0)/S(V_ref) = g nonlinearity(0).
    """
    g0 = np.asarray(g, dtype=float) * float(nonlinearity(0.0, device))
    return g0 / (1.0 + g0 * p.r_on)


def _device_current(g: np.ndarray, v: np.ndarray, device: DeviceParams) -> np.ndarray:
    """Device current (A) at device voltage ``v`` (V): I = G v S(v)/S(V_ref)."""
    return g * v * nonlinearity(v, device)


def _device_slope(g: np.ndarray, v: np.ndarray, device: DeviceParams) -> np.ndarray:
    """dI/dv (S) of the sinh form: G cosh(v/v0) / S(V_ref).

    Only the Newton iterations use it: were the device form to change, the residual (from
    :func:`_device_current`) still fixes the solution and Newton merely converges slower.
    """
    return g * np.cosh(v / device.nl_v0) * nonlinearity(0.0, device)


def _check_conductances(g: np.ndarray) -> np.ndarray:
    g = np.asarray(g, dtype=float)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"g must be a non-empty (rows, columns) array of conductances, got shape {g.shape}")
    if not np.all(np.isfinite(g)) or np.any(g < 0):
        raise ValueError("g must hold finite, non-negative conductances (S)")
    return g


def _check_lead(name: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite resistance >= 0 (ohm), got {value!r}")
    return float(value)


class _Network:
    """Node numbering and the linear (wire and transistor) part of one M x N region.

    Unknown nodes are numbered 0..n_unknown-1; known ones follow: the M row drivers,
    then ground. A wire of zero resistance merges its nodes (a row of zero-resistance
    segments is one node, or the driver itself when its lead is zero too), so that the
    ideal cases are exact rather than approximated by large conductances.
    """

    def __init__(self, m: int, n: int, p: CrossbarParams, lead_row: float, lead_col: float) -> None:
        count = 0
        edges: list[tuple[np.ndarray, np.ndarray, float]] = []
        driver = -(np.arange(m) + 1)          # known nodes are coded negative until n_unknown is known
        ground = -(m + 1)

        def fresh(shape: tuple[int, ...]) -> np.ndarray:
            nonlocal count
            idx = count + np.arange(int(np.prod(shape))).reshape(shape)
            count += idx.size
            return idx

        if p.r_row > 0:
            row = fresh((m, n))
            edges.append((row[:, :-1].ravel(), row[:, 1:].ravel(), 1.0 / p.r_row))
            edges.append((driver, row[:, 0], 1.0 / (p.r_row + lead_row)))
        elif lead_row > 0:
            row = np.repeat(fresh((m, 1)), n, axis=1)
            edges.append((driver, row[:, 0], 1.0 / lead_row))
        else:
            row = np.repeat(driver[:, None], n, axis=1)
        end = lead_col + p.r_tia_in
        if p.r_col > 0:
            col = fresh((m, n))
            edges.append((col[:-1].ravel(), col[1:].ravel(), 1.0 / p.r_col))
            edges.append((col[-1], np.full(n, ground), 1.0 / (p.r_col + end)))
        elif end > 0:
            col = np.repeat(fresh((1, n)), m, axis=0)
            edges.append((col[-1], np.full(n, ground), 1.0 / end))
        else:
            col = np.full((m, n), ground)
        if p.r_on > 0:
            inner = fresh((m, n))
            edges.append((inner.ravel(), col.ravel(), 1.0 / p.r_on))
        else:
            inner = col

        self.n_unknown = count

        def number(idx: np.ndarray) -> np.ndarray:
            idx = np.asarray(idx)
            return np.where(idx < 0, count - idx - 1, idx)

        self.row, self.col, self.inner = number(row), number(col), number(inner)
        n_all = count + m + 1
        a = np.concatenate([number(e[0]).ravel() for e in edges] + [np.zeros(0, int)])
        b = np.concatenate([number(e[1]).ravel() for e in edges] + [np.zeros(0, int)])
        g = np.concatenate([np.full(np.size(e[0]), e[2]) for e in edges] + [np.zeros(0)])
        self.laplacian = _stamp(a, b, g, n_all)
        # device incidence: current G h(v) leaves the row node, enters the internal node
        self.dev_a, self.dev_b = self.row.ravel(), self.inner.ravel()

    def known(self, v_rows: np.ndarray) -> np.ndarray:
        """Voltages of the known nodes (drivers, then ground) for row voltages (M,) or (M, K)."""
        v_rows = np.asarray(v_rows, dtype=float)
        return np.concatenate([v_rows, np.zeros((1,) + v_rows.shape[1:])])

    def system(self, slope: np.ndarray) -> tuple[sp.csc_matrix, sp.csr_matrix]:
        """Nodal matrix with each device at conductance ``slope`` (S, M*N): unknown block, coupling block.

        The first block is the Jacobian of the unknown nodes; the second couples them to
        the known nodes (drivers, ground), for the right-hand side of a linear solve.
        """
        full = self.laplacian + _stamp(self.dev_a, self.dev_b, slope, self.laplacian.shape[0])
        nu = self.n_unknown
        return full[:nu, :nu].tocsc(), full[:nu, nu:]

    def device_voltage(self, v_all: np.ndarray) -> np.ndarray:
        """Device voltage (row node minus internal node), (M*N,) or (M*N, K)."""
        return v_all[self.dev_a] - v_all[self.dev_b]

    def cell_voltage(self, v_all: np.ndarray) -> np.ndarray:
        """Cell terminal voltage (row node minus column node), (M*N,) or (M*N, K)."""
        return v_all[self.row.ravel()] - v_all[self.col.ravel()]


def _stamp(a: np.ndarray, b: np.ndarray, g: np.ndarray, n: int) -> sp.csr_matrix:
    """Nodal (Laplacian) matrix of conductances ``g`` between nodes ``a`` and ``b``."""
    rows = np.concatenate([a, b, a, b])
    cols = np.concatenate([a, b, b, a])
    vals = np.concatenate([g, g, -g, -g])
    return sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()


@dataclass(frozen=True)
class NodalSolution:
    """Solved region: column currents (N,) A into the TIAs; node voltages (M, N) V.

    v_row: bit-line node at each cell; v_col: source-line node at each cell;
    v_device: voltage across each RRAM device (the transistor takes the rest);
    iterations: Newton iterations taken.
    """

    column_currents: np.ndarray
    v_row: np.ndarray
    v_col: np.ndarray
    v_device: np.ndarray
    iterations: int


def solve_nodal(g: np.ndarray, v_rows: np.ndarray, p: CrossbarParams | None = None,
                device: DeviceParams | None = None, *, lead_row: float = 0.0,
                lead_col: float = 0.0) -> NodalSolution:
    """Exact DC solution of an M x N region for row voltages ``v_rows`` (M,) V.

    g: (M, N) device conductances, S (as programmed: the chord at ``read_bias_ref``).
    lead_row, lead_col: extra resistance (ohm) between each driver and the region,
    and between the region and each TIA (:func:`region_leads`). Newton iterations
    on the sparse nodal equations, started from the linearised network; exact to
    ``NEWTON_VTOL`` in every node voltage.
    """
    p = p or CrossbarParams()
    device = device or DeviceParams()
    g = _check_conductances(g)
    m, n = g.shape
    v_rows = np.asarray(v_rows, dtype=float)
    if v_rows.shape != (m,) or not np.all(np.isfinite(v_rows)):
        raise ValueError(f"v_rows must be {m} finite voltages, got shape {v_rows.shape}")
    net = _Network(m, n, p, _check_lead("lead_row", lead_row), _check_lead("lead_col", lead_col))
    g_flat = g.ravel()
    v_known = net.known(v_rows)
    nu = net.n_unknown
    x = np.zeros(nu)
    coupled = net.laplacian[:nu, nu:] @ v_known     # wires and transistors to drivers and ground
    iterations = 0
    if nu:
        # the linearised network (each device at its slope at 0 V) is the starting point
        start, start_coupling = net.system(_device_slope(g_flat, np.zeros_like(g_flat), device))
        x = spla.spsolve(start, -(start_coupling @ v_known))
        lap_uu = net.laplacian[:nu, :nu]
        step = np.inf
        while np.max(np.abs(step)) > NEWTON_VTOL:
            if iterations == NEWTON_MAX_ITER:
                raise RuntimeError(f"solve_nodal: Newton did not converge in {NEWTON_MAX_ITER} iterations")
            iterations += 1
            v_all = np.concatenate([x, v_known])
            v_dev = net.device_voltage(v_all)
            current = _device_current(g_flat, v_dev, device)
            residual = lap_uu @ x + coupled
            residual += _scatter(net.dev_a, current, nu) - _scatter(net.dev_b, current, nu)
            step = spla.spsolve(net.system(_device_slope(g_flat, v_dev, device))[0], -residual)
            x = x + step
    v_all = np.concatenate([x, v_known])
    v_dev = net.device_voltage(v_all).reshape(m, n)
    # every device current flows through its transistor into its column and on to the TIA
    cell_current = _device_current(g, v_dev, device)
    return NodalSolution(column_currents=cell_current.sum(axis=0), v_row=v_all[net.row], v_col=v_all[net.col],
                         v_device=v_dev, iterations=iterations)


def _scatter(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Sum ``values`` into bins ``index`` < n (known nodes, index >= n, are dropped)."""
    keep = index < n
    return np.bincount(index[keep], weights=values[keep], minlength=n)


def _cell_current(g: np.ndarray, u: np.ndarray, r_on: float, device: DeviceParams) -> np.ndarray:
    """Current (A) of cells (device ``g`` in series with ``r_on``) at terminal voltages ``u`` (V).

    Solves v + r_on G h(v) = u for the device voltage v by Newton, vectorised over
    every cell and voltage (the left side is increasing in v, so it converges from v = u).
    """
    v = np.array(u, dtype=float)
    for _ in range(NEWTON_MAX_ITER):
        f = v + r_on * _device_current(g, v, device) - u
        step = f / (1.0 + r_on * _device_slope(g, v, device))
        v -= step
        if np.max(np.abs(step), initial=0.0) <= NEWTON_VTOL:
            return _device_current(g, v, device)
    raise RuntimeError("cell current: Newton did not converge")


class FastCrossbar:
    """Column currents of a region for many row-voltage vectors: one matrix product a call.

    ``I = [x, x^3, ..., x^(2K+1)] @ weights + offset``, ``x = V / v_max`` row by row
    (build with :meth:`build`). weights: ((K+1) M, N) A, the blocks of the powers one
    after the other; offset: (N,) A from rows held constant (:meth:`fold_rows`); v_max:
    V, the row voltages the fit covers; order: K; dtype: numerical type of a call
    (float32 as in the loop: 1e-7 relative rounding, far below the model's own error).
    """

    def __init__(self, weights: np.ndarray, offset: np.ndarray, v_max: float, order: int,
                 dtype: type = np.float64) -> None:
        weights = np.asarray(weights, dtype=float)
        if weights.ndim != 2 or weights.shape[0] % (order + 1):
            raise ValueError(f"weights of shape {weights.shape} do not hold {order + 1} blocks of rows")
        self.weights, self.offset = weights, np.asarray(offset, dtype=float)
        self.v_max, self.order, self.dtype = float(v_max), int(order), dtype
        self.n_rows = weights.shape[0] // (order + 1)
        # the call runs feature-major, (features, B): every slice below is contiguous
        self._weights_t = np.ascontiguousarray(weights.T, dtype=dtype)
        self._offset_t = self.offset.astype(dtype)[:, None]
        self._work: np.ndarray | None = None

    @classmethod
    def build(cls, g: np.ndarray, v_max: float, p: CrossbarParams | None = None,
              device: DeviceParams | None = None, *, lead_row: float = 0.0, lead_col: float = 0.0,
              order: int | None = None, dtype: type = np.float64) -> FastCrossbar:
        """Precompute the maps of region ``g`` (M, N) S for row voltages |V| <= ``v_max`` V.

        1. T: solve the linear network (devices at their small-signal conductance) for
           a unit voltage on each row in turn: exact linear transfer, wires included.
        2. beta_ij: the cell voltage (device plus transistor) per volt of its own row
           in those solutions: what the row wire leaves of the row voltage.
        3. Each cell's nonlinear excess current at row voltage V, F_ij(beta_ij V) -
           g_ij beta_ij V (F: exact series I-V of device and r_on), fitted by odd powers
           V^3 .. V^(2K+1) on [0, v_max] (K: ``order``, or the least reaching
           ``FIT_TOLERANCE``).
        4. The excess is a current source across the cell; its share reaching each
           column follows from the same linear network (by reciprocity, one solve per
           column serves every cell).
        """
        p = p or CrossbarParams()
        device = device or DeviceParams()
        g = _check_conductances(g)
        if not (math.isfinite(v_max) and v_max > 0):
            raise ValueError(f"v_max must be a positive voltage, got {v_max!r}")
        if order is not None and not 1 <= order <= MAX_ORDER:
            raise ValueError(f"order must be in 1..{MAX_ORDER}, got {order!r}")
        m, n = g.shape
        net = _Network(m, n, p, _check_lead("lead_row", lead_row), _check_lead("lead_col", lead_col))
        g_cell = cell_conductance(g, p, device)
        jac, coupling = net.system(g.ravel() * float(nonlinearity(0.0, device)))   # devices at their 0 V slope
        solve = _linear_solver(jac, net.n_unknown)

        # 1-2: unit voltage on each row; column currents and cell voltages
        v_all = solve(-(coupling[:, :m].toarray()), net.known(np.eye(m)))
        cell_v = net.cell_voltage(v_all).reshape(m, n, m)
        transfer = _column_sums(g_cell[:, :, None] * cell_v, n)          # (N, M): column current per row volt
        beta = cell_v[np.arange(m), :, np.arange(m)]                       # (M, N): own row's share

        # 3: excess fit
        coeff, order = _fit_excess(g, g_cell, beta, v_max, p.r_on, device, order)   # (K, M, N)
        # 4: a unit source across cell (i, j) moves column c by w_c^T J^-1 s_ij; J is symmetric,
        # so N adjoint solves y_c = J^-1 w_c (w_c: column c's current as a function of the
        # node voltages, sum_i g_cell (v_R - v_C)) give every cell's response at once
        functional = np.zeros((net.n_unknown + m + 1, n))
        cols = np.broadcast_to(np.arange(n), (m, n)).ravel()
        np.add.at(functional, (net.row.ravel(), cols), g_cell.ravel())
        np.add.at(functional, (net.col.ravel(), cols), -g_cell.ravel())
        adjoint = solve(functional[:net.n_unknown], np.zeros((m + 1, n)))     # known nodes carry no source
        # the source draws from the row node, delivers into the column node, and its own
        # current enters column j directly
        response = (adjoint[net.col] - adjoint[net.row]) + np.eye(n)[None]   # (M, N, N)
        weights = [transfer.T * v_max] + [np.einsum("ij,ijc->ic", coeff[k], response) for k in range(order)]
        return cls(np.concatenate(weights, axis=0), np.zeros(n), v_max, order, dtype)

    @property
    def n_columns(self) -> int:
        return self.weights.shape[1]

    def column_currents(self, v_rows: np.ndarray) -> np.ndarray:
        """Column currents (B, N) A for row voltages ``v_rows`` (B, M) V, |V| <= v_max."""
        v = np.asarray(v_rows)
        if v.ndim != 2 or v.shape[1] != self.n_rows:
            raise ValueError(f"v_rows must have shape (B, {self.n_rows}), got {v.shape}")
        return self.column_currents_t(v.T).T

    def column_currents_t(self, v_t: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Feature-major form for the loop: currents (N, B) A for row voltages ``v_t`` (M, B) V.

        out: (N, B) array of ``dtype`` to write into, or None for a new one. The powers
        of x live in a work buffer kept between calls of the same B.
        """
        m, b = np.shape(v_t)
        if m != self.n_rows:
            raise ValueError(f"v_t must have shape ({self.n_rows}, B), got {np.shape(v_t)}")
        n_feat = (self.order + 1) * m
        work = self._work
        if work is None or work.shape[1] != b:
            work = self._work = np.empty((n_feat + m, b), dtype=self.dtype)   # powers, then x^2
        x, x2 = work[:m], work[n_feat:]
        np.multiply(v_t, self.dtype(1.0 / self.v_max), out=x)
        if b and (x.max() > 1 + 1e-6 or x.min() < -1 - 1e-6):
            raise ValueError(f"row voltages beyond the fitted range +-{self.v_max} V")
        np.multiply(x, x, out=x2)
        for k in range(1, self.order + 1):
            np.multiply(work[(k - 1) * m:k * m], x2, out=work[k * m:(k + 1) * m])
        out = np.matmul(self._weights_t, work[:n_feat], out=out)
        out += self._offset_t
        return out

    def fold_rows(self, rows: np.ndarray | slice, volts: float | np.ndarray) -> FastCrossbar:
        """The region with ``rows`` held at constant ``volts`` V (bias rows) folded into the offset."""
        mask = np.zeros(self.n_rows, dtype=bool)
        mask[rows] = True
        fixed = np.zeros(self.n_rows)
        fixed[mask] = volts
        if np.max(np.abs(fixed)) > self.v_max * (1 + 1e-6):
            raise ValueError(f"fixed row voltages beyond the fitted range +-{self.v_max} V")
        w = self.weights.reshape(self.order + 1, self.n_rows, -1)
        powers = np.stack([(fixed / self.v_max) ** (2 * k + 1) for k in range(self.order + 1)])   # (K+1, M)
        offset = self.offset + np.einsum("km,kmc->c", powers[:, mask], w[:, mask])
        return FastCrossbar(w[:, ~mask].reshape(-1, w.shape[2]), offset, self.v_max, self.order, self.dtype)

    def differential(self, n_out: int) -> FastCrossbar:
        """Pair currents, column j minus column n_out + j (G+ and G- of a layer): n_out columns."""
        if 2 * n_out != self.n_columns:
            raise ValueError(f"{self.n_columns} columns do not form {n_out} differential pairs")
        return FastCrossbar(self.weights[:, :n_out] - self.weights[:, n_out:],
                            self.offset[:n_out] - self.offset[n_out:], self.v_max, self.order, self.dtype)


def _linear_solver(jac: sp.csc_matrix, nu: int):
    """Node voltages (all nodes, K columns) of a linear network for right-hand sides (nu, K).

    ``jac``: its (nu, nu) nodal matrix, factorised once; returns a function of
    (rhs, known voltages (M + 1, K)).
    """
    lu = spla.splu(jac, permc_spec="MMD_AT_PLUS_A") if nu else None

    def solve(rhs: np.ndarray, known: np.ndarray) -> np.ndarray:
        x = lu.solve(np.asarray(rhs, dtype=float)) if nu else np.zeros((0, known.shape[1]))
        return np.concatenate([x, known], axis=0)

    return solve


def _column_sums(cell_currents: np.ndarray, n: int) -> np.ndarray:
    """(M, N, K) cell currents to (N, K) column currents."""
    return cell_currents.sum(axis=0).reshape(n, -1)


def _fit_excess(g: np.ndarray, g_cell: np.ndarray, beta: np.ndarray, v_max: float, r_on: float,
                device: DeviceParams, order: int | None) -> tuple[np.ndarray, int]:
    """Coefficients (K, M, N) A of x^3 .. x^(2K+1), x = V / v_max, for each cell's excess current.

    Least squares on Chebyshev nodes of (0, v_max]: the odd powers make the fit odd in V
    and free of any linear term, so the linear part stays the exact transfer T.
    """
    q = 48
    x = 0.5 * (1 + np.cos(np.pi * (np.arange(q) + 0.5) / q))        # Chebyshev nodes in (0, 1)
    u = beta[None] * (x * v_max)[:, None, None]                       # (Q, M, N) cell voltages
    current = _cell_current(g[None], u, r_on, device)
    excess = (current - g_cell[None] * u).reshape(q, -1)
    scale = np.max(np.abs(current), initial=0.0) or 1.0
    orders = [order] if order is not None else range(1, MAX_ORDER + 1)
    for k in orders:
        basis = np.stack([x ** (2 * j + 3) for j in range(k)], axis=1)   # (Q, k)
        coeff, *_ = np.linalg.lstsq(basis, excess, rcond=None)
        residual = np.max(np.abs(basis @ coeff - excess), initial=0.0) / scale
        if residual <= FIT_TOLERANCE:
            break
    return coeff.reshape(k, *g.shape), k
