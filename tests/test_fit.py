"""The fit engine on the HSC blend started from scarlet lite's initial components."""

import dataclasses
import logging

import chex
import jax
import numpy as np
import pytest

from scarlet_jax.datasets import synthetic_blends
from scarlet_jax.fit import fit, init_state, run_block
from scarlet_jax.likelihood import loss_and_grads
from scarlet_jax.options import resolve_options
from scarlet_jax.packing import pack_blend, unpack_components

# scarlet lite's one-step stopping rule; no symmetry operator compiled in; a box that
# reaches its slot edge is clipped there (no stop for a regrow: that is the pipeline's job,
# tests/test_deblend.py and test_pipeline.py)
CONFIG = dataclasses.replace(resolve_options(max_iter=100, min_iter=5, resize=3, stop_window=1,
                                             symmetric_dominated=False).config, rebucket=False)


@pytest.fixture(scope="module")
def blend(hsc_lite_blend):
    return hsc_lite_blend


@pytest.fixture(scope="module")
def packed(blend):
    return pack_blend(*blend)


def run(packed, config=CONFIG, **params):
    params = resolve_options(**{"bg_thresh": 1.0, **params}).params
    return fit(packed.data, packed.placement, packed.components, params, config)


def test_packing_keeps_the_reference_model(packed, reference_fit):
    """The packed slots reproduce each component's own box exactly."""
    seen = []
    for comps, place in zip(packed.components, packed.placement, strict=True):
        index = np.asarray(place.index)
        for slot, k in enumerate(index):
            if k < 0:  # padding slots are inactive and empty
                assert not bool(place.active[slot]) and float(comps.morphs[slot].sum()) == 0
                continue
            morph = reference_fit[f"init_comp{k}_morph"]
            assert np.isclose(float(comps.morphs[slot].sum()), morph.sum(), rtol=1e-5)
            assert int(place.support[slot].sum()) == morph.size
            seen.append(int(k))
    assert sorted(seen) == list(range(packed.n_components))


def test_fit_decreases_the_loss_and_converges(packed):
    state, info = run(packed)
    hist = np.asarray(info.loss)[: int(state.it)]
    assert hist[-1] < 0.2 * hist[0]
    assert bool(state.converged) and not bool(state.diverged)
    assert int(state.it) < CONFIG.max_iter
    assert np.isnan(np.asarray(info.loss)[int(state.it):]).all()
    # constraints hold: morphs non-negative, max 1, zero outside the support
    out = unpack_components(packed, state)
    morphs = out["morphs"]
    assert morphs.min() >= 0 and np.allclose(morphs.max(axis=(1, 2)), 1.0)
    assert np.all(morphs[~out["support"]] == 0)
    # padding slots stay empty
    for comps, place in zip(state.components, packed.placement, strict=True):
        assert float(np.abs(np.asarray(comps.spectra)[~np.asarray(place.active)]).sum()) == 0


def test_max_iter_stops_the_fit(packed):
    state, info = run(packed, dataclasses.replace(CONFIG, max_iter=7, min_iter=7))
    assert int(state.it) == 7 and not bool(state.converged)


def test_resize_shrinks_and_grows_supports(packed):
    state, info = run(packed, bg_thresh=1.0)
    changed = False
    for place, support in zip(packed.placement, state.support, strict=True):
        before = np.asarray(place.support).sum(axis=(1, 2))
        after = np.asarray(support).sum(axis=(1, 2))
        changed |= bool((after != before)[np.asarray(place.active)].any())
        # supports stay inside the image
        assert np.all(np.asarray(support) <= np.asarray(place.bounds))
    assert changed


