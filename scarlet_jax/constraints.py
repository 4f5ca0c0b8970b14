"""The proximal chain applied to every component after each gradient step.

Order as in scarlet lite's ``prox_morph``: monotonicity, symmetry, thresholds (background
threshold, optional L0/L1 sparsity), positivity and support, peak floor, normalisation.
Spectra get a floor. Which operators run is static (:class:`ConstraintConfig`); their
thresholds are traced leaves (:class:`ConstraintParams`), so sweeping them does not
recompile.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import prox as ops
from .components import Components
from .monotonicity import make_monotonicity_classes

__all__ = ["ConstraintConfig", "ConstraintParams", "make_prox", "make_prox_classes",
           "significant", "SPARSITY"]

SPARSITY = (None, "l0", "l1")


@dataclasses.dataclass(frozen=True)
class ConstraintConfig:
    """Static choice of operators (hashable: part of the compile key). Built by
    :func:`scarlet_jax.options.resolve_options`, whose option table holds the defaults and
    checks of ``monotonic``, ``sparsity`` and ``fit_radius``.

    Attributes:
      monotonic: weighted monotonicity from the (re-found) peak.
      symmetric: compile in the uncentred 180-degree symmetry about the peak; it applies to
        the components whose per-slot flag is set (``Placement.symmetric``).
      sparsity: None, "l0" (hard) or "l1" (soft) thresholding in noise units.
      fit_radius: window half-size in which the peak is re-found.
    """

    monotonic: bool
    symmetric: bool
    sparsity: str | None
    fit_radius: int


class ConstraintParams(NamedTuple):
    """Traced thresholds (scalars, float32)."""

    bg_thresh: jax.Array  # background threshold in units of noise_rms (0 disables)
    sparsity_thresh: jax.Array  # L0/L1 threshold in units of the noise
    spectrum_floor: jax.Array  # minimum spectrum value (scarlet lite: 1e-20)
    peak_floor: jax.Array  # minimum value of the peak pixel before normalisation

    @classmethod
    def make(cls, *, bg_thresh, sparsity_thresh, spectrum_floor=1e-20, peak_floor=1e-20):
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return cls(f(bg_thresh), f(sparsity_thresh), f(spectrum_floor), f(peak_floor))


def significant(spectra, morphs, noise_rms, bg_thresh):
    """(K, h, w) bool: pixels where the component's model reaches ``noise_rms * bg_thresh``
    in at least one band (scarlet lite's ``significant`` mask; :func:`prox.bg_significant`
    per component).

    Args:
      spectra: (K, B); morphs: (K, h, w); noise_rms: (B,); bg_thresh: () scalar.
    """
    return jax.vmap(ops.bg_significant, in_axes=(0, 0, None, None))(
        morphs, spectra, noise_rms, bg_thresh
    )


def make_prox(config: ConstraintConfig, box_shape: tuple[int, int]):
    """Build ``prox(components, support, active, symmetric, noise_rms, params) -> Components``.

    Args:
      config: which operators run.
      box_shape: static odd (h, w) of every component box; the peak is at the centre.

    The returned function takes ``support`` (K, h, w), ``active`` (K,) bool, ``symmetric``
    (K,) bool (which components the symmetry applies to), ``noise_rms`` (B,) and the
    traced :class:`ConstraintParams`.
    """
    classes = make_prox_classes(config, (box_shape,))

    def prox(components: Components, support, active, symmetric, noise_rms,
             params: ConstraintParams):
        return classes((components,), (support,), (active,), (symmetric,), noise_rms,
                       params)[0]

    return prox


def make_prox_classes(config: ConstraintConfig, box_shapes):
    """:func:`make_prox` for a blend in size classes: ``prox(components, supports, actives,
    symmetrics, noise_rms, params)`` with tuples over classes (box shapes ``box_shapes``,
    each odd (h, w)) returns a tuple of :class:`Components`."""
    box_shapes = tuple(tuple(int(v) for v in shape) for shape in box_shapes)
    # one monotonicity scan for all classes (it is the first operator of the chain)
    mono = (make_monotonicity_classes(box_shapes, config.fit_radius) if config.monotonic
            else None)

    def prox_morph_one(center, morph, peak, spectrum, symmetric, noise_rms, params):
        if mono is None and config.symmetric:
            peak = ops.find_peak(morph, center, config.fit_radius)
        if config.symmetric:
            morph = jnp.where(symmetric, ops.uncentered_symmetry(morph, peak, fill=0.0), morph)
        morph = ops.bg_threshold(morph, spectrum, noise_rms, params.bg_thresh)
        if config.sparsity == "l0":
            morph = ops.l0_threshold(morph, spectrum, noise_rms, params.sparsity_thresh)
        elif config.sparsity == "l1":
            morph = ops.l1_threshold(morph, spectrum, noise_rms, params.sparsity_thresh)
        morph = ops.positivity(morph)
        morph = ops.peak_floor(morph, center, params.peak_floor)
        return ops.max_normalize(morph)

    def centre(shape):
        return jnp.array([shape[0] // 2, shape[1] // 2], jnp.int32)

    def prox(components, supports, actives, symmetrics, noise_rms, params: ConstraintParams):
        spectra, morphs = [], []
        for c, support, active in zip(components, supports, actives, strict=True):
            sp = jnp.maximum(c.spectra, params.spectrum_floor)
            sp = jnp.where(jnp.isfinite(sp), sp, params.spectrum_floor)
            spectra.append(jnp.where(active[:, None], sp, 0.0))
            morphs.append(c.morphs * support)
        # the peaks are the box centres unless monotonicity re-finds them
        peaks = tuple(jnp.broadcast_to(centre(shape), (m.shape[0], 2))
                      for shape, m in zip(box_shapes, morphs, strict=True))
        if mono is not None:
            morphs, peaks = mono(tuple(morphs), peaks)
        out = []
        for shape, m, pk, sp, s, a, sym in zip(box_shapes, morphs, peaks, spectra, supports,
                                               actives, symmetrics, strict=True):
            one = functools.partial(prox_morph_one, centre(shape))
            m = jax.vmap(one, in_axes=(0, 0, 0, 0, None, None))(m, pk, sp, sym, noise_rms,
                                                                 params)
            out.append(Components(spectra=sp, morphs=m * s * a[:, None, None]))
        return tuple(out)

    return prox
