"""Live plotting speed of the GUI, offscreen: 4 scope channels x 10,000 points updated continuously.

Prints two measurements:

1. render rate: new data on all four curves and a synchronous repaint, back to
   back: the frames per second the plot can draw (target >= 30);
2. the live pipeline: a producer thread pushes 4 x 10,000-point acquisitions onto
   the worker's LiveQueue as fast as it can, the window's QueueBridge drains it at
   its frame interval into the scope view, while a 10 ms timer measures how late the
   Qt event loop runs (percentiles of the lateness).

Usage: python benchmarks/bench_gui.py [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
from PyQt5.QtCore import QTimer

from gui.bridge import QueueBridge
from gui.live_queue import LiveQueue
from gui.scope_view import ScopeView
from gui.session import application

CHANNELS, POINTS = 4, 10_000
SAMPLE_TIME = 1e-7  # s per point (a 1 ms record)
TICK = 0.010  # s, lateness probe period


def waveforms(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, channels, points) V: phase-shifted sines with noise, like integrator outputs."""
    t = np.arange(POINTS) * SAMPLE_TIME
    phase = np.linspace(0, 2 * np.pi, frames, endpoint=False)[:, None, None]
    ch = np.arange(CHANNELS)[None, :, None]
    clean = 0.4 * np.sin(2 * np.pi * 3e3 * t[None, None, :] + phase + ch)
    return clean + 0.01 * rng.standard_normal((frames, CHANNELS, POINTS))


def render_rate(view: ScopeView, data: np.ndarray, seconds: float) -> float:
    """Frames per second of setData on 4 curves + a synchronous repaint."""
    app = application()
    t = np.arange(POINTS) * SAMPLE_TIME
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        view.show_traces(t, data[frames % len(data)])
        view.plot.viewport().repaint()
        app.processEvents()
        frames += 1
    return frames / (time.perf_counter() - start)


def pipeline(view: ScopeView, data: np.ndarray, seconds: float) -> tuple[float, float, np.ndarray]:
    """(frames drawn per s, acquisitions produced per s, event-loop lateness samples in s)."""
    app = application()
    queue = LiveQueue()
    bridge = QueueBridge(queue)
    t = np.arange(POINTS) * SAMPLE_TIME
    drawn = [0]

    def draw(kind: str, name: object, value: object) -> None:
        view.show_traces(*value)
        view.plot.viewport().repaint()
        drawn[0] += 1

    bridge.data.connect(draw)
    stop = threading.Event()
    produced = [0]

    def produce() -> None:
        while not stop.is_set():
            queue.latest(("trace", "scope"), (t, data[produced[0] % len(data)]))
            produced[0] += 1
            time.sleep(0.001)

    ticks: list[float] = []
    probe = QTimer()
    probe.setInterval(int(TICK * 1000))
    probe.timeout.connect(lambda: ticks.append(time.perf_counter()))
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    probe.start()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        app.processEvents()
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    probe.stop()
    stop.set()
    producer.join()
    bridge.stop()
    return drawn[0] / elapsed, produced[0] / elapsed, np.diff(ticks) - TICK


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement (s)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    args = parser.parse_args(argv)
    application()
    view = ScopeView()
    view.resize(1200, 500)
    view.show()
    data = waveforms(16, np.random.default_rng(0))
    fps = render_rate(view, data, args.seconds)
    drawn, produced, late = pipeline(view, data, args.seconds)
    p50, p95, p99 = (1e3 * np.percentile(late, q) for q in (50, 95, 99))
    figures = {"render_fps": fps, "pipeline_fps": drawn, "produced_per_s": produced, "lateness_p50_ms": p50,
               "lateness_p95_ms": p95, "lateness_p99_ms": p99, "lateness_max_ms": 1e3 * float(late.max())}
    if args.json:
        print(json.dumps(figures))
        return figures
    print(f"render rate, {CHANNELS} channels x {POINTS} points: {fps:.1f} frames/s (target >= 30)")
    print(f"live pipeline: {drawn:.1f} frames/s drawn of {produced:.0f} acquisitions/s produced "
          f"(the rest are replaced before drawing, by design)")
    print(f"event-loop lateness (10 ms timer, {len(late)} ticks): p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"p99 {p99:.1f} ms, max {1e3 * late.max():.1f} ms")
    return figures


if __name__ == "__main__":
    main()
