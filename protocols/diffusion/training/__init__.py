"""Training the shipped models (needs the ``train`` extra: PyTorch).

Kept in a subpackage of its own: the protocol registry imports every module of
:mod:`protocols.diffusion` but not its subpackages, so listing or running protocols
never needs torch. ``rrambench train`` calls :mod:`.pipelines`.
"""
