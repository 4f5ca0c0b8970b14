"""Throughput of ``scarlet_jax.distributed.deblend_catalog`` on a local Dask cluster.

A mixed, survey-like set of synthetic blends (5 bands, 32x32 to 48x48 px, 1 to 6 sources,
fluxes over two decades) is deblended in one process (``deblend_batch``) and on a
``LocalCluster`` of 1 and 2 single-threaded worker processes. Each cluster first runs the
set once into a scratch folder (tracing in each worker; the compiled programs come from a
persistent compilation cache shared with this process), then once into a fresh folder,
which is timed: steady-state throughput. Per partition the manifest gives the task's own
seconds (load, fit, measure + write); the scheduler overhead per partition is the wall
time of the run less the task seconds spread over the workers, divided by the number of
partitions (submission, scheduling, transfer of the inputs, result gathering).

  PYTHONPATH=. python benchmarks/bench_dask.py                   # 32 blends, 4 per partition
  PYTHONPATH=. python benchmarks/bench_dask.py --blends 64 --batch-size 8 --max-iter 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import jax

import scarlet_jax as sj
from scarlet_jax import distributed as sd


def survey_set(n: int, seed: int):
    blends = sj.datasets.synthetic_blends(n, seed=seed, shape=[(32, 32), (40, 40), (48, 48)],
                                          n_sources=(1, 6), flux_range=(50.0, 5000.0))
    return [(b.observation, b.centers) for b in blends]


def run_cluster(n_workers: int, items, batch_size: int, opts: dict, scratch: Path,
                cache: str) -> dict:
    import distributed

    cluster = distributed.LocalCluster(n_workers=n_workers, processes=True,
                                       threads_per_worker=1, host="127.0.0.1",
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        t0 = time.perf_counter()
        sd.deblend_catalog(items, scratch / f"warm{n_workers}", client, batch_size=batch_size,
                           progress=False, compile_cache=cache, **opts)
        warm = time.perf_counter() - t0
        out = scratch / f"timed{n_workers}"
        t0 = time.perf_counter()
        summary = sd.deblend_catalog(items, out, client, batch_size=batch_size,
                                     progress=False, compile_cache=cache, **opts)
        wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        client.submit(int, 0, pure=False).result()
        round_trip = time.perf_counter() - t0
    finally:
        client.close()
        cluster.close()
    manifests = [json.loads(p.read_text()) for p in sorted(out.glob("partitions/*/manifest.json"))]
    task = sum(m["seconds"]["total"] for m in manifests)
    parts = len(manifests)
    return {
        "workers": n_workers,
        "partitions": parts,
        "first_run_s": warm,
        "wall_s": wall,
        "blends_per_s": len(items) / wall,
        "task_s_sum": task,
        "fit_s_sum": sum(m["seconds"]["fit"] for m in manifests),
        "write_s_sum": sum(m["seconds"]["write"] for m in manifests),
        "overhead_per_partition_s": (wall - task / n_workers) / parts,
        "noop_task_round_trip_s": round_trip,
        "failed": summary.n_failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blends", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-iter", type=int, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    opts = dict(max_iter=args.max_iter)
    items = survey_set(args.blends, seed=7)
    scratch = Path(tempfile.mkdtemp(prefix="bench_dask_"))
    cache = str(scratch / "jax_cache")  # shared with the workers: they load, not compile
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

    sj.deblend_batch(items, **opts)  # compile
    t0 = time.perf_counter()
    results = sj.deblend_batch(items, **opts)
    single = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in results:
        sj.measure.measure(r)
    measure_s = time.perf_counter() - t0
    rows = [{"workers": 0, "wall_s": single, "blends_per_s": len(items) / single,
             "measure_s": measure_s}]
    try:
        for n in args.workers:
            rows.append(run_cluster(n, items, args.batch_size, opts, scratch, cache))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"{len(items)} blends, {args.batch_size} per partition, max_iter {args.max_iter}, "
          f"{os.cpu_count()} CPUs")
    print(f"in one process: deblend_batch {single:.2f} s ({len(items) / single:.1f} blends/s), "
          f"measure all {measure_s:.2f} s")
    print("workers  wall s  blends/s  first run s  task s (fit, measure+write)  "
          "overhead/partition s  no-op round trip s")
    for r in rows[1:]:
        print(f"{r['workers']:7d} {r['wall_s']:7.2f} {r['blends_per_s']:9.2f} "
              f"{r['first_run_s']:12.1f} {r['task_s_sum']:7.2f} ({r['fit_s_sum']:.2f}, "
              f"{r['write_s_sum']:.2f}) {r['overhead_per_partition_s']:21.3f} "
              f"{r['noop_task_round_trip_s']:19.4f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"machine": platform.platform(), "cpus": os.cpu_count(), "blends": len(items),
              "batch_size": args.batch_size, "max_iter": args.max_iter, "rows": rows}
    (out / "dask_cpu.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
