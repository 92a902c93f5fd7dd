"""Convolution and transposed convolution as matrix multiplies (numpy), the decoder's unrolling.

The conditional task's decoder (:mod:`~protocols.diffusion.conv_vae`) is a dense layer and
two transposed convolutions (kernel 3, stride 2, padding 1, output padding 1: each
doubles height and width, as the authors' ``convVAE``). Each layer becomes **one crossbar
matrix applied to many input vectors** (:class:`UnrolledLayer`), the im2col form of the
transposed convolution in its sub-pixel (polyphase) arrangement:

- a stride-2 transposed convolution gives output pixel ``(2i + py, 2j + px)`` from the
  input pixels ``(i, j)``, ``(i, j + 1)``, ``(i + 1, j)``, ``(i + 1, j + 1)`` only (taps
  ``ky = 1`` for ``py = 0``; ``ky = 2`` from row ``i`` and ``ky = 0`` from row ``i + 1`` for
  ``py = 1``; the same along x). So the 2x2 window of input pixels at ``(i, j)``
  (``4 C_in`` values, zero beyond the map's edge) determines the whole 2x2 output block
  it owns (``4 C_out`` values): one matrix ``(4 C_in, 4 C_out)`` (:func:`deconv_matrix`)
  multiplies one window vector per input pixel;
- no two windows write the same output pixel, so the assembly (col2im) is a pure
  rearrangement, with no sums: the bias and the activation are applied where the
  product is taken, by the board's own amplifiers.

The Toeplitz form (the whole layer as one matrix from every input pixel to every output
pixel) would need ``(C_in H W) x (4 C_out H W)`` pairs, almost all zero; the im2col form
needs ``4 C_in x 4 C_out`` pairs whatever the image size, used ``H W`` times per image.
Matrices are in crossbar layout, ``y = x @ w + b`` with ``w`` (inputs, outputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Kernel tap of the 3x3, stride-2, padding-1 transposed convolution that carries window
#: offset ``d`` (0: pixel i, 1: pixel i + 1) to output phase ``p`` (0: row 2i, 1: row 2i + 1);
#: -1 where none does.
_TAP = np.array([[1, -1], [2, 0]])
KINDS = ("dense", "deconv")


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 2, padding: int = 1) -> np.ndarray:
    """Convolution (cross-correlation, as torch's ``conv2d``): x (N, C_in, H, W), w (C_out,
    C_in, k, k), b (C_out,) -> (N, C_out, H', W'), H' = (H + 2 padding - k) // stride + 1."""
    x = np.asarray(x, dtype=float)
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    # win: (N, C_in, H', W', k, k) -> im2col rows (N, H', W', C_in k k)
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(win.shape[0], win.shape[2], win.shape[3], -1)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return out.transpose(0, 3, 1, 2)


def deconv_matrix(w: np.ndarray) -> np.ndarray:
    """The (4 C_in, 4 C_out) crossbar matrix of a 3x3, stride-2 transposed convolution.

    w: torch ``ConvTranspose2d`` weight (C_in, C_out, 3, 3). Rows are ordered (c_in, dy, dx)
    (the window, :meth:`UnrolledLayer.vectors`), columns (c_out, py, px) (the output block).
    """
    w = np.asarray(w, dtype=float)
    if w.ndim != 4 or w.shape[2:] != (3, 3):
        raise ValueError(f"w must be a (C_in, C_out, 3, 3) transposed-convolution kernel, got {w.shape}")
    c_in, c_out = w.shape[:2]
    m = np.zeros((c_in, 2, 2, c_out, 2, 2))
    for dy in range(2):
        for py in range(2):
            ky = _TAP[py, dy]
            if ky < 0:
                continue
            for dx in range(2):
                for px in range(2):
                    kx = _TAP[px, dx]
                    if kx >= 0:
                        m[:, dy, dx, :, py, px] = w[:, :, ky, kx]
    return m.reshape(4 * c_in, 4 * c_out)


@dataclass(frozen=True)
class UnrolledLayer:
    """One decoder layer as a crossbar multiply of many input vectors.

    kind: "dense" (one vector per image) or "deconv" (3x3 stride-2 transposed convolution:
    one vector per input pixel, its 2x2 window; :func:`deconv_matrix`). w: (n_in, n_out)
    crossbar matrix; b: (n_out,) bias; relu: ReLU after the product (else linear);
    in_shape, out_shape: one image's input and output, (n,) or (C, H, W).
    """

    kind: str
    w: np.ndarray
    b: np.ndarray
    relu: bool
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.w.ndim != 2 or self.b.shape != (self.w.shape[1],):
            raise ValueError(f"w must be (n_in, n_out) and b (n_out,), got {self.w.shape}, {self.b.shape}")
        if self.kind == "deconv":
            c, h, wd = self.in_shape
            if self.w.shape[0] != 4 * c or self.out_shape != (self.w.shape[1] // 4, 2 * h, 2 * wd):
                raise ValueError(f"deconv shapes {self.in_shape} -> {self.out_shape} do not fit w {self.w.shape}")
        elif self.w.shape[0] != int(np.prod(self.in_shape)) or self.w.shape[1] != int(np.prod(self.out_shape)):
            raise ValueError(f"dense shapes {self.in_shape} -> {self.out_shape} do not fit w {self.w.shape}")

    @property
    def n_in(self) -> int:
        return int(self.w.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.w.shape[1])

    @property
    def vectors_per_image(self) -> int:
        """Crossbar multiplies per image: 1 (dense) or the input map's H W (deconv)."""
        return 1 if self.kind == "dense" else int(self.in_shape[1] * self.in_shape[2])

    def vectors(self, x: np.ndarray) -> np.ndarray:
        """Input vectors (N vectors_per_image, n_in) of images x (N, *in_shape), image by image
        (a deconv's in row-major pixel order, each its 2x2 window ordered (c, dy, dx))."""
        x = np.asarray(x, dtype=float).reshape(-1, *self.in_shape)
        if self.kind == "dense":
            return x.reshape(len(x), -1)
        n, c, h, w = x.shape
        xp = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))          # the window's zero beyond the edge
        win = np.lib.stride_tricks.sliding_window_view(xp, (2, 2), axis=(2, 3))  # (N, C, H, W, 2, 2)
        return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * w, 4 * c)

    def assemble(self, y: np.ndarray) -> np.ndarray:
        """Output images (N, *out_shape) from the products (N vectors_per_image, n_out) (col2im:
        each vector's 2x2 output block in its place; nothing overlaps)."""
        y = np.asarray(y, dtype=float)
        if self.kind == "dense":
            return y.reshape(-1, *self.out_shape)
        c, h2, w2 = self.out_shape
        h, w = h2 // 2, w2 // 2
        blocks = y.reshape(-1, h, w, c, 2, 2)                       # (N, i, j, c, py, px)
        return blocks.transpose(0, 3, 1, 4, 2, 5).reshape(-1, c, h2, w2)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The layer in software, through the same unrolling: (N, *in_shape) -> (N, *out_shape)."""
        y = self.vectors(x) @ self.w + self.b
        return self.assemble(np.maximum(y, 0.0) if self.relu else y)


def run_layers(layers: list[UnrolledLayer], x: np.ndarray) -> np.ndarray:
    """Images through every layer in software: (N, *layers[0].in_shape) -> (N, prod(out_shape))."""
    for layer in layers:
        x = layer.forward(x)
    return x.reshape(len(x), -1)
