"""Source detection: peaks of a band-passed, noise-weighted detection image.

The steps (host orchestration around one jitted starlet transform):

1. Detection image: the inverse-variance-weighted band sum ``sum_b D_b / noise_rms_b**2``
   (:func:`detection_image`, scarlet lite's chi^2-like image), or a user-supplied one.
2. Band-pass: the sum of the chosen starlet scales (by default ``w_2 + w_3``, i.e. indices
   1 and 2; the finest scale is mostly noise and the coarse ones merge neighbours).
3. Noise: a robust std (``1.4826 * MAD``, iteratively 3-sigma clipped) of the finest scale
   ``w_1`` over pixels with some weight, which even in a crowded image is mostly noise,
   turned into a per-pixel std with the white-noise level of ``w_1`` and then into the
   band-pass std with :func:`~scarlet_jax.starlet.starlet_noise_covariance`. (A MAD of the
   band-pass itself is dominated by the sources when they fill the image, as in the HSC
   blend, where it overestimates the noise ~10x.) This needs no knowledge of the image's
   normalisation, so a user ``detect_image`` works the same way; it assumes white noise.
4. Peaks: 3x3 local maxima above ``k_sigma`` times that noise, at pixels with weight in
   some band, refined to sub-pixel with a 3-point parabola per axis.
5. Merge: brightest first, a peak closer than ``min_separation`` to a kept one is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from .errors import BadInputError
from .observation import Observation
from .starlet import starlet_noise_covariance, starlet_transform

__all__ = ["detect", "detection_image", "band_pass", "band_pass_noise"]

MAD_TO_SIGMA = 1.4826
CLIP_SIGMAS = 3.0
CLIP_ITERATIONS = 10

# One compiled transform per (shape, scales); jit's own cache, no state of ours.
_starlet_jit = jax.jit(starlet_transform, static_argnames=("scales",))


def detection_image(observation: Observation) -> np.ndarray:
    """The chi^2-like detection image ``sum_b D_b / noise_rms_b**2``.

    Pixels with zero weight in a band contribute nothing from that band; with no masked
    pixels this is exactly scarlet lite's default chi^2 detection image.

    Args:
      observation: the blend (B bands).

    Returns:
      (H, W) float32 numpy array.
    """
    images = np.asarray(observation.images, dtype=np.float64)
    valid = np.asarray(observation.weights) > 0
    inv_var = 1.0 / np.asarray(observation.noise_rms, dtype=np.float64) ** 2
    return np.einsum("bhw,b->hw", np.where(valid, images, 0.0), inv_var).astype(np.float32)


def _robust_std(values: np.ndarray) -> float:
    """``1.4826 * MAD`` of ``values``, iterated on the values within 3 sigma of the median."""
    values = np.asarray(values, dtype=np.float64).ravel()
    sigma = 0.0
    for _ in range(CLIP_ITERATIONS):
        if values.size == 0:
            break
        median = np.median(values)
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
        inside = np.abs(values - median) <= CLIP_SIGMAS * sigma
        if inside.all() or not sigma > 0:
            break
        values = values[inside]
    return sigma


def band_pass(image, scales: Sequence[int] = (1, 2)) -> tuple[np.ndarray, np.ndarray]:
    """Sum of the chosen starlet wavelet scales of an image (jitted transform).

    Args:
      image: (H, W) float image.
      scales: 0-based indices of wavelet scales (0 is the finest, dilation 1).

    Returns:
      ``(band, finest)``: (H, W) float64 numpy arrays, the band-pass image and the finest
      wavelet scale ``w_1`` (for the noise estimate).
    """
    scales = _check_scales(scales)
    coeffs = np.asarray(
        _starlet_jit(np.asarray(image, dtype=np.float32), scales=max(scales) + 1),
        dtype=np.float64,
    )
    return coeffs[list(scales)].sum(axis=0), coeffs[0]


def band_pass_noise(finest: np.ndarray, valid: np.ndarray, scales: Sequence[int]) -> float:
    """Robust std of the band-pass image's noise, estimated from its finest scale.

    Args:
      finest: (H, W) finest starlet scale ``w_1`` of the detection image.
      valid: (H, W) bool, the pixels to use.
      scales: the 0-based wavelet indices summed into the band-pass image.

    Returns:
      The std of the band-passed noise, assuming white noise (0 if nothing is valid).
    """
    scales = _check_scales(scales)
    cov = starlet_noise_covariance(max(scales) + 1)
    pixel_sigma = _robust_std(finest[valid]) / np.sqrt(cov[0, 0])
    idx = list(scales)
    return float(pixel_sigma * np.sqrt(cov[np.ix_(idx, idx)].sum()))


def _check_scales(scales) -> tuple[int, ...]:
    scales = tuple(sorted({int(s) for s in np.atleast_1d(scales)}))
    if not scales or scales[0] < 0:
        raise BadInputError(f"detect: scales must be non-negative wavelet indices, got {scales}")
    return scales


def _local_maxima(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels >= their 8 neighbours (outside the image counts as -inf)."""
    height, width = image.shape
    padded = np.pad(image, 1, constant_values=-np.inf)
    neighbours = np.max(
        [
            padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if dy or dx
        ],
        axis=0,
    )
    return image >= neighbours


