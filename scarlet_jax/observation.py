"""The observed blend: images, weights, PSFs and the PSF-difference kernel.

:func:`make_observation` is the single entry point; it validates on the host, repairs what
can be repaired (with an :class:`~scarlet_jax.errors.InputWarning`), casts to float32 and
precomputes the difference kernel.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence

import jax
import numpy as np

from .errors import BadInputError, InputWarning
from .psf import integrated_circular_gaussian, match_kernel

__all__ = ["Observation", "make_observation", "MODEL_PSF_SIGMA", "MODEL_PSF_SIZE"]

MODEL_PSF_SIGMA = 0.8
MODEL_PSF_SIZE = 15
PSF_SUM_TOLERANCE = 1e-3


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "images",
        "variance",
        "weights",
        "psfs",
        "model_psf",
        "diff_kernel",
        "noise_rms",
    ],
    meta_fields=["bands"],
)
@dataclasses.dataclass(frozen=True)
class Observation:
    """A multi-band observation of one blend (a pytree; ``bands`` is static metadata).

    Attributes:
      images: (B, H, W) float32 data; non-finite pixels replaced by 0 (weight 0).
      variance: (B, H, W) float32 per-pixel variance as given (non-finite kept).
      weights: (B, H, W) float32 inverse variance, 0 where masked or invalid.
      psfs: (B, kh, kw) float32 observed PSFs, odd sizes, each summing to 1.
      model_psf: (mh, mw) float32 model-frame PSF.
      diff_kernel: (B, kh, kw) float32 kernel with ``psf_b = diff_kernel_b * model_psf``.
      noise_rms: (B,) float32 mean of sqrt(variance) over valid pixels, per band.
      bands: tuple of B band names.
    """

    images: np.ndarray
    variance: np.ndarray
    weights: np.ndarray
    psfs: np.ndarray
    model_psf: np.ndarray
    diff_kernel: np.ndarray
    noise_rms: np.ndarray
    bands: tuple = ()

    @property
    def shape(self) -> tuple[int, int, int]:
        """(B, H, W)."""
        return tuple(self.images.shape)

    @property
    def n_bands(self) -> int:
        return int(self.images.shape[0])


def _first_index(bad: np.ndarray) -> str:
    idx = np.argwhere(bad)[0]
    names = ("band", "y", "x") if bad.ndim == 3 else ("y", "x")
    return ", ".join(f"{n}={int(i)}" for n, i in zip(names, idx, strict=False))


def _as_real_array(name: str, value, ndim: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object:
        raise BadInputError(f"{name}: expected a numeric array, got dtype object")
    if np.iscomplexobj(arr):
        raise BadInputError(f"{name} {arr.shape}: complex input is not supported")
    if arr.ndim not in ndim:
        raise BadInputError(
            f"{name}: expected {' or '.join(f'{d}-d' for d in ndim)} array, got shape {arr.shape}"
        )
    return arr.astype(np.float64)


def make_observation(
    images,
    variance,
    psfs,
    *,
    bands: Sequence[str] | None = None,
    mask=None,
    model_psf=None,
    noise_rms=None,
) -> Observation:
    """Validate and package a blend.

    Args:
      images: (B, H, W) data (a 2-d image is one band); integers are cast to float32.
      variance: (B, H, W) per-pixel variance; NaN, inf, zero or negative values get weight 0.
      psfs: (B, kh, kw) observed PSFs with odd sizes ((kh, kw) is used for every band);
        PSFs not summing to 1 are normalised with a warning.
      bands: B band names (default "0", "1", ...).
      mask: optional (B, H, W) or (H, W) boolean, True where a pixel is bad (weight 0).
      model_psf: optional (mh, mw) model PSF; default a pixel-integrated circular Gaussian
        with sigma 0.8 on 15x15 pixels.
      noise_rms: optional (B,) background rms; default mean sqrt(variance) per band.

    Returns:
      An :class:`Observation` with float32 arrays.

    Raises:
      BadInputError: for shapes, dtypes or values that cannot be repaired; the message names
        the array, its shape and the first offending index.
    """
    images = _as_real_array("images", images, (2, 3))
    if images.ndim == 2:
        images = images[None]
    n_bands, height, width = images.shape
    if n_bands == 0:
        raise BadInputError(f"images {images.shape}: no bands")
    if height == 0 or width == 0:
        raise BadInputError(f"images {images.shape}: empty image")

    variance = _as_real_array("variance", variance, (2, 3))
    if variance.ndim == 2:
        variance = variance[None]
    if variance.shape != images.shape:
        raise BadInputError(f"variance {variance.shape} does not match images {images.shape}")

    psfs = _as_real_array("psfs", psfs, (2, 3))
    if psfs.ndim == 2:
        psfs = np.broadcast_to(psfs, (n_bands,) + psfs.shape).copy()
    if psfs.shape[0] != n_bands:
        raise BadInputError(f"psfs {psfs.shape}: {psfs.shape[0]} bands, images have {n_bands}")
    kh, kw = psfs.shape[1:]
    if kh % 2 == 0 or kw % 2 == 0:
        raise BadInputError(f"psfs {psfs.shape}: sizes must be odd, got ({kh}, {kw})")
    if not np.isfinite(psfs).all():
        raise BadInputError(
            f"psfs {psfs.shape}: non-finite value at {_first_index(~np.isfinite(psfs))}"
        )
    sums = psfs.sum(axis=(1, 2))
    if (sums <= 0).any():
        b = int(np.argmax(sums <= 0))
        raise BadInputError(f"psfs {psfs.shape}: band={b} sums to {sums[b]:g} (must be > 0)")
    off = np.abs(sums - 1) > PSF_SUM_TOLERANCE
    if off.any():
        b = int(np.argmax(off))
        warnings.warn(
            f"psfs: {int(off.sum())} band(s) not normalised (band={b} sums to {sums[b]:g}); "
            "normalised to 1",
            InputWarning,
            stacklevel=2,
        )
    psfs = psfs / sums[:, None, None]
    if height < kh // 2 + 1 or width < kw // 2 + 1:
        raise BadInputError(
            f"images {images.shape} are smaller than half the PSF {psfs.shape[1:]}: "
            "crop the PSF or use a larger cutout"
        )

    if bands is None:
        bands = tuple(str(b) for b in range(n_bands))
    bands = tuple(str(b) for b in bands)
    if len(bands) != n_bands:
        raise BadInputError(f"bands: {len(bands)} names for {n_bands} image bands")

    bad = np.zeros(images.shape, dtype=bool)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.ndim == 2:
            mask = np.broadcast_to(mask, images.shape)
        if mask.shape != images.shape:
            raise BadInputError(f"mask {mask.shape} does not match images {images.shape}")
        bad |= mask.astype(bool)

    nonfinite = ~np.isfinite(images)
    if nonfinite.any():
        warnings.warn(
            f"images {images.shape}: {int(nonfinite.sum())} NaN/inf pixel(s), first at "
            f"{_first_index(nonfinite)}; given weight 0",
            InputWarning,
            stacklevel=2,
        )
    badvar = ~np.isfinite(variance) | (variance <= 0)
    if badvar.any():
        warnings.warn(
            f"variance {variance.shape}: {int(badvar.sum())} NaN/inf/zero/negative pixel(s), "
            f"first at {_first_index(badvar)}; given weight 0",
            InputWarning,
            stacklevel=2,
        )
    bad |= nonfinite | badvar
    if bad.all():
        raise BadInputError(f"images {images.shape}: every pixel is masked or invalid")
    empty = bad.all(axis=(1, 2))
    if empty.any():
        warnings.warn(
            f"band(s) {[bands[b] for b in np.nonzero(empty)[0]]} have no valid pixel; "
            "they get weight 0",
            InputWarning,
            stacklevel=2,
        )

    good = ~bad
    weights = np.where(good, 1.0 / np.where(good, variance, 1.0), 0.0)
    clean = np.where(nonfinite, 0.0, images)

    if noise_rms is None:
        rms = np.zeros(n_bands)
        for b in range(n_bands):
            ok = np.isfinite(variance[b]) & (variance[b] > 0)
            rms[b] = np.sqrt(variance[b][ok]).mean() if ok.any() else np.nan
        fallback = np.nanmean(rms) if np.isfinite(rms).any() else 1.0
        noise_rms = np.where(np.isfinite(rms), rms, fallback)
    noise_rms = np.asarray(noise_rms, dtype=np.float64).reshape(-1)
    if noise_rms.shape != (n_bands,) or not (np.isfinite(noise_rms) & (noise_rms > 0)).all():
        raise BadInputError(f"noise_rms {noise_rms.shape}: need {n_bands} finite values > 0")

    if model_psf is None:
        model_psf = integrated_circular_gaussian(MODEL_PSF_SIGMA, MODEL_PSF_SIZE)
    model_psf = _as_real_array("model_psf", model_psf, (2,))
    if model_psf.shape[0] % 2 == 0 or model_psf.shape[1] % 2 == 0:
        raise BadInputError(f"model_psf {model_psf.shape}: sizes must be odd")
    model_psf = model_psf / model_psf.sum()
    diff_kernel = match_kernel(psfs, model_psf)

    f32 = np.float32
    return Observation(
        images=clean.astype(f32),
        variance=variance.astype(f32),
        weights=weights.astype(f32),
        psfs=psfs.astype(f32),
        model_psf=model_psf.astype(f32),
        diff_kernel=diff_kernel.astype(f32),
        noise_rms=noise_rms.astype(f32),
        bands=bands,
    )
