"""program-model: map a trained score network to conductance pairs and write-verify it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from protocols.characterization.write_verify_algorithm import WriteVerifyConfig
from protocols.diffusion.analog import resolve_model
from protocols.diffusion.mapping import MappedNetwork, MappingConfig, map_score_net
from protocols.diffusion.network_programming import (
    network_outcome,
    program_and_record,
    programming_specs,
    weights_plot,
)
from protocols.diffusion.placement import recorded_placement
from protocols.engine.datasets import Spec
from protocols.engine.protocol import ParameterError, Protocol, Step, param

if TYPE_CHECKING:
    from protocols.diffusion.weights import TrainedModel
    from protocols.engine.bench_shape import BenchShape

PROGRAM_TIME = 5.0  # s, typical bench time of programming the ~600 cells of the score network


class ProgramModel(Protocol):
    """Map a trained score network onto RRAM differential pairs and write-verify it."""

    name = "program-model"
    signal = "programmed_weight"

    @dataclass
    class Params:
        model: str = param("ring", help="shipped model (ring, ring-plain, digits, digits-plain) or a model .npz file")
        first_macro: int = param(0, limits=(0, 255), help="macro of the first layer (one macro per layer)")
        g_min: float = param(2e-6, unit="S", limits=(0.5e-6, 150e-6), help="bottom of the programmable window")
        g_max: float = param(65e-6, unit="S", limits=(1e-6, 150e-6), help="top of the programmable window")
        fill: float = param(0.95, limits=(0.1, 1.0), help="window fraction the largest |weight| spans")
        v_bias: float = param(0.1, unit="V", limits=(0.01, 0.5), envelope="read_bias", help="bias-row voltage")
        x_scale: float = param(0.1, unit="V", limits=(0.01, 0.5), help="integrator volts per data unit")
        tolerance: float = param(0.4e-6, unit="S", limits=(0.05e-6, 10e-6), help="write-verify tolerance")
        max_pulses: int = param(60, limits=(1, 1000), help="write-verify pulse budget per cell")
        reads: int = param(8, limits=(1, 64), help="reads averaged per cell for the read-back")

    def __init__(self, params: object = None) -> None:
        super().__init__(params)
        check_window(self.p)

    @cached_property
    def mapped(self) -> MappedNetwork:
        """The mapping (deterministic: seeded activation survey), computed once."""
        return map_score_net(resolve_model(self.p.model), mapping_config(self.p))

    def validate(self, shape: BenchShape) -> None:
        """The model loads and maps; its layers fit the board from first_macro on."""
        check_fits_board(shape, self.mapped, self.p.first_macro)

    def datasets(self) -> Sequence[Spec]:
        return [*programming_specs(self.mapped), weights_plot()]

    def outcome(self) -> dict:
        """Weight and pair-difference RMS errors of the programmed network, stuck cells, round trips."""
        return network_outcome(self, self.mapped)

    def plan(self) -> Iterator[Step]:
        yield Step("write-verify the network and read it back", self.program, estimate=PROGRAM_TIME)

    def program(self) -> None:
        """Write-verify every pair (reference cells first), then read every cell back."""
        program_and_record(self, self.mapped, write_verify_config(self.p), self.p.reads)


# -- shared with ``sample``, which programs the network the same way -----------------------

def check_window(p: ProgramModel.Params) -> None:
    """Refuse a programmable window whose bottom is not below its top (ParameterError)."""
    if p.g_min >= p.g_max:
        raise ParameterError(f"g_min ({p.g_min} S) must be below g_max ({p.g_max} S)")


def mapping_config(p: ProgramModel.Params, h_scale: float | None = None) -> MappingConfig:
    """The mapping settings of the parameters; h_scale: the hidden scale (V per unit) a
    board imposes, None to take the activation survey's."""
    return MappingConfig(g_min=p.g_min, g_max=p.g_max, fill=p.fill, v_bias=p.v_bias, x_scale=p.x_scale,
                         first_macro=p.first_macro, h_scale=h_scale)


def write_verify_config(p: ProgramModel.Params) -> WriteVerifyConfig:
    return WriteVerifyConfig(tolerance=p.tolerance, max_pulses=p.max_pulses)


def check_fits_board(shape: BenchShape, mapped: MappedNetwork, first_macro: int) -> None:
    """Refuse a network that runs past the controller's last macro (one macro per layer) or
    a layer larger than a macro."""
    last = first_macro + len(mapped.layers) - 1
    if last >= shape.n_macros:
        raise ParameterError(f"first_macro={first_macro}: the network needs macros up to {last}, "
                             f"the board has {shape.n_macros}")
    for k, layer in enumerate(mapped.layers):
        rows, cols = layer.row0 + layer.n_in + layer.bias_rows, layer.col0 + 2 * layer.n_out
        if rows > shape.rows or cols > shape.cols:
            raise ParameterError(f"model: layer {k} needs {rows}x{cols} cells (inputs and bias rows x "
                                 f"G+/G- columns); a macro has {shape.rows}x{shape.cols}")


class ProgrammedNetwork:
    """The score network a protocol programs and then runs on the board (``network-field``,
    ``network-nodes``), held by the protocol (``self.network = ProgrammedNetwork(self)``): the
    model of its parameters (:class:`ProgramModel.Params` and ``condition``), its mapping, the
    class a conditional model runs with, their checks, and the programming step with the
    placement it ended with."""

    def __init__(self, proto: Any) -> None:
        self._proto = proto
        self.p = proto.p
        check_window(self.p)
        self._placed: MappedNetwork | None = None

    def program(self) -> None:
        """Write-verify the network and read it back; the runs use the placement it ended with."""
        self._placed = program_and_record(self._proto, self.mapped, write_verify_config(self.p), self.p.reads).mapped

    @property
    def placed(self) -> MappedNetwork:
        """The network as programmed in this run (its recorded ``layer_region``, so a resumed run
        keeps a placement moved off stuck cells before the interruption)."""
        if self._placed is None:
            self._placed = recorded_placement(self.mapped, self._proto.recorded("layer_region"),
                                              "this run's layer_region")
        return self._placed

    @cached_property
    def model(self) -> TrainedModel:
        return resolve_model(self.p.model)

    @cached_property
    def mapped(self) -> MappedNetwork:
        return map_score_net(self.model, mapping_config(self.p))

    @property
    def condition(self) -> int | None:
        """The class of a conditional model, None for an unconditional one."""
        return self.p.condition if self.model.net.conditional else None

    def check(self, shape: BenchShape) -> None:
        """The model maps and fits the board from ``first_macro`` on; a conditional model has the class asked for."""
        check_fits_board(shape, self.mapped, self.p.first_macro)
        if self.model.net.conditional and self.p.condition >= self.model.net.n_classes:
            raise ParameterError(f"condition={self.p.condition}: the model has {self.model.net.n_classes} classes")
