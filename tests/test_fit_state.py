"""Host-side pieces of the fit on small arrays: ``resize_support`` (the new box of each
component) and ``grow_state`` (a state moved to larger slot boxes)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from test_likelihood import make_problem

from scarlet_jax.components import Components, Placement
from scarlet_jax.fit import init_state
from scarlet_jax.growth import grow_state, resize_support
from scarlet_jax.optim import ProxAdamState
from scarlet_jax.options import resolve_options

N = 11  # slot box; the peak sits at (5, 5)


def _box(rows, cols):
    out = np.zeros((N, N), np.float32)
    out[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = 1
    return out


def test_resize_support_boxes_the_significant_pixels():
    morphs = np.full((4, N, N), 0.5, np.float32)  # below the threshold (1 noise rms)
    morphs[0, 4:7, 5:8] = 2.0  # a 3 x 3 block touching the peak
    morphs[2, 1, 10] = 2.0  # one pixel near the top-right corner of the slot
    morphs[3] = morphs[2]
    bounds = np.ones((4, N, N), np.float32)
    bounds[2:, 0, :] = 0  # the image ends above row 1 for slots 2 and 3
    old = np.stack([_box((2, 8), (2, 8))] * 4)
    placement = Placement(
        origins=jnp.zeros((4, 2), jnp.int32), bounds=jnp.asarray(bounds),
        support=jnp.asarray(old), active=jnp.array([True, True, True, False]),
        source=jnp.arange(4, dtype=jnp.int32), peaks=jnp.full((4, 2), 5, jnp.int32),
        symmetric=jnp.zeros(4, bool))
    comps = Components(spectra=jnp.ones((4, 1), jnp.float32), morphs=jnp.asarray(morphs))
    support, overflow = resize_support(comps, placement, jnp.asarray(old),
                                       jnp.ones(1, jnp.float32), 1.0, 1)
    support, overflow = np.asarray(support), np.asarray(overflow)
    # the block's bounding box (rows 4-6, cols 5-7) grown by 1 pixel
    np.testing.assert_array_equal(support[0], _box((3, 7), (4, 8)))
    # no significant pixel: the box is kept
    np.testing.assert_array_equal(support[1], old[1])
    # rows 1..5 (the pixel and the peak) and cols 5..10 grown by 1, clipped to the slot and
    # the image; the grown box reaches past the slot's right edge, inside the image
    np.testing.assert_array_equal(support[2], _box((0, 6), (4, 10)) * bounds[2])
    assert overflow.tolist() == [False, False, True, False]  # an inactive slot never asks
    np.testing.assert_array_equal(support[3], support[2])


def test_resize_support_keeps_the_peak_inside():
    morphs = np.zeros((1, N, N), np.float32)
    morphs[0, 9, 9] = 5.0  # far from the peak
    placement = Placement(
        origins=jnp.zeros((1, 2), jnp.int32), bounds=jnp.ones((1, N, N)),
        support=jnp.ones((1, N, N)), active=jnp.array([True]),
        source=jnp.zeros(1, jnp.int32), peaks=jnp.full((1, 2), 5, jnp.int32),
        symmetric=jnp.zeros(1, bool))
    comps = Components(spectra=jnp.ones((1, 1), jnp.float32), morphs=jnp.asarray(morphs))
    support, overflow = resize_support(comps, placement, placement.support,
                                       jnp.ones(1, jnp.float32), 1.0, 0)
    np.testing.assert_array_equal(np.asarray(support)[0], _box((5, 9), (5, 9)))
    assert not bool(overflow[0])


def test_grow_state_pads_every_per_pixel_array_and_nothing_else(rng):
    data, placement, comps = make_problem(rng)
    opts = resolve_options(max_iter=6)
    state = init_state(data, placement, comps, opts.params, opts.config)
    k, h, w = comps.morphs.shape

    def noise(tree):
        return jax.tree.map(lambda x: jnp.asarray(rng.uniform(0.1, 1, x.shape), x.dtype), tree)

    opt = ProxAdamState(count=jnp.asarray(3, state.opt_state.count.dtype), m=noise(comps),
                        v=noise(comps), vhat=noise(comps))
    state = state._replace(opt_state=opt, it=jnp.asarray(3, jnp.int32))
    pad = 2
    grown = grow_state(state, pad)
    inner = (slice(None), slice(pad, pad + h), slice(pad, pad + w))

    def check(before, after, fill):
        before, after = np.asarray(before), np.asarray(after)
        if before.ndim != 3:  # spectra, scalars, the loss history: unchanged
            np.testing.assert_array_equal(after, before)
            return
        assert after.shape == (k, h + 2 * pad, w + 2 * pad)
        np.testing.assert_array_equal(after[inner], before)  # the old box, centred
        ring = np.ones(after.shape, bool)
        ring[inner] = False
        assert (after[ring] == fill).all()

    check(state.components.morphs, grown.components.morphs, 0)
    check(state.components.spectra, grown.components.spectra, 0)
    check(state.support, grown.support, 0)
    for name in ("m", "v"):  # a fresh optimiser's moments in the new pixels
        for a, b in zip(jax.tree.leaves(getattr(opt, name)),
                        jax.tree.leaves(getattr(grown.opt_state, name)), strict=True):
            check(a, b, 0)
    for a, b in zip(jax.tree.leaves(opt.vhat), jax.tree.leaves(grown.opt_state.vhat),
                    strict=True):
        check(a, b, -np.inf)
    assert int(grown.opt_state.count) == 3
    padded = {"components", "support", "opt_state", "best_components", "best_support"}
    for name in set(state._fields) - padded:  # the rest of the state is left as it was
        for a, b in zip(jax.tree.leaves(getattr(state, name)),
                        jax.tree.leaves(getattr(grown, name)), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
