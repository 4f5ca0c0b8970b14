"""The proximal chain of ``constraints.make_prox``: its order, and what it does to spectra,
supports and inactive slots, on small arrays."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scarlet_jax import prox as ops
from scarlet_jax.components import Components
from scarlet_jax.constraints import make_prox
from scarlet_jax.options import resolve_options

K, B, BOX = 3, 2, 9


def _make_monotonicity():
    """The monotonicity operator, wherever the operator library keeps it."""
    for name in ("scarlet_jax.monotonicity", "scarlet_jax.prox"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "make_monotonicity"):
            return module.make_monotonicity
    raise AssertionError("make_monotonicity not found")


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    c = BOX // 2
    yy, xx = np.mgrid[:BOX, :BOX] - c
    # a bright blob off the centre, a non-monotonic ring and noise (some of it negative)
    morphs = (np.exp(-((yy - 1) ** 2 + xx**2) / 4.0)[None]
              + 0.4 * (np.hypot(yy, xx) > 3)[None]
              + rng.normal(scale=0.15, size=(K, BOX, BOX)))
    morphs[:, c, c] += 0.2
    spectra = rng.uniform(1.0, 3.0, size=(K, B))
    support = np.ones((K, BOX, BOX), np.float32)
    support[1, :, :2] = 0  # a box smaller than its slot
    comps = Components(spectra=jnp.asarray(spectra, jnp.float32),
                       morphs=jnp.asarray(morphs, jnp.float32))
    return (comps, jnp.asarray(support), jnp.array([True, True, False]),
            jnp.array([True, False, True]), jnp.full((B,), 0.5, jnp.float32))


def _chain(config, params, comps, support, active, symmetric, noise_rms, order):
    """The morphology chain written out operator by operator, in ``order``."""
    center = jnp.array([BOX // 2, BOX // 2])
    mono = _make_monotonicity()((BOX, BOX), config.fit_radius, return_peak=True)
    spectra = np.maximum(np.asarray(comps.spectra), float(params.spectrum_floor))
    spectra = np.where(np.asarray(active)[:, None], spectra, 0.0)
    out = []
    for k in range(K):
        morph = comps.morphs[k] * support[k]
        spec = jnp.asarray(spectra[k], jnp.float32)
        peak = center
        for step in order:
            if step == "monotonic" and config.monotonic:
                morph, peak = mono(morph, center)
            elif step == "monotonic" and config.symmetric:  # the peak is re-found anyway
                peak = ops.find_peak(morph, center, config.fit_radius)
            elif step == "symmetric" and config.symmetric and bool(symmetric[k]):
                morph = ops.uncentered_symmetry(morph, peak, fill=0.0)
            elif step == "threshold":
                morph = ops.bg_threshold(morph, spec, noise_rms, params.bg_thresh)
            elif step == "sparsity" and config.sparsity == "l0":
                morph = ops.l0_threshold(morph, spec, noise_rms, params.sparsity_thresh)
            elif step == "sparsity" and config.sparsity == "l1":
                morph = ops.l1_threshold(morph, spec, noise_rms, params.sparsity_thresh)
            elif step == "positivity":
                morph = ops.positivity(morph)
            elif step == "peak_floor":
                morph = ops.peak_floor(morph, center, params.peak_floor)
            elif step == "normalize":
                morph = ops.max_normalize(morph)
        out.append(np.asarray(morph) * np.asarray(support[k]) * bool(active[k]))
    return spectra, np.stack(out)


ORDER = ("monotonic", "symmetric", "threshold", "sparsity", "positivity", "peak_floor",
         "normalize")


@pytest.mark.parametrize("options", [dict(), dict(sparsity="l0", sparsity_thresh=0.6),
                                     dict(sparsity="l1", symmetric=True),
                                     dict(monotonic=False, symmetric=True)],
                         ids=["default", "l0", "l1+sym", "no-mono+sym"])
def test_make_prox_runs_the_documented_order(options):
    opts = resolve_options(bg_thresh=0.3, **options)
    config, params = opts.config.constraints, opts.params.constraints
    args = _problem()
    got = jax.jit(make_prox(config, (BOX, BOX)))(*args, params)
    spectra, morphs = _chain(config, params, *args, order=ORDER)
    np.testing.assert_allclose(np.asarray(got.spectra), spectra, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(got.morphs), morphs, rtol=1e-5, atol=1e-6)
    if options:
        return
    # the order matters on this input: normalising before the threshold, or thresholding
    # before the monotonicity projection, gives another answer
    moved = ("monotonic", "symmetric", "normalize", "threshold", "sparsity", "positivity",
             "peak_floor")
    assert not np.allclose(_chain(config, params, *args, order=moved)[1], morphs, atol=1e-4)
    early = ("threshold", "monotonic", "symmetric", "sparsity", "positivity", "peak_floor",
             "normalize")
    assert not np.allclose(_chain(config, params, *args, order=early)[1], morphs, atol=1e-4)


def test_make_prox_output_obeys_every_constraint():
    opts = resolve_options(bg_thresh=0.3, symmetric=True)
    comps, support, active, symmetric, noise_rms = _problem(1)
    spectra = comps.spectra.at[0, 1].set(jnp.nan).at[1, 0].set(-5.0)
    comps = comps.replace(spectra=spectra)
    out = make_prox(opts.config.constraints, (BOX, BOX))(
        comps, support, active, symmetric, noise_rms, opts.params.constraints)
    spectra, morphs = np.asarray(out.spectra), np.asarray(out.morphs)
    floor = float(opts.params.constraints.spectrum_floor)
    assert spectra[0, 1] == floor and spectra[1, 0] == floor  # NaN and negative: the floor
    assert (spectra[2] == 0).all() and (morphs[2] == 0).all()  # an inactive slot stays empty
    assert (morphs[1][:, :2] == 0).all()  # nothing outside the support
    assert morphs.min() >= 0
    np.testing.assert_allclose(morphs[:2].max(axis=(1, 2)), 1.0, rtol=1e-6)
    # the maximum is the peak, re-found within fit_radius of the centre
    for morph in morphs[:2]:
        py, px = np.unravel_index(np.argmax(morph), morph.shape)
        assert abs(py - BOX // 2) <= 1 and abs(px - BOX // 2) <= 1
