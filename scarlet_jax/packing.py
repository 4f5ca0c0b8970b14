"""Host-side packing of a blend into bucketed, padded device arrays.

``pack_blend`` turns an :class:`~scarlet_jax.observation.Observation` and its initial
components (scarlet lite style: each with its own box) into a
:class:`~scarlet_jax.components.PackedBlend` whose shapes come from the menus in
:mod:`scarlet_jax.buckets`: the image is padded to the canvas bucket (weight 0 outside),
every component gets a slot box of one common odd size centred on its peak, and its own box
becomes a support mask inside it.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .buckets import bucket_box, bucket_canvas, bucket_slots
from .components import BucketKey, Components, FitData, InitComponent, PackedBlend, Placement
from .fft import fft_shape_for, kernel_to_fft
from .observation import Observation
from .render import check_origins

__all__ = [
    "bucket_key",
    "pack_blend",
    "box_side_for",
]


def box_side_for(components: list[InitComponent], grow_margin: int) -> int:
    """Odd side of a square slot box centred on each peak that holds every component's own
    box plus ``grow_margin`` pixels of room to grow."""
    half = 0
    for c in components:
        h, w = np.shape(c.morph)
        py, px = c.peak
        oy, ox = c.origin
        half = max(half, py - oy, oy + h - 1 - py, px - ox, ox + w - 1 - px)
    return 2 * (half + grow_margin) + 1


def bucket_key(
    observation: Observation,
    components: list[InitComponent],
    *,
    box: int | None = None,
    slots: int | None = None,
    canvas: tuple | None = None,
    grow_margin: int = 5,
) -> BucketKey:
    """The shapes :func:`pack_blend` will use (defaults filled in), without packing."""
    if not components:
        raise ValueError("a blend needs at least one component")
    n_bands, height, width = observation.shape
    if box is None:
        need = box_side_for(components, grow_margin)
        cap = bucket_box(2 * max(height, width) + 1)
        box = min(bucket_box(need), cap)
    if box % 2 != 1:
        raise ValueError(f"box side must be odd, got {box}")
    n = len(components)
    slots = bucket_slots(n) if slots is None else int(slots)
    if slots < n:
        raise ValueError(f"{n} components do not fit in {slots} slots")
    if canvas is None:
        canvas = (bucket_canvas(height), bucket_canvas(width))
    canvas = tuple(int(c) for c in canvas)
    if canvas[0] < height or canvas[1] < width:
        raise ValueError(f"canvas {canvas} is smaller than the image {(height, width)}")
    fft_shape = fft_shape_for(canvas, observation.diff_kernel.shape[-2:])
    return BucketKey(n_bands, canvas, int(box), slots, fft_shape)


def pack_blend(
    observation: Observation,
    components: list[InitComponent],
    *,
    box: int | None = None,
    slots: int | None = None,
    canvas: tuple | None = None,
    grow_margin: int = 5,
) -> PackedBlend:
    """Pack a blend into bucketed arrays.

    Args:
      observation: the blend's data.
      components: initial components (at least one).
      box: common box side (odd, a bucket); default the bucket that holds every component's
        box plus ``grow_margin``, capped at the bucket holding twice the image.
      slots: number of component slots K; default the bucket of ``len(components)``.
      canvas: padded (H, W); default each side rounded up to a multiple of 16.
      grow_margin: room for boxes to grow during the fit (pixels per side).
    """
    key = bucket_key(observation, components, box=box, slots=slots, canvas=canvas,
                     grow_margin=grow_margin)
    n_bands, height, width = observation.shape
    _, canvas, box, slots, fft_shape = key
    n = len(components)
    margin = box // 2

    images = np.zeros((n_bands,) + canvas, np.float32)
    weights = np.zeros((n_bands,) + canvas, np.float32)
    images[:, :height, :width] = observation.images
    weights[:, :height, :width] = observation.weights

    spectra = np.zeros((slots, n_bands), np.float32)
    morphs = np.zeros((slots, box, box), np.float32)
    support = np.zeros((slots, box, box), np.float32)
    bounds = np.zeros((slots, box, box), np.float32)
    origins = np.zeros((slots, 2), np.int32)
    peaks = np.zeros((slots, 2), np.int32)
    source = np.full((slots,), -1, np.int32)
    active = np.zeros((slots,), bool)
    symmetric = np.zeros((slots,), bool)
    yy, xx = np.arange(box), np.arange(box)
    for k, c in enumerate(components):
        py, px = (int(v) for v in c.peak)
        if not (0 <= py < height and 0 <= px < width):
            raise ValueError(f"component {k}: peak {(py, px)} outside the image {(height, width)}")
        oy, ox = py - margin, px - margin
        origins[k] = (oy, ox)
        peaks[k] = (py, px)
        source[k] = c.source
        active[k] = True
        symmetric[k] = bool(c.symmetric)
        spectra[k] = np.asarray(c.spectrum, np.float32)
        inside_y = (oy + yy >= 0) & (oy + yy < height)
        inside_x = (ox + xx >= 0) & (ox + xx < width)
        bounds[k] = inside_y[:, None] & inside_x[None, :]
        # paste the component's own box (clipped to the slot box and the image)
        morph = np.asarray(c.morph, np.float32)
        h, w = morph.shape
        cy0, cx0 = c.origin[0] - oy, c.origin[1] - ox  # own box in slot coordinates
        y0, y1 = max(cy0, 0), min(cy0 + h, box)
        x0, x1 = max(cx0, 0), min(cx0 + w, box)
        if y1 > y0 and x1 > x0:
            morphs[k, y0:y1, x0:x1] = morph[y0 - cy0 : y1 - cy0, x0 - cx0 : x1 - cx0]
            support[k, y0:y1, x0:x1] = 1.0
        support[k] *= bounds[k]
        support[k, margin, margin] = 1.0
        morphs[k] *= support[k]
    check_origins(origins[:n], (box, box), canvas, margin)

    data = FitData(
        images=jnp.asarray(images),
        weights=jnp.asarray(weights),
        kernel_fft=kernel_to_fft(observation.diff_kernel, fft_shape),
        noise_rms=jnp.asarray(observation.noise_rms, jnp.float32),
        fft_shape=fft_shape,
        margin=margin,
    )
    placement = Placement(
        origins=jnp.asarray(origins),
        bounds=jnp.asarray(bounds),
        support=jnp.asarray(support),
        active=jnp.asarray(active),
        source=jnp.asarray(source),
        peaks=jnp.asarray(peaks),
        symmetric=jnp.asarray(symmetric),
    )
    comps = Components(spectra=jnp.asarray(spectra), morphs=jnp.asarray(morphs))
    return PackedBlend(data, placement, comps, key, (height, width), n)
