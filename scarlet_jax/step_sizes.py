"""The optimisers' step sizes per block of parameters (spectra, morphologies).

Each ``*_steps(data, params)`` returns ``step_fn(components) -> Components`` of step sizes
(a tuple of them for a tuple of size classes);
``data`` is a :class:`~scarlet_jax.components.FitData`, ``params`` a
:class:`~scarlet_jax.fit.FitParams` (read for ``morph_step``, ``spectrum_step_noise`` and
``spectrum_step_rel``).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp

from .components import Components, FitData

__all__ = ["adaprox_steps", "fista_steps"]


def _per_class(one, components):
    """``one`` on each class of a tuple of classes, or on a lone class."""
    if isinstance(components, tuple):
        return tuple(one(c) for c in components)
    return one(components)


def adaprox_steps(data: FitData, params):
    """scarlet lite's proximal Adam steps: the spectrum step is at least
    ``spectrum_step_noise`` x the band's noise rms and ``spectrum_step_rel`` x the mean of the
    spectrum; the morphology step is ``morph_step`` (relative to the peak, which is 1)."""
    def one(c: Components) -> Components:
        rel = params.spectrum_step_rel * jnp.mean(c.spectra, axis=1, keepdims=True)
        spec = jnp.maximum(data.noise_rms[None, :] * params.spectrum_step_noise, rel)
        return Components(spectra=spec, morphs=params.morph_step)

    return functools.partial(_per_class, one)


def fista_steps(data: FitData, params):
    """Steps below the inverse Lipschitz constant of each block, including the weights
    (scarlet lite's FISTA ignores them and diverges with inverse-variance weights)."""
    # (B,) largest weight times the squared operator norm of the band's convolution (the
    # largest |FFT| of its difference kernel, > 1 when the PSF is narrower than the model's)
    knorm2 = jnp.max(jnp.abs(data.kernel_fft) ** 2, axis=(-2, -1))
    wmax = jnp.max(data.weights, axis=(-2, -1)) * knorm2
    tiny = jnp.float32(1e-30)

    def one(c: Components) -> Components:
        morph_norm = jnp.sum(c.morphs**2, axis=(1, 2))  # (K,)
        spec = 0.5 / (wmax[None, :] * morph_norm[:, None] + tiny)
        lip_morph = jnp.sum(wmax[None, :] * c.spectra**2, axis=1)  # (K,)
        morph = 0.5 / (lip_morph + tiny)
        return Components(spectra=spec, morphs=morph[:, None, None])

    return functools.partial(_per_class, one)
