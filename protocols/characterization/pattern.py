"""pattern: program a binary image into a macro and read the conductance map back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from protocols.characterization.pattern_images import load_pattern, moon_and_star
from protocols.characterization.programming import (
    ProgrammingProtocol,
    WriteVerifyParams,
    averaged_read,
    check_targets,
    estimate,
    program,
    programming_outcome,
    result_streams,
)
from protocols.engine.bench_shape import BenchShape
from protocols.engine.datasets import Constant, PulseHistory, Spec, Stream
from protocols.engine.protocol import ParameterError, Step, param


class Pattern(ProgrammingProtocol):
    """Program an image (moon and star, or a PNG/.npy) into a macro as two conductances; read it back."""

    name = "pattern"
    signal = "readback"

    @dataclass
    class Params(WriteVerifyParams):
        macro: int = param(0, limits=(0, 255), help="macro holding the image")
        image: str = param("moon-star", help="'moon-star' (built in) or a path to a .png or .npy image")
        g_on: float = param(50e-6, unit="S", limits=(0.5e-6, 150e-6), help="conductance of 'on' pixels")
        g_off: float = param(5e-6, unit="S", limits=(0.5e-6, 150e-6), help="conductance of 'off' pixels")
        readback_reads: int = param(16, limits=(1, 256), help="reads averaged in the read-back map")

    def validate(self, shape: BenchShape) -> None:
        """The macro exists, g_off < g_on, the image is readable and the macro's size."""
        super().validate(shape)
        if self.p.macro >= shape.n_macros:
            raise ParameterError(f"macro={self.p.macro} does not exist: the board has {shape.n_macros} macros")
        if not self.p.g_off < self.p.g_on:
            raise ParameterError(f"g_off ({self.p.g_off:g} S) must be below g_on ({self.p.g_on:g} S)")
        self.pattern(shape.rows, shape.cols)

    def pattern(self, rows: int, cols: int) -> np.ndarray:
        """The image to program, (rows, cols) bool: the moon and star or the ``image`` file."""
        return moon_and_star(rows, cols) if self.p.image == "moon-star" else load_pattern(self.p.image, rows, cols)

    def datasets(self) -> Sequence[Spec]:
        info = self.bench.macro_controller.info()
        rows, cols = info.rows, info.cols
        self.image = self.pattern(rows, cols)
        self.shape = (rows, cols)
        self.target = np.where(self.image, self.p.g_on, self.p.g_off).ravel()
        check_targets("g_on/g_off", self.target)
        r, c = np.divmod(np.arange(rows * cols), cols)
        self.macro, self.row, self.col = np.full(r.size, self.p.macro), r, c
        return [
            Constant("image", units="", data=self.image.astype(np.int8), long_name="pattern (1 = on)"),
            Constant("target", units="S", data=self.target.reshape(self.shape), long_name="target map"),
            Constant("row", units="", data=np.arange(rows)),
            Constant("col", units="", data=np.arange(cols)),
            *result_streams(rows * cols),
            Stream("readback", units="S", shape=self.shape, dtype="f4", axes=(".", "row", "col"),
                   long_name="averaged read-back map"),
            Stream("threshold", units="S", long_name="midpoint between g_off and g_on"),
            Stream("match", units="", long_name="fraction of pixels whose thresholded read-back matches"),
            PulseHistory(),
        ]

    def outcome(self) -> dict:
        """Fraction of pixels whose thresholded read-back matches the image; the programming pass's numbers."""
        return {"match": (float(self.recorded("match")[-1]), ""), **programming_outcome(self, self.target)}

    def plan(self) -> Iterator[Step]:
        yield Step("program the image", self.program, estimate=estimate(self.p))
        yield Step("read the map back", self.read_back, estimate=0.01)

    def program(self) -> None:
        program(self, self.p, self.macro, self.row, self.col, self.target)

    def read_back(self) -> None:
        """Averaged read of the whole macro; threshold at the midpoint and compare with the image."""
        g = averaged_read(self.bench.macro_controller, self.macro, self.row, self.col, self.p.readback_reads,
                          window=self.p.read_window).reshape(self.shape)
        threshold = 0.5 * (self.p.g_on + self.p.g_off)
        self.record("readback", g)
        self.record("threshold", threshold)
        self.record("match", float(np.mean((g > threshold) == self.image)))
