"""Synthetic multi-band blends with known truth, for tests and benchmarks.

Every source is a mixture of elliptical Gaussians, so the PSF convolution is exact and
analytic: a galaxy component of covariance ``C`` convolved with a PSF component of variance
``s^2`` is a Gaussian of covariance ``C + s^2 I``. Pixels are treated as point samples of the
profile convolved with the unit pixel box, approximated by adding ``1/12`` to the variance.

* Galaxies: an exponential disk (6 Gaussians) plus, for a random fraction of them, a
  de Vaucouleurs bulge (8 Gaussians), using the Lupton-truncated ``lux``/``luv`` mixtures of
  Hogg & Lang (2013, PASP 125, 719), rescaled to unit half-light radius. Random half-light
  radius (along the major axis), axis ratio, position angle and colour (a redder bulge).
* Point sources: the PSF itself.
* PSFs: per band a circular double Gaussian (90% core, 10% wing at twice the width) whose
  FWHM shrinks from blue to red; the ``(B, k, k)`` PSF images are the same mixture sampled
  the same way and normalised to sum 1, so a point source is exactly a shifted PSF image.
* Noise: Gaussian, with a constant variance ``noise_rms_b**2`` per band.

Everything is numpy on the host, deterministic given the seed (a ``numpy`` Generator), and
fast (each source is evaluated only in a window of 5 sigma of its widest Gaussian).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..observation import Observation, make_observation

__all__ = ["SyntheticBlend", "synthetic_blend", "synthetic_blends"]

# Hogg & Lang (2013) "lux" (exponential) and "luv" (de Vaucouleurs) mixtures (as in the
# tractor's mixture_profiles.py): the flux of each Gaussian and its per-axis variance in
# units of the profile's scale; _*_RE is the half-light radius of the normalised mixture in
# those units (the root of sum_i a_i (1 - exp(-r^2 / 2 v_i)) = 1/2).
_EXP_AMP = np.array(
    [2.34853813e-03, 3.07995260e-02, 2.23364214e-01, 1.17949102e00, 4.33873750e00, 5.99820770e00]
)
_EXP_VAR = np.array(
    [1.20078965e-03, 8.84526493e-03, 3.91463084e-02, 1.39976817e-01, 4.60962500e-01, 1.50159566e00]
)
_EXP_RE = 0.98615363
_DEV_AMP = np.array(
    [
        4.26347652e-02,
        2.40127183e-01,
        6.85907632e-01,
        1.51937350e00,
        2.83627243e00,
        4.46467501e00,
        5.72440830e00,
        5.60989349e00,
    ]
)
_DEV_VAR = np.array(
    [
        2.23759216e-04,
        1.00220099e-03,
        4.18731126e-03,
        1.69432589e-02,
        6.84850479e-02,
        2.87207080e-01,
        1.33320254e00,
        8.40215071e00,
    ]
)
_DEV_RE = 0.91545832

# (fraction of flux, variance) for a unit half-light radius
EXP_MIXTURE = (_EXP_AMP / _EXP_AMP.sum(), _EXP_VAR / _EXP_RE**2)
DEV_MIXTURE = (_DEV_AMP / _DEV_AMP.sum(), _DEV_VAR / _DEV_RE**2)

PSF_WING_FRACTION = 0.1
PSF_WING_SCALE = 2.0
PIXEL_VARIANCE = 1.0 / 12.0
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
WINDOW_SIGMAS = 5.0
DEFAULT_BANDS = {5: ("g", "r", "i", "z", "y"), 3: ("g", "r", "i")}


class SyntheticBlend(NamedTuple):
    """One synthetic blend and its truth.

    Attributes:
      observation: the :class:`~scarlet_jax.observation.Observation` (B bands, H x W).
      centers: (S, 2) float32 (y, x) catalogue positions: the true centres plus Gaussian
        jitter (``center_jitter`` px per axis), clipped to the image.
      true_fluxes: (S, B) float32 total flux of each source per band (the analytic integral;
        ``true_images`` sum to it up to the flux falling outside the image).
      true_images: (S, B, H, W) float32 noiseless PSF-convolved images of each source.
      true_centers: (S, 2) float32 (y, x) true centres (pixel centres are integers).
    """

    observation: Observation
    centers: np.ndarray
    true_fluxes: np.ndarray
    true_images: np.ndarray
    true_centers: np.ndarray


def _band_values(name: str, value, n_bands: int, default: np.ndarray) -> np.ndarray:
    """A scalar, a (B,) sequence or None (-> default) as a (B,) float64 array."""
    if value is None:
        return np.asarray(default, dtype=np.float64)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n_bands, float(arr))
    if arr.shape != (n_bands,) or not (np.isfinite(arr) & (arr > 0)).all():
        raise ValueError(
            f"{name}: need a positive scalar or {n_bands} positive values, got {value}"
        )
    return arr


def _psf_mixture(fwhm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B,) FWHMs -> per band (B, 2) weights and (B, 2) variances of the double Gaussian."""
    core = (np.asarray(fwhm) * FWHM_TO_SIGMA) ** 2
    weights = np.broadcast_to([1.0 - PSF_WING_FRACTION, PSF_WING_FRACTION], (len(core), 2))
    variances = np.stack([core, core * PSF_WING_SCALE**2], axis=1)
    return np.array(weights), variances


