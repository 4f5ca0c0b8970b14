"""Insertion of component boxes into the image and its transpose, bound as one custom VJP.

Boxes are placed by integer ``origins`` (y, x) of their top-left pixel in image
coordinates; a box may hang over the image edge by up to ``margin`` pixels on every side
(the part outside the image is dropped on insertion and reads as 0 on extraction). The
host checks that promise (:func:`check_origins`); inside ``jit`` every index is in range
because the canvas is padded by ``margin``.

The boxes of a blend come in size classes: ``boxes`` is one ``(K, B, h, w)`` array or a
tuple of them (one per class, each with its own ``origins``); all are summed into one
canvas. Insertion is a ``fori_loop`` of ``dynamic_update_slice`` over the components and
extraction a ``vmap`` of ``dynamic_slice``: on CPU these beat a scatter-add or a per-pixel
gather by 3-20x (``benchmarks/bench_insert.py``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["insert", "extract", "insert_op", "check_origins"]


def _add_boxes(canvas, boxes, origins, margin):
    """canvas (B, Hc, Wc) + each (B, h, w) box of ``boxes`` (K, B, h, w) at its origin."""
    boxes, origins = jnp.asarray(boxes), jnp.asarray(origins)
    k, b, h, w = boxes.shape
    zero = jnp.zeros((), origins.dtype)

    def body(i, canvas):
        start = (zero, origins[i, 0] + margin, origins[i, 1] + margin)
        cur = lax.dynamic_slice(canvas, start, (b, h, w))
        return lax.dynamic_update_slice(canvas, cur + boxes[i], start)

    return lax.fori_loop(0, k, body, canvas)


def _read_boxes(canvas, origins, box_shape, margin):
    """(K, B, h, w) boxes read out of canvas (B, Hc, Wc) at ``origins``."""
    origins = jnp.asarray(origins)
    zero = jnp.zeros((), origins.dtype)
    size = (canvas.shape[0],) + tuple(box_shape)
    return jax.vmap(
        lambda o: lax.dynamic_slice(canvas, (zero, o[0] + margin, o[1] + margin), size)
    )(origins)


def insert(boxes, origins, image_shape, margin):
    """Sum component boxes into an image.

    Args:
      boxes: (K, B, h, w) float per-component models, or a tuple of such arrays (one per
        size class).
      origins: (K, 2) int32 top-left (y, x) of each box in image coordinates,
        each in ``[-margin, H + margin - h]`` x ``[-margin, W + margin - w]`` (a tuple
        matching ``boxes``).
      image_shape: static (H, W).
      margin: static canvas margin (>= the largest overhang).

    Returns:
      (B, H, W) model.
    """
    if not isinstance(boxes, (tuple, list)):
        boxes, origins = (boxes,), (origins,)
    height, width = image_shape
    b = boxes[0].shape[1]
    dtype = jnp.result_type(*boxes)
    canvas = jnp.zeros((b, height + 2 * margin, width + 2 * margin), dtype)
    for box, origin in zip(boxes, origins, strict=True):
        canvas = _add_boxes(canvas, box, origin, margin)
    return canvas[:, margin : margin + height, margin : margin + width]


def extract(images, origins, box_shape, margin):
    """Transpose of :func:`insert`: read each component's box out of an image.

    Args:
      images: (B, H, W) float.
      origins: (K, 2) int32, as in :func:`insert` (or a tuple, one per class).
      box_shape: static (h, w) (or a tuple of them, one per class).
      margin: static canvas margin.

    Returns:
      (K, B, h, w); pixels outside the image read 0 (a tuple for tuple inputs).
    """
    canvas = jnp.pad(images, ((0, 0), (margin, margin), (margin, margin)))
    if isinstance(origins, (tuple, list)):
        return tuple(_read_boxes(canvas, o, tuple(s), margin)
                     for o, s in zip(origins, box_shape, strict=True))
    return _read_boxes(canvas, origins, tuple(box_shape), margin)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def insert_op(boxes, origins, image_shape, margin):
    """:func:`insert` with its hand-written VJP (:func:`extract`)."""
    return insert(boxes, origins, image_shape, margin)


def _box_shapes(boxes):
    if isinstance(boxes, (tuple, list)):
        return tuple(tuple(b.shape[-2:]) for b in boxes)
    return tuple(boxes.shape[-2:])


def _insert_fwd(boxes, origins, image_shape, margin):
    return insert(boxes, origins, image_shape, margin), (origins, _box_shapes(boxes))


def _insert_bwd(image_shape, margin, res, g):
    origins, box_shape = res
    none = jax.tree.map(lambda _: None, origins)
    return extract(g, origins, box_shape, margin), none


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
