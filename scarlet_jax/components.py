"""Components of a blend as stacked arrays (struct of arrays), and their placement.

A blend of K component slots fits ``Components`` (spectra and morphologies); the
``Placement`` says where each box sits and which pixels it may use. Every box has the same
odd shape (h, w), with the component's peak at the box centre (h // 2, w // 2). Unused
slots (padding) have ``active=False`` and all-zero arrays.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

__all__ = ["Components", "Placement", "component_models"]


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
    data_fields=["origins", "bounds", "support", "active", "source", "peaks", "symmetric"],
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
    """

    origins: jax.Array
    bounds: jax.Array
    support: jax.Array
    active: jax.Array
    source: jax.Array
    peaks: jax.Array
    symmetric: jax.Array

    def replace(self, **changes) -> Placement:
        return dataclasses.replace(self, **changes)


def component_models(components: Components) -> jax.Array:
    """(K, B, h, w) model of each component in its box: spectrum x morphology."""
    return components.spectra[:, :, None, None] * components.morphs[:, None, :, :]


def box_center(box_shape: tuple[int, int]) -> jnp.ndarray:
    """(2,) int32 centre pixel of an odd box."""
    return jnp.array([box_shape[0] // 2, box_shape[1] // 2], jnp.int32)
