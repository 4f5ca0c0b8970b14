"""The starlet: the isotropic undecimated ("a trous") wavelet transform.

Each scale smooths the previous one with the separable B3-spline kernel
``h = [1, 4, 6, 4, 1] / 16`` dilated by ``2**j`` (``2**j - 1`` zeros between taps) and keeps
the difference:

.. math::

   c_0 = x, \\quad c_{j+1} = (h^{(j)} \\otimes h^{(j)}) * c_j, \\quad w_{j+1} = c_j - c_{j+1},

so that ``x = w_1 + ... + w_J + c_J`` exactly (:func:`starlet_reconstruct` is a sum).
The boundary is a whole-sample mirror (``d c b | a b c d | c b a``, scipy.ndimage's
``"mirror"``, numpy's ``"reflect"``), folded as often as needed, so a dilated kernel wider
than the image is fine and a constant image has zero wavelet coefficients.

The transform is pure JAX on ``(..., H, W)`` arrays (jit- and vmap-friendly); the gather
indices are built on the host from the static shape. :func:`starlet_noise_levels` and
:func:`starlet_noise_covariance` are host helpers for the noise of unit white noise in each
plane.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

__all__ = [
    "B3_KERNEL",
    "default_scales",
    "starlet_transform",
    "starlet_reconstruct",
    "starlet_noise_levels",
    "starlet_noise_covariance",
]

B3_KERNEL = (1.0 / 16, 4.0 / 16, 6.0 / 16, 4.0 / 16, 1.0 / 16)
MAX_DEFAULT_SCALES = 5


def default_scales(shape: tuple[int, ...]) -> int:
    """Default number of wavelet scales ``J`` for an image of shape ``(..., H, W)``.

    ``J = clip(floor(log2(min(H, W))) - 1, 1, 5)``: 5 for 64x64, 4 for 58x48, at least 1.
    The widest kernel (dilation ``2**(J-1)``, support ``2**(J+1) + 1``) then spans at most
    about the image.
    """
    n = int(min(shape[-2:]))
    if n < 1:
        raise ValueError(f"starlet: empty image of shape {tuple(shape)}")
    return int(min(max(int(math.floor(math.log2(n))) - 1, 1), MAX_DEFAULT_SCALES))


def _mirror_index(index: np.ndarray, n: int) -> np.ndarray:
    """Fold integer indices into ``[0, n)`` with a whole-sample mirror (period 2(n-1))."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.mod(index, period)
    return np.where(index >= n, period - index, index)


def _smooth_axis(x, axis: int, dilation: int):
    """Correlate axis ``axis`` of ``x`` with the B3 kernel dilated by ``dilation``."""
    n = x.shape[axis]
    base = np.arange(n)
    out = B3_KERNEL[2] * x
    for k in (1, 2):
        lo = _mirror_index(base - k * dilation, n)
        hi = _mirror_index(base + k * dilation, n)
        pair = jnp.take(x, lo, axis=axis) + jnp.take(x, hi, axis=axis)
        out = out + B3_KERNEL[2 + k] * pair
    return out


def starlet_transform(image, scales: int | None = None):
    """Starlet (isotropic undecimated B3-spline wavelet) transform.

    Args:
      image: (..., H, W) float array (integers are cast to float32); leading axes are
        transformed independently.
      scales: static number of wavelet scales ``J >= 1``; default :func:`default_scales`.

    Returns:
      (..., J + 1, H, W) coefficients, same float dtype as ``image``: the wavelet scales
      ``w_1`` (finest, dilation 1) to ``w_J``, then the coarse residual ``c_J``. They sum to
      ``image`` over axis -3.

    Raises:
      ValueError: if ``image`` has fewer than 2 axes or ``scales < 1``.
    """
    x = jnp.asarray(image)
    if x.ndim < 2:
        raise ValueError(f"starlet_transform: need (..., H, W), got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.float32)
    if scales is None:
        scales = default_scales(x.shape)
    scales = int(scales)
    if scales < 1:
        raise ValueError(f"starlet_transform: scales must be >= 1, got {scales}")
    coeffs = []
    c = x
    for j in range(scales):
        d = 2**j
        smooth = _smooth_axis(_smooth_axis(c, -1, d), -2, d)
        coeffs.append(c - smooth)
        c = smooth
    coeffs.append(c)
    return jnp.stack(coeffs, axis=-3)


def starlet_reconstruct(coeffs):
    """Inverse of :func:`starlet_transform`: the sum of all scales.

    Args:
      coeffs: (..., J + 1, H, W) wavelet scales followed by the coarse residual.

    Returns:
      (..., H, W) image.
    """
    coeffs = jnp.asarray(coeffs)
    if coeffs.ndim < 3:
        raise ValueError(f"starlet_reconstruct: need (..., J+1, H, W), got shape {coeffs.shape}")
    return jnp.sum(coeffs, axis=-3)


def _b3_filters_1d(scales: int) -> list[np.ndarray]:
    """1-d impulse responses of the cumulative smoothing ``c_j`` for j = 0..scales (float64),
    all on one centred grid wide enough that nothing reaches its ends."""
    half = 2 * (2**scales - 1) + 1
    g = np.zeros(2 * half + 1)
    g[half] = 1.0
    h = np.asarray(B3_KERNEL)
    out = [g]
    for j in range(scales):
        d = 2**j
        kernel = np.zeros(4 * d + 1)
        kernel[::d] = h
        g = np.convolve(g, kernel, mode="same")
        out.append(g)
    return out


def starlet_noise_covariance(scales: int) -> np.ndarray:
    """Covariance between the starlet planes of unit-variance white noise, per pixel.

    Exact for an unbounded image (the mirror boundary changes pixels near the edge only).
    Each plane is a linear filter of the noise, ``w_j = g_{j-1} g_{j-1}^T - g_j g_j^T`` and
    ``c_J = g_J g_J^T`` with separable 1-d smoothing filters ``g_j``, so the covariance of
    two planes is the inner product of their filters, computed from
    ``<a a^T, b b^T> = (a . b)^2``. Host-side float64; cheap, so nothing is cached.

    Args:
      scales: number of wavelet scales ``J >= 1``.

    Returns:
      (J + 1, J + 1) float64 covariance of ``(w_1, ..., w_J, c_J)``. The std of a sum of
      planes ``S`` is ``sqrt(cov[S][:, S].sum())``.
    """
    scales = int(scales)
    if scales < 1:
        raise ValueError(f"starlet_noise_covariance: scales must be >= 1, got {scales}")
    g = np.stack(_b3_filters_1d(scales))  # (J + 1, n)
    gram = (g @ g.T) ** 2  # <g_k g_k^T, g_l g_l^T>
    coef = np.eye(scales + 1)
    coef[np.arange(scales), np.arange(1, scales + 1)] = -1.0
    return coef @ gram @ coef.T


def starlet_noise_levels(scales: int) -> np.ndarray:
    """Standard deviation of each starlet plane for unit-variance white noise.

    Args:
      scales: number of wavelet scales ``J >= 1``.

    Returns:
      (J + 1,) float64: ``sigma(w_1), ..., sigma(w_J), sigma(c_J)``; about
      0.890, 0.201, 0.086, 0.041, 0.020, ... for the wavelet scales (exact for an unbounded
      image, see :func:`starlet_noise_covariance`).
    """
    return np.sqrt(np.diag(starlet_noise_covariance(scales)))
