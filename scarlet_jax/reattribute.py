"""Give a drained source back the bump its neighbours' morphologies took from it.

A faint source on a bright neighbour's wing can start with its own light (a bump seed) and
still end the fit with almost nothing: the neighbour's monotonic morphology holds a plateau
as high as the bump, and the fit moves the light there. The model is then fine; only the
attribution is wrong. After the fit, for a source whose data show a real bump at its centre
(above the ring around it, with a colour of its own, the tests of the bump seed in
:mod:`scarlet_jax.initialization`) but whose own components hold under ``drained`` of the
model's bump there, the part of each other component's morphology that stands above a
smooth surface fitted on a ring around the centre moves to the source's first component.
The model stays the same up to the moved pieces' colour, which the final spectrum solve
(:func:`scarlet_jax.spectra.refit_spectra`) then sets from the data.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .boxes import crop_boxes, place_boxes
from .detect import detection_image
from .initialization import (
    _detection_noise,
    _half_max_radius,
    _psf_peaks,
    colour_difference,
    local_bump,
    round_centers,
)
from .spectra import refit_spectra

__all__ = ["BELOW", "CAP", "drained_sources", "reattribute_drained", "surface_excess"]

#: A source is drained only when its flux is under this part of its bump's point-source
#: flux (detection-weighted; the bump seed's flux).
BELOW = 0.5

#: The light moved to a source may take it to at most this many times its bump's
#: point-source flux (detection-weighted), and in no band above both its old flux and this
#: many times the band's bump flux.
CAP = 1.0


def _canvas(result) -> np.ndarray:
    """(K, H, W) float64 morphologies (masked by their support) in image coordinates."""
    morphs = np.asarray(result.morphs * result.support, np.float64)
    return place_boxes(morphs, result.origins, result.observation.shape[1:])


def _slot_mask(result, k: int, shape) -> np.ndarray:
    """(H, W) bool: the pixels of component ``k``'s own box (its support) in the image."""
    support = np.asarray(result.support[k:k + 1], bool)
    return place_boxes(support, result.origins[k:k + 1], shape)[0]


def surface_excess(stack: np.ndarray, center, r_in: float, r_out: float) -> np.ndarray:
    """What stands above a smooth surface inside the disc ``r < r_in`` around ``center``:
    each image of ``stack`` minus the quadratic surface (in y, x) fitted to it on the ring
    ``r_in <= r < r_out`` (0 outside the disc). Unlike the ring median, the surface follows
    a wing's gradient and curvature, so on a smooth wing the excess is about 0.

    Args:
      stack: (K, H, W) float images.
      center: (y, x) int pixel.
      r_in, r_out: ring radii in pixels.

    Returns:
      (K, H, W) float64 (may be negative inside the disc).
    """
    x = np.asarray(stack, np.float64)
    yy, xx = np.indices(x.shape[-2:])
    dy, dx = yy - center[0], xx - center[1]
    r = np.hypot(dy, dx)
    ring, disc = (r >= r_in) & (r < r_out), r < r_in
    out = np.zeros_like(x)
    if ring.sum() < 6:
        return out
    basis = np.stack([np.ones_like(r), dy, dx, dy * dy, dx * dx, dy * dx], -1).astype(float)
    coef = np.linalg.lstsq(basis[ring], x[:, ring].T, rcond=None)[0]  # (6, K)
    out[:, disc] = x[:, disc] - (basis[disc] @ coef).T
    return out


