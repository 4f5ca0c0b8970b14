"""Point-spread functions: the model PSF and the per-band PSF-difference kernel.

Everything here runs once per observation on the host, in float64 numpy, and returns
float32 arrays; nothing is traced.
"""

from __future__ import annotations

import math

import numpy as np

from .fft import next_fast_len

__all__ = [
    "integrated_circular_gaussian",
    "match_kernel",
    "centered_fft_pad",
]


def integrated_circular_gaussian(sigma: float = 0.8, size: int = 15) -> np.ndarray:
    """Pixel-integrated circular Gaussian, normalised to sum 1.

    Args:
      sigma: standard deviation in pixels.
      size: odd side length; pixel centres run from ``-(size//2)`` to ``size//2``.

    Returns:
      (size, size) float32 image summing to 1, peak at the centre pixel.
    """
    if size % 2 != 1:
        raise ValueError(f"model PSF size must be odd, got {size}")
    x = np.arange(size) - size // 2
    s = math.sqrt(2.0) * sigma
    prof = np.array([0.5 * (math.erfc((xi - 0.5) / s) - math.erfc((xi + 0.5) / s)) for xi in x])
    img = np.outer(prof, prof)
    return (img / img.sum()).astype(np.float32)


def centered_fft_pad(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Zero-pad the last two axes of ``image`` to ``shape``, centred with the fftshift
    convention (start = (diff + 1) // 2), then ``ifftshift`` so the centre sits at (0, 0)."""
    h, w = image.shape[-2:]
    dy, dx = shape[0] - h, shape[1] - w
    y0, x0 = (dy + 1) // 2, (dx + 1) // 2
    out = np.zeros(image.shape[:-2] + tuple(shape), dtype=np.float64)
    out[..., y0 : y0 + h, x0 : x0 + w] = image
    return np.fft.ifftshift(out, axes=(-2, -1))


def match_kernel(psfs: np.ndarray, model_psf: np.ndarray, padding: int = 3) -> np.ndarray:
    """PSF-difference kernel ``K_b`` with ``psf_b = K_b * model_psf`` (convolution).

    Computed in Fourier space as ``FFT(psf_b) / FFT(model_psf)`` (0 where the denominator
    is 0) on a 5-smooth grid ``>= psf + model_psf + padding`` per axis, transformed back,
    and cropped to the PSF array shape.

    Args:
      psfs: (B, kh, kw) observed PSFs, odd sizes, each summing to 1.
      model_psf: (mh, mw) model-frame PSF.
      padding: extra zero padding of the matching grid.

    Returns:
      (B, kh, kw) float32 kernels centred on (kh // 2, kw // 2).
    """
    psfs = np.asarray(psfs, dtype=np.float64)
    model_psf = np.asarray(model_psf, dtype=np.float64)
    kh, kw = psfs.shape[-2:]
    shape = (
        next_fast_len(kh + model_psf.shape[0] + padding),
        next_fast_len(kw + model_psf.shape[1] + padding),
    )
    num = np.fft.fft2(centered_fft_pad(psfs, shape))
    den = np.fft.fft2(centered_fft_pad(model_psf, shape))
    safe = den != 0
    ratio = np.where(safe, num / np.where(safe, den, 1.0), 0.0)
    kernel = np.fft.fftshift(np.real(np.fft.ifft2(ratio)), axes=(-2, -1))
    # crop the centre: the centre pixel of the grid is at shape // 2 after fftshift
    cy, cx = shape[0] // 2, shape[1] // 2
    out = kernel[..., cy - kh // 2 : cy - kh // 2 + kh, cx - kw // 2 : cx - kw // 2 + kw]
    return out.astype(np.float32)