def _psf_images(fwhm: np.ndarray, size: int) -> np.ndarray:
    """(B, size, size) float64 PSF images centred on (size // 2, size // 2), sum 1."""
    weights, variances = _psf_mixture(fwhm)
    r = np.arange(size) - size // 2
    r2 = r[:, None] ** 2 + r[None, :] ** 2
    var = variances + PIXEL_VARIANCE  # (B, 2)
    img = (weights / (2 * np.pi * var))[..., None, None] * np.exp(-0.5 * r2 / var[..., None, None])
    img = img.sum(axis=1)
    return img / img.sum(axis=(1, 2), keepdims=True)


def _shape_covariances(radius: float, q: float, angle: float, variances: np.ndarray):
    """(G,) unit-radius variances -> (G, 2, 2) covariances in (y, x) of an ellipse with
    major-axis half-light radius ``radius``, axis ratio ``q`` and position angle ``angle``
    (radians, from the x axis towards y)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[s, c], [c, -s]])  # columns: major (y, x) = (s, c), minor = (c, -s)
    diag = np.array([1.0, q * q]) * radius * radius
    base = rot @ np.diag(diag) @ rot.T
    return variances[:, None, None] * base[None]


def _render_source(
    center: np.ndarray,
    amps: np.ndarray,
    covs: np.ndarray,
    psf_weights: np.ndarray,
    psf_vars: np.ndarray,
    shape: tuple[int, int],
) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Render one source, PSF-convolved, in a window of the image.

    Args:
      center: (2,) (y, x).
      amps: (B, G) flux of each intrinsic Gaussian per band.
      covs: (G, 2, 2) intrinsic covariances (a point source has one zero covariance).
      psf_weights, psf_vars: (B, P) PSF mixture per band.
      shape: (H, W).

    Returns:
      ``(stamp (B, h, w), (slice_y, slice_x))`` where the stamp lies in the image.
    """
    iso = psf_vars + PIXEL_VARIANCE  # (B, P)
    cov = covs[None, :, None] + iso[:, None, :, None, None] * np.eye(2)  # (B, G, P, 2, 2)
    a, b, d = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
    det = a * d - b * b
    flux = amps[:, :, None] * psf_weights[:, None, :]  # (B, G, P)
    biggest = float(np.max(0.5 * (a + d) + np.sqrt(0.25 * (a - d) ** 2 + b * b)))
    half = int(math.ceil(WINDOW_SIGMAS * math.sqrt(biggest)))
    height, width = shape
    cy, cx = int(round(center[0])), int(round(center[1]))
    y0, y1 = max(cy - half, 0), min(cy + half + 1, height)
    x0, x1 = max(cx - half, 0), min(cx + half + 1, width)
    dy = (np.arange(y0, y1) - center[0])[:, None]
    dx = (np.arange(x0, x1) - center[1])[None, :]
    inv_a, inv_b, inv_d = d / det, -b / det, a / det
    quad = (
        inv_a[..., None, None] * dy**2
        + 2 * inv_b[..., None, None] * (dy * dx)
        + inv_d[..., None, None] * dx**2
    )
    norm = flux / (2 * np.pi * np.sqrt(det))
    stamp = np.einsum("bgp,bgphw->bhw", norm, np.exp(-0.5 * quad))
    return stamp, (slice(y0, y1), slice(x0, x1))


def _spectrum(rng: np.random.Generator, slope: float, n_bands: int) -> np.ndarray:
    """(B,) positive spectrum summing to 1: an exponential colour slope with 10% scatter."""
    x = np.linspace(-1.0, 1.0, n_bands) if n_bands > 1 else np.zeros(1)
    s = np.exp(slope * x + 0.1 * rng.normal(size=n_bands))
    return s / s.sum()


