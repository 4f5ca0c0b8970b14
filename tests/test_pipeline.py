"""The pipeline, the lane scheduler, the plan, memory limits and the compilation cache."""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import scarlet_jax as sj
from scarlet_jax import pipeline
from scarlet_jax.cache import cache_dir
from scarlet_jax.components import BucketKey
from scarlet_jax.errors import BadInputError
from scarlet_jax.memory import memory_limit
from scarlet_jax.options import resolve_options
from scarlet_jax.pipeline import RunStats, run
from scarlet_jax.plan import Planner, pixel_work

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def assert_same(a, b, rtol=1e-5):
    assert a.n_iter == b.n_iter and a.converged == b.converged and a.diverged == b.diverged
    np.testing.assert_allclose(a.model, b.model, rtol=rtol, atol=rtol * np.abs(b.model).max())
    np.testing.assert_allclose(a.source_fluxes, b.source_fluxes, rtol=rtol,
                               atol=rtol * np.abs(b.source_fluxes).max())


def _key(box, slots, canvas=(48, 48), fft=(80, 80), bands=5):
    return BucketKey.single(bands, canvas, box, slots, fft)


def test_merge_rule_bounds_the_padding_blend_by_blend():
    planner = Planner(merge_ratio=1.25)
    big = planner.assign(_key(21, 12))
    assert planner.assign(_key(21, 8)) == big  # 1.18x its own pixel work: merged
    assert pixel_work(big) <= 1.25 * pixel_work(_key(21, 8))
    small = planner.assign(_key(15, 4))  # 1.6x its work in the big one: its own bucket
    assert small == _key(15, 4) and pixel_work(big) > 1.25 * pixel_work(small)
    assert planner.assign(_key(41, 4, canvas=(64, 64), fft=(96, 96))) != big  # other image
    assert planner.buckets == [big, small, _key(41, 4, canvas=(64, 64), fft=(96, 96))]
    with pytest.raises(ValueError, match="merge_ratio"):
        Planner(merge_ratio=0.5)


def test_compile_trade_folds_a_small_bucket_until_its_padding_costs_a_compile():
    from scarlet_jax.plan import CompileCost

    big, small = _key(21, 12), _key(15, 4)  # small: 1.6x its work in big (merge rule: no)
    per_blend = 20 * 1e-6 * (pixel_work(big) - pixel_work(small))  # padding s, 20 iterations
    cost = CompileCost(compile_seconds=2.5 * per_blend, pixel_seconds=1e-6, iterations=20)
    planner = Planner(1.25, cost)
    assert planner.assign(small) == small  # nothing holds it yet: its own bucket
    planner = Planner(1.25, cost)
    assert planner.assign(big) == big
    # two blends' padding costs less than a compile: folded; the third opens its bucket
    assert [planner.assign(small) for _ in range(4)] == [big, big, small, small]
    assert planner.folds == 2 and planner.buckets == [big, small]
    assert planner.assign(_key(15, 4, canvas=(64, 64), fft=(96, 96))) != big  # other image
    # a stored bucket holding a blend within max_padding takes it (no compile)
    stored = Planner(1.25, cost, stored=[big])
    assert stored.assign(small) == big and stored.buckets == [big]
    assert Planner(1.25, cost, stored=[big, small]).assign(small) == small
    assert Planner(1.25).assign(big) == big and Planner(1.25).folds == 0


