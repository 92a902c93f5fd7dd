"""The seed paper's panels: which run and which figure of its report each one is.

One row per panel id of Figs. 2-5 (``../shared/seeds``: the captions; seed-facts.md:
the published numbers). ``run`` names a run of the paper plan (the folder under
``runs/``, or ``speed-energy`` for the comparison's own figures), ``figures`` the stems
of that run's report figures (a stem ending in ``*`` takes every figure it begins),
``section`` the report section whose numbers the page shows, ``paper`` what the paper
publishes for it. A panel with ``missing`` set has no figure here yet; the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Panel:
    """One panel of the seed paper and where its figure comes from."""

    id: str
    caption: str
    run: str
    figures: tuple[str, ...] = ()
    section: str = ""
    paper: str = ""
    missing: str = ""
    #: The paper's value of some of our numbers: (number key, its published value).
    published: tuple[tuple[str, str], ...] = ()
    #: Number keys shown first (the page shows at most 16 numbers per panel).
    first: tuple[str, ...] = ()
    #: Further runs whose report figures of the same stems the panel shows too (one task each).
    also: tuple[str, ...] = ()


PANELS: tuple[Panel, ...] = (
    Panel("2c", "Quasi-static I-V sweeps of one cell: repeatable bipolar resistive switching.", "iv",
          ("iv_loops",), "iv", "bipolar switching, SET at positive and RESET at negative voltage"),
    Panel("2d", "Discernible conductance states of resistive memory cells (write-verify to evenly spaced "
          "levels, read back).", "levels", ("levels",), "programming", "more than 64 discernible linear states",
          first=("levels.levels", "levels.separable", "levels.overlap", "levels.min_gap_over_sigma"),
          published=(("levels.separable", "more than 64"),)),
    Panel("2e", "Retention of different conductance states over time after programming.", "retention",
          ("retention",), "retention", "more than 1e6 s retention"),
    Panel("2f", "A 32x32 array programmed to display the moon-and-star conductance pattern.", "pattern",
          ("pattern",), "programming", "32x32 moon and star",
          first=("pattern_match",)),
    Panel("2g", "Conductance error distributions of the array at different times after programming.",
          "retention", ("error_distributions",), "retention", "distributions widen with time"),
    Panel("3a", "Voltage waveforms of the analog network during one sampling: the integrators (scope channels 1 "
          "and 2), the 14 + 14 hidden ReLU outputs and the 2 output nodes (the board's monitor multiplexer on channel "
          "4, one node per run of the same sampling).", "ring-nodes",
          ("nodes_waveforms",), "nodes", "integrators, hidden and output nodes during one sampling"),
    Panel("3b", "Offline-optimised weights and the weights programmed into the arrays.", "ring-program",
          ("weights",), "weights", "programmed weights follow the targets"),
    Panel("3c", "Histogram of each layer's input voltages over every recorded sample and time: layer 1 the "
          "integrators, layers 2 and 3 the outputs of hidden layers 1 and 2.", "ring-nodes",
          ("layer_inputs",), "nodes", "input voltages of each layer"),
    Panel("3d", "The network's 2-D output vector field with isopotential curves, measured through the loop at "
          "several diffusion times, beside the software score field and their difference.", "ring-field",
          ("vector_field",), "field", "arrows: output voltage vectors; red: isopotential curves"),
    Panel("3e", "Time slices of the 2-D distribution of 1,000 samplings, with example trajectories.",
          "ring-sample", ("time_slices", "samples"), "samples", "Gaussian noise evolves into the ring",
          first=("samples", "KL with sampling floor.KL x", "KL with sampling floor.KL y",
                 "KL with sampling floor.KL pooled", "scores (analog, software).mean_radius"),
          published=(("samples", "1000"),)),
    Panel("3f", "Generation time per sample: the analog loop against the strongest digital baseline.",
          "speed-energy", ("fig3f_ring_time",), "ring", "64.8x faster (a later version: 69.0x)",
          published=(("speedup", "64.8 (later version 69.0)"),)),
    Panel("3g", "Energy per sample: the analog loop against the digital baseline.", "speed-energy",
          ("fig3g_ring_energy",), "ring", "5.2x less energy (caption: 80.8 % less; later version 31.5 %)",
          published=(("energy_ratio", "5.2"),)),
    Panel("4c", "Example feature maps of the decoder mapping latents back to pixels: each layer's output maps "
          "for one analog latent per class, as the board's ADC read them (the deconvolution decoder programmed on "
          "the bench's macros).", "digits-sample", ("decoder_maps",), "samples",
          "feature maps of the resistive-memory deconvolution decoder"),
    Panel("4d", "Distribution of three conditional classes in the 2-D latent space.", "digits-sample",
          ("samples", "decoded_*", "class_accuracy"), "samples",
          "500 samplings per class; letters H, K, U there, digits 0, 1, 7 here",
          first=("samples", "accuracy.analog + RRAM decoder on the bench", "accuracy.software baseline",
                 "KL with sampling floor.KL pooled"),
          published=(("samples", "1500 (500 per class)"),)),
    Panel("4e", "Time evolution of the three conditional distributions in the latent space (scope traces of "
          "each class's first samples, integrator voltages).", "digits-sample", ("time_slices",), "samples",
          "three classes separate from one Gaussian"),
    Panel("4f", "One initial latent under three conditions: paths, waveforms (scope traces of the integrators) "
          "and decoded images. Every class starts from class 0's initial noise, sample by sample.", "digits-sample",
          ("shared_start",), "samples", "one initial latent decoded into each class's letter"),
    Panel("4g", "Generation time per sample of the conditional task against the digital baseline.",
          "speed-energy", ("fig4g_digits_time",), "digits", "156.5x faster (a later version: 116.5x)",
          published=(("speedup", "156.5 (later version 116.5)"),)),
    Panel("4h", "Energy per sample of the conditional task against the digital baseline.", "speed-energy",
          ("fig4h_digits_energy",), "digits", "4.1x less energy (later version: 52.0 % less)",
          published=(("energy_ratio", "4.1"),)),
    Panel("5b", "Write noise: repeated programming of the same targets.", "write-noise", ("write_noise",),
          "write_noise", "programming error grows with the conductance"),
    Panel("5c", "Read noise over different time scales.", "read-noise", ("read_noise",), "read_noise",
          "read noise at different time scales"),
    Panel("5e", "Generation quality against read and write noise levels (every pair, noise-aware ring model).",
          "noise-map", ("noise_heatmaps_*",),
          "noise_sweep", "quality near the software baseline at the chip's noise"),
    Panel("5f", "Read and write noise with and without noise-aware training: one figure per task, the ring and "
          "the conditional digits task (noise-aware digits against digits-plain, on the same VAE).", "noise-sweep",
          ("noise_robustness_*",), "noise_sweep", "noise-aware training keeps quality at higher noise",
          also=("digits-noise-sweep",)),
)

PANEL_IDS = tuple(p.id for p in PANELS)