def test_second_call_does_not_recompile(packed, caplog):
    run(packed)
    with jax.log_compiles(True), caplog.at_level(logging.DEBUG):
        caplog.clear()
        run(packed, e_rel=1e-4, bg_thresh=0.5)  # traced numbers: same program
    compiles = [r for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiles == [], [r.getMessage() for r in compiles]


def test_non_finite_loss_reverts_and_flags(packed):
    """Data so large that the loss overflows float32: the state is reverted and flagged."""
    huge = packed._replace(data=packed.data.__class__(
        images=packed.data.images * 1e25, weights=packed.data.weights,
        kernel_fft=packed.data.kernel_fft, noise_rms=packed.data.noise_rms,
        fft_shape=packed.data.fft_shape, margin=packed.data.margin))
    state, info = run(huge)
    assert bool(state.diverged) and not bool(state.converged)
    for now, start in zip(state.components, packed.components, strict=True):
        assert np.isfinite(np.asarray(now.morphs)).all()
        np.testing.assert_array_equal(np.asarray(now.morphs), np.asarray(start.morphs))


def test_fista_runs_stably(packed):
    state, info = run(packed, dataclasses.replace(CONFIG, max_iter=30, optimizer="fista", resize=0))
    hist = np.asarray(info.loss)[: int(state.it)]
    assert np.isfinite(hist).all() and not bool(state.diverged)
    assert hist[-1] < hist[0]


def test_loss_history_matches_loss(packed):
    state, info = run(packed, dataclasses.replace(CONFIG, max_iter=3, min_iter=3, resize=0))
    loss0, _ = loss_and_grads(packed.components, packed.placement, packed.data)
    assert float(info.loss[0]) == pytest.approx(float(loss0), rel=1e-6)


def test_state_is_the_carry_and_info_the_stream(packed):
    """blackjax's split: the carried state has the same leaves whatever ``max_iter`` (no
    history in it), a block keeps its shapes and dtypes (a valid scan carry), and the loss of
    each step comes out as a (block,) info row."""
    params = resolve_options(bg_thresh=1.0).params
    short, long = (dataclasses.replace(CONFIG, max_iter=n, block=4) for n in (8, 300))
    start = init_state(packed.data, packed.placement, packed.components, params, short)
    chex.assert_trees_all_equal_shapes_and_dtypes(
        start, init_state(packed.data, packed.placement, packed.components, params, long))
    state, info = run_block(packed.data, packed.placement, start, params, short)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, start)
    assert info.loss.shape == (4,) and bool(info.ran.all()) and int(state.it) == 4
    loss0, _ = loss_and_grads(packed.components, packed.placement, packed.data)
    assert float(info.loss[0]) == pytest.approx(float(loss0), rel=1e-6)
    np.testing.assert_array_equal(np.asarray(state.recent), np.asarray(info.loss[-1:]))


def test_sweeping_traced_numbers_traces_the_block_once(packed):
    """``chex.assert_max_traces``: new values of the traced numbers reuse the program."""
    config = dataclasses.replace(CONFIG, max_iter=8, block=4)
    chex.clear_trace_counter()
    block = jax.jit(chex.assert_max_traces(run_block, n=1), static_argnames="config")
    state = init_state(packed.data, packed.placement, packed.components, resolve_options().params,
                       config)
    for e_rel, bg_thresh in [(1e-3, 1.0), (1e-4, 0.5)]:
        params = resolve_options(e_rel=e_rel, bg_thresh=bg_thresh).params
        state, info = block(packed.data, packed.placement, state, params, config)
    assert int(state.it) == 8


def _overshoot_blend():
    """A hypothesis draw (16x16, 3 bands, band 0 all NaN, 21 px PSFs: a wide difference
    kernel, so the initial spectrum is ~2000 for an image peak ~2.5), whose first Adam steps
    make the loss jump by orders of magnitude: ``(observation, centers, max_components)``."""
    import warnings
    from pathlib import Path

    import scarlet_jax as sj

    d = np.load(Path(__file__).parent / "data" / "adam_overshoot_blend.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sj.InputWarning)  # the NaN band gets weight 0
        obs = sj.make_observation(d["images"], d["variance"], d["psfs"], mask=d["mask"])
    return obs, d["centers"], int(d["max_components"])


def test_an_early_overshoot_backs_off_instead_of_diverging():
    """The fit goes back to its best state with smaller steps and ends below its start; it
    does not stop "diverged" at the initial state."""
    import scarlet_jax as sj
    from scarlet_jax.fit import JUMP_FACTOR

    obs, centers, max_components = _overshoot_blend()
    r = sj.deblend(obs, centers, max_components=max_components)
    loss = np.asarray(r.loss)
    assert r.status != "diverged"
    assert np.isfinite(loss).all()
    assert np.nanmax(loss) > JUMP_FACTOR * loss[0]  # the overshoot happened (and was undone)
    assert loss[-1] < loss[0]


@pytest.mark.slow  # ~35 s on 2 cores, mostly compiling the batch and three single fits

def test_backing_off_is_per_blend_in_a_batch():
    """In one batch with blends that never jump, each blend's result is its single fit."""
    import scarlet_jax as sj
    from scarlet_jax.batch import deblend_batch

    obs, centers, max_components = _overshoot_blend()
    others = synthetic_blends(2, seed=3, shape=(16, 16), n_sources=(1, 3), n_bands=3,
                              psf_size=21)
    items = [(obs, centers)] + [(b.observation, b.centers) for b in others]
    kw = dict(max_iter=80, max_components=max_components)
    for (o, c), r in zip(items, deblend_batch(items, max_lanes=4, **kw), strict=True):
        s = sj.deblend(o, c, **kw)
        assert (r.status, r.n_iter) == (s.status, s.n_iter) and r.status != "diverged"
        np.testing.assert_allclose(r.loss, s.loss, rtol=1e-5)
        np.testing.assert_allclose(r.model, s.model, rtol=1e-5,
                                   atol=1e-5 * np.abs(s.model).max())
