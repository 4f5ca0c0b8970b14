"""FFT convolution with a per-band kernel and its transpose, bound as one custom VJP.

The kernel enters as ``kernel_fft``: the ``rfft2`` of a kernel whose centre pixel is moved
to (0, 0), on a static grid ``fft_shape`` large enough that nothing wraps around.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "next_fast_len",
    "fft_shape_for",
    "kernel_to_fft",
    "convolve",
    "convolve_transpose",
    "convolve_op",
]


def next_fast_len(n: int) -> int:
    """Smallest 5-smooth integer (only factors 2, 3, 5) that is >= ``n``."""
    n = max(int(n), 1)
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def fft_shape_for(image_shape: tuple[int, int], kernel_shape: tuple[int, int]) -> tuple[int, int]:
    """Static FFT grid: smallest 5-smooth size >= image + kernel + 3 per axis."""
    return tuple(
        next_fast_len(int(i) + int(k) + 3) for i, k in zip(image_shape, kernel_shape, strict=True)
    )


def kernel_to_fft(kernel: np.ndarray, fft_shape: tuple[int, int]) -> jnp.ndarray:
    """(B, kh, kw) kernel centred on (kh//2, kw//2) -> (B, Fh, Fw//2+1) complex64 rfft2
    of the kernel rolled so that its centre sits at (0, 0)."""
    kernel = np.asarray(kernel, dtype=np.float64)
    kh, kw = kernel.shape[-2:]
    grid = np.zeros(kernel.shape[:-2] + tuple(fft_shape))
    grid[..., :kh, :kw] = kernel
    grid = np.roll(grid, (-(kh // 2), -(kw // 2)), axis=(-2, -1))
    return jax.device_put(np.fft.rfft2(grid).astype(np.complex64))  # no eager program


def convolve(images, kernel_fft, fft_shape):
    """Convolve each band with its kernel ('same' size, zero boundary).

    Args:
      images: (..., B, H, W) float32.
      kernel_fft: (B, Fh, Fw//2+1) complex64 from :func:`kernel_to_fft`.
      fft_shape: static (Fh, Fw) with Fh >= H + kh//2 and Fw >= W + kw//2.

    Returns:
      (..., B, H, W) float32.
    """
    h, w = images.shape[-2:]
    f = jnp.fft.rfft2(images, s=fft_shape) * kernel_fft
    return jnp.fft.irfft2(f, s=fft_shape)[..., :h, :w].astype(images.dtype)


def convolve_transpose(ct, kernel_fft, fft_shape):
    """Adjoint of :func:`convolve`: correlation, i.e. convolution with the flipped kernel.

    Args/Returns as :func:`convolve`.
    """
    h, w = ct.shape[-2:]
    f = jnp.fft.rfft2(ct, s=fft_shape) * jnp.conj(kernel_fft)
    return jnp.fft.irfft2(f, s=fft_shape)[..., :h, :w].astype(ct.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def convolve_op(images, kernel_fft, fft_shape):
    """:func:`convolve` with its hand-written VJP (:func:`convolve_transpose`)."""
    return convolve(images, kernel_fft, fft_shape)


def _convolve_fwd(images, kernel_fft, fft_shape):
    return convolve(images, kernel_fft, fft_shape), kernel_fft


def _convolve_bwd(fft_shape, kernel_fft, g):
    return convolve_transpose(g, kernel_fft, fft_shape), jnp.zeros_like(kernel_fft)


convolve_op.defvjp(_convolve_fwd, _convolve_bwd)