def _refine(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(N, 2) sub-pixel (y, x) from a 3-point parabola per axis, offsets clipped to 0.5."""
    height, width = image.shape
    out = np.stack([y, x], axis=1).astype(np.float64)
    for axis, (n, idx) in enumerate(((height, y), (width, x))):
        inner = (idx > 0) & (idx < n - 1)
        lo = np.where(inner, idx - 1, idx)
        hi = np.where(inner, idx + 1, idx)
        if axis == 0:
            a, b, c = image[lo, x], image[y, x], image[hi, x]
        else:
            a, b, c = image[y, lo], image[y, x], image[y, hi]
        curv = a - 2 * b + c
        ok = inner & (curv < 0)
        offset = np.where(ok, 0.5 * (a - c) / np.where(ok, curv, -1.0), 0.0)
        out[:, axis] += np.clip(offset, -0.5, 0.5)
    return out


def detect(
    observation: Observation,
    *,
    k_sigma: float = 5.0,
    min_separation: float = 3.0,
    scales: Sequence[int] = (1, 2),
    max_sources: int | None = None,
    detect_image=None,
) -> np.ndarray:
    """Detect sources as significant peaks of a starlet band-pass of the detection image.

    Args:
      observation: the blend; its weights say which pixels were observed.
      k_sigma: detection threshold in units of the band-passed image's noise (estimated
        robustly from the finest scale, see the module docstring).
      min_separation: peaks closer than this (pixels) to a brighter one are merged into it.
      scales: 0-based starlet scale indices summed into the band-pass image (0 is the finest
        scale, dilation 1; the default (1, 2) has dilations 2 and 4).
      max_sources: raise if more sources than this are found; None means no limit.
      detect_image: optional (H, W) image to detect on instead of :func:`detection_image`.

    Returns:
      (S, 2) float32 (y, x) sub-pixel centres, brightest (in the band-pass image) first;
      (0, 2) when nothing is significant.

    Raises:
      BadInputError: for a bad ``detect_image`` shape, bad ``scales``, or more than
        ``max_sources`` detections.
    """
    _, height, width = observation.images.shape
    scales = _check_scales(scales)
    if detect_image is None:
        image = detection_image(observation)
    else:
        image = np.asarray(detect_image, dtype=np.float32)
        if image.shape != (height, width):
            raise BadInputError(
                f"detect_image {image.shape} does not match the images ({height}, {width})"
            )
    valid = (np.asarray(observation.weights) > 0).any(axis=0)
    image = np.where(valid & np.isfinite(image), image, 0.0).astype(np.float32)

    signal, finest = band_pass(image, scales)
    sigma = band_pass_noise(finest, valid, scales)
    if not sigma > 0:
        sigma = np.finfo(np.float32).tiny
    peaks = _local_maxima(signal) & valid & (signal > k_sigma * sigma)
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-signal[ys, xs], kind="stable")
    ys, xs = ys[order], xs[order]
    centers = _refine(signal, ys, xs)

    kept: list[int] = []
    for i in range(len(centers)):
        if kept:
            dist = np.hypot(*(centers[kept] - centers[i]).T)
            if dist.min() < min_separation or (dist == 0).any():
                continue
        kept.append(i)
    centers = centers[kept].astype(np.float32).reshape(-1, 2)
    if max_sources is not None and len(centers) > int(max_sources):
        raise BadInputError(
            f"detect: found {len(centers)} sources, more than max_sources={int(max_sources)}; "
            "raise max_sources or k_sigma"
        )
    return centers
