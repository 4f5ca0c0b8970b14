"""Box growth: the in-fit resizing of a component's support inside its slot box (a
component that outgrows its slot moves up a size class on the host:
:func:`scarlet_jax.packing.regrow`).
"""

from __future__ import annotations

import jax.numpy as jnp

from .components import Placement
from .constraints import significant

__all__ = ["resize_support"]


def resize_support(components, placement: Placement, support, noise_rms, bg_thresh, grow):
    """New (K, h, w) support: bounding box of the significant pixels grown by ``grow``,
    clipped to the image; unchanged for a component without significant pixels. The box
    centre (the peak) always stays inside.

    Returns:
      ``(support, overflow)``: the new support and a (K,) bool that is True where the grown
      box would reach past the slot box at an edge that lies inside the image (the
      component needs a larger slot).
    """
    k, h, w = support.shape
    sig = significant(components.spectra, components.morphs, noise_rms, bg_thresh)
    sig = sig & (placement.bounds > 0)
    rows, cols = jnp.any(sig, axis=2), jnp.any(sig, axis=1)  # (K, h), (K, w)
    inside = placement.bounds > 0

    def span(mask, n, c, first_inside, last_inside):
        lo = jnp.minimum(jnp.argmax(mask, axis=1), c) - grow
        hi = jnp.maximum(n - 1 - jnp.argmax(mask[:, ::-1], axis=1), c) + grow
        idx = jnp.arange(n)[None, :]
        over = ((lo < 0) & first_inside) | ((hi > n - 1) & last_inside)
        return (idx >= lo[:, None]) & (idx <= hi[:, None]), over

    span_y, over_y = span(rows, h, h // 2, jnp.any(inside[:, 0, :], axis=1),
                          jnp.any(inside[:, -1, :], axis=1))
    span_x, over_x = span(cols, w, w // 2, jnp.any(inside[:, :, 0], axis=1),
                          jnp.any(inside[:, :, -1], axis=1))
    box = span_y[:, :, None] & span_x[:, None, :]
    new = box.astype(support.dtype) * placement.bounds
    has = jnp.any(rows, axis=1)
    overflow = has & placement.active & (over_y | over_x)
    return jnp.where(has[:, None, None], new, support), overflow
