"""Our macro controller as the closed loop of ``sample``.

One run takes a whole batch: the host draws the initial noise (from the step's
generator, so a resumed run draws the same) and then the board's noise seed (the
reverse SDE's injected noise); the board loads the initial conditions, runs the loop
and fires the scope, whose segmented memory keeps one segment per sample of the
integrator channels and the time-embedding channel.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from protocols.diffusion.analog import board_load, board_sample, check_noise_limit, initial_noise
from protocols.diffusion.board_sampler import (
    CHANNELS,
    WAVE_POINTS,
    Batch,
    LoopSettings,
    board_specs,
    board_time,
    record_waveform,
)
from protocols.diffusion.loop_streams import LoopStreams, loop_streams

if TYPE_CHECKING:
    from protocols.diffusion.mapping import MappedNetwork
    from protocols.diffusion.weights import TrainedModel
    from protocols.engine.bench_shape import BenchShape
    from protocols.engine.datasets import Spec
    from protocols.engine.protocol import Protocol as Run

SCOPE_TIMEOUT = 30.0       # s, wall time to wait for the scope's trigger


class MacroControllerSampler:
    """Our controller: a batch per run, from initial states the host draws; one scope segment per sample."""

    board = "macro_controller"
    h_scale = None      # the mapping takes the activation survey's hidden scale
    refresh_every = 0   # a batch lasts milliseconds: the network does not drift during a run

    def __init__(self, mapped: MappedNetwork, model: TrainedModel, loop: LoopSettings) -> None:
        check_noise_limit(mapped.config.v_dac / mapped.x_scale)  # the DACs hold the initial noise it draws
        self.mapped, self.model, self.loop = mapped, model, loop

    @staticmethod
    def time_base(rc: float, dt_step: float, shape: BenchShape) -> tuple[float, float]:
        """The board's integrator RC and fine step (what it reports, ``shape``); the parameters
        may only repeat them."""
        return (board_time("rc", rc, shape.loop_rc, "integrator time constant RC"),
                board_time("dt_step", dt_step, shape.loop_dt_step, "fine step (DAC update interval)"))

    def streams(self, condition: int | None) -> LoopStreams:
        """The DAC streams of one sample (time embedding, noise gain) for class ``condition``."""
        return loop_streams(self.mapped, self.model, n_steps=self.loop.steps, dt_step=self.loop.dt_step,
                            rc=self.loop.rc, sde=self.loop.sde, cond=condition)

    def specs(self) -> list[Spec]:
        return board_specs(self.board, self.streams(None).duration)

    def load(self, run: Run, placed: MappedNetwork) -> None:
        board_load(run.bench.macro_controller, placed)

    def run_batch(self, run: Run, placed: MappedNetwork, batch: Batch,
                  x0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        rng = run.rng
        if x0 is None:
            x0 = initial_noise(rng, batch.size, self.model.net.dim,
                               limit=self.mapped.config.v_dac / self.mapped.x_scale)
        streams = self.streams(batch.condition)
        arm = partial(self._arm_scope, run.bench.scope, placed, streams, batch.size) if batch.waveforms else None
        final = board_sample(run.bench.macro_controller, placed, streams, x0, sde=self.loop.sde,
                             seed=int(rng.integers(2**32)), before_run=arm)
        run.check()
        if batch.waveforms:
            self._store_waveforms(run, batch.waveforms)
        return x0, final

    def _arm_scope(self, scope: Any, placed: MappedNetwork, streams: LoopStreams, n: int) -> None:
        """Integrator and embedding channels, the run on screen, segmented memory, armed."""
        v_x = placed.to_volts(np.array([5.0]))[0]           # the DAC range of the integrators
        for name, ch in CHANNELS.items():
            top = 1.1 * self.mapped.h_scale if name == "embedding" else v_x
            scope.configure_channel(ch, scale=top / 4)
        scope.set_timebase(streams.duration / 10, streams.duration / 2)
        scope.set_edge_trigger("EXT", 0.5)
        scope.set_segmented(max(2, n))
        scope.single()

    def _store_waveforms(self, run: Run, count: int) -> None:
        scope = run.bench.scope
        scope.wait_triggered(timeout=SCOPE_TIMEOUT)
        scope.wait_segments(count, timeout=SCOPE_TIMEOUT)  # :TER? latches at the first trigger, not the last
        scope.stop()  # ends the segmented acquisition; the scope keeps the stored segments
        for name, ch in CHANNELS.items():
            for wave in scope.fetch_segments(ch, count, fmt="WORD", points=WAVE_POINTS):
                record_waveform(run, name, wave)
