"""The VAE decoder on the bench's macros: unrolled, tiled, placed, programmed and run on the board.

Each decoder layer is one crossbar matrix (:class:`~protocols.diffusion.deconv.UnrolledLayer`:
the dense layer, then the transposed convolutions in im2col form). A matrix becomes
differential pairs as the score network's layers do (:func:`~protocols.diffusion.mapping.map_dense`:
one-sided pairs, TIA feedback from the largest weight, bias rows at ``v_bias``); one whose
outputs need more than a macro's columns (two per output) is **tiled by columns**: tiles of
at most ``cols / 2`` outputs, each its own layer region with its own feedback resistance
and bias rows, all fed the same input vector. Inputs and bias rows must fit a macro's rows
(a tile is never split by rows, so every output's sum, bias and activation stay on the
board). Tiles are packed into the macros the score network leaves free (first fit, tallest
first; several tiles share a macro), and write-verified like the score network, moving a
tile off a stuck cell to any free region of those macros.

Decoding a batch of latents: the host drives each layer's input vectors through the board's
EVAL_LAYER (``MacroController.evaluate_layer``), one call per tile, reads the activation
outputs the board digitises, rearranges them into the next layer's input vectors (col2im,
then im2col: the only host work besides the final sigmoid) and sends them back as DAC
voltages. Voltage scales: the latents enter at the integrators' scale (``x_scale`` V per
diffusion unit, clipped to the DAC range); each layer's outputs use ``RAIL_MARGIN`` of the
rail for the largest activation met on the encoded training images, with
``DECODER_MARGIN`` head-room.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from instruments.macro_controller_wire import LayerRegion
from protocols.diffusion.deconv import UnrolledLayer
from protocols.diffusion.mapping import RAIL_MARGIN, MappedNetwork, MappingConfig, free_spot, map_dense

log = logging.getLogger(__name__)

#: Head-room over the largest activations met on the training images.
DECODER_MARGIN = 1.25
#: Dataset-name prefix of the decoder's programming in a run file.
PREFIX = "decoder_"


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))


@dataclass(frozen=True)
class Tile:
    """One layer region of the decoder: columns ``start:stop`` of layer ``layer``'s matrix."""

    layer: int
    start: int
    stop: int


