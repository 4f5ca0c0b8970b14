"""scarlet_jax.distributed on a LocalCluster (loopback, 2 single-threaded worker processes).

The default run has one test (``test_small_run_end_to_end``); the larger ones are ``slow``.
Blends are tiny (3 bands, about 24 x 24 px, 11 px PSFs, 15 iterations) so that the
compile in each worker is short; workers and this process share a persistent JAX
compilation cache (and the same XLA flags, which are part of its key), so most programs
compile once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

try:
    import dask  # noqa: F401
    import distributed
    import pyarrow  # noqa: F401
except ImportError:
    if os.environ.get("CI") == "true":
        raise  # CI installs the dask extra: a missing dask is a failure there
    pytest.skip("the dask extra is not installed", allow_module_level=True)

import jax

import scarlet_jax as sj
from scarlet_jax import distributed as sd
from scarlet_jax.inputs import read_blend

OPTS = dict(max_iter=15)
SMALL = dict(n_bands=3, psf_size=11)



def _pair(path):
    """(observation, centers) of an input file, as the CLI reads it."""
    blend = read_blend(path)
    return blend.observation, blend.centers

def _blends(n, seed, shape=(24, 24), n_sources=(1, 2)):
    return [(b.observation, b.centers)
            for b in sj.datasets.synthetic_blends(n, seed=seed, shape=shape, n_sources=n_sources,
                                                  **SMALL)]


def _write_input(path: Path, item) -> Path:
    obs, centers = item
    np.savez(path, images=obs.images, variance=obs.variance, psfs=obs.psfs,
             bands=np.array(obs.bands), centers=np.asarray(centers))
    return path


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory):
    """A persistent compilation cache shared by this process and the workers."""
    path = str(tmp_path_factory.mktemp("jax_cache"))
    old = (jax.config.jax_compilation_cache_dir,
           jax.config.jax_persistent_cache_min_compile_time_secs,
           jax.config.jax_persistent_cache_min_entry_size_bytes)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield path
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", old[2])


@pytest.fixture(scope="module")
def hook_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fail_hook")


@pytest.fixture(scope="module")
def client(hook_dir):
    """Two worker processes on loopback; the failure hook is disarmed until a test arms
    it (``hook_dir/armed``)."""
    env = {"JAX_PLATFORMS": "cpu", sd.FAIL_HOOK: str(hook_dir),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # worker processes inherit it
    try:
        cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                           host="127.0.0.1", dashboard_address=None,
                                           death_timeout=300)
        client = distributed.Client(cluster, timeout=300)
        client.wait_for_workers(2, timeout=300)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield client
    client.close()
    cluster.close()


def _arm(hook_dir: Path, mode: str) -> None:
    (hook_dir / "failed").unlink(missing_ok=True)
    (hook_dir / "armed").write_text(mode)


def _disarm(hook_dir: Path) -> None:
    (hook_dir / "armed").unlink(missing_ok=True)


def _mtimes(out: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in (out / "partitions").rglob("*") if p.is_file()}


def assert_same(a, b, rtol=1e-5):
    assert a.status == b.status and a.n_iter == b.n_iter
    np.testing.assert_allclose(a.model, b.model, rtol=rtol, atol=rtol * np.abs(b.model).max())
    np.testing.assert_allclose(a.source_fluxes, b.source_fluxes, rtol=rtol,
                               atol=rtol * np.abs(b.source_fluxes).max())


def check_exactly_once(out: Path, n_inputs: int, results, references):
    """One result per input, equal to the reference; one manifest entry per input; one
    catalog row per source (one row for a failed blend)."""
    assert len(results) == n_inputs
    manifest = sd.read_manifest(out)
    ids = [m["blend_id"] for m in manifest]
    assert len(ids) == n_inputs and len(set(ids)) == n_inputs
    assert [m["position"] for m in manifest] == list(range(n_inputs))
    for res, ref in zip(results, references, strict=True):
        if ref is None:
            assert res.status == "failed"
        else:
            assert_same(res, ref)
    table = sd.read_catalog(out, pandas=False).to_pydict()
    rows = Counter(zip(table["blend_id"], table["source"], strict=True))
    assert max(rows.values()) == 1  # no duplicated row
    per_blend = Counter(table["blend_id"])
    for entry, res in zip(manifest, results, strict=True):
        assert per_blend[entry["blend_id"]] == max(res.n_sources, 1)
    assert sum(per_blend.values()) == len(table["source"])
    return manifest, table


def test_small_run_end_to_end(client, compile_cache, hook_dir, tmp_path):
    """In-memory blends and files, one corrupt; a task fails once after writing its result
    file; a re-run recomputes nothing; other options are refused.

    The references are ``deblend_batch`` on each partition's good blends in this process
    (the programs the workers run, so the shared compile cache serves them); the slow
    ``test_forty_blends_equal_single_process`` compares with one call on all blends.
    """
    a, b, c, d, e, f, g = _blends(7, seed=11, n_sources=2)
    good_file = _write_input(tmp_path / "good.npz", g)
    bad_file = tmp_path / "bad.npz"
    bad_file.write_bytes(b"this is not an npz file")
    source = [a, b, bad_file, c, d, good_file, e, f]  # partitions of 4: 3 + 4 good blends
    first = sj.deblend_batch([a, b, c], **OPTS)
    second = sj.deblend_batch([d, _pair(good_file), e, f], **OPTS)
    references = first[:2] + [None] + first[2:] + second
    for r in first + second:  # warm the shared compile cache for the workers' measurements
        sj.measure.measure(r)
    out = tmp_path / "out"
    _arm(hook_dir, "raise")
    try:
        summary = sd.deblend_catalog(source, out, client, batch_size=4, progress=False,
                                     retries=2, compile_cache=compile_cache, **OPTS)
    finally:
        _disarm(hook_dir)
    assert (hook_dir / "failed").exists()  # the injected failure happened, and was retried
    assert summary.n_blends == 8 and summary.n_failed == 1 and not summary.failed_partitions
    assert summary.n_partitions == 2 and summary.n_skipped == 0
    results = sd.read_results(out)
    manifest, table = check_exactly_once(out, len(source), results, references)
    assert "bad.npz" in results[2].error and manifest[2]["status"] == "failed"
    bad_rows = [i for i, b in enumerate(table["blend_id"]) if b.endswith("bad.npz")]
    assert [table["flags"][i] & sd.FLAG_FAILED for i in bad_rows] == [sd.FLAG_FAILED]
    assert "bad.npz" in table["error"][bad_rows[0]]
    assert not list(out.rglob("*.tmp"))

    before = _mtimes(out)
    again = sd.deblend_catalog(source, out, client, batch_size=4, progress=False,
                               compile_cache=compile_cache, **OPTS)
    assert again.n_skipped == 2 and again.n_blends == 8
    assert _mtimes(out) == before
    with pytest.raises(sj.BadInputError, match="max_iter"):
        sd.deblend_catalog(source, out, client, batch_size=4, progress=False, max_iter=16)


@pytest.mark.slow
def test_forty_blends_equal_single_process(client, compile_cache, tmp_path):
    items = _blends(40, seed=5, shape=[(20, 20), (24, 24)], n_sources=(1, 3))
    refs = sj.deblend_batch(items, **OPTS)
    out = tmp_path / "out"
    summary = sd.deblend_catalog(items, out, client, batch_size=10, progress=False,
                                 compile_cache=compile_cache, **OPTS)
    assert summary.n_blends == 40 and summary.n_partitions == 4
    check_exactly_once(out, 40, sd.read_results(out), refs)


@pytest.mark.slow
def test_worker_killed_mid_task(client, compile_cache, hook_dir, tmp_path):
    """The first task to write its result file kills its worker process; the scheduler
    reruns it on a fresh worker and every blend ends up exactly once."""
    items = _blends(8, seed=21)
    refs = sj.deblend_batch(items, **OPTS)
    out = tmp_path / "out"
    _arm(hook_dir, "exit")
    try:
        summary = sd.deblend_catalog(items, out, client, batch_size=2, progress=False,
                                     compile_cache=compile_cache, **OPTS)
    finally:
        _disarm(hook_dir)
    assert (hook_dir / "failed").exists()
    assert summary.n_blends == 8 and not summary.failed_partitions
    check_exactly_once(out, 8, sd.read_results(out), refs)
    client.wait_for_workers(2, timeout=300)


@pytest.mark.slow
def test_unfinished_partition_is_redone(client, compile_cache, tmp_path):
    items = _blends(4, seed=31)
    refs = sj.deblend_batch(items, **OPTS)
    out = tmp_path / "out"
    sd.deblend_catalog(items, out, client, batch_size=2, progress=False,
                       compile_cache=compile_cache, **OPTS)
    first, second = sorted((out / "partitions").iterdir())
    (second / "manifest.json").unlink()  # as if the task died before its last write
    with pytest.raises(sj.BadFileError, match="unfinished"):
        sd.read_results(out)
    kept = _mtimes(out)
    summary = sd.deblend_catalog(items, out, client, batch_size=2, progress=False,
                                 compile_cache=compile_cache, **OPTS)
    assert summary.n_skipped == 1
    now = _mtimes(out)
    assert all(now[p] == t for p, t in kept.items() if p.parent == first)
    assert now[second / "results.npz"] != kept[second / "results.npz"]
    check_exactly_once(out, 4, sd.read_results(out), refs)


@pytest.mark.slow
def test_dask_bag_of_files(client, compile_cache, tmp_path):
    import dask.bag as db

    items = _blends(4, seed=41)
    paths = [str(_write_input(tmp_path / f"in{i}.npz", it)) for i, it in enumerate(items)]
    refs = sj.deblend_batch([_pair(p) for p in paths], **OPTS)
    out = tmp_path / "out"
    summary = sd.deblend_catalog(db.from_sequence(paths, npartitions=2), out, client,
                                 progress=False, compile_cache=compile_cache, **OPTS)
    assert summary.n_blends == 4 and summary.n_partitions == 2
    results = sd.read_results(out)
    for res, ref in zip(results, refs, strict=True):
        assert_same(res, ref)
    assert [m["blend_id"] for m in sd.read_manifest(out)] == paths


@pytest.mark.slow
def test_cli_workers_and_scheduler(client, tmp_path):
    """``scarlet-jax batch DIR --workers 1`` and ``--scheduler ADDRESS`` (the console
    script in a subprocess) write the same layout and results."""
    items = _blends(3, seed=51)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i, it in enumerate(items):
        _write_input(inputs / f"b{i}.npz", it)
    (inputs / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.pathsep.join(sys.path),
           "SCARLET_JAX_CACHE": str(tmp_path / "cache")}
    outs = []
    for flag in (["--workers", "1"], ["--scheduler", client.scheduler.address]):
        out = tmp_path / f"out{len(outs)}"
        t0 = time.time()
        proc = subprocess.run(["scarlet-jax", "batch", str(inputs), "--out", str(out),
                               "--max-iter", "15", *flag], env=env, capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "4 blends" in proc.stdout + proc.stderr, time.time() - t0
        outs.append(out)
    a, b = (sd.read_results(o) for o in outs)
    assert sum(r.status == "failed" for r in a) == 1
    for x, y in zip(a, b, strict=True):
        if x.error is None:
            assert_same(x, y)
        else:
            assert y.error is not None and "broken.npz" in y.error
