"""The batch engine: equality with single calls, bucketing, per-blend stops, bad blends."""

import dataclasses
import logging
import os
import subprocess
import sys
import textwrap
import warnings

import jax
import numpy as np
import pytest

import scarlet_jax as sj
from scarlet_jax.batch import deblend_batch
from scarlet_jax.options import resolve_options
from scarlet_jax.pipeline import RunStats, run

OPTS = dict(max_iter=40)


@pytest.fixture(scope="module")
def blends():
    # a mixed set (2-4 sources, varied fluxes), small enough that compiles stay short
    return sj.datasets.synthetic_blends(6, seed=3, shape=(32, 32), n_sources=(2, 4), n_bands=3,
                                        psf_size=11)


def assert_same(a, b, rtol=1e-5):
    assert a.n_iter == b.n_iter and a.converged == b.converged
    np.testing.assert_allclose(a.model, b.model, rtol=rtol, atol=rtol * np.abs(b.model).max())
    np.testing.assert_allclose(a.source_fluxes, b.source_fluxes, rtol=rtol,
                               atol=rtol * np.abs(b.source_fluxes).max())


def test_batch_equals_single_calls(blends):
    """One lane per bucket (the CPU default). A blend alone in its natural bucket runs the
    program ``deblend`` runs (bit-identical); a blend the planner merges into a larger bucket
    runs in that bucket's size classes, whose summation order differs at float rounding
    (measured 1.5e-7 relative on the fluxes), so the check is the issue's 1e-5 with the same
    iteration count."""
    items = [(b.observation, b.centers) for b in blends]
    batch = deblend_batch(items, max_lanes=1, **OPTS)
    assert len(batch) == len(items)
    for (obs, centers), res in zip(items, batch, strict=True):
        assert_same(res, sj.deblend(obs, centers, **OPTS), rtol=1e-5)


def test_hsc_in_a_batch_equals_single(hsc):
    obs, centers = hsc
    single = sj.deblend(obs, centers, **sj.LSST_PIPELINE)
    (batched,) = deblend_batch([(obs, centers)], **sj.LSST_PIPELINE)
    assert_same(batched, single)


def test_per_blend_convergence(blends):
    items = [(b.observation, b.centers) for b in blends]
    res = deblend_batch(items, max_iter=200, e_rel=1e-3)
    n_iter = [r.n_iter for r in res]
    assert all(r.converged for r in res)
    assert len(set(n_iter)) > 1  # each blend stopped on its own
    for r in res:
        assert len(r.loss) == r.n_iter and np.isfinite(r.loss).all()


def test_lane_counts_give_the_same_results(blends):
    """Two lanes (refilled as blends finish) and eight lanes: bit-identical results."""
    items = [(b.observation, b.centers) for b in blends[:5]]
    wide = deblend_batch(items, max_lanes=8, **OPTS)
    narrow = deblend_batch(items, max_lanes=2, **OPTS)
    for a, b in zip(wide, narrow, strict=True):
        assert_same(a, b, rtol=0)


def test_streams_give_the_same_results_blend_by_blend(blends):
    """One-lane buckets fitted by one and by three dispatching threads (streams): every
    blend's result is bit-identical, whichever stream fitted it."""
    items = [(b.observation, b.centers) for b in blends]
    opts = resolve_options(**OPTS)
    one, three = RunStats(), RunStats()
    serial = run(items, opts, max_lanes=1, streams=1, stats=one)
    shared = run(items, opts, max_lanes=1, streams=3, stats=three)
    assert (one.streams, three.streams) == (1, 3) and one.blocks == three.blocks
    assert len(three.stream_blocks) == 3 and sum(three.stream_blocks) == three.blocks
    assert sum(b > 0 for b in three.stream_blocks) >= 2  # the work was shared
    for a, b in zip(serial, shared, strict=True):
        assert_same(a, b, rtol=0)
        np.testing.assert_array_equal(a.loss, b.loss)


def test_streams_default_to_the_cores_for_one_lane_buckets_on_a_cpu():
    from scarlet_jax.pipeline import default_streams

    cores = len(os.sched_getaffinity(0))
    assert default_streams(1, 1, 50) == min(cores, 50)
    assert default_streams(1, 1, 1) == 1  # one blend (deblend): the caller's thread
    assert default_streams(8, 1, 50) == 1  # lanes: one thread feeds the device
    assert default_streams(1, 2, 50) == 1  # sharded over devices


def test_several_streams_need_one_lane_buckets_on_one_device(blends):
    """Several streams fit one blend per run: with lanes or devices they would wait for
    lanes that never fill (a hang), so the call is refused."""
    items = [(b.observation, b.centers) for b in blends[:2]]
    for kwargs in (dict(max_lanes=2, streams=2), dict(max_lanes=1, streams=0)):
        with pytest.raises(sj.BadInputError, match="streams"):
            deblend_batch(items, **kwargs, **OPTS)