def _place(
    rng: np.random.Generator,
    n: int,
    shape: tuple[int, int],
    margin: float,
    min_separation: float,
) -> np.ndarray:
    """Up to ``n`` (y, x) positions at least ``min_separation`` apart, ``margin`` from the
    edges (shrunk so the region is not empty). At least one position is returned."""
    height, width = shape
    my = min(margin, (height - 1) / 2)
    mx = min(margin, (width - 1) / 2)
    candidates = np.stack(
        [
            rng.uniform(my, height - 1 - my, size=64 * n),
            rng.uniform(mx, width - 1 - mx, size=64 * n),
        ],
        axis=1,
    )
    kept: list[np.ndarray] = []
    for c in candidates:
        if all(np.hypot(*(c - k)) >= min_separation for k in kept):
            kept.append(c)
            if len(kept) == n:
                break
    return np.array(kept)


def _choose_shape(rng: np.random.Generator, shape) -> tuple[int, int]:
    shapes = np.asarray(shape)
    if shapes.ndim == 1 and shapes.shape == (2,):
        chosen = shapes
    elif shapes.ndim == 2 and shapes.shape[1] == 2 and len(shapes) > 0:
        chosen = shapes[rng.integers(len(shapes))]
    else:
        raise ValueError(f"shape: need (H, W) or a list of (H, W), got {shape!r}")
    height, width = int(chosen[0]), int(chosen[1])
    if height < 1 or width < 1:
        raise ValueError(f"shape: need positive sizes, got {(height, width)}")
    return height, width


