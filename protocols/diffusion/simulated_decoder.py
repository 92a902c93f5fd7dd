"""The VAE decoder of the digits task on simulated RRAM: the paper's decoder macro.

The dense decoder (latent -> ReLU hidden -> pixel logits, ``protocols.diffusion.vae``)
is mapped with the same one-sided differential pairs as the score network
(:func:`~protocols.diffusion.mapping.map_dense`), write-verified reference cells
first, and evaluated through the analog network model with read noise on every
conductance (:func:`instruments.sim.analog_network.network_forward`). The logits are
digitised and the sigmoid applied by the host.

The decoder is a separate chip with its own simulated array (one macro per layer,
sized to the layer; the bench's controller board holds the score network), as the
seed's decoder is a separate deconvolution module. Its input is the integrator
voltage itself: a latent x (diffusion units) arrives as ``x_scale x`` volts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from instruments.macro_controller_wire import LayerRegion
from protocols.characterization.write_verify_algorithm import WriteVerifyConfig
from protocols.diffusion.analog import Programming, program_network
from protocols.diffusion.mapping import RAIL_MARGIN, MappedNetwork, MappingConfig, map_dense
from protocols.diffusion.vae import VAE

if TYPE_CHECKING:
    from instruments.sim.analog_network import AnalogLayer
    from instruments.sim.device_params import DeviceParams
    from instruments.sim.world import SimWorld

#: Head-room over the surveyed activation ranges of the decoder.
DECODER_MARGIN = 1.25
#: Observation window (s) of one decoder read: one ADC conversion.
DECODER_WINDOW = 1e-6


def _sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))


@dataclass
class AnalogDecoder:
    """A VAE decoder programmed into its own simulated array.

    programming: outcome of write-verify (placement, final reads, pulses); world: the
    decoder chip's array; out_scale: V per logit unit at the output; read_noise_scale:
    multiplier of the device read noise (>= 0).
    """

    vae: VAE
    programming: Programming
    world: SimWorld
    out_scale: float
    read_noise_scale: float = 1.0

    @classmethod
    def program(cls, vae: VAE, x_scale: float, *, seed: int = 0, params: DeviceParams | None = None,
                config: MappingConfig | None = None, write_verify: WriteVerifyConfig | None = None,
                read_noise_scale: float = 1.0, survey_images: np.ndarray | None = None) -> AnalogDecoder:
        """Map ``vae``'s decoder, write-verify it into a fresh simulated array and return it.

        x_scale: V per diffusion unit of the latent input (the integrators' scale, > 0);
        seed: seed of the decoder array; params: its device parameters; survey_images:
        images whose encoded means set the voltage scales (default: the digits dataset).
        """
        from instruments.sim.direct import DirectArrayAccess
        from instruments.sim.world import SimWorld

        if not read_noise_scale >= 0:
            raise ValueError(f"read_noise_scale must be >= 0, got {read_noise_scale}")
        cfg = config or MappingConfig(x_scale=x_scale)
        if survey_images is None:
            from protocols.diffusion.tasks import load_digit_images

            survey_images = load_digit_images().images
        (w1, b1), (w2, b2) = vae.decoder
        w1 = w1 * vae.latent_scale                        # per diffusion unit of the latent
        x = vae.to_diffusion(vae.encode(survey_images)[0])
        hidden = np.maximum(x @ w1 + b1, 0.0)
        h_scale = RAIL_MARGIN * cfg.v_rail / (DECODER_MARGIN * float(hidden.max()))
        out_scale = RAIL_MARGIN * cfg.v_rail / (DECODER_MARGIN * float(np.abs(hidden @ w2 + b2).max()))
        pairs = (map_dense(w1, b1, x_scale, h_scale, cfg), map_dense(w2, b2, h_scale, out_scale, cfg))
        layers = tuple(LayerRegion(k, 0, 0, p.n_in, p.n_out, p.n_bias, "linear" if k else "relu", p.r_feedback)
                       for k, p in enumerate(pairs))
        mapped = MappedNetwork(layers, pairs, None, x_scale, h_scale, out_scale, cfg.v_bias, cfg.v_rail, cfg)
        rows = max(p.g_pos.shape[0] for p in pairs)
        cols = max(2 * p.n_out for p in pairs)
        world = SimWorld(params=params, seed=seed, n_macros=len(pairs), rows=rows, cols=cols)
        programming = program_network(DirectArrayAccess(world), mapped, write_verify, shape=world.shape,
                                      now=world.clock.now, sleep=world.clock.sleep, max_relocations=0)
        return cls(vae, programming, world, out_scale, read_noise_scale)

    def analog_layers(self) -> list[AnalogLayer]:
        """The programmed layers with the array's true conductances now and their read-noise sigma."""
        from instruments.sim.analog_network import AnalogLayer
        from instruments.sim.device import read_noise_sigma

        mapped = self.programming.mapped
        g = mapped.gather({k: self.world.conductance(k) for k in range(len(mapped.layers))})
        layers = []
        for (gp, gn), pair, lay in zip(mapped.split(g), mapped.pairs, mapped.layers, strict=True):
            sp = sn = None
            if self.read_noise_scale > 0:
                sp = self.read_noise_scale * read_noise_sigma(gp, DECODER_WINDOW, self.world.params)
                sn = self.read_noise_scale * read_noise_sigma(gn, DECODER_WINDOW, self.world.params)
            layers.append(AnalogLayer(gp, gn, n_bias=pair.n_bias, r_feedback=pair.r_feedback,
                                      activation=lay.activation, sigma_pos=sp, sigma_neg=sn))
        return layers

    def decode(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Images (N, pixels) in [0, 1] from latents ``x`` (N, 2) in diffusion units; rng draws read noise."""
        from instruments.sim.analog_network import network_forward

        mapped = self.programming.mapped
        volts = mapped.to_volts(x)
        y = network_forward(self.analog_layers(), volts, v_bias=mapped.v_bias, v_rail=mapped.v_rail, rng=rng)
        return _sigmoid(y / self.out_scale)