def test_window_rule_merges_kinds_that_blend_by_blend_open_two_buckets():
    """Neither of two kinds holds the other: blend by blend each opens a bucket; planned
    together they share the smallest layout holding both, while that saves a compile and no
    blend's pixel work passes ``max_padding`` times its own. A blend a stored bucket holds
    within that bound runs there first."""
    from scarlet_jax.plan import CompileCost

    cost = CompileCost(compile_seconds=6.0, pixel_seconds=2.7e-8, iterations=30)
    a, b = _key(21, 8), _key(15, 12)  # a: fewer but larger slots; b: more, smaller
    both = BucketKey(5, (48, 48), ((21, 21, 12),), (80, 80))
    assert pixel_work(both) > 1.25 * pixel_work(b)  # not a merge-rule share
    seq = Planner(1.25, cost)
    assert [seq.assign(k) for k in (a, b, a, b)] == [a, b, a, b] and len(seq.buckets) == 2
    win = Planner(1.25, cost)
    assert win.assign_window([a, b, a, b]) == [both] * 4 and win.buckets == [both]
    assert win.folds == 2  # the two b blends: padded past the merge rule
    assert all(pixel_work(both) <= 2.0 * pixel_work(k) for k in (a, b))
    # a later window joins the existing bucket; another image never merges with it
    other = _key(15, 4, canvas=(64, 64), fft=(96, 96))
    assert win.assign_window([b, other]) == [both, other]
    # the bound: a blend whose pixel work would pass max_padding x its own stays apart
    tight = Planner(1.25, cost, max_padding=1.25)
    assert tight.assign_window([a, b]) == [a, b]
    # stored programs first: each blend in the smallest stored bucket holding it within
    # max_padding, before any merge (so no unstored layout is made)
    assert Planner(1.25, cost, stored=[a, b]).assign_window([a, b, a, b]) == [a, b, a, b]
    wide = BucketKey(5, (48, 48), ((21, 21, 13),), (80, 80))
    assert Planner(1.25, cost, stored=[wide, _key(21, 16)]).assign_window([a, b]) == [wide] * 2
    assert Planner(1.25, cost, stored=[_key(41, 16)]).assign_window([a, b]) == [both] * 2
    # no compile trade: blend by blend
    assert Planner(1.25).assign_window([a, b]) == [a, b]
    with pytest.raises(ValueError, match="max_padding"):
        Planner(1.25, max_padding=1.1)


def test_a_warm_store_gives_no_bucket_that_is_not_stored():
    """The same blends planned with an empty store, then with every bucket of that plan
    stored (a fresh process with a warm cache): no bucket outside the stored set (a planner
    that priced stored programs at 0 inside its merges opened 1 unstored bucket of 10 here),
    and no blend padded past the bound."""
    from scarlet_jax.pipeline import _windows
    from scarlet_jax.plan import COST_ESTIMATES, MAX_PADDING

    shapes = [(48, 48), (64, 64), (64, 64), (80, 80), (64, 96)]  # bench_batch's mixed set
    blends = sj.datasets.synthetic_blends(24, seed=7, shape=shapes, n_sources=(2, 6),
                                          flux_range=(100.0, 20000.0))
    opts = resolve_options(max_iter=300)
    jobs = [job for window in _windows(blends, opts, 1 << 62, Planner(), RunStats())
            for job in window]
    assert all(not isinstance(job, tuple) for job in jobs)  # initialised once, reused
    jobs.sort(key=lambda job: job.index)

    def planned(stored):
        planner = Planner(1.25, COST_ESTIMATES["cpu"], stored)
        first = pipeline.FIRST_WINDOW
        windows = (jobs[:first], jobs[first:])  # _windows' first two windows
        return [k for w in windows for k in planner.assign_window([j.natural for j in w])]

    def bounded(keys):
        return all(pixel_work(k) <= MAX_PADDING * pixel_work(j.natural)
                   for k, j in zip(keys, jobs, strict=True))

    empty = planned(())
    assert len(set(empty)) < len({j.natural for j in jobs})  # the plan merges buckets
    warm = planned(set(empty))
    assert set(warm) <= set(empty) and bounded(warm)
    assert planned(set(warm)) == warm  # and from then on the same plan
    # stored buckets of another plan, a slot larger in every class: most blends run there
    wider = {k._replace(classes=tuple((h, w, n + 1) for h, w, n in k.classes)) for k in empty}
    other = planned(wider)
    assert sum(k in wider for k in other) > len(other) / 2 and bounded(other)


