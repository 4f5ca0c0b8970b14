"""Insertion of component boxes into the image and its transpose, bound as one custom VJP.

Boxes are placed by integer ``origins`` (y, x) of their top-left pixel in image
coordinates; a box may hang over the image edge by up to ``margin`` pixels on every side
(the part outside the image is dropped on insertion and reads as 0 on extraction). The
host checks that promise (:func:`check_origins`); inside ``jit`` every index is in range
because the canvas is padded by ``margin``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["insert", "extract", "insert_op", "check_origins"]


def _indices(origins, box_shape, margin):
    h, w = box_shape
    rows = origins[:, 0, None, None] + margin + jnp.arange(h)[None, :, None]  # (K, h, 1)
    cols = origins[:, 1, None, None] + margin + jnp.arange(w)[None, None, :]  # (K, 1, w)
    return rows, cols


def insert(boxes, origins, image_shape, margin):
    """Sum component boxes into an image.

    Args:
      boxes: (K, B, h, w) float32 per-component models.
      origins: (K, 2) int32 top-left (y, x) of each box in image coordinates,
        each in ``[-margin, H + margin - h]`` x ``[-margin, W + margin - w]``.
      image_shape: static (H, W).
      margin: static canvas margin (>= the largest overhang).

    Returns:
      (B, H, W) float32 model.
    """
    k, b, h, w = boxes.shape
    height, width = image_shape
    rows, cols = _indices(origins, (h, w), margin)
    canvas = jnp.zeros((b, height + 2 * margin, width + 2 * margin), boxes.dtype)
    canvas = canvas.at[:, rows, cols].add(jnp.moveaxis(boxes, 1, 0))
    return canvas[:, margin : margin + height, margin : margin + width]


def extract(images, origins, box_shape, margin):
    """Transpose of :func:`insert`: read each component's box out of an image.

    Args:
      images: (B, H, W) float32.
      origins: (K, 2) int32, as in :func:`insert`.
      box_shape: static (h, w).
      margin: static canvas margin.

    Returns:
      (K, B, h, w) float32; pixels outside the image read 0.
    """
    canvas = jnp.pad(images, ((0, 0), (margin, margin), (margin, margin)))
    rows, cols = _indices(origins, box_shape, margin)
    return jnp.moveaxis(canvas[:, rows, cols], 0, 1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def insert_op(boxes, origins, image_shape, margin):
    """:func:`insert` with its hand-written VJP (:func:`extract`)."""
    return insert(boxes, origins, image_shape, margin)


def _insert_fwd(boxes, origins, image_shape, margin):
    return insert(boxes, origins, image_shape, margin), (origins, boxes.shape[-2:])


def _insert_bwd(image_shape, margin, res, g):
    origins, box_shape = res
    return extract(g, origins, tuple(box_shape), margin), None


insert_op.defvjp(_insert_fwd, _insert_bwd)


def check_origins(origins, box_shape, image_shape, margin) -> None:
    """Host check that every box fits in the padded canvas; raises ``ValueError``."""
    origins = np.asarray(origins)
    h, w = box_shape
    lo = -margin
    hi = np.array([image_shape[0] + margin - h, image_shape[1] + margin - w])
    bad = np.nonzero((origins < lo).any(axis=1) | (origins > hi).any(axis=1))[0]
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"box {i} at origin {tuple(origins[i])} of shape {box_shape} does not fit the "
            f"image {tuple(image_shape)} with margin {margin}"
        )
