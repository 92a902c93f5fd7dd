"""The score-based diffusion model of the seed experiment.

numpy (no torch needed): ``model`` (score network), ``sde`` (VP-SDE), ``samplers``
(probability-flow ODE and reverse SDE), ``tasks`` (ring and digits data, digit
classifier), ``emnist`` (local EMNIST letters), ``vae`` (VAE inference), ``weights``
(model files, shipped models), ``evaluate`` (software-baseline metrics).
torch (the ``train`` extra): ``train`` (score network), ``train_vae``, ``pipelines``.
"""
