"""Checking source centres against an image: the one place that says what a valid centre is.

Used by :func:`scarlet_jax.deblend.validate_centers` (the catalog a user passes) and by the
initialisation (:func:`scarlet_jax.initialization.round_centers`), so both reject the same
inputs with the same messages.
"""

from __future__ import annotations

import numpy as np

from .errors import BadInputError

__all__ = ["check_centers"]


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
