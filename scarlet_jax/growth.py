"""Box growth: the in-fit resizing of a component's support inside its slot box (a
component that outgrows its slot moves up a size class on the host:
:func:`scarlet_jax.packing.regrow`).
"""

from __future__ import annotations

import jax.numpy as jnp

from .components import Placement
from .constraints import significant

__all__ = ["EDGE_ROOM", "resize_support"]

#: a component asks for a larger slot when its significant pixels come within this many
#: pixels of a slot edge that lies in the image (at most ``grow``); until then the ``grow``
#: pixels of room around them are clipped at the slot edge. A box that only brushes the edge
#: with its room (often early in a fit, before it shrinks again) keeps its slot: each move
#: to a new layout is one more block program to compile.
EDGE_ROOM = 2


def resize_support(components, placement: Placement, support, noise_rms, bg_thresh, grow):
    """New (K, h, w) support: bounding box of the significant pixels grown by ``grow``,
    clipped to the image; unchanged for a component without significant pixels. The box
    centre (the peak) always stays inside.

    Returns:
      ``(support, overflow)``: the new support and a (K,) bool that is True where the
      significant pixels come within ``min(EDGE_ROOM, grow)`` pixels of a slot edge that
      lies inside the image (the component needs a larger slot).
    """
    k, h, w = support.shape
    sig = significant(components.spectra, components.morphs, noise_rms, bg_thresh)
    sig = sig & (placement.bounds > 0)
    rows, cols = jnp.any(sig, axis=2), jnp.any(sig, axis=1)  # (K, h), (K, w)
    inside = placement.bounds > 0

    room = min(EDGE_ROOM, grow)

    def span(mask, n, c, first_inside, last_inside):
        lo = jnp.minimum(jnp.argmax(mask, axis=1), c)
        hi = jnp.maximum(n - 1 - jnp.argmax(mask[:, ::-1], axis=1), c)
        idx = jnp.arange(n)[None, :]
        over = ((lo - room < 0) & first_inside) | ((hi + room > n - 1) & last_inside)
        return (idx >= lo[:, None] - grow) & (idx <= hi[:, None] + grow), over

    span_y, over_y = span(rows, h, h // 2, jnp.any(inside[:, 0, :], axis=1),
                          jnp.any(inside[:, -1, :], axis=1))
    span_x, over_x = span(cols, w, w // 2, jnp.any(inside[:, :, 0], axis=1),
                          jnp.any(inside[:, :, -1], axis=1))
    box = span_y[:, :, None] & span_x[:, None, :]
    new = box.astype(support.dtype) * placement.bounds
    has = jnp.any(rows, axis=1)
    overflow = has & placement.active & (over_y | over_x)
    return jnp.where(has[:, None, None], new, support), overflow
