"""Measurements on a fitted blend: fluxes, flux re-distribution, centroids, chi^2.

The array functions are pure ``jax.numpy`` functions of stacked arrays: they can be
``jit``-ted as they are and ``vmap``-ped over a leading blend axis. Shapes use ``S``
sources, ``K`` components, ``B`` bands and an ``H x W`` image. The wrappers at the end
(:func:`measure`, :func:`redistribute_flux`, ...) take a
:class:`~scarlet_jax.result.DeblendResult` and return host (numpy) arrays.

Flux re-distribution follows scarlet lite's ``Blend.conserve_flux``: each source gets the
data times the ratio of the absolute value of its convolved model (restricted to its
footprint: its component boxes grown by the difference-kernel half-size) to the absolute
value of the convolved model of the whole blend; the ratio is 0 where that denominator is
0 and clipped to [0, 1], and masked pixels (weight 0) are zeroed.

Clean numbers: a model flux below ``FLOOR_FRACTION`` times the band's noise rms (a spectrum
at the optimiser's 1e-20 floor) is reported as 0, and a flux-conserved flux is clipped at 0
(the weights are in [0, 1], but noisy data pixels can be negative: a negative sum means a
flux consistent with zero).

Per-source flags (a bitmask, ``Measurement.flags`` and the table's ``flags`` column; see
:data:`FLAGS`):

- ``1`` (``chi2``): the chi^2/pixel over the source's footprint is more than
  ``CHI2_FLAG_FACTOR`` (3) times the blend's chi^2/pixel: the model does not describe the
  data there (an unmodelled neighbour, a wrong shape, or light taken from a neighbour).
- ``2`` (``zero_flux``): the model flux went to the floor (reported 0) in every band.
- ``4`` (``zero_band``): the model flux went to the floor in some, not all, bands.
- ``8`` (``not_converged``): the blend's fit stopped at ``max_iter`` or diverged.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

__all__ = [
    "CHI2_FLAG_FACTOR",
    "FLAGS",
    "FLOOR_FRACTION",
    "Measurement",
    "flag_names",
    "source_flags",
    "box_footprints",
    "centroids",
    "chi",
    "conserve_flux",
    "footprint_chi2",
    "measure",
    "measurement_table",
    "model_fluxes",
    "redistribute_flux",
    "residual_image",
    "significant_footprints",
    "source_footprints",
]


#: Bit values of the per-source flags (see the module docstring).
FLAGS = {"chi2": 1, "zero_flux": 2, "zero_band": 4, "not_converged": 8}
#: A source is flagged ``chi2`` above this multiple of the blend's chi^2/pixel.
CHI2_FLAG_FACTOR = 3.0
#: A model flux below this fraction of the band's noise rms is at the floor (reported 0).
FLOOR_FRACTION = 1e-6

# --------------------------------------------------------------------------- array functions


def model_fluxes(models):
    """Per-source, per-band flux of images of the sources.

    Args:
      models: (..., S, B, H, W) float32 per-source models (model frame for the model flux).

    Returns:
      (..., S, B) float32 sums over the pixels.
    """
    return jnp.sum(models, axis=(-2, -1))


def box_footprints(boxes, component_source, n_sources: int, image_shape, grow: int = 0):
    """Per-source footprint: the union of its component boxes, grown and clipped to the image.

    Args:
      boxes: (K, 4) int (y0, x0, y1, x1) component boxes in image coordinates (exclusive
        upper ends), as :meth:`DeblendResult.component_boxes` returns.
      component_source: (K,) int32 source index of each component.
      n_sources: static number of sources S.
      image_shape: static (H, W).
      grow: static number of pixels added on every side of each box (scarlet lite grows by
        the half-size of the difference kernel before re-distributing flux).

    Returns:
      (S, H, W) bool.
    """
    boxes = jnp.asarray(boxes)
    height, width = image_shape
    ys = jnp.arange(height)[None, :, None]
    xs = jnp.arange(width)[None, None, :]
    inside = (
        (ys >= boxes[:, 0, None, None] - grow)
        & (ys < boxes[:, 2, None, None] + grow)
        & (xs >= boxes[:, 1, None, None] - grow)
        & (xs < boxes[:, 3, None, None] + grow)
    )  # (K, H, W)
    onehot = jnp.asarray(component_source)[:, None] == jnp.arange(n_sources)[None, :]  # (K, S)
    return jnp.einsum("ks,khw->shw", onehot.astype(jnp.float32), inside.astype(jnp.float32)) > 0


def significant_footprints(models, noise_rms, thresh: float = 1.0):
    """Pixels where a source's model is significant in at least one band.

    Args:
      models: (..., S, B, H, W) float32 convolved (observed-frame) per-source models.
      noise_rms: (B,) float32 background rms per band.
      thresh: a pixel is significant where ``|model_b| >= thresh * noise_rms_b`` for some b
        (scarlet lite's ``bg_thresh`` test).

    Returns:
      (..., S, H, W) bool.
    """
    models = jnp.asarray(models)
    level = thresh * jnp.asarray(noise_rms)
    level = level.reshape((1,) * (models.ndim - 3) + (-1, 1, 1))
    return jnp.any(jnp.abs(models) >= level, axis=-3)


def conserve_flux(images, weights, source_models, footprints=None, mask_footprint: bool = True):
    """Re-distribute the data among the sources in proportion to their convolved models.

    ``out_s = images * clip(|m_s| / |sum_t m_t|, 0, 1)``, with the ratio 0 where the
    denominator is 0 (scarlet lite's ``conserve_flux``).

    Args:
      images: (B, H, W) float32 data.
      weights: (B, H, W) float32 inverse variance (0 where masked).
      source_models: (S, B, H, W) float32 convolved per-source models.
      footprints: optional (S, H, W) bool; a source gets nothing outside its footprint
        (this also removes the FFT round-off far from every source).
      mask_footprint: zero the data where the weight is 0.

    Returns:
      ``(images, fluxes)``: (S, B, H, W) float32 re-distributed images and their (S, B)
      per-band sums.
    """
    source_models = jnp.asarray(source_models)
    total = jnp.abs(jnp.sum(source_models, axis=-4, keepdims=True))  # (1, B, H, W)
    mine = jnp.abs(source_models)
    if footprints is not None:
        mine = jnp.where(jnp.asarray(footprints)[..., None, :, :], mine, 0.0)
    positive = total > 0
    ratio = jnp.where(positive, mine / jnp.where(positive, total, 1.0), 0.0)
    ratio = jnp.clip(ratio, 0.0, 1.0)
    data = jnp.where(weights > 0, images, 0.0) if mask_footprint else jnp.asarray(images)
    out = ratio * jnp.expand_dims(data, -4)
    return out, jnp.sum(out, axis=(-2, -1))


def centroids(models):
    """Flux-weighted centroid of each source, summed over bands.

    Args:
      models: (..., S, B, H, W) float32 per-source models.

    Returns:
      (..., S, 2) float32 (y, x); NaN for a source without positive total flux.
    """
    image = jnp.sum(jnp.asarray(models), axis=-3)  # (..., S, H, W)
    height, width = image.shape[-2:]
    total = jnp.sum(image, axis=(-2, -1))
    ys = jnp.arange(height, dtype=image.dtype)
    xs = jnp.arange(width, dtype=image.dtype)
    my = jnp.einsum("...h,h->...", jnp.sum(image, axis=-1), ys)
    mx = jnp.einsum("...w,w->...", jnp.sum(image, axis=-2), xs)
    ok = total > 0
    safe = jnp.where(ok, total, 1.0)
    return jnp.stack([jnp.where(ok, my / safe, jnp.nan), jnp.where(ok, mx / safe, jnp.nan)], -1)


def chi(images, weights, model):
    """(B, H, W) ``sqrt(W) * (D - M)``: the residual in units of the noise (0 where masked)."""
    return jnp.sqrt(weights) * (images - model)


def footprint_chi2(images, weights, model, footprints):
    """chi^2 of the whole blend's model, summed over each source's footprint.

    Args:
      images: (B, H, W) float32 data.
      weights: (B, H, W) float32 inverse variance.
      model: (B, H, W) float32 convolved model of the whole blend.
      footprints: (S, H, W) bool.

    Returns:
      ``(chi2, n_pixels)``: (S,) float32 ``sum W (D - M)^2`` over the footprint and all
      bands, and (S,) int32 the number of (band, pixel) values there with weight > 0.
    """
    per_pixel = jnp.sum(weights * (images - model) ** 2, axis=-3)  # (H, W)
    valid = jnp.sum((weights > 0).astype(jnp.int32), axis=-3)  # (H, W)
    fp = footprints.astype(per_pixel.dtype)
    chi2 = jnp.einsum("...shw,...hw->...s", fp, per_pixel)
    n = jnp.sum(jnp.where(footprints, valid[..., None, :, :], 0), axis=(-2, -1))
    return chi2, n.astype(jnp.int32)


# ----------------------------------------------------------------- wrappers on a DeblendResult


class Measurement(NamedTuple):
    """Per-source measurements of one blend (host arrays).

    Attributes:
      bands: the B band names.
      centers: (S, 2) float32 (y, x) input source centers.
      fluxes: (S, B) float32 model flux (model frame, clipped to the image).
      conserved_fluxes: (S, B) float32 flux of the re-distributed data.
      centroids: (S, 2) float32 (y, x) flux-weighted centroid of the model-frame model.
      chi2: (S,) float32 chi^2 of the blend model over the source's footprint.
      n_pixels: (S,) int32 (band, pixel) values with weight > 0 in the footprint.
      chi2_per_pixel: (S,) float32 ``chi2 / n_pixels`` (NaN where n_pixels is 0).
      n_components: (S,) int32 components per source.
      flags: (S,) int32 bitmask of :data:`FLAGS` (0: nothing to report).
    """

    bands: tuple
    centers: np.ndarray
    fluxes: np.ndarray
    conserved_fluxes: np.ndarray
    centroids: np.ndarray
    chi2: np.ndarray
    n_pixels: np.ndarray
    chi2_per_pixel: np.ndarray
    n_components: np.ndarray
    flags: np.ndarray


def source_flags(chi2_per_pixel, blend_chi2_per_pixel, at_floor, converged=True):
    """Per-source flag bitmask (:data:`FLAGS`).

    Args:
      chi2_per_pixel: (S,) chi^2/pixel over each source's footprint (NaN: not flagged).
      blend_chi2_per_pixel: () chi^2/pixel of the whole blend.
      at_floor: (S, B) bool, model flux at the floor per band.
      converged: the blend's fit converged (False sets ``not_converged`` on every source).

    Returns:
      (S,) int32.
    """
    chi = np.asarray(chi2_per_pixel, np.float64)
    at_floor = np.asarray(at_floor, bool)
    with np.errstate(invalid="ignore"):
        bad_chi = np.isfinite(chi) & (chi > CHI2_FLAG_FACTOR * float(blend_chi2_per_pixel))
    every = at_floor.all(axis=1) if at_floor.shape[1] else np.zeros(len(chi), bool)
    some = at_floor.any(axis=1) & ~every
    flags = (FLAGS["chi2"] * bad_chi + FLAGS["zero_flux"] * every + FLAGS["zero_band"] * some
             + FLAGS["not_converged"] * (not converged))
    return flags.astype(np.int32)


def flag_names(flags: int) -> str:
    """``"chi2|zero_band"`` for a flag value (``""`` for 0)."""
    return "|".join(name for name, bit in FLAGS.items() if int(flags) & bit)


def _kernel_half(result) -> int:
    return int(max(result.observation.diff_kernel.shape[-2:]) // 2)


def _box_footprints(result, grow: int) -> np.ndarray:
    _, height, width = result.observation.shape
    return np.asarray(
        box_footprints(
            result.component_boxes(),
            result.component_source,
            result.n_sources,
            (height, width),
            grow,
        )
    )


def source_footprints(result, kind: str = "significant", thresh: float = 1.0) -> np.ndarray:
    """Per-source footprints of a result.

    Args:
      result: a :class:`~scarlet_jax.result.DeblendResult`.
      kind: "significant": pixels where the source's convolved model reaches
        ``thresh * noise_rms`` in some band (a source with no such pixel falls back to its
        boxes); "box": the union of its component boxes grown by the difference-kernel
        half-size (the footprint used for flux re-distribution).
      thresh: threshold in units of the per-band noise rms for "significant".

    Returns:
      (S, H, W) bool.
    """
    boxes = _box_footprints(result, _kernel_half(result))
    if kind == "box":
        return boxes
    if kind != "significant":
        raise ValueError(f"kind must be 'significant' or 'box', got {kind!r}")
    sig = np.asarray(
        significant_footprints(result.source_models(), result.observation.noise_rms, thresh)
    ) & boxes
    empty = ~sig.any(axis=(1, 2))
    sig[empty] = boxes[empty]
    return sig


def redistribute_flux(result, mask_footprint: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """scarlet lite's ``conserve_flux`` on a result.

    Returns:
      ``(images, fluxes)``: (S, B, H, W) float32 re-distributed data per source and the
      (S, B) float32 per-band sums, clipped at 0 (noisy data can make a sum negative).
    """
    obs = result.observation
    out, flux = conserve_flux(
        obs.images,
        obs.weights,
        result.source_models(),
        _box_footprints(result, _kernel_half(result)),
        mask_footprint,
    )
    return np.asarray(out, np.float32), np.maximum(np.asarray(flux, np.float32), 0.0)


def residual_image(result, normalized: bool = False) -> np.ndarray:
    """(B, H, W) float32 data minus model, or ``sqrt(W) * (D - M)`` when ``normalized``."""
    obs = result.observation
    out = chi(obs.images, obs.weights, result.model) if normalized else result.residual
    return np.asarray(out, np.float32)


def measure(result, thresh: float = 1.0, mask_footprint: bool = True) -> Measurement:
    """All per-source measurements of a result.

    Args:
      result: a :class:`~scarlet_jax.result.DeblendResult`.
      thresh: threshold (in noise rms) of the "significant" footprints used for chi^2.
      mask_footprint: zero masked data before re-distributing it.

    Returns:
      A :class:`Measurement` (host arrays, one row per source; S sources, B bands):
      ``bands`` (B names), ``centers`` (S, 2) (y, x) 0-based pixels, ``fluxes`` (S, B)
      model flux in the model frame, ``conserved_fluxes`` (S, B) flux of the data
      re-distributed in proportion to the convolved models, ``centroids`` (S, 2) (y, x),
      ``chi2`` (S,) over the source's footprint summed over bands, ``n_pixels`` (S,)
      (band, pixel) values with weight > 0 in it (summed over bands), ``chi2_per_pixel``
      (S,), ``n_components`` (S,), ``flags`` (S,) int bitmask (:data:`FLAGS`: chi2,
      zero_flux, zero_band, not_converged). Fluxes are in the image's units; fluxes at the
      floor are reported as 0.
    """
    obs = result.observation
    n_sources = result.n_sources
    n_bands = len(obs.bands)
    counts = np.bincount(np.asarray(result.component_source, np.int64), minlength=n_sources)
    if n_sources == 0:
        empty = np.zeros((0,), np.float32)
        return Measurement(
            bands=tuple(obs.bands),
            centers=np.zeros((0, 2), np.float32),
            fluxes=np.zeros((0, n_bands), np.float32),
            conserved_fluxes=np.zeros((0, n_bands), np.float32),
            centroids=np.zeros((0, 2), np.float32),
            chi2=empty,
            n_pixels=np.zeros((0,), np.int32),
            chi2_per_pixel=empty,
            n_components=np.zeros((0,), np.int32),
            flags=np.zeros((0,), np.int32),
        )
    frame = result.source_models(convolved=False)
    convolved = np.asarray(result.source_models())
    model = convolved.sum(axis=0)
    boxes = _box_footprints(result, _kernel_half(result))
    _, conserved = conserve_flux(obs.images, obs.weights, convolved, boxes, mask_footprint)
    sig = np.asarray(significant_footprints(convolved, obs.noise_rms, thresh)) & boxes
    empty = ~sig.any(axis=(1, 2))
    sig[empty] = boxes[empty]
    chi2, n_pix = footprint_chi2(obs.images, obs.weights, model, sig)
    chi2 = np.asarray(chi2, np.float32)
    n_pix = np.asarray(n_pix, np.int32)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_pixel = np.where(n_pix > 0, chi2 / np.maximum(n_pix, 1), np.nan).astype(np.float32)
    fluxes = np.asarray(model_fluxes(frame), np.float32)
    at_floor = fluxes <= FLOOR_FRACTION * np.asarray(obs.noise_rms, np.float32)[None, :]
    fluxes = np.where(at_floor, np.float32(0), fluxes)
    conserved = np.where(at_floor, 0.0, np.maximum(np.asarray(conserved, np.float32), 0.0))
    converged = bool(result.converged) and not bool(result.diverged)
    flags = source_flags(per_pixel, result.chi2_per_pixel(), at_floor, converged)
    return Measurement(
        bands=tuple(obs.bands),
        centers=np.asarray(result.centers, np.float32),
        fluxes=fluxes,
        conserved_fluxes=conserved.astype(np.float32),
        centroids=np.asarray(centroids(frame), np.float32),
        chi2=chi2,
        n_pixels=n_pix,
        chi2_per_pixel=per_pixel,
        n_components=counts.astype(np.int32),
        flags=flags,
    )


def measurement_table(measurement: Measurement) -> dict[str, np.ndarray]:
    """Flat columns of a :class:`Measurement`, one row per source.

    Columns: ``source, y, x, n_components, centroid_y, centroid_x, flux_<band>...,
    flux_conserved_<band>..., chi2, n_pixels, chi2_per_pixel, flags``; ``flags`` is the
    bitmask of :data:`FLAGS` (1 chi2: footprint chi^2/pixel > 3x the blend's; 2 zero_flux;
    4 zero_band; 8 not_converged).
    """
    m = measurement
    n = m.centers.shape[0]
    cols: dict[str, np.ndarray] = {
        "source": np.arange(n, dtype=np.int32),
        "y": m.centers[:, 0],
        "x": m.centers[:, 1],
        "n_components": m.n_components,
        "centroid_y": m.centroids[:, 0],
        "centroid_x": m.centroids[:, 1],
    }
    for b, band in enumerate(m.bands):
        cols[f"flux_{band}"] = m.fluxes[:, b]
    for b, band in enumerate(m.bands):
        cols[f"flux_conserved_{band}"] = m.conserved_fluxes[:, b]
    cols["chi2"] = m.chi2
    cols["n_pixels"] = m.n_pixels
    cols["chi2_per_pixel"] = m.chi2_per_pixel
    cols["flags"] = np.asarray(m.flags, np.int32)
    return cols
