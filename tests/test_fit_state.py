"""Host-side pieces of the fit: ``resize_support`` (the new box of each component, on
small arrays) and ``packing.regrow`` (components moved up a size class with their state)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scarlet_jax.components import Components, Placement
from scarlet_jax.fit import init_state
from scarlet_jax.growth import resize_support
from scarlet_jax.optim import ProxAdamState
from scarlet_jax.options import resolve_options
from scarlet_jax.packing import pack_blend, regrow, unpack_components

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
    # the image; the pixel is within EDGE_ROOM of the slot's right edge, inside the image
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


def _slot(packed, j):
    for c, place in enumerate(packed.placement):
        hits = np.nonzero(np.asarray(place.index) == j)[0]
        if hits.size:
            return c, int(hits[0])
    raise AssertionError(f"component {j} has no slot")


def test_regrow_moves_a_component_up_a_class_with_its_state(hsc_lite_blend, rng):
    """A component flagged ``overflow`` moves to a larger class; its morph, support and
    optimiser moments move with it, centred, new pixels as a fresh optimiser sees them
    (moments 0, ``vhat`` -inf); every other component and the rest of the state stay."""
    obs, comps = hsc_lite_blend
    opts = resolve_options(max_iter=6, grow_margin=2)
    packed = pack_blend(obs, comps, grow_margin=2)
    state = init_state(packed.data, packed.placement, packed.components, opts.params,
                       opts.config)

    def noise(tree):
        return jax.tree.map(lambda x: jnp.asarray(rng.uniform(0.1, 1, x.shape), x.dtype), tree)

    opt = ProxAdamState.of(count=jnp.asarray(3, jnp.int32), m=noise(state.components),
                           v=noise(state.components), vhat=noise(state.components))
    c0, s0 = _slot(packed, 0)
    overflow = tuple(jnp.asarray(np.arange(len(o)) == s0) & (c == c0)
                     for c, o in enumerate(state.overflow))
    state = state._replace(opt_state=opt, it=jnp.asarray(3, jnp.int32), overflow=overflow,
                           needs_room=jnp.array(True))
    new_packed, new = regrow(obs, comps, packed, state, opts)

    c1, s1 = _slot(new_packed, 0)
    h0, w0 = packed.key.classes[c0][:2]
    h1, w1 = new_packed.key.classes[c1][:2]
    assert h1 > h0 and w1 > w0 and new_packed.key.pixels > packed.key.pixels
    dy, dx = (h1 - h0) // 2, (w1 - w0) // 2
    inner = (slice(dy, dy + h0), slice(dx, dx + w0))

    def check(before, after, fill):
        after = np.asarray(after[c1])[s1]
        before = np.asarray(before[c0])[s0]
        np.testing.assert_array_equal(after[inner], before)  # the old box, centred
        ring = np.ones(after.shape, bool)
        ring[inner] = False
        assert (after[ring] == fill).all()

    pick = lambda tree, name: [getattr(c, name) for c in tree]  # noqa: E731
    check(pick(state.components, "morphs"), pick(new.components, "morphs"), 0)
    check(state.support, new.support, 0)
    check(pick(opt.m, "morphs"), pick(new.opt_state.m, "morphs"), 0)
    check(pick(opt.vhat, "morphs"), pick(new.opt_state.vhat, "morphs"), -np.inf)
    np.testing.assert_array_equal(np.asarray(new.opt_state.v[c1].spectra)[s1],
                                  np.asarray(opt.v[c0].spectra)[s0])
    assert int(new.opt_state.count) == 3 and int(new.it) == 3
    # every other component: same values in the same-size or larger slot
    for j in range(1, len(comps)):
        (a, i), (b, k) = _slot(packed, j), _slot(new_packed, j)
        np.testing.assert_array_equal(np.asarray(new.components[b].spectra)[k],
                                      np.asarray(state.components[a].spectra)[i])
        assert np.asarray(new.components[b].morphs)[k].sum() == pytest.approx(
            float(np.asarray(state.components[a].morphs)[i].sum()))
    # the blend's components, in the result layout, are the same before and after
    before = unpack_components(packed, state)
    after = unpack_components(new_packed, new)
    np.testing.assert_array_equal(before["spectra"], after["spectra"])
    np.testing.assert_array_equal(before["peaks"], after["peaks"])
    d = (after["morphs"].shape[-1] - before["morphs"].shape[-1]) // 2
    crop = after["morphs"][:, d : after["morphs"].shape[-1] - d, d : after["morphs"].shape[-1] - d]
    np.testing.assert_array_equal(crop, before["morphs"])
    assert after["morphs"].sum() == before["morphs"].sum()
