"""Proximal operators on one morphology ``(h, w)``: symmetry, thresholds, small projections.

Every operator is a pure function of arrays, jittable and vmappable, for one morph; batch
with ``jax.vmap``. Each docstring opens with the problem it solves (its argmin), or says
that it is not a projection. Arrays come in as numpy or JAX arrays; integer images are cast
to float32, float64 stays float64 (when x64 is on). Coordinates are (y, x).

The uncentred symmetry reproduces scarlet lite's ``prox_uncentered_symmetry`` exactly, and the
background threshold is the one in lite's ``FactorizedComponent.prox_morph``. The L0/L1
thresholds are ours (lite has none): see :func:`sparsity_threshold` for the definition.
scarlet lite's weighted monotonicity, with its host-side schedule and scan engine, is in
:mod:`scarlet_jax.monotonicity`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "bg_threshold",
    "bg_significant",
    "find_peak",
    "l0_threshold",
    "l1_threshold",
    "max_normalize",
    "peak_floor",
    "positivity",
    "sparsity_threshold",
    "uncentered_symmetry",
]


# --------------------------------------------------------------------------------------------
# helpers


def _as_float(x, xp=jnp) -> jax.Array:
    """Array of a floating dtype: floats keep theirs, anything else becomes float32."""
    x = xp.asarray(x)
    if not xp.issubdtype(x.dtype, xp.floating):
        x = x.astype(xp.float32)
    return x


def _as_index(center) -> jax.Array:
    """(2,) int32 (y, x) from an int or float centre (floats rounded half to even, as numpy)."""
    center = jnp.asarray(center)
    if jnp.issubdtype(center.dtype, jnp.floating):
        center = jnp.round(center)
    return center.astype(jnp.int32)


def _check_image(image: jax.Array, name: str = "image") -> None:
    if image.ndim != 2:
        raise ValueError(f"{name} must be 2-d (h, w), got {image.shape=}")


# --------------------------------------------------------------------------------------------
# peak


def find_peak(image, center, fit_radius: int = 1) -> jax.Array:
    """Position of the maximum of ``image`` in a window around ``center``.

    The window is ``[cy - r, cy + r] x [cx - r, cx + r]`` clipped to the image, after rounding
    the centre (scarlet lite's ``get_peak``). Ties go to the first pixel in row-major order, as
    ``numpy.argmax`` of the window. A window that misses the image entirely gives the in-image
    pixel nearest to the centre.

    Args:
      image: (h, w) float.
      center: (2,) int or float (y, x); may be traced.
      fit_radius: static half-size ``r`` of the window.

    Returns:
      (2,) int32 (y, x) of the peak.
    """
    image = _as_float(image)
    _check_image(image)
    h, w = image.shape
    c = _as_index(center)
    offsets = jnp.arange(-fit_radius, fit_radius + 1, dtype=jnp.int32)
    ys, xs = c[0] + offsets, c[1] + offsets  # the window, row-major: ties as numpy
    valid = ((ys >= 0) & (ys < h))[:, None] & ((xs >= 0) & (xs < w))[None, :]
    values = image[jnp.clip(ys, 0, h - 1)[:, None], jnp.clip(xs, 0, w - 1)[None, :]]
    valid, values = valid.ravel(), values.ravel()
    best = jnp.argmax(jnp.where(valid, values, -jnp.inf))
    # every window value -inf: the first in-image window pixel; a window that misses the
    # image: the in-image pixel nearest to the centre (lite would fail on an empty window)
    best = jnp.where(valid[best], best, jnp.argmax(valid))
    size = 2 * fit_radius + 1
    py = jnp.where(jnp.any(valid), ys[best // size], jnp.clip(c[0], 0, h - 1))
    px = jnp.where(jnp.any(valid), xs[best % size], jnp.clip(c[1], 0, w - 1))
    return jnp.stack([py, px]).astype(jnp.int32)


# --------------------------------------------------------------------------------------------
# symmetry


def uncentered_symmetry(image, center, fill: float | None = 0.0, *, xp=jnp,
                        centre_quirk: bool = True) -> jax.Array:
    """``argmin_z ||z - x||^2`` over z symmetric about the peak with ``z <= x`` (and
    ``z = fill`` outside the largest window centred on the peak): scarlet lite's
    ``prox_uncentered_symmetry``, which min-symmetrises each pair of pixels.

    With ``(cy, cx) = (h // 2, w // 2)`` and ``d = round(2 (p - c)) + (1 if the axis is even)``
    per axis, the largest sub-array centred on the peak, rows ``[max(d, 0), h - 1 + min(d, 0)]``,
    becomes ``min(x[y, x], x[h - 1 + dy - y, w - 1 + dx - x])`` and every pixel outside it
    becomes ``fill`` (kept as is when ``fill`` is None). Lite's special case: a peak exactly at
    ``(cy, cx)`` uses ``d = 0`` on both axes (the whole array, ``min(x, flipud(fliplr(x)))``),
    which for an even axis reflects about the half pixel before ``cy``, not about the peak
    (``centre_quirk=False`` reflects about the peak there too).

    Args:
      image: (h, w) float.
      center: (2,) int or float (y, x) of the peak; may be traced.
      fill: value outside the symmetric region (lite's component uses 0), or None.
      xp: the array module: ``jax.numpy`` (default; jittable, vmappable) or ``numpy``, which
        runs the same operator on the host in the image's own dtype (the initialisation
        symmetrises its float64 detection image this way).
      centre_quirk: static; keep lite's special case at the array centre (the fit's prox
        does, to match lite); False always reflects about the peak (the initialisation).

    Returns:
      (h, w) array of the image dtype.
    """
    image = _as_float(image, xp)
    _check_image(image)
    h, w = image.shape
    center = xp.asarray(center)
    at_centre = (center[0] == h // 2) & (center[1] == w // 2) & centre_quirk

    def axis(p, c, n):
        d = xp.round(2 * (p - c)).astype(xp.int32) + (1 - n % 2)
        d = xp.where(at_centre, 0, d)
        idx = xp.arange(n, dtype=xp.int32)
        inside = (idx >= xp.maximum(d, 0)) & (idx <= n - 1 + xp.minimum(d, 0))
        partner = xp.clip(n - 1 + d - idx, 0, n - 1)
        return inside, partner

    in_y, py = axis(center[0], h // 2, h)
    in_x, px = axis(center[1], w // 2, w)
    sym = xp.minimum(image, image[py[:, None], px[None, :]])
    inside = in_y[:, None] & in_x[None, :]
    outside = image if fill is None else xp.asarray(fill, image.dtype)
    return xp.where(inside, sym, outside)


# --------------------------------------------------------------------------------------------
# thresholds and small projections


def bg_significant(morph, spectrum, bg_rms, bg_thresh) -> jax.Array:
    """(h, w) bool: where ``spectrum_b * morph >= bg_rms_b * bg_thresh`` in at least one band.

    scarlet lite's ``significant`` mask (it drives ``resize``).

    Args:
      morph: (h, w) float.
      spectrum: (B,) float.
      bg_rms: (B,) float, the per-band background noise (lite: ``observation.noise_rms``).
      bg_thresh: () float, in units of ``bg_rms``.
    """
    morph = _as_float(morph)
    spectrum = jnp.asarray(spectrum, morph.dtype)
    level = (jnp.asarray(bg_rms, morph.dtype) * jnp.asarray(bg_thresh, morph.dtype))[:, None, None]
    return jnp.any(spectrum[:, None, None] * morph[None] >= level, axis=0)


def bg_threshold(morph, spectrum, bg_rms, bg_thresh) -> jax.Array:
    """``argmin_z ||z - morph||^2`` subject to ``z = 0`` on the pixels where the model is
    faint in every band (scarlet lite's background threshold; the faint set is read from the
    input): zero the morph there, keep it elsewhere.

    ``morph[all_b(spectrum_b * morph < bg_rms_b * bg_thresh)] = 0``, with the spectrum that the
    same update produced (lite uses the already-updated spectrum). ``bg_thresh = 0`` zeroes
    exactly the pixels where the model is negative in every band.

    Args:
      morph: (h, w) float.
      spectrum: (B,) float.
      bg_rms: (B,) float.
      bg_thresh: () float (lite default 0.25; the LSST pipeline uses 1.0).

    Returns:
      (h, w) array of the morph dtype.
    """
    morph = _as_float(morph)
    keep = bg_significant(morph, spectrum, bg_rms, bg_thresh)
    return jnp.where(keep, morph, jnp.zeros((), morph.dtype))


def sparsity_threshold(spectrum, bg_rms, thresh) -> jax.Array:
    """The morph value at which a component pixel has S/N ``thresh`` summed over bands.

    A morph pixel ``m`` adds ``spectrum_b * m`` to band b, with noise ``bg_rms_b``; its
    matched-filter S/N over the bands is ``m * sqrt(sum_b spectrum_b^2 / bg_rms_b^2)``. So

    .. math:: t = \\mathrm{thresh} / \\sqrt{\\textstyle\\sum_b s_b^2 / \\sigma_b^2}

    which treats bright and faint components alike (scale the spectrum up by a, t goes down by
    a). A zero spectrum gives ``t = inf`` (everything is below noise); ``thresh = 0`` gives 0.

    Args:
      spectrum: (B,) float.
      bg_rms: (B,) float, > 0.
      thresh: () float, in units of the noise.

    Returns:
      () float threshold in morph units.
    """
    spectrum = _as_float(spectrum)
    bg_rms = jnp.asarray(bg_rms, spectrum.dtype)
    thresh = jnp.asarray(thresh, spectrum.dtype)
    snr2 = jnp.sum(jnp.square(spectrum / bg_rms))
    t = thresh / jnp.sqrt(snr2)
    return jnp.where(thresh > 0, t, jnp.zeros((), spectrum.dtype))


def l0_threshold(morph, spectrum, bg_rms, thresh) -> jax.Array:
    """``argmin_z 0.5 ||z - morph||^2 + 0.5 t^2 ||z||_0``: the hard threshold, zeroing the
    pixels with ``|morph| < t``.

    ``t = sparsity_threshold(spectrum, bg_rms, thresh)``: pixels whose model is below
    ``thresh`` sigma (summed over bands) are set to 0, the rest are kept unchanged.

    Args:
      morph: (h, w) float.
      spectrum: (B,) float.
      bg_rms: (B,) float.
      thresh: () float, in units of the noise.

    Returns:
      (h, w) array of the morph dtype.
    """
    morph = _as_float(morph)
    t = sparsity_threshold(jnp.asarray(spectrum, morph.dtype), bg_rms, thresh)
    return jnp.where(jnp.abs(morph) >= t, morph, jnp.zeros((), morph.dtype))


def l1_threshold(morph, spectrum, bg_rms, thresh) -> jax.Array:
    """``argmin_z 0.5 ||z - m||^2 + t ||z||_1``: the soft threshold ``sign(m) * max(|m| - t, 0)``.

    .. math:: \\arg\\min_z \\tfrac12 \\|z - m\\|^2 + t \\|z\\|_1

    with ``t = sparsity_threshold(spectrum, bg_rms, thresh)``.

    Args:
      morph: (h, w) float.
      spectrum: (B,) float.
      bg_rms: (B,) float.
      thresh: () float, in units of the noise.

    Returns:
      (h, w) array of the morph dtype.
    """
    morph = _as_float(morph)
    t = sparsity_threshold(jnp.asarray(spectrum, morph.dtype), bg_rms, thresh)
    return jnp.sign(morph) * jnp.maximum(jnp.abs(morph) - t, 0)


def positivity(morph) -> jax.Array:
    """``argmin_{z >= 0} ||z - morph||^2``: the projection onto the non-negative orthant,
    ``max(morph, 0)`` (NaN propagates)."""
    return jnp.maximum(_as_float(morph), 0)


def peak_floor(morph, peak, floor=1e-20) -> jax.Array:
    """``argmin_z ||z - morph||^2`` subject to ``z[peak] >= floor``: raise the peak pixel to
    at least ``floor`` (lite keeps a morph from vanishing this way).

    Args:
      morph: (h, w) float.
      peak: (2,) int (y, x); may be traced.
      floor: () float.
    """
    morph = _as_float(morph)
    peak = _as_index(peak)
    return morph.at[peak[0], peak[1]].max(jnp.asarray(floor, morph.dtype))


def max_normalize(morph) -> jax.Array:
    """Not a projection (no argmin; a rescaling the loss absorbs into the spectrum): non-finite
    pixels to 0, then divide by the maximum if it is positive (lite's last step).

    Args:
      morph: (h, w) (or any shape) float.

    Returns:
      array of the morph's shape and dtype, max 1 unless every pixel is <= 0.
    """
    morph = _as_float(morph)
    morph = jnp.where(jnp.isfinite(morph), morph, jnp.zeros((), morph.dtype))
    top = jnp.max(morph)
    return jnp.where(top > 0, morph / jnp.where(top > 0, top, 1), morph)
