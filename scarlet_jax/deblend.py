"""The high-level entry point: ``deblend(observation, centers) -> DeblendResult``."""

from __future__ import annotations

import warnings

import jax
import numpy as np

from .errors import BadInputError, InputWarning
from .fit import FitState, fit
from .observation import Observation
from .options import Options, resolve_options
from .packing import PackedBlend, pack_blend
from .result import DeblendResult

__all__ = ["deblend", "validate_centers", "prepare_blend", "unpack_result"]


def validate_centers(centers, image_shape, *, max_sources=None, merge_radius=0.5) -> np.ndarray:
    """Check catalog centers against the image.

    Args:
      centers: (S, 2) (y, x) positions in pixels.
      image_shape: (H, W).
      max_sources: raise if there are more centers than this (None: no limit).
      merge_radius: centers closer than this (pixels) are duplicates; the later ones are
        dropped with a warning.

    Returns:
      (S', 2) float32 centers.

    Raises:
      BadInputError: wrong shape, NaN/inf, a center outside the image, none, or too many.
    """
    arr = np.asarray(centers)
    if np.iscomplexobj(arr) or arr.dtype == object:
        raise BadInputError(f"centers: expected a real (S, 2) array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise BadInputError(f"centers: expected shape (S, 2) (y, x), got {arr.shape}")
    if arr.shape[0] == 0:
        raise BadInputError("centers: no sources (pass centers=None to detect them)")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise BadInputError(f"centers {arr.shape}: NaN/inf at source {i} ({arr[i].tolist()})")
    height, width = image_shape
    rounded = np.round(arr)
    out = (rounded[:, 0] < 0) | (rounded[:, 0] >= height) | (rounded[:, 1] < 0) | (
        rounded[:, 1] >= width)
    if out.any():
        i = int(np.argmax(out))
        raise BadInputError(
            f"centers: source {i} at (y, x) = {tuple(arr[i].tolist())} is outside the image "
            f"of shape {(height, width)}"
        )
    keep = np.ones(len(arr), bool)
    for i in range(len(arr)):
        if keep[i]:
            d = np.hypot(*(arr[i + 1 :] - arr[i]).T)
            dup = np.nonzero(d < merge_radius)[0] + i + 1
            keep[dup] = False
    if not keep.all():
        warnings.warn(
            f"centers: {int((~keep).sum())} duplicate source(s) merged "
            f"(indices {np.nonzero(~keep)[0].tolist()})",
            InputWarning,
            stacklevel=3,
        )
        arr = arr[keep]
    if max_sources is not None and len(arr) > max_sources:
        raise BadInputError(
            f"centers: {len(arr)} sources exceed max_sources={max_sources}; raise the limit "
            "or split the blend"
        )
    return arr.astype(np.float32)


def prepare_blend(observation: Observation, centers, opts: Options, **bucket) -> tuple:
    """Validate, detect when ``centers`` is None, initialise and pack one blend.

    Returns:
      ``(packed, centers)``.
    """
    if not isinstance(observation, Observation):
        raise BadInputError(
            f"expected an Observation (see make_observation), got {type(observation).__name__}"
        )
    v = opts.values
    if centers is None:
        from .detect import detect

        centers = detect(observation, max_sources=v["max_sources"])
        if len(centers) == 0:
            raise BadInputError("no sources detected and no centers given")
    centers = validate_centers(centers, observation.shape[1:], max_sources=v["max_sources"])
    from .initialization import init_components

    comps = init_components(
        observation,
        centers,
        min_snr=v["min_snr"],
        initial_bg_thresh=v["initial_bg_thresh"],
        bg_thresh=v["bg_thresh"],
        max_components=v["max_components"],
        monotonic=v["monotonic"],
        fit_spectra=v["fit_spectra"],
        weighted_spectra=v["weighted_spectra"],
    )
    packed = pack_blend(observation, comps, grow_margin=v["grow_margin"], **bucket)
    return packed, centers


def unpack_result(
    packed: PackedBlend, state: FitState, observation: Observation, centers, opts: Options
) -> DeblendResult:
    """Device fit state of one blend -> host :class:`DeblendResult` (padding removed)."""
    n = packed.n_components
    state = jax.device_get(state)
    n_iter = int(state.it)
    support = np.asarray(state.support[:n]) > 0
    return DeblendResult(
        observation=observation,
        centers=np.asarray(centers, np.float32),
        spectra=np.asarray(state.components.spectra[:n], np.float32),
        morphs=np.asarray(state.components.morphs[:n], np.float32),
        origins=np.asarray(packed.placement.origins[:n], np.int32),
        support=support,
        peaks=np.asarray(packed.placement.peaks[:n], np.int32),
        component_source=np.asarray(packed.placement.source[:n], np.int32),
        loss=np.asarray(state.history[:n_iter], np.float32),
        n_iter=n_iter,
        converged=bool(state.converged),
        diverged=bool(state.diverged),
        options=dict(opts.values),
    )


def deblend(
    observation: Observation,
    centers=None,
    *,
    max_iter: int = 300,
    e_rel: float = 1e-3,
    min_iter: int = 5,
    **options,
) -> DeblendResult:
    """Deblend one blend.

    Args:
      observation: from :func:`~scarlet_jax.make_observation`.
      centers: (S, 2) (y, x) source centers in pixels; None to detect them.
      max_iter, e_rel, min_iter: stop when ``|L_t - L_{t-1}| < e_rel * |L_t|`` after
        ``min_iter`` iterations, or at ``max_iter``.
      **options: see :data:`scarlet_jax.options.DEFAULTS` (``optimizer``, ``monotonic``,
        ``symmetric``, ``sparsity``, ``bg_thresh``, ``resize``, ...).

    Returns:
      A :class:`DeblendResult`.

    Raises:
      BadInputError: bad centers or options (the message names the problem).
    """
    opts = resolve_options(max_iter=max_iter, e_rel=e_rel, min_iter=min_iter, **options)
    packed, centers = prepare_blend(observation, centers, opts)
    state = fit(packed.data, packed.placement, packed.components, opts.params, opts.config)
    return unpack_result(packed, state, observation, centers, opts)
