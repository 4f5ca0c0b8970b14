"""Source centres: the one place that says what a valid centre is, and which are duplicates.

:func:`check_centers` is the check; :func:`validate_centers` (the catalog a user passes:
the check, then duplicates merged) and :func:`round_centers` (the initialisation's pixel
centres) both go through it, so they reject the same inputs with the same messages.
"""

from __future__ import annotations

import warnings

import numpy as np

from .errors import BadInputError, InputWarning

__all__ = ["check_centers", "round_centers", "validate_centers"]


def check_centers(centers, image_shape: tuple[int, int], *, allow_single: bool = False):
    """Validate (y, x) source centres against an image of shape ``image_shape``.

    A centre is inside the image when its rounded pixel (half to even, as scarlet lite) is
    in ``[0, H) x [0, W)``.

    Args:
      centers: (S, 2) (y, x) positions in pixels; with ``allow_single`` also one (2,) centre.
      image_shape: (H, W).
      allow_single: accept a (2,) array as one source.

    Returns:
      (S, 2) float64 centres (S may be 0).

    Raises:
      BadInputError: not a real numeric array, the wrong shape, NaN/inf, or a centre outside
        the image; the message names the first offending source.
    """
    try:
        arr = np.asarray(centers)
    except (TypeError, ValueError) as err:
        raise BadInputError(f"centers: cannot be read as an array ({err})") from None
    if arr.dtype == object or np.iscomplexobj(arr) or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise BadInputError(f"centers: expected a real (S, 2) array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if allow_single and arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise BadInputError(f"centers: expected shape (S, 2) (y, x), got {arr.shape}")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise BadInputError(
            f"centers {arr.shape}: {int(bad.sum())} NaN/inf center(s), first at source={i} "
            f"(y, x) = {tuple(arr[i].tolist())}"
        )
    height, width = image_shape
    rounded = np.rint(arr)
    out = (rounded[:, 0] < 0) | (rounded[:, 0] >= height) | (rounded[:, 1] < 0) | (
        rounded[:, 1] >= width
    )
    if out.any():
        i = int(np.argmax(out))
        raise BadInputError(
            f"centers {arr.shape}: {int(out.sum())} center(s) outside the image of shape "
            f"{(height, width)}, first at source={i} (y, x) = {tuple(arr[i].tolist())}"
        )
    return arr


def round_centers(centers, image_shape: tuple[int, int]) -> np.ndarray:
    """Checked source centres rounded to pixels (half to even, as scarlet lite).

    Args:
      centers: (S, 2) (y, x) positions in image pixels.
      image_shape: (H, W).

    Returns:
      (S, 2) int64 pixel centres.

    Raises:
      BadInputError: see :func:`check_centers`.
    """
    return np.rint(check_centers(centers, image_shape)).astype(np.int64)


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
            stacklevel=7,  # validate_centers <- prepare_blend <- pipeline (3) <- deblend <- user
        )
        arr = arr[into < 0]
    if max_sources is not None and len(arr) > max_sources:
        raise BadInputError(
            f"centers: {len(arr)} sources exceed max_sources={max_sources}; raise the limit "
            "(the max_sources option) or split the blend"
        )
    return (arr.astype(np.float32), kept) if return_kept else arr.astype(np.float32)
