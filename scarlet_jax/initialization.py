"""Initial components from peak positions: scarlet lite's factorized (chi^2) initialisation.

This is per-blend host code in float64 numpy; it returns
:class:`~scarlet_jax.components.InitComponent` tuples (float32 arrays), which
:func:`~scarlet_jax.packing.pack_blend` turns into device arrays.

The recipe (scarlet lite ``initialization.py:FactorizedInitialization``), per source centre
``c`` (rounded to the nearest pixel):

1. ``snr = floor(psf_weighted_snr(c)) / min_snr`` with the *observed* PSFs.
2. The detection image (default the chi^2 image ``sum_b images_b / noise_rms_b**2`` of
   :func:`scarlet_jax.detect.detection_image`) is made min-symmetric about ``c`` (0 where a
   pixel has no partner inside the image; :func:`scarlet_jax.prox.uncentered_symmetry`).
3. :func:`monotonic_mask` keeps the pixels reachable from the peak by a non-increasing,
   positive 4-neighbour path; pixels at or below ``mean(noise_rms) * initial_bg_thresh`` are
   zeroed; the box is the tight box of what is left, grown by ``2 * padding`` (lite grows
   it once when trimming and once more afterwards; ``padding`` once when the threshold is
   0) and clipped to the image.
4. ``spectrum = images[:, c] / convolved[:, c] * max(morph)`` (``convolved`` is the detection
   image convolved with each band's difference kernel; negative values become 0), and
   ``morph /= max(morph)``.
5. A source whose morphology is empty becomes a point source (:func:`point_source_component`);
   one with ``snr >= 2`` (``SNR >= 2 * min_snr``) is split into a core
   ``max(morph - t, 0)`` and a disk ``min(morph, t)`` (``t = disk_percentile / 100``), both
   max-normalised and sharing the box, with spectra fitted jointly; any other source keeps
   the single component.

Finally :func:`fit_spectra` refits every spectrum at once with the morphologies fixed.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from .boxes import overlap
from .centers import round_centers
from .components import InitComponent
from .detect import _robust_std, detection_image
from .errors import BadInputError
from .fft import next_fast_len
from .observation import Observation
from .options import InitOptions
from .prox import uncentered_symmetry
from .starlet import default_scales, starlet_noise_levels, starlet_transform

__all__ = [
    "wavelet_detection_image",
    "init_components",
    "point_source_component",
    "fit_spectra",
    "multifit_spectra",
    "convolve_same",
    "psf_weighted_snr",
    "monotonic_mask",
    "local_bump",
    "colour_difference",
]


# ----------------------------------------------------------------------------- helpers


def convolve_same(images: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Linear convolution of each image with each band's kernel, cropped to the image.

    Pixels outside the image count as 0 and nothing wraps around, so the result equals the
    direct real-space sum ``out[y, x] = sum_{i, j} k[i, j] * img[y - i + kh//2, x - j + kw//2]``
    (scarlet lite's ``apply_filter``); it is evaluated with a float64 FFT padded to the full
    linear size, which agrees with the direct sum to rounding.

    Args:
      images: (..., H, W) float images.
      kernels: (B, kh, kw) float kernels, odd sizes, centred on (kh // 2, kw // 2).

    Returns:
      (..., B, H, W) float64 convolved images.
    """
    images = np.asarray(images, dtype=np.float64)
    kernels = np.asarray(kernels, dtype=np.float64)
    if kernels.ndim != 3 or kernels.shape[1] % 2 == 0 or kernels.shape[2] % 2 == 0:
        raise BadInputError(f"kernels {kernels.shape}: expected (B, kh, kw) with odd kh, kw")
    h, w = images.shape[-2:]
    kh, kw = kernels.shape[1:]
    shape = (next_fast_len(h + kh - 1), next_fast_len(w + kw - 1))
    img_f = np.fft.rfft2(images, s=shape)[..., None, :, :]
    ker_f = np.fft.rfft2(kernels, s=shape)
    full = np.fft.irfft2(img_f * ker_f, s=shape)
    return full[..., kh // 2 : kh // 2 + h, kw // 2 : kw // 2 + w]


def psf_weighted_snr(observation: Observation, center) -> float:
    """PSF-weighted signal-to-noise ratio at ``center``, summed over bands.

    ``SNR = sum(image * psf) / sqrt(sum(psf**2 * variance))`` with the *observed* PSF
    centred on ``center`` and clipped to the image; pixels with weight 0 are left out.

    Args:
      observation: the blend.
      center: (y, x) int pixel inside the image.

    Returns:
      The SNR (NaN when no pixel has weight > 0).
    """
    cy, cx = (int(v) for v in center)
    _, height, width = observation.shape
    kh, kw = observation.psfs.shape[1:]
    y0, x0 = cy - kh // 2, cx - kw // 2
    iy0, iy1 = max(y0, 0), min(y0 + kh, height)
    ix0, ix1 = max(x0, 0), min(x0 + kw, width)
    psf = np.asarray(observation.psfs, np.float64)[:, iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    img = np.asarray(observation.images, np.float64)[:, iy0:iy1, ix0:ix1]
    var = np.asarray(observation.variance, np.float64)[:, iy0:iy1, ix0:ix1]
    good = np.asarray(observation.weights)[:, iy0:iy1, ix0:ix1] > 0
    num = np.sum(np.where(good, img * psf, 0.0))
    den = np.sum(np.where(good, psf * psf * np.where(good, var, 0.0), 0.0))
    return float(num / np.sqrt(den)) if den > 0 else float("nan")


def _peak_near(image: np.ndarray, center, radius: int) -> tuple[int, int]:
    """Argmax of ``image`` in the window ``center +- radius`` (clipped to the image)."""
    cy, cx = (int(v) for v in center)
    y0, x0 = max(cy - radius, 0), max(cx - radius, 0)
    sub = image[y0 : cy + radius + 1, x0 : cx + radius + 1]
    py, px = np.unravel_index(np.argmax(sub), sub.shape)
    return int(py) + y0, int(px) + x0


def monotonic_mask(
    image: np.ndarray,
    center,
    *,
    center_radius: int = 1,
    variance: float = 0.0,
    monotonic: bool = True,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Pixels connected to the peak by a non-increasing, positive 4-neighbour path.

    This is scarlet lite's init-only ``prox_monotonic_mask`` with ``max_iter=0`` (no orphan
    interpolation): starting from the peak (the argmax within ``center_radius`` of
    ``center``), a breadth-first search over 4-neighbours accepts a pixel ``n`` reached from
    an accepted pixel ``m`` when ``x[n] <= x[m] + variance`` and ``x[n] > 0``. Acceptance
    depends only on pixel values, so the accepted set is the closure of that relation; it is
    grown here with whole-array sweeps until it stops changing. The peak is always accepted.

    Args:
      image: (H, W) float.
      center: (y, x) int pixel.
      center_radius: search radius for the peak around ``center`` (0: use ``center``).
      variance: tolerance on the non-increasing test.
      monotonic: if False, drop the non-increasing test (any positive connected pixel).

    Returns:
      ``(valid, peak)``: (H, W) bool mask and the (y, x) start pixel.
    """
    x = np.asarray(image, dtype=np.float64)
    peak = _peak_near(x, center, center_radius) if center_radius > 0 else tuple(center)
    positive = x > 0
    # allowed[d][n]: n may be entered from its neighbour n - d (the parent)
    pad = np.pad(x, 1, constant_values=-np.inf)
    centre = pad[1:-1, 1:-1]
    # parents of n: the pixel above, below, left and right of it
    parents = (pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:])
    if monotonic:
        allowed = [positive & (centre <= p + variance) for p in parents]
    else:
        allowed = [positive] * 4
    valid = np.zeros(x.shape, dtype=bool)
    valid[peak] = True
    while True:
        vp = np.pad(valid, 1)
        reach = (
            (vp[:-2, 1:-1] & allowed[0])
            | (vp[2:, 1:-1] & allowed[1])
            | (vp[1:-1, :-2] & allowed[2])
            | (vp[1:-1, 2:] & allowed[3])
        )
        new = valid | reach
        if np.array_equal(new, valid):
            return valid, peak
        valid = new


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) half-open bounds of the True pixels, or None if there are none."""
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        return None
    y = np.nonzero(rows)[0]
    x = np.nonzero(cols)[0]
    return int(y[0]), int(y[-1]) + 1, int(x[0]), int(x[-1]) + 1


def _init_morph(
    detect: np.ndarray,
    center,
    *,
    threshold: float,
    padding: int,
    monotonic: bool,
) -> tuple[tuple[int, int], np.ndarray] | None:
    """Morphology (unnormalised) and box origin from a (symmetrised) detection image.

    Returns ``(origin, morph)`` or None when no positive pixel survives.
    """
    valid, _ = monotonic_mask(detect, center, monotonic=monotonic)
    morph = np.where(valid, detect, 0.0)
    if threshold > 0:
        # lite's trim_morphology grows the trimmed box by `padding`, and init_monotonic_morph
        # grows it by `padding` again (measured: the HSC boxes are 2 * padding larger per side)
        morph = np.where(morph > threshold, morph, 0.0)
        bounds = _tight_box(morph > 0)
        grow = 2 * padding
    else:
        bounds = _tight_box(valid)
        grow = padding
    if bounds is None or morph.max() <= 0:
        return None
    height, width = detect.shape
    y0, y1, x0, x1 = bounds
    y0, x0 = max(y0 - grow, 0), max(x0 - grow, 0)
    y1, x1 = min(y1 + grow, height), min(x1 + grow, width)
    return (y0, x0), morph[y0:y1, x0:x1]


def _psf_peaks(observation: Observation) -> np.ndarray:
    """(B,) peak of the model PSF convolved with each band's difference kernel."""
    model_psf = np.asarray(observation.model_psf, np.float64)
    conv = convolve_same(model_psf, observation.diff_kernel)
    return conv[:, model_psf.shape[0] // 2, model_psf.shape[1] // 2]


def _point_source(observation: Observation, center, source: int, psf_peaks) -> InitComponent:
    cy, cx = (int(v) for v in center)
    _, height, width = observation.shape
    psf = np.asarray(observation.model_psf, np.float64)
    mh, mw = psf.shape
    oy, ox = cy - mh // 2, cx - mw // 2
    y0, y1 = max(oy, 0), min(oy + mh, height)
    x0, x1 = max(ox, 0), min(ox + mw, width)
    morph = psf[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    image = np.asarray(observation.images, np.float64)[:, cy, cx]
    spectrum = np.divide(image, psf_peaks, out=np.zeros_like(image), where=psf_peaks != 0)
    spectrum = np.maximum(spectrum, 0.0)
    # lite keeps the raw PSF as the morph; normalising it to max 1 leaves the model unchanged
    peak = morph.max()
    return InitComponent(
        source=int(source),
        peak=(cy, cx),
        origin=(y0, x0),
        spectrum=(spectrum * peak).astype(np.float32),
        morph=(morph / peak).astype(np.float32),
    )


def point_source_component(observation: Observation, center, source: int = 0) -> InitComponent:
    """A point-source component: the model PSF centred on ``center``.

    The morph is the model PSF clipped to the image and scaled to max 1; the spectrum is
    ``images[:, c] / peak(model_psf * diff_kernel_b)`` (negative values -> 0), rescaled by
    the PSF maximum, so that the convolved model matches the data at the centre pixel.

    Args:
      observation: the blend.
      center: (y, x) position (rounded to the nearest pixel).
      source: index of the source it belongs to.

    Returns:
      An :class:`InitComponent` with float32 arrays.
    """
    pix = round_centers(
        np.reshape(np.asarray(center, dtype=np.float64), (1, 2)), observation.shape[1:]
    )[0]
    return _point_source(observation, pix, source, _psf_peaks(observation))


# ------------------------------------------------------------------------ spectrum fits


def _convolved_templates(observation: Observation, components) -> np.ndarray:
    """(K, B, H, W) float64: each morph placed in the image and convolved per band."""
    canvas = np.zeros((len(components),) + observation.shape[1:])
    for k, c in enumerate(components):
        morph = np.asarray(c.morph, np.float64)
        cut = overlap(c.origin, morph.shape, observation.shape[1:])
        if cut is not None:
            canvas[(k, *cut[0])] = morph[cut[1]]
    return convolve_same(canvas, observation.diff_kernel)


def _solve_spectra(observation, components, weighted: bool, strict: bool) -> np.ndarray:
    n_bands = observation.shape[0]
    k = len(components)
    if k == 0:
        return np.zeros((0, n_bands))
    templates = _convolved_templates(observation, components).reshape(k, n_bands, -1)
    images = np.asarray(observation.images, np.float64).reshape(n_bands, -1)
    if weighted:
        sqrt_w = np.sqrt(np.asarray(observation.weights, np.float64)).reshape(n_bands, -1)
    else:  # lite's uniform weights, restricted to valid (weight > 0) pixels
        sqrt_w = (np.asarray(observation.weights) > 0).astype(np.float64).reshape(n_bands, -1)
    spectra = np.zeros((k, n_bands))
    for b in range(n_bands):
        a = templates[:, b].T * sqrt_w[b][:, None]  # (pixels, K)
        # normal equations: a K x K system instead of a (pixels x K) least squares
        solution, _, rank, _ = np.linalg.lstsq(a.T @ a, a.T @ (images[b] * sqrt_w[b]),
                                               rcond=None)
        if strict and rank < k:
            raise np.linalg.LinAlgError(
                f"band {b}: the {k} convolved morphologies are degenerate (rank {rank} < {k})"
            )
        spectra[:, b] = solution
    return np.maximum(spectra, 0.0)


def multifit_spectra(observation: Observation, components, *, weighted: bool = True) -> np.ndarray:
    """Least-squares spectra of several components at once, their morphs held fixed.

    Per band ``b`` this minimises ``sum_p w_bp (D_bp - sum_k s_kb (M_k * K_b)_p)**2`` over the
    whole image, where ``M_k * K_b`` is the component's morph convolved (in real space) with
    the band's difference kernel; negative results are then set to 0.

    Args:
      observation: the blend.
      components: K :class:`InitComponent` (only ``origin`` and ``morph`` are used).
      weighted: use ``observation.weights`` (default). ``False`` gives every valid pixel
        (weight > 0) weight 1, as scarlet lite's unweighted ``multifit_spectra`` does on
        unmasked data; masked pixels are left out either way.

    Returns:
      (K, B) float64 spectra, >= 0.

    Raises:
      numpy.linalg.LinAlgError: when a band's weighted design matrix has rank < K.
    """
    return _solve_spectra(observation, components, weighted, strict=True)


def fit_spectra(
    observation: Observation, components: list[InitComponent], *, weighted: bool = True
) -> list[InitComponent]:
    """Refit every component's spectrum jointly with its morph fixed (scarlet lite's
    ``Blend.fit_spectra``); see :func:`multifit_spectra`.

    A degenerate system (components whose convolved morphs are linearly dependent in a
    band) gets the minimum-norm least-squares solution instead of an error.

    Args:
      observation: the blend.
      components: the initial components.
      weighted: weight pixels by ``observation.weights`` (default) or uniformly over the
        valid pixels (lite).

    Returns:
      New components with float32 spectra (>= 0); everything else unchanged.
    """
    return _with_spectra(components, _solve_spectra(observation, components, weighted, False))


def _with_spectra(components: list[InitComponent], spectra: np.ndarray) -> list[InitComponent]:
    """The components with their spectra replaced by the rows of ``spectra`` (as float32)."""
    return [
        c._replace(spectrum=s.astype(np.float32)) for c, s in zip(components, spectra, strict=True)
    ]


def _detection_noise(observation: Observation, detect: np.ndarray, given: bool) -> float:
    """Noise rms of the detection image: ``sqrt(sum_b 1 / noise_rms_b**2)`` for the chi^2
    image (its exact rms for independent noise), else 1.4826 x the median absolute
    deviation of ``detect``."""
    if not given:
        rms = np.asarray(observation.noise_rms, np.float64)
        rms = rms[np.isfinite(rms) & (rms > 0)]
        return float(np.sqrt(np.sum(1.0 / rms**2))) if rms.size else 0.0
    return float(1.4826 * np.median(np.abs(detect - np.median(detect))))


# --------------------------------------------------------------------------- the driver

def _own_share(remaining: np.ndarray, detect: np.ndarray, center) -> float:
    """A source's share of the detection image at its centre, in [0, 1]: what is left
    after the brighter sources' initial morphologies were subtracted, over the total."""
    total = float(detect[center])
    if not total > 0:
        return 1.0
    return float(np.clip(remaining[center] / total, 0.0, 1.0))


#: ``symmetric_dominated``: a source is dominated when its brighter neighbours give more
#: than this fraction of the detection image at its centre.
DOMINATED = 0.5

#: ``init_share_own``: a source whose centre is below this fraction of an overlapping
#: neighbour's (in the detection image) is faint, whatever its own part of the centre.
PEAK_RATIO = 0.1

#: ``symmetric_low_peak``: a low-peak source is made symmetric when its brighter
#: neighbours give at least this fraction of the detection image at its centre.
LOW_PEAK_WING = 0.1


def _half_max_radius(psfs) -> float:
    """Half-maximum radius of the band-averaged PSF (pixels): ``sqrt(area / pi)``."""
    psf = np.mean(np.asarray(psfs, np.float64), axis=0)
    return float(np.sqrt(np.count_nonzero(psf >= psf.max() / 2) / np.pi))


def local_bump(image: np.ndarray, center, r_in: float, r_out: float) -> tuple[np.ndarray, float]:
    """A source's own light at its centre: ``image`` minus the median of the ring
    ``r_in <= r < r_out`` around ``center``, inside the disc ``r < r_in`` (0 outside).

    On a neighbour's wing the ring median is the wing's level at the centre (a smooth
    wing's gradient averages out over the ring), so what stands above it is the source's
    own bump, whatever the neighbours' initial morphologies claim there.

    Args:
      image: (..., H, W) float (the detection image, or the images per band).
      center: (y, x) int pixel.
      r_in, r_out: ring radii in pixels (``r_out > r_in``).

    Returns:
      ``(bump, level)``: (..., H, W) float64 bump (image minus the ring median inside the
      disc) and the ring median (scalar for a 2-d image, else (...,) as an array).
    """
    x = np.asarray(image, np.float64)
    yy, xx = np.indices(x.shape[-2:])
    r = np.hypot(yy - center[0], xx - center[1])
    ring = (r >= r_in) & (r < r_out)
    level = np.median(x[..., ring], axis=-1) if ring.any() else np.zeros(x.shape[:-2])
    inside = r < r_in
    bump = np.where(inside, x - np.asarray(level)[..., None, None], 0.0)
    return bump, level


def colour_difference(bump: np.ndarray, level: np.ndarray, noise_rms: np.ndarray) -> float:
    """How far a bump's spectrum is from the wing's colour: ``sin^2`` of the angle between
    ``bump`` and ``level`` (both (B,)), with band weights ``1 / noise_rms**2``; 0 when the
    two are proportional, 1 when orthogonal (or either is 0).

    A neighbour's wing and its curvature over a ring share the neighbour's colour (up to
    its colour gradient and the PSFs' differences); a source of its own usually differs.
    """
    b, lev = np.asarray(bump, np.float64), np.asarray(level, np.float64)
    w = 1.0 / np.asarray(noise_rms, np.float64) ** 2
    bb, ll, bl = np.sum(w * b * b), np.sum(w * lev * lev), np.sum(w * b * lev)
    if not (bb > 0 and ll > 0):
        return 1.0
    return float(np.clip(1.0 - bl * bl / (bb * ll), 0.0, 1.0))


def _bump_seed(observation, detect, remaining, center, source, psf_peaks, r_in, r_out,
               least, colour=0.0) -> InitComponent | None:
    """A point source scaled to the local bump of the images at ``center`` (per band),
    when the detection image's bump there is above ``least`` and more than twice what the
    split left the source (``remaining``), and (``colour`` > 0) its colour differs from the
    ring's by more than ``colour`` (:func:`colour_difference`); else None."""
    # the ring lies within r_out of the centre: both bumps are measured on that window
    reach = int(np.ceil(r_out))
    y0, x0 = max(center[0] - reach, 0), max(center[1] - reach, 0)
    y1, x1 = center[0] + reach + 1, center[1] + reach + 1
    local = (center[0] - y0, center[1] - x0)
    own = local_bump(detect[y0:y1, x0:x1], local, r_in, r_out)[0][local]
    if not (own > least and remaining[center] < 0.5 * own):
        return None
    comp = _point_source(observation, center, source, psf_peaks)
    window = np.asarray(observation.images, np.float64)[:, y0:y1, x0:x1]
    band_bump, band_level = local_bump(window, local, r_in, r_out)
    at = band_bump[(slice(None), *local)]
    if colour > 0 and colour_difference(at, band_level, observation.noise_rms) <= colour:
        return None  # the wing's own colour: its curvature, not a source
    spectrum = np.divide(at, psf_peaks, out=np.zeros_like(at), where=psf_peaks != 0)
    return comp._replace(spectrum=(np.maximum(spectrum, 0.0) * float(
        np.asarray(observation.model_psf).max())).astype(np.float32))


def shared_light(
    detect: np.ndarray,
    pix: np.ndarray,
    *,
    threshold: float,
    padding: int = 2,
    monotonic: bool = True,
    symmetric_init: bool = True,
) -> np.ndarray:
    """The detection image split among the sources by their isolated initial morphologies
    and brightness.

    Each source's isolated morphology ``m_s`` (H, W) is the one it would get alone on the
    whole (symmetrised) detection image, as scarlet lite initialises every source; its
    isolated flux is ``F_s = sum(m_s)``. Where those overlap the light is shared as in
    flux re-distribution, with each source weighted by its brightness as well:
    ``share_s = detect * m_s F_s / sum_t m_t F_t`` (0 where no morphology reaches). A
    faint source on a bright neighbour's wing then keeps about its own light (its
    symmetric, monotonic ``m_s`` reaches over the wing, but its ``F_s`` is small), and the
    first source of a greedy bright-first subtraction no longer takes all of the light it
    overlaps (the one with the brightest centre need not be the brightest source).

    Args:
      detect: (H, W) float64 detection image.
      pix: (S, 2) int (y, x) source centres.
      threshold, padding, monotonic, symmetric_init: as for the initial morphologies.

    Returns:
      (S, H, W) float64 shares; they sum to ``detect`` where any morphology reaches.
    """
    iso = _isolated_morphs(detect, pix, threshold=threshold, padding=padding,
                           monotonic=monotonic, symmetric_init=symmetric_init)
    return _brightness_split(detect, iso)


def _brightness_split(detect: np.ndarray, iso: np.ndarray) -> np.ndarray:
    """``detect`` (H, W) split by the isolated morphologies ``iso`` (S, H, W) times their
    fluxes (:func:`shared_light`)."""
    return _split(detect, iso * iso.sum((1, 2), keepdims=True))


def _split(detect: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``detect`` (H, W) split in proportion to ``weights`` (S, H, W); 0 where all are 0."""
    total = weights.sum(0)
    return np.where(total > 0, detect * weights / np.where(total > 0, total, 1.0), 0.0)


def _isolated_morphs(detect, pix, *, threshold, padding, monotonic, symmetric_init):
    """(S, H, W) every source's initial morphology alone on the whole detection image."""
    iso = np.zeros((len(pix),) + detect.shape)
    for s, (cy, cx) in enumerate(np.asarray(pix).astype(int)):
        det = (uncentered_symmetry(detect, (cy, cx), xp=np, centre_quirk=False)
               if symmetric_init else detect)
        found = _init_morph(det, (cy, cx), threshold=threshold, padding=padding,
                            monotonic=monotonic)
        if found is not None:
            (oy, ox), m = found
            iso[s, oy:oy + m.shape[0], ox:ox + m.shape[1]] = m
    return iso


def faint_sources(iso: np.ndarray, detect: np.ndarray, pix: np.ndarray,
                  own: float) -> np.ndarray:
    """Which sources are faint: at their centre, the isolated morphologies of the sources
    with more isolated flux (``F_t = sum(iso_t)`` > ``F_s``) make up more than ``1 - own``
    of the detection image (the source's own part is under ``own``), or the detection
    image there is under :data:`PEAK_RATIO` of that at an overlapping neighbour's centre.

    The isolated flux alone does not tell: a faint source's symmetric, monotonic isolated
    morphology spreads over a bright neighbour's wing and holds a large part of it. The
    brighter neighbour's isolated morphology at the faint one's centre is the wing there
    (its symmetry about the bright centre leaves the faint bump out).

    Args:
      iso: (S, H, W) isolated initial morphologies (>= 0).
      detect: (H, W) the detection image.
      pix: (S, 2) int (y, x) source centres.
      own: the least own part of the centre, in [0, 1] (0: none is faint).

    Returns:
      (S,) bool.
    """
    if len(iso) == 0:
        return np.zeros(0, bool)
    flux = iso.sum((1, 2))
    ys, xs = np.asarray(pix).astype(int).T
    at_centres = iso[:, ys, xs]  # (T, S): source t's isolated morphology at s's centre
    brighter = flux[:, None] > flux[None, :]
    wing = np.where(brighter, at_centres, 0.0).sum(0)
    total = detect[ys, xs]
    return np.where(total > 0, (wing > (1.0 - own) * total) | low_peak(iso, detect, pix),
                    own > 0)


def low_peak(iso: np.ndarray, detect: np.ndarray, pix: np.ndarray) -> np.ndarray:
    """(S,) bool: the detection image at a source's centre is under :data:`PEAK_RATIO` of
    that at the centre of a neighbour whose isolated morphology (``iso``, (S, H, W))
    overlaps its own."""
    if len(iso) == 0:
        return np.zeros(0, bool)
    ys, xs = np.asarray(pix).astype(int).T
    total = detect[ys, xs]
    reach = (iso > 0).reshape(len(iso), -1).astype(np.float64)
    overlap = (reach @ reach.T) > 0
    np.fill_diagonal(overlap, False)
    peak = np.where(overlap, total[:, None], 0.0).max(0, initial=0.0)  # (S,) brightest neighbour
    return total < PEAK_RATIO * peak


def hybrid_shares(
    detect: np.ndarray, pix: np.ndarray, iso: np.ndarray, *, own: float
) -> tuple[np.ndarray, np.ndarray]:
    """The detection image split in proportion to the isolated initial morphologies among
    the sources of comparable brightness only; the faint ones (:func:`faint_sources`) get
    no share and are left to the bright-first subtraction.

    Args:
      detect: (H, W) float64 detection image.
      pix: (S, 2) int (y, x) source centres.
      iso: (S, H, W) the sources' isolated initial morphologies (as in
        :func:`shared_light`).
      own: the least own part of a shared source's centre (see :func:`faint_sources`).

    Returns:
      (S, H, W) float64 shares (0 for the faint sources) and (S,) bool faint.
    """
    faint = faint_sources(iso, detect, pix, own)
    return _split(detect, np.where(faint[:, None, None], 0.0, iso)), faint


def init_components(
    observation: Observation,
    centers,
    *,
    options: InitOptions | None = None,
    padding: int = 2,
    disk_percentile: float = 25,
    detect=None,
    symmetric_init: bool = True,
    **init_options,
) -> list[InitComponent]:
    """Initial components for every source (scarlet lite's ``FactorizedInitialization``).

    See the module docstring for the recipe. The initialisation options (the ``"init"``
    group of :data:`scarlet_jax.options.OPTIONS`: ``init``, ``min_snr``,
    ``initial_bg_thresh``, ``max_components``, ``monotonic``, ``fit_spectra``,
    ``weighted_spectra``, ``init_noise_relative``, ``init_subtract``,
    ``symmetric_dominated``, ``init_own_snr``, ``init_share``, ``init_share_own``,
    ``init_bump_seed``, ``init_bump_colour``, ``symmetric_low_peak``) come as
    a checked :class:`~scarlet_jax.options.InitOptions`, or as keywords with the same
    names and defaults as :func:`~scarlet_jax.deblend`'s;
    keywords override ``options``. Scarlet lite's recipe (the init options of
    ``LSST_PIPELINE``) is ``initial_bg_thresh=1.0, init_noise_relative=False,
    init_subtract=False, symmetric_dominated=False, init_own_snr=False,
    init_share=False, init_share_own=0, init_bump_seed=0,
    init_bump_colour=0, symmetric_low_peak=False``.

    What each option does here:

    * ``init``: ``"wavelet"`` starts from :func:`wavelet_detection_image` (when ``detect``
      is not given).
    * ``min_snr``: PSF-weighted SNR needed per component (two components need
      ``2 * min_snr``).
    * ``initial_bg_thresh``: with ``init_noise_relative=False`` the morphology is cut at
      ``mean(noise_rms) * initial_bg_thresh`` in detection-image units (as lite; for the
      chi^2 image the units do not match).
    * ``max_components``: 0 (every source a point source), 1 or 2.
    * ``monotonic``: keep only the monotonic region around the peak (lite's sparse init);
      False keeps every positive pixel connected to the peak.
    * ``fit_spectra``: refit all spectra jointly at the end (:func:`fit_spectra`).
    * ``weighted_spectra``: weight the spectrum fits by ``observation.weights``; False
      fits every valid pixel with weight 1, as lite's ``multifit_spectra`` does (this
      reproduces lite's initial log-likelihood on the HSC blend to 1e-6).
    * ``init_noise_relative``: cut the morphology at ``initial_bg_thresh`` times the noise
      rms of the detection image (``sqrt(sum_b 1 / noise_rms_b**2)`` for the chi^2 image,
      the median absolute deviation of a given or wavelet ``detect``) instead of lite's
      ``mean(noise_rms) * initial_bg_thresh``, whose units do not match the chi^2 image:
      lite's cut is 1e-4 sigma on HSC but thousands of sigma on LSST-depth images in
      electrons, where it leaves large galaxies in 13-15 px boxes.
    * ``init_subtract``: initialise the sources from the brightest (largest detection
      value at the centre) to the faintest, each on the detection image minus the
      morphologies of the brighter ones, so a faint source does not start with a bright
      neighbour's wing as its own morphology (lite initialises every source on the whole
      image).
    * ``init_share``: with ``init_subtract``, each source starts instead from its share
      of the detection image (:func:`shared_light`: the light split in proportion to the
      sources' isolated initial morphologies times their isolated fluxes), so the order
      no longer matters and the source with the brightest centre does not take all of
      the light it overlaps ("remaining" below is then the share).
    * ``init_share_own`` (> 0): with ``init_subtract``, the sources that own their centre
      (:func:`faint_sources`) start from their share of a proportional split among them
      (:func:`hybrid_shares`); the others are initialised after them, on the detection
      image minus all morphologies so far, as ``init_subtract`` does.
    * ``init_bump_seed`` (> 0): with ``init_subtract``, a dominated source (see below)
      whose remaining light at its centre is under half of its :func:`local_bump` (the
      detection image minus the median of a ring of 2-4 PSF half-maximum radii, above 3
      noise rms) starts instead as a point source scaled to each band's bump there, and
      the joint refit (``fit_spectra``) keeps at least this fraction of that spectrum.
      It brings back sources the split leaves nothing, but on a steep bright wing the
      ring median also lets through the wing's curvature (``benchmarks/RESULTS.md``,
      session 6), hence the colour test below. The defaults (``init_share_own=0.5``,
      ``init_bump_seed=0.25``, ``init_bump_colour=0.005``, ``symmetric_low_peak``) were
      chosen on both benchmark kinds (session 8).
    * ``init_bump_colour`` (> 0): with ``init_bump_seed``, seed a bump only when its
      spectrum differs from the ring median's (the wing's colour there) by more than this
      (:func:`colour_difference`, ``sin^2`` of the noise-weighted angle): a bright wing's
      curvature has the wing's colour, a faint source of its own usually does not.
    * ``symmetric_dominated``: with ``init_subtract``, mark a source ``symmetric`` when
      the brighter sources make up more than ``DOMINATED`` (half) of the detection image at
      its centre. The data cannot tell such a source's light from its neighbour's, and a
      free morphology there grows over the neighbour's wing (a faint galaxy reported many
      times too bright); a symmetric one cannot keep a one-sided wing.
    * ``symmetric_low_peak``: with ``symmetric_dominated``, mark a source ``symmetric``
      also when its centre is under :data:`PEAK_RATIO` of an overlapping neighbour's
      (:func:`low_peak`) and the brighter sources' morphologies give at least
      :data:`LOW_PEAK_WING` of the detection image there (not only above ``DOMINATED``):
      such a faint source on a bright wing otherwise starts free (the remainder there
      holds the wing's asymmetric part) and keeps it. A faint source that no brighter
      morphology reaches stays free (HSC's faint galaxies: symmetric, they fit worse).
    * ``init_own_snr``: with ``init_subtract``, scale a source's SNR by its own share of
      the detection image at its centre (``remaining / detect``) before the ``min_snr``
      test, so a faint source on a bright neighbour's wing does not get a second, free
      component for the neighbour's light.

    Args:
      observation: the blend.
      centers: (S, 2) float (y, x) source positions, rounded to the nearest pixel.
      options: the initialisation options (default: the table's defaults).
      padding: pixels added on each side of a box (twice when the threshold is > 0, as
        lite does; this reproduces its HSC boxes exactly).
      disk_percentile: the core/disk split level in percent of the morph maximum.
      detect: optional (H, W) detection image; default the chi^2 (or wavelet) image.
      symmetric_init: symmetrise the detection image about each centre first.
      **init_options: initialisation options by name (see above).

    Returns:
      The components, source by source (core before disk), as :class:`InitComponent` with
      float32 ``spectrum`` (B,) and ``morph`` (h, w) of max 1.

    Raises:
      BadInputError: bad centres, detection image or options (an option of the fit, such as
        ``bg_thresh``, is not an initialisation option).
    """
    for old, name in (("noise_relative", "init_noise_relative"), ("subtract", "init_subtract")):
        if old in init_options:  # the names before the option table
            warnings.warn(f"init_components({old}=...) is now {name}=...", DeprecationWarning,
                          stacklevel=2)
            init_options.setdefault(name, init_options.pop(old))
    base = {} if options is None else dataclasses.asdict(options)
    opts = InitOptions.make(**{**base, **init_options})  # checked against the option table
    if detect is None and opts.init == "wavelet":
        detect = wavelet_detection_image(observation)
    min_snr, initial_bg_thresh = opts.min_snr, opts.initial_bg_thresh
    max_components, monotonic = opts.max_components, opts.monotonic
    fit_spectra, weighted_spectra = opts.fit_spectra, opts.weighted_spectra
    noise_relative, subtract = opts.init_noise_relative, opts.init_subtract
    symmetric_dominated, own_snr = opts.symmetric_dominated, opts.init_own_snr
    share, share_own = opts.init_share, opts.init_share_own
    bump_seed, bump_colour = opts.init_bump_seed, opts.init_bump_colour
    low_peak_symmetric = opts.symmetric_low_peak
    n_bands, height, width = observation.shape
    pix = round_centers(centers, (height, width))
    if not (0 < disk_percentile < 100):
        raise BadInputError(f"disk_percentile must be in (0, 100), got {disk_percentile}")
    if int(padding) != padding or padding < 0:
        raise BadInputError(f"padding must be a non-negative integer, got {padding}")
    padding = int(padding)

    detect_given = detect is not None
    if detect is None:
        detect = detection_image(observation).astype(np.float64)
    else:
        detect = np.asarray(detect, dtype=np.float64)
        if detect.shape != (height, width):
            raise BadInputError(f"detect {detect.shape} does not match the image {(height, width)}")
        if not np.isfinite(detect).all():
            bad = np.argwhere(~np.isfinite(detect))[0]
            raise BadInputError(
                f"detect {detect.shape}: {int((~np.isfinite(detect)).sum())} non-finite "
                f"pixel(s), first at y={bad[0]}, x={bad[1]}"
            )
    images = np.asarray(observation.images, np.float64)
    convolved = convolve_same(detect, observation.diff_kernel)  # (B, H, W)
    threshold = float(np.mean(observation.noise_rms)) * initial_bg_thresh
    if noise_relative:
        threshold = _detection_noise(observation, detect, detect_given) * initial_bg_thresh
    split = disk_percentile / 100.0
    psf_peaks = _psf_peaks(observation)
    if subtract and bump_seed > 0:
        r_half = _half_max_radius(observation.psfs)
        r_in, r_out = max(2 * r_half, 2.5), max(4 * r_half, 4.5)
        bump_noise = _detection_noise(observation, detect, detect_given)
    reseeded: set[int] = set()

    by_source: list[list[InitComponent]] = [[] for _ in range(len(pix))]
    dominated: set[int] = set()
    order = range(len(pix))
    remaining = detect
    if subtract:
        order = np.argsort(-detect[pix[:, 0].astype(int), pix[:, 1].astype(int)], kind="stable")
        remaining = detect.copy()
    shares, faint = None, np.zeros(len(pix), bool)
    use_low_peak = subtract and symmetric_dominated and low_peak_symmetric
    iso = None  # every source's isolated morphology: computed once, for all that use it
    if subtract and (share_own > 0 or share or use_low_peak):
        iso = _isolated_morphs(detect, pix, threshold=threshold, padding=padding,
                               monotonic=monotonic, symmetric_init=symmetric_init)
    if subtract and share_own > 0:
        shares, faint = hybrid_shares(detect, pix, iso, own=share_own)
        order = sorted(order, key=lambda s: bool(faint[s]))  # stable: the shared ones first
        residual = remaining
    elif subtract and share:
        shares = _brightness_split(detect, iso)
    low = low_peak(iso, detect, pix) if use_low_peak else np.zeros(len(pix), bool)
    for source in order:
        source = int(source)
        components = by_source[source]
        cy, cx = int(pix[source, 0]), int(pix[source, 1])
        if shares is not None:
            remaining = residual if faint[source] else shares[source]
        if max_components == 0:
            components.append(_point_source(observation, (cy, cx), source, psf_peaks))
            continue
        snr = np.floor(psf_weighted_snr(observation, (cy, cx))) / min_snr
        if subtract and own_snr:
            snr *= _own_share(remaining, detect, (cy, cx))
        # brighter sources make up more than DOMINATED of the detection image here
        is_dominated = (subtract and detect[cy, cx] > 0
                        and remaining[cy, cx] < (1 - DOMINATED) * detect[cy, cx])
        # a faint centre (low peak) with some of a brighter neighbour's light on it
        on_wing = (low[source] and detect[cy, cx] > 0
                   and remaining[cy, cx] < (1 - LOW_PEAK_WING) * detect[cy, cx])
        if (is_dominated and symmetric_dominated) or on_wing:
            dominated.add(source)
        if is_dominated and bump_seed > 0:
            seed = _bump_seed(observation, detect, remaining, (cy, cx), source, psf_peaks,
                              r_in, r_out, 3 * bump_noise, bump_colour)
            if seed is not None:  # the split left it less than half of its own bump
                reseeded.add(source)
                components.append(seed)
                continue
        det = (uncentered_symmetry(remaining, (cy, cx), xp=np, centre_quirk=False)
               if symmetric_init else remaining)
        found = _init_morph(
            det, (cy, cx), threshold=threshold, padding=padding, monotonic=monotonic
        )
        if found is None:
            components.append(_point_source(observation, (cy, cx), source, psf_peaks))
            continue
        origin, morph = found
        if subtract and (shares is None or share_own > 0):
            (oy, ox), (mh, mw) = origin, morph.shape
            target = remaining if shares is None else residual
            target[oy : oy + mh, ox : ox + mw] -= morph
        conv_c = convolved[:, cy, cx]
        spectrum = np.divide(images[:, cy, cx], conv_c, out=np.zeros(n_bands), where=conv_c > 0)
        spectrum = np.maximum(spectrum, 0.0)
        morph_max = morph.max()
        single = InitComponent(
            source=source,
            peak=(cy, cx),
            origin=origin,
            spectrum=(spectrum * morph_max).astype(np.float32),
            morph=(morph / morph_max).astype(np.float32),
        )
        if not (snr >= 2 and max_components >= 2):  # NaN SNR -> one component
            components.append(single)
            continue
        norm = morph / morph_max
        core = np.maximum(norm - split, 0.0)
        disk = np.minimum(norm, split)
        pair = [
            single._replace(morph=(core / core.max()).astype(np.float32)),
            single._replace(morph=(disk / disk.max()).astype(np.float32)),
        ]
        try:
            spectra = multifit_spectra(observation, pair, weighted=weighted_spectra)
        except np.linalg.LinAlgError:
            components.append(single)
            continue
        components.extend(
            p._replace(spectrum=s.astype(np.float32)) for p, s in zip(pair, spectra, strict=True)
        )

    components = [c._replace(symmetric=True) if c.source in dominated else c
                  for comps in by_source for c in comps]
    if fit_spectra and components:
        # the argument ``fit_spectra`` hides the function of that name here
        spectra = _solve_spectra(observation, components, weighted_spectra, strict=False)
        if reseeded:  # the refit may not take a re-seeded source below this part of its bump
            before = np.stack([c.spectrum for c in components]).astype(np.float64)
            keep = np.array([c.source in reseeded for c in components])[:, None]
            spectra = np.where(keep, np.maximum(spectra, bump_seed * before), spectra)
        components = _with_spectra(components, spectra)
    return components


def wavelet_detection_image(observation: Observation, k_sigma: float = 3.0) -> np.ndarray:
    """A starlet-denoised chi^2 detection image, for the wavelet-based initialisation.

    The chi^2 image ``sum_b D_b / noise_rms_b**2`` is starlet transformed; the finest scale
    (mostly noise) is dropped, the other wavelet scales keep only coefficients above
    ``k_sigma`` times their noise (measured robustly on the finest scale and propagated with
    the starlet's per-scale noise levels), and the coarse plane is kept. Negative pixels of
    the reconstruction are set to 0.

    Args:
      observation: the blend.
      k_sigma: significance threshold of the kept coefficients.

    Returns:
      (H, W) float64 image for ``init_components(..., detect=...)``.
    """
    chi2 = np.asarray(detection_image(observation), np.float64)
    scales = default_scales(chi2.shape)
    coeffs = np.asarray(starlet_transform(chi2.astype(np.float32), scales), np.float64)
    levels = starlet_noise_levels(scales)
    valid = np.asarray(observation.weights).max(axis=0) > 0
    sigma = _robust_std(coeffs[0][valid]) / levels[0] if valid.any() else 0.0
    kept = coeffs[-1].copy()
    for j in range(1, scales):
        w = coeffs[j]
        kept += np.where(np.abs(w) > k_sigma * sigma * levels[j], w, 0.0)
    return np.maximum(kept, 0.0) * valid
