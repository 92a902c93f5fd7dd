"""The score-based diffusion model of the seed experiment.

numpy (no torch needed): ``model`` (score network), ``sde`` (VP-SDE), ``samplers``
(probability-flow ODE and reverse SDE), ``tasks`` (ring and digits data, digit
classifier), ``emnist`` (local EMNIST letters), ``conv_vae`` (the conditional task's
convolutional VAE and its classifier), ``deconv`` (its decoder's layers as crossbar
multiplies), ``rram_decoder`` (that decoder on the bench's macros), ``vae`` (the dense VAE
of older files), ``weights`` (model files, shipped models), ``evaluate``
(software-baseline metrics).
torch (the ``train`` extra): ``training.score_net``, ``training.vae``, ``training.pipelines``.
"""
