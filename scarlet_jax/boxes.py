"""Where a box lies in a frame: the slices of their overlap (a box cut at the frame's edges).

One home for the clipping arithmetic of placing a component's box in the image (or in its
slot) and reading it back, on the host.
"""

from __future__ import annotations

import numpy as np

__all__ = ["overlap", "place_boxes", "crop_boxes"]


def overlap(origin, box_shape, frame_shape):
    """The part of an ``(h, w)`` box with top-left ``origin`` (y, x, frame coordinates, may
    be negative) that lies inside an ``(H, W)`` frame.

    Returns:
      ``(frame_slices, box_slices)``, each a (y, x) pair of slices, or None when the box
      and the frame do not overlap.
    """
    oy, ox = (int(v) for v in origin)
    h, w = box_shape
    height, width = frame_shape
    y0, x0, y1, x1 = max(oy, 0), max(ox, 0), min(oy + h, height), min(ox + w, width)
    if y1 <= y0 or x1 <= x0:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox))


def place_boxes(boxes: np.ndarray, origins, frame_shape) -> np.ndarray:
    """(K, h, w) boxes placed at their ``origins`` ((K, 2) int) in a frame: (K, H, W) of
    the boxes' dtype, 0 outside each box (cut at the frame's edges)."""
    boxes = np.asarray(boxes)
    out = np.zeros((len(boxes),) + tuple(frame_shape), boxes.dtype)
    for k, origin in enumerate(np.asarray(origins)):
        cut = overlap(origin, boxes.shape[-2:], frame_shape)
        if cut is not None:
            out[(k, *cut[0])] = boxes[(k, *cut[1])]
    return out


def crop_boxes(frames: np.ndarray, origins, box_shape) -> np.ndarray:
    """The inverse of :func:`place_boxes`: (K, H, W) frames read back into (K, h, w) boxes
    at ``origins``, 0 where a box lies outside the frame."""
    frames = np.asarray(frames)
    out = np.zeros((len(frames),) + tuple(box_shape), frames.dtype)
    for k, origin in enumerate(np.asarray(origins)):
        cut = overlap(origin, box_shape, frames.shape[-2:])
        if cut is not None:
            out[(k, *cut[1])] = frames[(k, *cut[0])]
    return out