@dataclass(frozen=True)
class MappedDecoder:
    """A decoder mapped onto the board.

    layers: the unrolled decoder, its first layer taking diffusion data units; tiles: one per
    region of ``network`` (same order); network: every tile as a layer region with its target
    pairs (programming, placement, relocation); scales: V per unit at the input of each
    layer and at the output (len(layers) + 1); v_in: largest |input| voltage (the DAC range
    the latents are clipped to).
    """

    layers: tuple[UnrolledLayer, ...]
    tiles: tuple[Tile, ...]
    network: MappedNetwork
    scales: tuple[float, ...]
    v_in: float

    def placed(self, network: MappedNetwork) -> MappedDecoder:
        """The same decoder with the regions of ``network`` (as programmed)."""
        return replace(self, network=network)

    @property
    def macros(self) -> list[int]:
        """Macros holding a tile."""
        return sorted({lay.macro for lay in self.network.layers})

    def inputs(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Input voltages (N, 2) of latents ``x`` (N, 2) in diffusion units, clipped to +-v_in,
        and how many latents were clipped."""
        v = np.asarray(x, dtype=float) * self.scales[0]
        clipped = int(np.sum(np.any(np.abs(v) > self.v_in, axis=1)))
        if clipped:
            log.warning("decoder: %d of %d latents beyond the DAC range +-%.3g V clipped", clipped, len(v), self.v_in)
        return np.clip(v, -self.v_in, self.v_in), clipped

    def decode(self, board: Any, x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, int]:
        """Images (N, pixels) in [0, 1] of latents ``x`` (N, 2) decoded on ``board`` (its
        ``evaluate_layer``), and the number of latents clipped to the DAC range.

        seed: seeds the board's read noise (one seed per tile drawn from it).
        """
        maps, clipped = self.layer_maps(board, x, seed)
        return _sigmoid(maps[-1].reshape(len(x), -1) / self.scales[-1]), clipped

    def layer_maps(self, board: Any, x: np.ndarray, seed: int = 0) -> tuple[list[np.ndarray], int]:
        """Every layer's output maps (N, C, H, W) V as the board's ADC read them (Fig. 4c: the
        decoder's feature maps; the last one the pixel logits before the host's sigmoid), and
        the number of latents clipped to the DAC range. Arguments as :meth:`decode`."""
        rng = np.random.default_rng(seed)
        maps, clipped = self.inputs(x)
        found = []
        for k, layer in enumerate(self.layers):
            vectors = layer.vectors(maps)
            out = np.empty((len(vectors), layer.n_out))
            for tile, region in zip(self.tiles, self.network.layers, strict=True):
                if tile.layer == k:
                    out[:, tile.start:tile.stop] = board.evaluate_layer(region, vectors, self.network.v_bias,
                                                                        seed=int(rng.integers(2**32)))
            maps = layer.assemble(out)
            found.append(maps)
        return found, clipped

    def decode_ideal(self, x: np.ndarray, conductances: np.ndarray | None = None) -> np.ndarray:
        """Images the mapped decoder gives with an ideal circuit (no noise, no converters, no
        rails) for its target conductances or ``conductances`` (flat, ``network.cells()``
        order, S): the mapping's own check."""
        maps, _ = self.inputs(x)
        blocks = self.network.split(conductances if conductances is not None else self.network.cells()[3])
        v_bias = self.network.v_bias
        for k, layer in enumerate(self.layers):
            vectors = layer.vectors(maps)
            out = np.empty((len(vectors), layer.n_out))
            for tile, region, (gp, gn) in zip(self.tiles, self.network.layers, blocks, strict=True):
                if tile.layer == k:
                    w_v = region.r_feedback * (gp - gn)
                    pre = vectors @ w_v[: region.n_in] + v_bias * w_v[region.n_in:].sum(axis=0)
                    out[:, tile.start:tile.stop] = np.maximum(pre, 0.0) if layer.relu else pre
            maps = layer.assemble(out)
        return _sigmoid(maps.reshape(len(maps), -1) / self.scales[-1])


def layer_scales(layers: list[UnrolledLayer], survey: np.ndarray, x_scale: float, v_rail: float) -> list[float]:
    """V per unit at each layer's input and at the output: the latents at ``x_scale``; each
    layer's output so that its largest |activation| over ``survey`` (latents, diffusion
    units), times DECODER_MARGIN, sits at RAIL_MARGIN of the rail."""
    scales, maps = [float(x_scale)], np.asarray(survey, dtype=float)
    for layer in layers:
        maps = layer.forward(maps)
        top = float(np.max(np.abs(maps)))
        if not top > 0:
            raise ValueError("decoder: a layer gives only zeros on the survey latents")
        scales.append(RAIL_MARGIN * v_rail / (DECODER_MARGIN * top))
    return scales


def tile_layer(layer: UnrolledLayer, max_outputs: int) -> list[tuple[int, int]]:
    """Column ranges of a layer's tiles: as few as ``max_outputs`` allows, of near-equal size."""
    n = -(-layer.n_out // max_outputs)
    edges = np.linspace(0, layer.n_out, n + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def map_decoder(vae: Any, cfg: MappingConfig, shape: tuple[int, int, int], macros: list[int],
                survey: np.ndarray) -> MappedDecoder:
    """Map ``vae``'s decoder onto ``macros`` of a board of ``shape`` (n_macros, rows, cols).

    cfg: the mapping settings (window, fill, v_bias, x_scale, v_dac, v_rail); survey:
    latents (N, 2) in diffusion units whose activations set the voltage scales (the encoded
    training images, :func:`~protocols.diffusion.conv_vae.reference_latents`). ValueError,
    saying what, when a tile's rows or the tiles do not fit.
    """
    n_macros, rows, cols = shape
    if not macros:
        raise ValueError("decoder: no macro is free for it")
    layers = vae.decoder_layers(diffusion=True)
    scales = layer_scales(layers, survey, cfg.x_scale, cfg.v_rail)
    tiles, pairs = [], []
    for k, layer in enumerate(layers):
        for start, stop in tile_layer(layer, cols // 2):
            pair = map_dense(layer.w[:, start:stop], layer.b[start:stop], scales[k], scales[k + 1], cfg)
            if pair.g_pos.shape[0] > rows:
                raise ValueError(f"decoder layer {k}: {pair.n_in} inputs and {pair.n_bias} bias rows exceed a "
                                 f"macro's {rows} rows (fewer decoder channels)")
            tiles.append(Tile(k, start, stop))
            pairs.append(pair)
    blocked = np.ones(shape, dtype=bool)
    blocked[[m for m in macros if m < n_macros]] = False
    regions: list[LayerRegion | None] = [None] * len(tiles)
    for i in sorted(range(len(tiles)), key=lambda i: -pairs[i].g_pos.shape[0]):   # tallest first
        pair, layer = pairs[i], layers[tiles[i].layer]
        spot = free_spot(blocked, macros, pair.g_pos.shape[0], 2 * pair.n_out)
        if spot is None:
            raise ValueError(f"decoder: its {len(tiles)} tiles do not fit macros {macros} "
                             f"(tile {i}: {pair.g_pos.shape[0]} x {2 * pair.n_out} cells)")
        m, r, c = spot
        blocked[m, r:r + pair.g_pos.shape[0], c:c + 2 * pair.n_out] = True
        regions[i] = LayerRegion(m, r, c, pair.n_in, pair.n_out, pair.n_bias, "relu" if layer.relu else "linear",
                                 pair.r_feedback)
    network = MappedNetwork(tuple(regions), tuple(pairs), None, scales[0], scales[1], scales[-1], cfg.v_bias,
                            cfg.v_rail, cfg, shared_macros=True,
                            reserved_macros=frozenset(set(range(n_macros)) - set(macros)))
    return MappedDecoder(tuple(layers), tuple(tiles), network, tuple(scales), RAIL_MARGIN * cfg.v_dac)