def synthetic_blend(
    seed=0,
    *,
    shape: tuple[int, int] | Sequence[tuple[int, int]] = (64, 64),
    n_bands: int = 5,
    n_sources: int | tuple[int, int] = (2, 8),
    psf_fwhm: float | Sequence[float] | None = None,
    psf_size: int = 25,
    noise_rms: float | Sequence[float] = 1.0,
    flux_range: tuple[float, float] = (50.0, 5000.0),
    radius_range: tuple[float, float] = (1.0, 4.0),
    point_fraction: float = 0.25,
    bulge_fraction: float = 0.5,
    min_separation: float = 5.0,
    edge_margin: float = 8.0,
    center_jitter: float = 0.3,
    bands: Sequence[str] | None = None,
) -> SyntheticBlend:
    """Draw one synthetic multi-band blend with known truth.

    Args:
      seed: anything ``numpy.random.default_rng`` accepts (an int or a sequence of ints);
        the result is a deterministic function of ``seed`` and the keywords.
      shape: (H, W), or a sequence of (H, W) to draw one from uniformly.
      n_bands: number of bands B.
      n_sources: number of sources S, or an inclusive (min, max) range to draw from. Fewer
        are placed when the image cannot hold them ``min_separation`` apart.
      psf_fwhm: PSF FWHM in pixels: a (B,) sequence, a scalar (scaled by 1.1 in the bluest
        band down to 0.9 in the reddest), or None for ``linspace(3.4, 2.6, B)``.
      psf_size: odd side of the PSF images (reduced to ``2 min(H, W) - 1`` for tiny images).
      noise_rms: Gaussian noise std per band: a scalar or a (B,) sequence. The variance
        plane is ``noise_rms_b ** 2`` everywhere.
      flux_range: (min, max) of the band-summed flux of a source, drawn log-uniformly.
      radius_range: (min, max) half-light radius of disks in pixels, log-uniform; bulges
        get 0.2 to 0.5 of their disk's radius (at least 0.3 px).
      point_fraction: probability that a source is a point source.
      bulge_fraction: probability that a galaxy has a (redder) de Vaucouleurs bulge.
      min_separation: minimum distance between true centres, in pixels.
      edge_margin: minimum distance of true centres from the image edge in pixels (0 allows
        centres anywhere up to the edge pixels; their light then falls partly outside).
      center_jitter: std in pixels of the Gaussian error added to each catalogue coordinate.
      bands: B band names; default ``g r i z y`` for 5 bands, else "0", "1", ...

    Returns:
      A :class:`SyntheticBlend`; sources are in random order.
    """
    rng = np.random.default_rng(seed)
    height, width = _choose_shape(rng, shape)
    n_bands = int(n_bands)
    if n_bands < 1:
        raise ValueError(f"n_bands must be >= 1, got {n_bands}")
    if bands is None:
        bands = DEFAULT_BANDS.get(n_bands, tuple(str(b) for b in range(n_bands)))
    if np.ndim(n_sources) == 0:
        n_min = n_max = int(n_sources)
    else:
        n_min, n_max = (int(v) for v in n_sources)
    if not 1 <= n_min <= n_max:
        raise ValueError(f"n_sources: need 1 <= min <= max, got {n_sources}")
    if psf_fwhm is not None and np.ndim(psf_fwhm) == 0:
        psf_fwhm = float(psf_fwhm) * (np.linspace(1.1, 0.9, n_bands) if n_bands > 1 else np.ones(1))
    fwhm = _band_values("psf_fwhm", psf_fwhm, n_bands, np.linspace(3.4, 2.6, n_bands))
    rms = _band_values("noise_rms", noise_rms, n_bands, np.ones(n_bands))
    psf_size = int(psf_size)
    if psf_size < 1 or psf_size % 2 == 0:
        raise ValueError(f"psf_size must be odd and positive, got {psf_size}")
    psf_size = min(psf_size, 2 * min(height, width) - 1)
    flux_lo, flux_hi = (float(v) for v in flux_range)
    r_lo, r_hi = (float(v) for v in radius_range)
    if not 0 < flux_lo <= flux_hi or not 0 < r_lo <= r_hi:
        raise ValueError(
            f"flux_range {flux_range} / radius_range {radius_range}: need 0 < lo <= hi"
        )

    n_wanted = int(rng.integers(n_min, n_max + 1))
    true_centers = _place(rng, n_wanted, (height, width), float(edge_margin), min_separation)
    n_src = len(true_centers)

    psf_weights, psf_vars = _psf_mixture(fwhm)
    true_images = np.zeros((n_src, n_bands, height, width))
    true_fluxes = np.zeros((n_src, n_bands))
    for s in range(n_src):
        total = math.exp(rng.uniform(math.log(flux_lo), math.log(flux_hi)))
        if rng.uniform() < point_fraction:
            amps = (total * _spectrum(rng, rng.normal(0.3, 0.8), n_bands))[:, None]
            covs = np.zeros((1, 2, 2))
        else:
            slope = rng.normal(0.0, 0.7)
            radius = math.exp(rng.uniform(math.log(r_lo), math.log(r_hi)))
            q, angle = rng.uniform(0.3, 1.0), rng.uniform(0.0, math.pi)
            disk_amp, disk_var = EXP_MIXTURE
            covs = _shape_covariances(radius, q, angle, disk_var)
            frac = rng.uniform(0.1, 0.5) if rng.uniform() < bulge_fraction else 0.0
            amps = np.outer((1 - frac) * total * _spectrum(rng, slope, n_bands), disk_amp)
            if frac > 0:
                bulge_amp, bulge_var = DEV_MIXTURE
                b_radius = max(radius * rng.uniform(0.2, 0.5), 0.3)
                b_q, b_angle = rng.uniform(0.6, 1.0), angle + rng.normal(0.0, 0.2)
                covs = np.concatenate([covs, _shape_covariances(b_radius, b_q, b_angle, bulge_var)])
                bulge = frac * total * _spectrum(rng, slope + 0.7, n_bands)
                amps = np.concatenate([amps, np.outer(bulge, bulge_amp)], axis=1)
        stamp, window = _render_source(
            true_centers[s], amps, covs, psf_weights, psf_vars, (height, width)
        )
        true_images[s][(slice(None),) + window] = stamp
        true_fluxes[s] = amps.sum(axis=1)

    noise = rng.normal(size=(n_bands, height, width)) * rms[:, None, None]
    images = true_images.sum(axis=0) + noise
    variance = np.broadcast_to((rms**2)[:, None, None], images.shape)
    observation = make_observation(
        images.astype(np.float32),
        variance.astype(np.float32),
        _psf_images(fwhm, psf_size).astype(np.float32),
        bands=bands,
    )
    jitter = rng.normal(scale=float(center_jitter), size=true_centers.shape)
    centers = np.clip(true_centers + jitter, 0.0, [height - 1.0, width - 1.0])
    return SyntheticBlend(
        observation=observation,
        centers=centers.astype(np.float32),
        true_fluxes=true_fluxes.astype(np.float32),
        true_images=true_images.astype(np.float32),
        true_centers=true_centers.astype(np.float32),
    )


def synthetic_blends(n: int, seed: int = 0, **kwargs) -> list[SyntheticBlend]:
    """Draw ``n`` independent synthetic blends.

    Args:
      n: number of blends.
      seed: base seed; blend ``i`` is ``synthetic_blend([seed, i], **kwargs)``, so the list
        is deterministic and a prefix of a longer list with the same seed.
      **kwargs: keywords of :func:`synthetic_blend` (``shape`` may be a list of shapes).

    Returns:
      A list of ``n`` :class:`SyntheticBlend`.
    """
    if int(n) < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [synthetic_blend([int(seed), i], **kwargs) for i in range(int(n))]