def drained_sources(result, drained: float, colour: float, below: float = BELOW,
                    cap: float = CAP, with_seeds: bool = False):
    """The sources to give their bump back, each with the (K, H, W) pieces to move.

    A source qualifies when the detection image's bump at its centre
    (:func:`~scarlet_jax.initialization.local_bump`, ring ``2 r_h <= r < 4 r_h``) is above 3
    detection-noise rms, the images' bump has a colour of its own (``colour`` > 0:
    :func:`~scarlet_jax.initialization.colour_difference` above ``colour``), and its own
    components hold under ``drained`` of the model's bump at the centre (components weighted
    by their detection-image brightness ``sum_b s_kb / noise_rms_b**2``), and its flux is
    under ``below`` times the bump's point-source flux (both detection-weighted). Each other
    component's piece is its morphology above the quadratic surface fitted on the ring
    (:func:`surface_excess`) inside the disc ``r < 2 r_h`` and inside the source's first
    component's box, unless that component's own peak lies within ``4 r_h``; the pieces are
    scaled down so that the source ends under ``cap`` times the bump's flux.

    Args:
      result: a :class:`~scarlet_jax.result.DeblendResult`.
      drained: the largest own part of the model's bump (in [0, 1]).
      colour: the colour test's threshold (0: no test).
      below: see :data:`BELOW`.
      cap: see :data:`CAP`.
      with_seeds: also return the bumps' point-source fluxes per band.

    Returns:
      ``[(source, pieces)]`` with ``pieces`` (K, H, W) float64 (0 for the source's own);
      with ``with_seeds``, ``(that list, [(B,) bump flux per band for each])``.
    """
    obs = result.observation
    _, height, width = obs.shape
    r_half = _half_max_radius(obs.psfs)
    r_in, r_out = max(2 * r_half, 2.5), max(4 * r_half, 4.5)
    detect = np.asarray(detection_image(obs), np.float64)
    least = 3 * _detection_noise(obs, detect, False)
    images = np.asarray(obs.images, np.float64)
    rms = np.asarray(obs.noise_rms, np.float64)
    inv_var = np.divide(1.0, rms**2, out=np.zeros_like(rms), where=rms > 0)
    bright = np.maximum(np.asarray(result.spectra, np.float64), 0.0) @ inv_var  # (K,)
    morphs = _canvas(result)
    owner = np.asarray(result.component_source)
    psf_peaks = _psf_peaks(obs) / float(np.sum(obs.model_psf))  # per unit flux
    fluxes = np.asarray(result.component_fluxes, np.float64)
    out, seeds = [], []
    for source, (cy, cx) in enumerate(round_centers(result.centers, (height, width))):
        cy, cx = int(cy), int(cx)
        mine = np.flatnonzero(owner == source)
        if mine.size == 0:
            continue
        bump, _ = local_bump(detect, (cy, cx), r_in, r_out)
        if not bump[cy, cx] > least:
            continue
        band_bump, band_level = local_bump(images, (cy, cx), r_in, r_out)
        if colour > 0 and colour_difference(band_bump[:, cy, cx], band_level, rms) <= colour:
            continue
        # the bump's point-source flux per band (the bump seed's), and detection-weighted
        seed_band = np.divide(band_bump[:, cy, cx], psf_peaks, out=np.zeros(len(rms)),
                              where=psf_peaks > 0)
        seed = seed_band @ inv_var
        if not fluxes[mine].sum(0) @ inv_var < below * seed:
            continue
        held = surface_excess(morphs, (cy, cx), r_in, r_out)  # (K, H, W)
        at = np.maximum(held[:, cy, cx], 0.0) * bright
        if not at.sum() > 0 or at[mine].sum() >= drained * at.sum():
            continue
        target = _slot_mask(result, int(mine[0]), (height, width))
        pieces = np.where(target[None] & (held > 0), held, 0.0)
        pieces[mine] = 0.0
        # a component whose own peak is near: the surface cannot tell its core from a bump
        near = np.hypot(*(np.asarray(result.peaks, float) - (cy, cx)).T) < r_out
        pieces[near] = 0.0
        own = fluxes[mine].sum(0) @ inv_var
        moved = pieces.sum((1, 2)) @ (np.asarray(result.spectra, np.float64) @ inv_var)
        if moved > 0 and own + moved > cap * seed:
            pieces *= max(cap * seed - own, 0.0) / moved
        if pieces.any():
            out.append((source, pieces))
            seeds.append(seed_band)
    return (out, seeds) if with_seeds else out


def reattribute_drained(result, drained: float = 0.9, colour: float = 0.0, *,
                        below: float = BELOW, cap: float = CAP, tolerance: float = 1e-3):
    """The result with every drained source's bump moved back to it (see the module
    docstring), then the final spectrum solve; a moved source's flux per band is then held
    under both its old flux and ``cap`` times the band's bump flux. Kept only where the
    blend's chi^2 rises by under ``tolerance`` (relative) over ``result``.

    Args:
      result: a :class:`~scarlet_jax.result.DeblendResult` (after its fit and, to compare
        like with like, its final spectrum solve).
      drained, colour, below, cap: see :func:`drained_sources`.
      tolerance: the largest relative chi^2 rise accepted.

    Returns:
      A new :class:`~scarlet_jax.result.DeblendResult` (or ``result`` itself when no
      source is drained), its spectra solved by :func:`~scarlet_jax.spectra.refit_spectra`.
    """
    if result.error is not None or result.n_components == 0:
        return result
    moves, seeds = drained_sources(result, drained, colour, below, cap, with_seeds=True)
    if not moves:
        return result
    canvas = _canvas(result)
    spectra = np.asarray(result.spectra, np.float64).copy()
    owner = np.asarray(result.component_source)
    for source, pieces in moves:
        k = int(np.flatnonzero(owner == source)[0])
        piece_sum = pieces.sum((1, 2))  # (K,)
        own_sum = canvas[k].sum()
        # the moved light: each piece in its component's colour, summed
        light = spectra.T @ piece_sum + spectra[k] * own_sum  # (B,)
        merged = np.tensordot(spectra.sum(1), pieces, 1) + spectra[k].sum() * canvas[k]
        canvas -= pieces
        peak = merged.max()
        if not peak > 0:
            continue
        canvas[k] = merged / peak
        spectra[k] = light / max(merged.sum() / peak, 1e-30)
    morphs = crop_boxes(canvas, result.origins, result.morphs.shape[-2:]).astype(np.float32)
    morphs = np.where(result.support, morphs, result.morphs)  # outside: as it was
    moved = refit_spectra(dataclasses.replace(
        result, morphs=morphs, spectra=np.maximum(spectra, 0.0).astype(np.float32)))
    if np.isfinite(cap):
        # per band, a source's flux may not pass both its old flux and cap x its bump's
        before, after = result.source_fluxes, moved.source_fluxes
        spectra = np.asarray(moved.spectra, np.float64).copy()
        comp_flux = np.asarray(moved.component_fluxes, np.float64)
        for (source, _), seed in zip(moves, seeds, strict=True):
            k = int(np.flatnonzero(owner == source)[0])
            limit = np.maximum(before[source], cap * seed)
            over = after[source] - limit
            fix = (over > 0) & (comp_flux[k] > 0)
            spectra[k, fix] *= np.maximum(1 - over[fix] / comp_flux[k, fix], 0.0)
        moved = dataclasses.replace(moved, spectra=spectra.astype(np.float32))
    if moved.chi2() > (1 + tolerance) * result.chi2():
        return result
    return moved