def test_stored_block_programs_are_read_back_as_bucket_keys(tmp_path, monkeypatch):
    import jax
    import jax.numpy as jnp

    from scarlet_jax import cache
    from scarlet_jax.scheduler import block_label, stored_blocks

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    config = resolve_options(max_iter=7).config
    key = _key(21, 8)
    assert stored_blocks(config) == []
    cache.compiled_program(jax.jit(lambda x: x + 1), (jnp.zeros(3),), {},
                           label=block_label(key, config))
    assert stored_blocks(config) == [key]
    assert stored_blocks(resolve_options(max_iter=8).config) == []  # another config's
    labels = tmp_path / os.path.basename(cache.cache_dir()) / "executables" / "labels"
    (labels / "x").write_text("advance_one junk")  # a stray file: skipped
    assert stored_blocks(config) == [key]
    # a label written within the folder's timestamp tick (reset here) is still seen
    stamp = labels.stat()
    other = _key(31, 8)
    cache.compiled_program(jax.jit(lambda x: x + 2), (jnp.zeros(4),), {},
                           label=block_label(other, config))
    os.utime(labels, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert sorted(stored_blocks(config)) == sorted([key, other])
    for middle in ("(5, (48, 48)", "(5, (48, 48))"):  # this config's, but no bucket key
        junk = f"advance_one {middle} {config!r}"
        cache._write_label(cache._label_path(junk), junk)
    assert len(cache.stored_labels("advance_one ")) == 4  # valid labels: parsed, skipped
    assert sorted(stored_blocks(config)) == sorted([key, other])
    monkeypatch.setenv(cache.CACHE_ENV, "off")
    assert stored_blocks(config) == []


def test_plan_prints_its_rules_and_programs():
    blends = sj.datasets.synthetic_blends(3, seed=3, shape=(32, 32), n_sources=(2, 3),
                                          n_bands=3, psf_size=11, edge_margin=6)
    the_plan = sj.plan([(b.observation, b.centers) for b in blends], max_lanes=1, devices=1)
    text = str(the_plan)
    assert "<= 1.25x a blend's own" in text and "runs there first" in text
    assert f"programs to compile: {len(the_plan.buckets)} block programs" in text
    assert sum(b.n_blends for b in the_plan.buckets) == 3


def test_batch_items_may_be_records_with_an_observation():
    """``synthetic_blends``' records go into a batch as they are (their catalogue centres
    used), and an item of no known form is a named error, not a silent skip."""
    blends = sj.datasets.synthetic_blends(2, seed=3, shape=(32, 32), n_sources=(2, 3),
                                          n_bands=3, psf_size=11, edge_margin=6)
    as_records = sj.plan(blends, max_lanes=1, devices=1)
    as_pairs = sj.plan([(b.observation, b.centers) for b in blends], max_lanes=1, devices=1)
    assert not as_records.errors and sum(b.n_blends for b in as_records.buckets) == 2
    assert [b.key for b in as_records.buckets] == [b.key for b in as_pairs.buckets]
    bad = sj.plan([blends[0], "not a blend"], max_lanes=1, devices=1)
    assert list(bad.errors) == [1] and "str" in bad.errors[1]


def _poisoned(item):
    """A blend whose loss overflows at the first step (it diverges at once): one corner
    pixel of 1e20 (its components and boxes, so its bucket, stay those of the clean blend)."""
    obs, centers = item
    images = np.array(obs.images)
    images[:, 0, 0] = np.float32(1e20)
    return dataclasses.replace(obs, images=images), centers


def _same_bucket_blends(n, seed, poisoned=False, grow_margin=5):
    """``n`` blends that share one natural bucket (same image size and source count, and
    the same slot box after initialisation); with ``poisoned`` the second one is a
    poisoned blend of that bucket too."""
    from collections import defaultdict

    from scarlet_jax.pipeline import _initialise

    blends = sj.datasets.synthetic_blends(6 * n, seed=seed, shape=(32, 32), n_sources=(3, 3),
                                          n_bands=3, psf_size=11, edge_margin=6)
    items = [(b.observation, b.centers) for b in blends]
    opts = resolve_options(grow_margin=grow_margin)

    def key(i, item):
        return _initialise(i, item, opts, 1 << 40).natural

    groups = defaultdict(list)
    for i, item in enumerate(items):
        groups[key(i, item)].append(i)
    need = n - 1 if poisoned else n
    for natural, members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        if len(members) < need:
            break
        chosen = [items[i] for i in members[:need]]
        if not poisoned:
            return chosen
        bad = [i for i in range(len(items))
               if i not in members[:need] and key(i, _poisoned(items[i])) == natural]
        if bad:
            return chosen[:1] + [_poisoned(items[bad[0]])] + chosen[1:]
    raise AssertionError(f"no bucket with {n} blends: {[len(v) for v in groups.values()]}")


def test_poisoned_blend_next_to_refilled_lanes_spoils_nothing():
    """Two lanes, seven blends of one bucket: lanes are refilled as blends finish. A blend
    whose loss overflows (poisoned) runs next to refilled lanes, finishes first, and its
    lane is refilled with a good blend: every good blend equals its fit alone."""
    # room to grow (size classes fit closely): no blend leaves its bucket
    items = _same_bucket_blends(7, seed=21, poisoned=True, grow_margin=10)
    opts = resolve_options(max_iter=30, grow_margin=10)
    stats = RunStats()
    results = run(items, opts, max_lanes=2, stats=stats)
    (key,) = stats.buckets  # one bucket of 2 lanes for 7 blends: 5 refills
    assert stats.buckets[key] == 2 and stats.regrown == 0
    assert results[1].diverged and results[1].status == "diverged"
    assert np.isfinite(results[1].spectra).all() and np.isfinite(results[1].morphs).all()
    for i in (0, 2, 3, 4, 5, 6):
        assert not results[i].diverged
        assert_same(results[i], sj.deblend(*items[i], max_iter=30, grow_margin=10))
    # the poisoned blend in the last lane to be filled, after good blends left it: the same
    # results, bit for bit
    order = [0, 2, 3, 4, 5, 6, 1]
    again = run([items[i] for i in order], opts, max_lanes=2)
    for j, i in enumerate(order):
        np.testing.assert_array_equal(again[j].spectra, results[i].spectra)
        np.testing.assert_array_equal(again[j].morphs, results[i].morphs)
        np.testing.assert_array_equal(again[j].loss, results[i].loss)


def test_a_blend_that_needs_a_larger_box_stays_in_the_batch():
    items = _same_bucket_blends(3, seed=4)
    opts = resolve_options(max_iter=40, grow_margin=0)
    stats = RunStats()
    results = run(items, opts, max_lanes=2, stats=stats)
    assert stats.regrown >= 1 and len(stats.buckets) >= 2  # moved to a larger-box bucket
    assert all(r.error is None and not r.diverged for r in results)
    for item, res in zip(items, results, strict=True):
        assert_same(res, sj.deblend(*item, max_iter=40, grow_margin=0))


def test_a_regrown_blend_can_move_into_an_existing_larger_layout():
    """``packing.regrow(into=...)``: a blend whose component outgrew its class moves into a
    given layout that holds its new one (an existing bucket of the batch, no new program),
    carrying every component's spectrum and morphology unchanged."""
    import jax

    from scarlet_jax import packing
    from scarlet_jax.buckets import classes_hold, sort_classes
    from scarlet_jax.pipeline import _initialise
    from scarlet_jax.scheduler import start_state

    items = _same_bucket_blends(1, seed=4)
    opts = resolve_options(max_iter=40, grow_margin=0)
    job = _initialise(0, items[0], opts, 1 << 40)
    packed = packing.pack_blend(job.observation, job.components, grow_margin=0)
    state = jax.device_get(start_state(packed.data, packed.placement, packed.components,
                                       opts.params, opts.config))
    overflow = [np.array(o) for o in state.overflow]
    overflow[0][0] = True  # the first component of the first class needs a larger class
    state = state._replace(overflow=tuple(overflow), needs_room=np.True_)
    own, own_state = packing.regrow(job.observation, job.components, packed, state, opts)
    bigger = sort_classes([(h + 4, w + 4, k + 1) for h, w, k in own.key.classes])
    asked = []

    def into(classes):
        asked.append(classes)
        return bigger

    moved, moved_state = packing.regrow(job.observation, job.components, packed, state, opts,
                                        into=into)
    assert asked == [own.key.classes] and classes_hold(bigger, own.key.classes)
    assert moved.key == own.key._replace(classes=bigger)
    a = packing.unpack_components(own, own_state)
    b = packing.unpack_components(moved, moved_state)
    np.testing.assert_array_equal(a["spectra"], b["spectra"])
    np.testing.assert_array_equal(a["peaks"], b["peaks"])
    for m, n in zip(a["morphs"], b["morphs"], strict=True):  # the same pixels, re-centred
        np.testing.assert_array_equal(np.sort(m[m != 0]), np.sort(n[n != 0]))
    assert a["support"].sum() == b["support"].sum()


def test_plan_shows_buckets_lanes_padding_and_programs():
    items = _same_bucket_blends(3, seed=5) + [(sj.datasets.synthetic_blend(
        2, shape=(24, 40), n_bands=3, n_sources=2, psf_size=11, edge_margin=6).observation,
        np.array([[-5.0, 3.0]]))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan = sj.plan(items, max_iter=20, max_lanes=4)
    assert plan.n_failed == 1 and "outside" in plan.errors[3]
    assert len(plan.buckets) >= 1 and sum(b.n_blends for b in plan.buckets) == 3
    assert all(1 <= b.lanes <= 4 for b in plan.buckets) and plan.padding >= 1.0
    text = str(plan)
    for word in ("buckets", "lanes", "padding", "programs to compile", "block["):
        assert word in text
    assert len(plan.programs) == len(plan.buckets)


def test_memory_limit_refuses_a_blend_too_large_naming_size_and_limit():
    item = _same_bucket_blends(1, seed=6)[0]
    with pytest.raises(BadInputError, match=r"blend \(3, 32, 32\).*over the limit of 1.95 KiB"):
        sj.deblend(*item, max_iter=5, memory_limit=2000)
    with pytest.warns(UserWarning, match="blend 0 skipped.*over the limit"):
        (res,) = sj.deblend_batch([item], max_iter=5, memory_limit=2000)
    assert res.status == "failed" and "device memory" in res.error
    assert memory_limit("3G") == 3 * 2**30 and memory_limit(1234) == 1234
    assert memory_limit() > 2**20  # from the device, else the host
    with pytest.raises(BadInputError, match="bytes"):
        memory_limit("lots")


@pytest.fixture
def without_jax_cache():
    """JAX's persistent cache switched off for one test, then back as it was: once any fit
    ran in this process it is on (at the test run's folder), and it would supply a
    recompile that the executable store never stores (see ``cache._listen``)."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    yield
    jax.config.update("jax_enable_compilation_cache", enabled)
    compilation_cache.reset_cache()


def test_a_stored_executable_is_loaded_and_a_corrupt_one_recompiled(tmp_path, monkeypatch,
                                                                     without_jax_cache):
    import jax
    import jax.numpy as jnp

    from scarlet_jax import cache

    @functools.partial(jax.jit, static_argnames="power")
    def poly(x, shift, power):
        return (x + shift) ** power

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(cache, "_PROGRAMS", {})
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    args = (x, jnp.float32(1.0))
    want = (x + 1) ** 3
    np.testing.assert_allclose(cache.compiled_program(poly, args, dict(power=3))(*args), want)
    (entry,) = (tmp_path / os.path.basename(cache.cache_dir()) / "executables").iterdir()
    assert entry.name.startswith("poly-")
    monkeypatch.setattr(cache, "_PROGRAMS", {})  # as a fresh process: from the store
    with jax.log_compiles(True), warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = cache.compiled_program(poly, args, dict(power=3))
    assert not isinstance(loaded, functools.partial)
    np.testing.assert_allclose(loaded(*args), want)
    other = cache.compiled_program(poly, args, dict(power=2))  # static args are in the key
    np.testing.assert_allclose(other(*args), (x + 1) ** 2)
    for corrupt in (entry.read_bytes()[:100], b"junk", entry.read_bytes()[:-10] + b"0" * 10):
        entry.write_bytes(corrupt)
        monkeypatch.setattr(cache, "_PROGRAMS", {})
        np.testing.assert_allclose(cache.compiled_program(poly, args, dict(power=3))(*args),
                                   want)  # compiled again, and stored again
        assert cache._load(entry) is not None
    monkeypatch.setenv(cache.CACHE_ENV, "off")  # the opt-out: plain jit, nothing stored
    assert isinstance(cache.compiled_program(poly, args, dict(power=3)), functools.partial)


def test_threads_asking_for_one_program_load_or_compile_it_once(tmp_path, monkeypatch):
    """The pipeline prepares programs ahead in a thread: a second thread asking for a
    program being compiled waits for it, and both get the same executable."""
    import threading
    import time
    import uuid

    import jax
    import jax.numpy as jnp

    from scarlet_jax.cache import compiled_program

    monkeypatch.setenv("SCARLET_JAX_CACHE", str(tmp_path))
    lowered = []

    @jax.jit
    def twice(x):
        return 2 * x

    class Slow:  # a jit function whose lowering takes a while and is counted
        __name__ = f"twice_{uuid.uuid4().hex}"

        def lower(self, *args, **kwargs):
            lowered.append(threading.current_thread().name)
            time.sleep(0.5)
            return twice.lower(*args, **kwargs)

    fn, x = Slow(), jnp.arange(3.0)
    got = []
    threads = [threading.Thread(target=lambda: got.append(compiled_program(fn, (x,), {})))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lowered) == 1 and len(got) == 3 and all(g is got[0] for g in got)
    np.testing.assert_array_equal(got[1](x), [0.0, 2.0, 4.0])


def test_cache_folder_is_versioned_and_can_be_switched_off(tmp_path):
    import jax
    import jaxlib

    assert cache_dir("off") is None and cache_dir("None") is None
    folder = cache_dir(str(tmp_path))
    assert folder.startswith(str(tmp_path)) and jax.__version__ in folder
    assert jaxlib.__version__ in folder
    code = textwrap.dedent("""
        import logging, os, scarlet_jax as sj
        import jax
        assert not jax.config.jax_compilation_cache_dir  # importing changes nothing
        b = sj.datasets.synthetic_blend(1, shape=(24, 24), n_bands=2, n_sources=2,
                                        psf_size=11, edge_margin=6)
        jax.config.update("jax_log_compiles", True)
        logging.basicConfig(level=logging.WARNING, format="LOG %(message)s")
        r = sj.deblend(b.observation, b.centers, max_iter=5)
        print("DIR", jax.config.jax_compilation_cache_dir)
        print("MODEL", float(r.model.sum()), r.n_iter)
    """)
    env = dict(os.environ, SCARLET_JAX_CACHE=str(tmp_path / "c"), JAX_PLATFORMS="cpu",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = []
    for _ in range(2):  # an empty cache, then a warm one
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        runs.append(out)
    used = runs[0].stdout.split("DIR ")[1].split()[0]
    assert used == cache_dir(str(tmp_path / "c"))
    stored = sorted(os.listdir(os.path.join(used, "executables")))
    assert [name.split("-")[0] for name in stored] == ["advance_one", "init_state", "labels"]
    # the warm process loads the block program and the start of the fit: no trace, no compile
    assert "compilation of jit(advance_one)" in runs[0].stderr
    assert "jit(advance_one)" not in runs[1].stderr and "jit(init_state)" not in runs[1].stderr
    assert runs[0].stdout.split("MODEL")[1] == runs[1].stdout.split("MODEL")[1]
    env["SCARLET_JAX_CACHE"] = "off"  # what a fit calls first, without a second compile
    off = textwrap.dedent("""
        import jax
        from scarlet_jax.cache import enable_compilation_cache
        assert enable_compilation_cache() is None
        assert not jax.config.jax_compilation_cache_dir; print("OFF")
    """)
    out = subprocess.run([sys.executable, "-c", off], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "OFF" in out.stdout


def test_warmup_compiles_what_the_batch_runs(caplog):
    import logging

    import jax

    # room to grow (size classes fit closely): no blend moves to an unplanned bucket
    items = _same_bucket_blends(3, seed=8, grow_margin=10)
    plan = sj.warmup(items, max_iter=12, max_lanes=2, grow_margin=10)
    caplog.set_level(logging.WARNING)
    with jax.log_compiles(True):
        results = sj.deblend_batch(items, max_iter=12, max_lanes=2, grow_margin=10)
    assert all(r.error is None for r in results) and len(plan.buckets) >= 1
    assert not any("jit(advance)" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_batch_equals_single_on_a_mixed_set_of_fifty():
    """Several canvas sizes and source counts; batch (up to 4 lanes, refilled) against each
    blend alone (one lane): equal to 1e-5 on the model and the fluxes (not bit-identical:
    XLA compiles the vmapped step differently; from 2 lanes on results are bit-identical,
    and in one lane, the CPU default, a batch is bit-identical to deblend)."""
    shapes = [(24, 24), (32, 32), (32, 48)]
    blends = sj.datasets.synthetic_blends(50, seed=17, shape=shapes, n_sources=(1, 4),
                                          n_bands=3, psf_size=11, edge_margin=5)
    items = [(b.observation, b.centers) for b in blends]
    batch = sj.deblend_batch(items, max_iter=15, max_lanes=4)
    for item, res in zip(items, batch, strict=True):
        assert_same(res, sj.deblend(*item, max_iter=15))


@pytest.mark.slow
def test_a_400_pixel_blend_with_50_sources_deblends():
    blend = sj.datasets.synthetic_blend(3, shape=(400, 400), n_sources=50, n_bands=3,
                                        edge_margin=10)
    plan = sj.plan([(blend.observation, blend.centers)], max_iter=30)
    (bucket,) = plan.buckets
    assert bucket.key.canvas == (400, 400) and bucket.lane_bytes < memory_limit()
    res = sj.deblend(blend.observation, blend.centers, max_iter=30)
    assert res.n_sources >= 40 and not res.diverged
    assert np.isfinite(res.model).all() and res.loss[-1] < res.loss[0]


def test_a_blend_whose_bucket_is_known_is_released_before_its_window(monkeypatch):
    """A blend that an existing or stored bucket holds is yielded as soon as it is
    initialised (the device need not wait for its window); the other blends wait for the
    window's plan, and every blend gets the bucket that planning whole windows gives."""
    from scarlet_jax.pipeline import _windows
    from scarlet_jax.plan import COST_ESTIMATES

    monkeypatch.setattr(pipeline, "FIRST_WINDOW", 4)
    shapes = [(48, 48), (64, 64), (64, 64), (80, 80), (64, 96)]
    blends = sj.datasets.synthetic_blends(12, seed=7, shape=shapes, n_sources=(2, 6),
                                          flux_range=(100.0, 20000.0))
    opts = resolve_options(max_iter=300)
    cost = COST_ESTIMATES["cpu"]

    def released(stored):
        planner = Planner(1.25, cost, stored)
        return list(_windows(blends, opts, 1 << 62, planner, RunStats(), window=4))

    cold = released(())
    jobs = sorted((j for out in cold for j in out), key=lambda j: j.index)
    by_windows = Planner(1.25, cost)  # whole windows planned at once, in input order
    expected = [k for w in (jobs[:4], jobs[4:8], jobs[8:12])
                for k in by_windows.assign_window([j.natural for j in w])]
    assert [j.bucket for j in jobs] == expected
    assert [j.index for j in cold[0]] == [0, 1, 2, 3]  # nothing known yet: one window
    order = [j.index for out in cold for j in out]
    assert order != sorted(order)  # a later window: blends 9 and 10 before blend 8
    # everything stored: every blend alone and at once, in input order, in its bucket
    warm = released(set(expected))
    assert [[j.index] for j in (out[0] for out in warm if out)] == [[i] for i in range(12)]
    assert all(len(out) <= 1 for out in warm)
    assert all(j.bucket in set(expected) for out in warm for j in out)
