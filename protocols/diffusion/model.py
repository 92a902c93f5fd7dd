"""The score network of the seed experiment, in numpy (inference only).

An MLP 2 -> 14 -> 14 -> 2 with ReLU. A Gaussian Fourier time embedding (7 fixed
frequencies f ~ N(0, 1), sin and cos of 2 pi f t -> 14 values) is added to both
hidden pre-activations with unit weight, and the output is multiplied by a fixed
amplitude (5 in the shipped models). The conditional variant adds one fixed vector
per class (the class embedding, width 14) to both hidden pre-activations as well.

Layout of the weights is the crossbar layout: ``w[k]`` has shape (inputs, outputs),
so row i of ``w1`` is driven by input line i and column j sums into hidden unit j,
and a layer computes ``y = x @ w + b``. The embeddings enter as additive inputs of
the hidden pre-activations, i.e. as DAC voltages summed in at the TIA node.

Diffusion time ``t`` is dimensionless, in [0, 1]; states ``x`` are in data units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

HIDDEN = 14          # hidden width of the seed's network
N_FREQUENCIES = HIDDEN // 2


def fourier_time_embedding(t: np.ndarray | float, frequencies: np.ndarray) -> np.ndarray:
    """Gaussian Fourier features of diffusion time.

    t: dimensionless diffusion time(s), any shape, usually in [0, 1].
    frequencies: (F,) fixed frequencies (dimensionless, drawn ~ N(0, 1)).
    Returns shape ``t.shape + (2F,)``: ``[sin(2 pi f t), cos(2 pi f t)]``, each in [-1, 1].
    """
    arg = 2.0 * np.pi * np.asarray(t, dtype=float)[..., None] * frequencies
    return np.concatenate([np.sin(arg), np.cos(arg)], axis=-1)


def relu(a: np.ndarray) -> np.ndarray:
    """Rectified linear unit (the ideal inverting-amplifier activation)."""
    return np.maximum(a, 0.0)


@dataclass
class ScoreNet:
    """Score network s(x, t[, c]) of the seed: 2 -> 14 -> 14 -> 2, ReLU.

    Attributes (all float64 numpy arrays; shapes for ``dim`` = 2, hidden 14):
        w1 (2, 14), b1 (14,), w2 (14, 14), b2 (14,), w3 (14, 2), b3 (2,):
            layer weights in crossbar layout (inputs, outputs) and biases.
        frequencies (7,): time-embedding frequencies, fixed at creation.
        amplitude: output scale, dimensionless (5 as shipped), > 0.
        class_embedding (n_classes, 14) or None: one fixed vector per class,
            added to both hidden pre-activations (conditional model only).
    """

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    w3: np.ndarray
    b3: np.ndarray
    frequencies: np.ndarray
    amplitude: float = 5.0
    class_embedding: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        dim, hidden = np.shape(self.w1)
        expected = {
            "b1": (hidden,), "w2": (hidden, hidden), "b2": (hidden,),
            "w3": (hidden, dim), "b3": (dim,), "frequencies": (hidden // 2,),
        }
        for name, shape in expected.items():
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"{name}: shape {np.shape(getattr(self, name))}, expected {shape}")
        if hidden % 2:
            raise ValueError(f"w1: hidden width {hidden} must be even (sin and cos halves)")
        if not self.amplitude > 0:
            raise ValueError(f"amplitude: must be > 0, got {self.amplitude}")
        if self.class_embedding is not None and np.ndim(self.class_embedding) != 2:
            raise ValueError("class_embedding: expected shape (n_classes, hidden)")
        if self.class_embedding is not None and np.shape(self.class_embedding)[1] != hidden:
            raise ValueError(f"class_embedding: width {np.shape(self.class_embedding)[1]} != {hidden}")

    # ----------------------------------------------------------------- shape
    @property
    def dim(self) -> int:
        """Dimension of the data (2)."""
        return int(self.w1.shape[0])

    @property
    def hidden(self) -> int:
        """Hidden width (14)."""
        return int(self.w1.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes of the conditional model; 0 when unconditional."""
        return 0 if self.class_embedding is None else int(self.class_embedding.shape[0])

    @property
    def conditional(self) -> bool:
        """True when the network takes a class label."""
        return self.class_embedding is not None

    # ------------------------------------------------------------ embeddings
    def time_embedding(self, t: np.ndarray | float) -> np.ndarray:
        """Time embedding of ``t`` (dimensionless), shape ``t.shape + (hidden,)``, in [-1, 1]."""
        return fourier_time_embedding(t, self.frequencies)

    def condition_embedding(self, cond: np.ndarray | int | None, n: int) -> np.ndarray:
        """Class vectors for ``n`` samples: shape (n, hidden), or (1, hidden) of zeros.

        cond: class index per sample (shape (n,)) or one index for all; None only
        for the unconditional model.
        """
        if cond is None:
            if self.conditional:
                raise ValueError("cond: the conditional model needs a class label per sample")
            return np.zeros((1, self.hidden))
        if not self.conditional:
            raise ValueError("cond: this model is unconditional; pass cond=None")
        labels = np.broadcast_to(np.asarray(cond), (n,))
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"cond: class labels must be integers, got {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise ValueError(f"cond: labels must lie in [0, {self.n_classes - 1}]")
        return self.class_embedding[labels]

    # --------------------------------------------------------------- forward
    def hidden_activations(
        self, x: np.ndarray, t: np.ndarray | float, cond: np.ndarray | int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both hidden activations (after ReLU), each shape (N, hidden).

        x: states (N, dim) in data units; t: scalar or (N,) diffusion time in [0, 1].
        """
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (N, {self.dim}), got {x.shape}")
        extra = self.time_embedding(t) + self.condition_embedding(cond, x.shape[0])
        h1 = relu(x @ self.w1 + self.b1 + extra)
        h2 = relu(h1 @ self.w2 + self.b2 + extra)
        return h1, h2

    def __call__(
        self, x: np.ndarray, t: np.ndarray | float, cond: np.ndarray | int | None = None
    ) -> np.ndarray:
        """Score estimate, shape (N, dim), in 1 / data units.

        x: (N, dim) states; t: scalar or (N,) diffusion time in [0, 1];
        cond: class labels (N,) or one int (conditional model), else None.
        """
        _, h2 = self.hidden_activations(x, t, cond)
        return self.amplitude * (h2 @ self.w3 + self.b3)

    def forward_fast(self, x: np.ndarray, extra: np.ndarray) -> np.ndarray:
        """Score without argument checks, for samplers' inner loops.

        x: (N, dim); extra: time + condition embedding, broadcastable to (N, hidden).
        """
        h1 = np.maximum(x @ self.w1 + (self.b1 + extra), 0.0)
        h2 = np.maximum(h1 @ self.w2 + (self.b2 + extra), 0.0)
        return self.amplitude * (h2 @ self.w3 + self.b3)

    # ------------------------------------------------------------ conversion
    def arrays(self) -> dict[str, np.ndarray]:
        """All parameters as named arrays (the on-disk form, see ``weights.py``)."""
        out = {
            "w1": self.w1, "b1": self.b1, "w2": self.w2, "b2": self.b2,
            "w3": self.w3, "b3": self.b3, "frequencies": self.frequencies,
            "amplitude": np.asarray(self.amplitude, dtype=float),
        }
        if self.class_embedding is not None:
            out["class_embedding"] = self.class_embedding
        return {k: np.asarray(v, dtype=float) for k, v in out.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ScoreNet:
        """Inverse of :meth:`arrays`; missing entries raise ``KeyError`` naming them."""
        required = ("w1", "b1", "w2", "b2", "w3", "b3", "frequencies", "amplitude")
        missing = [k for k in required if k not in arrays]
        if missing:
            raise KeyError(f"score-network arrays missing: {missing}")
        emb = arrays.get("class_embedding")
        return cls(
            **{k: np.array(arrays[k], dtype=float) for k in required if k != "amplitude"},
            amplitude=float(arrays["amplitude"]),
            class_embedding=None if emb is None else np.array(emb, dtype=float),
        )

    @classmethod
    def random(
        cls, rng: np.random.Generator, dim: int = 2, hidden: int = HIDDEN,
        amplitude: float = 5.0, n_classes: int = 0,
    ) -> ScoreNet:
        """Untrained network with PyTorch-style uniform initialisation (tests, training start).

        n_classes: 0 for the unconditional model; else the class embedding starts as a
        random projection of the one-hot labels (entries ~ N(0, 1)), as in the paper.
        """
        def layer(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
            bound = 1.0 / np.sqrt(n_in)
            return rng.uniform(-bound, bound, (n_in, n_out)), rng.uniform(-bound, bound, n_out)

        w1, b1 = layer(dim, hidden)
        w2, b2 = layer(hidden, hidden)
        w3, b3 = layer(hidden, dim)
        freqs = rng.standard_normal(hidden // 2)
        emb = rng.standard_normal((n_classes, hidden)) if n_classes else None
        return cls(w1, b1, w2, b2, w3, b3, freqs, amplitude, emb)
