"""The high-level entry point: ``deblend(observation, centers) -> DeblendResult``."""

from __future__ import annotations

import dataclasses
import warnings

import jax
import numpy as np

from .buckets import BOX_SIZES
from .centers import check_centers
from .errors import BadInputError, InputWarning
from .fit import FitState, fit, grow_state
from .observation import Observation, check_observation
from .options import Options, resolve_options
from .packing import PackedBlend, pack_blend
from .result import DeblendResult

__all__ = ["deblend", "validate_centers", "prepare_blend", "unpack_result"]


def _duplicates(centers: np.ndarray, merge_radius: float) -> np.ndarray:
    """(S,) int: for each center the index of the earlier center it duplicates, or -1.

    Two centers are duplicates when they are closer than ``merge_radius`` or round to the
    same pixel (the fit puts a component's peak at its rounded center, so two such sources
    would be two copies of one component)."""
    pixels = np.rint(centers)
    into = np.full(len(centers), -1)
    for i in range(len(centers)):
        if into[i] >= 0:
            continue
        rest = slice(i + 1, None)
        near = np.hypot(*(centers[rest] - centers[i]).T) < merge_radius
        same = (pixels[rest] == pixels[i]).all(axis=1)
        dup = np.nonzero((near | same) & (into[rest] < 0))[0] + i + 1
        into[dup] = i
    return into


def validate_centers(centers, image_shape, *, max_sources=None, merge_radius=0.5,
                     return_kept: bool = False):
    """Check catalog centers against the image.

    Args:
      centers: (S, 2) (y, x) positions in pixels (a single (2,) center is one source).
      image_shape: (H, W).
      max_sources: raise if there are more centers than this after merging duplicates
        (None: no limit).
      merge_radius: centers closer than this (pixels), or rounding to the same pixel, are
        duplicates; the later ones are dropped with an :class:`InputWarning`.
      return_kept: also return which input centers were kept.

    Returns:
      (S', 2) float32 centers, in input order without the duplicates; with ``return_kept``
      ``(centers, kept)``, ``kept`` an (S,) bool mask over the input centers.

    Raises:
      BadInputError: not a real (S, 2) array, NaN/inf, a center outside the image (its
        rounded pixel is not in ``[0, H) x [0, W)``), no centers, or more than
        ``max_sources``; the message names the first offending source.
    """
    arr = check_centers(centers, image_shape, allow_single=True)
    if arr.shape[0] == 0:
        raise BadInputError("centers (0, 2): no sources (pass centers=None to detect them)")
    into = _duplicates(arr, merge_radius)
    kept = into < 0
    if (into >= 0).any():
        pairs = ", ".join(f"{j}->{int(into[j])}" for j in np.nonzero(into >= 0)[0][:10])
        warnings.warn(
            f"centers {arr.shape}: {int((into >= 0).sum())} duplicate source(s) merged into "
            f"an earlier one (closer than {merge_radius} px or on the same pixel; "
            f"dropped->kept: {pairs})",
            InputWarning,
            stacklevel=4,  # validate_centers <- prepare_blend <- deblend(_batch) <- user
        )
        arr = arr[into < 0]
    if max_sources is not None and len(arr) > max_sources:
        raise BadInputError(
            f"centers: {len(arr)} sources exceed max_sources={max_sources}; raise the limit "
            "(the max_sources option) or split the blend"
        )
    return (arr.astype(np.float32), kept) if return_kept else arr.astype(np.float32)


def prepare_blend(observation: Observation, centers, opts: Options) -> tuple:
    """Validate, detect when ``centers`` is None, and initialise one blend (host).

    Returns:
      ``(components, centers)``: a list of :class:`~scarlet_jax.packing.InitComponent`
      and the validated (S, 2) centers.
    """
    check_observation(observation)
    v = opts.values
    symmetric = v["symmetric"]
    if centers is None:
        if isinstance(symmetric, tuple):
            raise BadInputError(
                f"symmetric: {len(symmetric)} per-source flags but no centers (sources are "
                "detected); pass True/False, or the centers"
            )
        from .detect import detect

        centers = detect(observation, max_sources=v["max_sources"])
        if len(centers) == 0:
            raise BadInputError("no sources detected and no centers given")
    centers, kept = validate_centers(centers, observation.shape[1:],
                                     max_sources=v["max_sources"], return_kept=True)
    if isinstance(symmetric, tuple):
        if len(symmetric) != len(kept):
            raise BadInputError(
                f"symmetric: {len(symmetric)} per-source flags for {len(kept)} centers; give "
                "one True/False per center, or one for all"
            )
        flags = np.asarray(symmetric, bool)[kept]  # a merged duplicate: the kept one's flag
    else:
        flags = np.full(len(centers), symmetric)
    from .initialization import init_components, wavelet_detection_image

    detect_image = wavelet_detection_image(observation) if v["init"] == "wavelet" else None
    comps = init_components(
        observation,
        centers,
        detect=detect_image,
        min_snr=v["min_snr"],
        initial_bg_thresh=v["initial_bg_thresh"],
        bg_thresh=v["bg_thresh"],
        max_components=v["max_components"],
        monotonic=v["monotonic"],
        fit_spectra=v["fit_spectra"],
        weighted_spectra=v["weighted_spectra"],
        noise_relative=v["init_noise_relative"],
        subtract=v["init_subtract"],
        symmetric_dominated=v["symmetric_dominated"],
    )
    comps = [c._replace(symmetric=bool(flags[c.source]) or c.symmetric) for c in comps]
    return comps, centers


def run_fit(observation: Observation, comps, opts: Options, packed: PackedBlend,
            state: FitState | None = None) -> tuple[PackedBlend, FitState]:
    """Fit one packed blend (or continue ``state``), moving it to a larger slot box each
    time a component's box outgrows its slot, until the fit stops for good."""
    config = opts.config
    if state is None:
        state = fit(packed.data, packed.placement, packed.components, opts.params, config)
    while bool(state.needs_room):
        bigger = [b for b in BOX_SIZES if b > packed.key.box]
        if bigger:
            pad = (bigger[0] - packed.key.box) // 2
            packed = pack_blend(observation, comps, box=bigger[0], slots=packed.key.slots,
                                canvas=packed.key.canvas)
            state = grow_state(jax.device_get(state), pad)
        else:  # already the largest slot: go on with boxes clipped to it
            config = dataclasses.replace(config, rebucket=False)
        state = fit(packed.data, packed.placement, packed.components, opts.params, config,
                    state)
    return packed, state


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
      max_iter, e_rel, min_iter: stop when ``|L_t - L_{t-W}| < W * e_rel * |L_t|`` after
        ``min_iter`` iterations (``W`` = the ``stop_window`` option, 10; 1 in
        ``LSST_PIPELINE``, lite's rule), or at ``max_iter``.
      **options: see :data:`scarlet_jax.options.DEFAULTS` (``optimizer``, ``monotonic``,
        ``symmetric``, ``sparsity``, ``bg_thresh``, ``resize``, ...). ``symmetric`` is one
        bool for all sources or a sequence of one bool per center (in ``centers`` order).

    Returns:
      A :class:`DeblendResult`.

    Raises:
      BadInputError: bad centers or options (the message names the problem).
    """
    opts = resolve_options(max_iter=max_iter, e_rel=e_rel, min_iter=min_iter, **options)
    comps, centers = prepare_blend(observation, centers, opts)
    packed = pack_blend(observation, comps, grow_margin=opts["grow_margin"])
    packed, state = run_fit(observation, comps, opts, packed)
    return unpack_result(packed, state, observation, centers, opts)