def test_an_error_in_any_stream_reaches_the_caller(blends):
    items = [(b.observation, b.centers) for b in blends[:4]]
    bad = dataclasses.replace(items[2][0], images=np.full(items[2][0].shape, np.nan,
                                                          np.float32))
    items[2] = (bad, items[2][1])
    with pytest.raises(sj.BadInputError, match="NaN"):
        run(items, resolve_options(**OPTS), max_lanes=1, streams=2, raise_errors=True)
    with pytest.warns(UserWarning, match="blend 2 skipped"):
        res = run(items, resolve_options(**OPTS), max_lanes=1, streams=2)
    assert res[2].status == "failed" and all(res[i].error is None for i in (0, 1, 3))


def test_bad_and_diverging_blends_are_flagged_and_isolated(blends):
    good = [(b.observation, b.centers) for b in blends[:4]]
    nan_obs = dataclasses.replace(good[1][0], images=np.full(good[1][0].shape, np.nan,
                                                              np.float32))
    huge_obs = dataclasses.replace(good[2][0], images=good[2][0].images * np.float32(1e30))
    clean = deblend_batch(good, **OPTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mixed = deblend_batch([good[0], (nan_obs, good[1][1]), (huge_obs, good[2][1]), good[3]],
                              **OPTS)
    assert mixed[1].status == "failed" and "NaN" in mixed[1].error
    assert mixed[2].diverged and mixed[2].status == "diverged"
    assert np.isfinite(mixed[2].spectra).all() and np.isfinite(mixed[2].morphs).all()
    for i in (0, 3):
        np.testing.assert_array_equal(mixed[i].spectra, clean[i].spectra)
        np.testing.assert_array_equal(mixed[i].morphs, clean[i].morphs)
        np.testing.assert_array_equal(mixed[i].loss, clean[i].loss)


def count_compiles(caplog, name):
    """Compiles of the jitted function ``name`` logged (``jax_log_compiles``) so far."""
    return sum(f"compilation of jit({name})" in r.getMessage() for r in caplog.records)


def test_mixed_sizes_compile_at_most_one_block_program_per_planned_bucket(caplog, monkeypatch):
    shapes = [(32, 32), (48, 64)]
    blends = sj.datasets.synthetic_blends(16, seed=11, shape=shapes, n_sources=(1, 4),
                                          n_bands=3, psf_size=11, edge_margin=5)
    items = [(b.observation, b.centers) for b in blends]
    opts = dict(max_iter=10, grow_margin=10)  # room to grow: no blend leaves its bucket
    plan = sj.plan(items, **opts)
    assert plan.n_failed == 0 and sum(b.n_blends for b in plan.buckets) == 16
    assert 1 <= len(plan.buckets) < 16 and "programs to compile" in str(plan)
    stats = RunStats()
    caplog.set_level(logging.WARNING)
    # every bucket's program compiles in this run, whatever ran before: no executable
    # store (the test run's shared one may hold them), no in-memory jit cache
    monkeypatch.setenv("SCARLET_JAX_CACHE", "off")
    jax.clear_caches()
    with jax.log_compiles(True):
        res = run(items, resolve_options(**opts), stats=stats)
    assert all(r.error is None for r in res)
    assert set(stats.buckets) == {b.key for b in plan.buckets}  # the plan is what ran
    assert stats.regrown == 0
    # at least one compile is seen (the count works), at most one per planned bucket
    block_programs = count_compiles(caplog, "advance") + count_compiles(caplog, "advance_one")
    assert 1 <= block_programs <= len(plan.buckets)


def test_items_may_be_observations_to_detect_on(blends):
    res = deblend_batch([blends[0].observation], max_iter=10)
    assert res[0].n_sources >= 1 and res[0].error is None


def test_sharding_over_two_cpu_devices(tmp_path):
    """Lanes sharded over two devices equal single fits, in a first process (compiles and
    stores) and a second (loads the stored programs: each on the devices it was compiled
    for; loaded onto every device, a one-device program expected two shards)."""
    code = textwrap.dedent("""
        import jax, numpy as np, scarlet_jax as sj
        assert len(jax.local_devices()) == 2
        blends = sj.datasets.synthetic_blends(3, seed=5, shape=(32, 32), n_sources=(2, 3))
        items = [(b.observation, b.centers) for b in blends]
        batch = sj.deblend_batch(items, max_iter=15)
        for (o, c), r in zip(items, batch):
            s = sj.deblend(o, c, max_iter=15)
            np.testing.assert_allclose(r.model, s.model, rtol=1e-5, atol=1e-5)
        print("OK")
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    env["SCARLET_JAX_CACHE"] = str(tmp_path / "cache")
    for _ in ("empty store", "warm store"):
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "OK" in out.stdout
    assert list((tmp_path / "cache").rglob("advance_one-*.bin"))  # the second one loaded


def test_chunk_size_is_deprecated_and_ignored(blends):
    """Lanes replaced chunks: ``chunk_size=`` still runs (old callers) but warns, and the
    results are those without it."""
    items = [(b.observation, b.centers) for b in blends[:2]]
    with pytest.warns(DeprecationWarning, match="chunk_size"):
        old = deblend_batch(items, chunk_size=1, **OPTS)
    new = deblend_batch(items, **OPTS)
    for a, b in zip(old, new, strict=True):
        np.testing.assert_array_equal(a.model, b.model)
