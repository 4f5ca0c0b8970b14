"""The shared data types of a blend, at the bottom of the import graph.

A size class of K component slots fits ``Components`` (spectra and morphologies); the
``Placement`` says where each box sits and which pixels it may use. Every box of a class
has the same odd shape (h, w), with the component's peak at the box centre
(h // 2, w // 2). Unused slots (padding) have ``active=False`` and all-zero arrays. A blend
is a tuple of classes (``tuple[Components, ...]`` with a matching ``tuple[Placement, ...]``,
see :mod:`scarlet_jax.packing`); a lone ``Components`` is a blend of one class
(:func:`as_classes` gives the tuple form of either). ``FitData`` is what the fit reads
of an observation. On the host, the initialisation makes ``InitComponent`` tuples, which
:func:`scarlet_jax.packing.pack_blend` turns into a ``PackedBlend`` of one ``BucketKey``.
Every module that passes these around imports them from here, so no module needs the
module that makes them (packing does not import the loss, nor initialisation packing).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import numpy as np

__all__ = [
    "BucketKey",
    "Components",
    "FitData",
    "InitComponent",
    "PackedBlend",
    "Placement",
    "as_classes",
    "component_models",
]


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["spectra", "morphs"], meta_fields=[]
)
@dataclasses.dataclass(frozen=True)
class Components:
    """Fitted parameters (a pytree; an update returns a new one).

    Attributes:
      spectra: (K, B) float32 amplitude per band.
      morphs: (K, h, w) float32 morphology, max 1 inside its support, 0 outside.
    """

    spectra: jax.Array
    morphs: jax.Array

    def replace(self, **changes) -> Components:
        return dataclasses.replace(self, **changes)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["origins", "bounds", "support", "active", "source", "peaks", "symmetric",
                 "index"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Placement:
    """Where the component boxes sit (a pytree).

    Attributes:
      origins: (K, 2) int32 top-left (y, x) of each box in image coordinates (may be
        negative: the part of a box outside the image is never used).
      bounds: (K, h, w) float32, 1 where the box pixel lies inside the image.
      support: (K, h, w) float32, 1 inside the component's current box (scarlet lite's
        bbox, a rectangle inside ``bounds``); it changes when boxes are resized.
      active: (K,) bool, False for padding slots.
      source: (K,) int32 index of the source each component belongs to (-1 for padding).
      peaks: (K, 2) int32 (y, x) of the component's peak in image coordinates.
      symmetric: (K,) bool, components made symmetric about their peak (used when the
        fit's ``symmetric`` constraint is compiled in).
      index: (K,) int32 position of each slot's component in the blend's component list
        (-1 for padding); None for a lone class in component order.
    """

    origins: jax.Array
    bounds: jax.Array
    support: jax.Array
    active: jax.Array
    source: jax.Array
    peaks: jax.Array
    symmetric: jax.Array
    index: jax.Array | None = None

    def replace(self, **changes) -> Placement:
        return dataclasses.replace(self, **changes)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["images", "weights", "kernel_fft", "noise_rms"],
    meta_fields=["fft_shape", "margin"],
)
@dataclasses.dataclass(frozen=True)
class FitData:
    """What the fit reads of an observation, on the (possibly padded) fit canvas.

    Attributes:
      images: (B, H, W) float32 data.
      weights: (B, H, W) float32 inverse variance, 0 for padding and bad pixels.
      kernel_fft: (B, Fh, Fw//2+1) complex64 rfft2 of the PSF-difference kernel.
      noise_rms: (B,) float32 background rms.
      fft_shape: static (Fh, Fw).
      margin: static canvas margin for box insertion (>= half the box size).
    """

    images: jax.Array
    weights: jax.Array
    kernel_fft: jax.Array
    noise_rms: jax.Array
    fft_shape: tuple = (0, 0)
    margin: int = 0


class InitComponent(NamedTuple):
    """One initial component on the host, as scarlet lite holds it.

    Attributes:
      source: index of its source.
      peak: (y, x) int pixel of the peak in image coordinates.
      origin: (y, x) int top-left of its box in image coordinates.
      spectrum: (B,) float.
      morph: (h, w) float morphology in its box (max 1).
      symmetric: whether the fit makes it symmetric about its peak.
    """

    source: int
    peak: tuple
    origin: tuple
    spectrum: np.ndarray
    morph: np.ndarray
    symmetric: bool = False


class BucketKey(NamedTuple):
    """Everything that sets compiled shapes for one blend (hashable).

    Attributes:
      n_bands: B.
      canvas: (H, W) padded image.
      classes: ((h, w, K_c), ...) slot box shape and slot count of each size class, by
        increasing slot pixels (:mod:`scarlet_jax.packing`).
      fft_shape: (Fh, Fw) FFT grid.
    """

    n_bands: int
    canvas: tuple
    classes: tuple
    fft_shape: tuple

    @classmethod
    def single(cls, n_bands: int, canvas: tuple, box: int, slots: int,
               fft_shape: tuple) -> BucketKey:
        """The key of one class of ``slots`` square boxes of side ``box``."""
        return cls(n_bands, tuple(canvas), ((int(box), int(box), int(slots)),),
                   tuple(fft_shape))

    @property
    def box(self) -> int:
        """The largest slot side (of any class, either axis)."""
        return max(max(h, w) for h, w, _ in self.classes)

    @property
    def slots(self) -> int:
        """Total component slots (sum of K_c)."""
        return sum(k for _, _, k in self.classes)

    @property
    def pixels(self) -> int:
        """Slot pixels per band (sum of K_c * h_c * w_c): the box work of an iteration."""
        return sum(k * h * w for h, w, k in self.classes)


class PackedBlend(NamedTuple):
    """A blend ready for :func:`scarlet_jax.fit.fit` (device arrays, bucketed shapes);
    ``placement`` and ``components`` are tuples over the key's size classes."""

    data: FitData
    placement: tuple
    components: tuple
    key: BucketKey
    image_shape: tuple  # unpadded (H, W)
    n_components: int


def as_classes(tree) -> tuple:
    """The tuple-of-classes form of a blend's :class:`Components`, :class:`Placement` or
    per-class array: a lone one becomes a 1-tuple, a tuple stays as it is."""
    return tuple(tree) if isinstance(tree, (tuple, list)) else (tree,)


def component_models(components: Components) -> jax.Array:
    """(K, B, h, w) model of each component in its box: spectrum x morphology."""
    return components.spectra[:, :, None, None] * components.morphs[:, None, :, :]

